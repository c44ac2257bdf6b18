//! W9: many nodes. Twenty nodes in one namespace, each connected to five others; a put on one
//! until all twenty read it, and the gossip bytes that cost; then a late joiner catches up the
//! namespace from five caught-up peers.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use weft_node::{Multiaddr, Node, NodeHandle};
use weft_storage::{Access, NamespaceId, Op, Options, Store};

use crate::net::{self, charter_of, held, start_with, wait_held};
use crate::{BATCH, BenchError, Data, Settings, median, node_error, row};

/// Nodes in the namespace.
const NODES: usize = 20;

/// Puts on the first node, each timed until every node reads it.
const PUTS: usize = 1000;

/// Twenty stores of 100,000 entries share one machine: a small cache each.
const CACHE: usize = 16 << 20;

/// The nodes node `i` dials, of those started before it: the two before it on a ring and, in
/// the second half, the one ten before; so every node has five links, and a put crosses the
/// mesh in a few hops rather than one.
fn links(i: usize) -> Vec<usize> {
    let mut to = Vec::new();
    for back in [1, 2] {
        if i >= back {
            to.push(i - back);
        }
    }
    if i >= NODES / 2 {
        to.push(i - NODES / 2);
    }
    // Close the ring: the last two reach back round to the first two.
    if i == NODES - 1 {
        to.extend([0, 1]);
    }
    if i == NODES - 2 {
        to.push(0);
    }
    to.sort_unstable();
    to.dedup();
    to
}

/// The figures of one run.
struct Figures {
    median_ms: f64,
    p99_ms: f64,
    wire_per_entry_byte: f64,
    join_seconds: f64,
    /// Bytes each serving peer sent during the join, largest first.
    served: Vec<u64>,
}

/// Stores for `NODES + 1` replicas (the last is the late joiner), every one but the joiner
/// holding `data` as the first node's feed, ingested as a peer would send it.
fn stores(root: &std::path::Path, data: &Data) -> Result<(Vec<PathBuf>, NamespaceId), BenchError> {
    let options = Options {
        cache_size: CACHE,
        ..net::durable()
    };
    let dirs: Vec<PathBuf> = (0..=NODES).map(|i| root.join(format!("n{i}"))).collect();
    let first = Store::init(&dirs[0], options.clone(), Access::Open)?;
    let ns = first.default_namespace();
    for chunk in (0..data.len()).collect::<Vec<_>>().chunks(BATCH) {
        let ops = chunk
            .iter()
            .map(|&i| {
                (
                    data.keys[i as usize].clone(),
                    Op::Put(data.values[i as usize].clone()),
                )
            })
            .collect();
        first.write(&ns, ops)?;
    }
    let charter = charter_of(&first)?;
    let author = first.author();
    for dir in &dirs[1..] {
        let store = Store::init_joined(dir, options.clone(), &charter, None)?;
        if dir == &dirs[NODES] {
            continue;
        }
        let mut start = 0;
        while let Some(run) = first.read_run(&ns, &author, start, 4096, 4 << 20)? {
            start = run.end();
            store.ingest(&run).map_err(node_error)?;
        }
    }
    Ok((dirs, ns))
}

/// Puts `key` on `writer` and returns the milliseconds until every one of `readers` reads it.
async fn timed_put(
    writer: &NodeHandle,
    readers: &[NodeHandle],
    ns: NamespaceId,
    key: Vec<u8>,
) -> Result<f64, BenchError> {
    let started = Instant::now();
    writer
        .write(ns, vec![(key.clone(), Op::Put(vec![7; 100]))])
        .await
        .map_err(node_error)?;
    let mut waiting: Vec<&NodeHandle> = readers.iter().collect();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for reader in waiting {
            let key = key.clone();
            let found = reader
                .worker()
                .run(move |store| store.get(&ns, &key))
                .await
                .map_err(node_error)??;
            if found.is_none() {
                still.push(reader);
            }
        }
        waiting = still;
        if started.elapsed() > Duration::from_secs(30) {
            return Err(BenchError::Node(format!(
                "W9: a put reached only {} of {NODES} nodes in 30 s",
                NODES - waiting.len()
            )));
        }
        if !waiting.is_empty() {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

fn sent(handles: &[NodeHandle]) -> u64 {
    handles
        .iter()
        .map(|h| h.counters().sent.load(std::sync::atomic::Ordering::Relaxed))
        .sum()
}

async fn one_run(dirs: &[PathBuf], ns: NamespaceId, entries: u64) -> Result<Figures, BenchError> {
    let options = Options {
        cache_size: CACHE,
        ..net::durable()
    };
    let mut nodes: Vec<Node> = Vec::new();
    let mut addrs: Vec<Multiaddr> = Vec::new();
    for (i, dir) in dirs[..NODES].iter().enumerate() {
        let peers = links(i)
            .into_iter()
            .filter(|&j| j < i)
            .map(|j| addrs[j].clone())
            .collect();
        let (node, addr) = start_with(dir, peers, options.clone()).await?;
        nodes.push(node);
        addrs.push(addr);
    }
    let handles: Vec<NodeHandle> = nodes.iter().map(Node::handle).collect();
    // The mesh has formed once a first put reaches everyone.
    timed_put(&handles[0], &handles[1..], ns, b"w9/warm-up".to_vec()).await?;

    let before = sent(&handles);
    let mut latencies = Vec::with_capacity(PUTS);
    for i in 0..PUTS {
        let key = format!("w9/{i:04}").into_bytes();
        latencies.push(timed_put(&handles[0], &handles[1..], ns, key).await?);
    }
    let gossip_bytes = sent(&handles) - before;
    let author = handles[0].worker().facts().author;
    let entry_bytes = handles[0]
        .worker()
        .run(move |store| store.read_run(&ns, &author, entries + 1, 1, usize::MAX))
        .await
        .map_err(node_error)??
        .map_or(1, |run| run.entries[0].len());
    latencies.sort_by(f64::total_cmp);

    // The late joiner dials five caught-up nodes spread over the ring.
    let serving: Vec<usize> = (0..5).map(|k| k * NODES / 5).collect();
    let held_now = held(&handles[0]).await?;
    let sent_before: Vec<u64> = serving
        .iter()
        .map(|&i| {
            handles[i]
                .counters()
                .sent
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .collect();
    let started = Instant::now();
    let peers = serving.iter().map(|&i| addrs[i].clone()).collect();
    let (joiner, _) = start_with(&dirs[NODES], peers, options).await?;
    wait_held(&joiner.handle(), held_now, "W9: the late join").await?;
    let join_seconds = started.elapsed().as_secs_f64();
    let mut served: Vec<u64> = serving
        .iter()
        .zip(sent_before)
        .map(|(&i, before)| {
            handles[i]
                .counters()
                .sent
                .load(std::sync::atomic::Ordering::Relaxed)
                - before
        })
        .collect();
    served.sort_unstable_by(|a, b| b.cmp(a));

    joiner.shutdown().await.map_err(node_error)?;
    drop(handles);
    for node in nodes {
        node.shutdown().await.map_err(node_error)?;
    }
    Ok(Figures {
        median_ms: latencies[latencies.len() / 2],
        p99_ms: latencies[latencies.len() * 99 / 100],
        wire_per_entry_byte: gossip_bytes as f64 / (PUTS * entry_bytes) as f64,
        join_seconds,
        served,
    })
}

pub(crate) fn w9(data: &Data, settings: &Settings) -> Result<(), BenchError> {
    let runtime = net::runtime()?;
    let mut runs = Vec::new();
    for _ in 0..settings.runs {
        let root = tempfile::tempdir()?;
        let (dirs, ns) = stores(root.path(), data)?;
        runs.push(runtime.block_on(one_run(&dirs, ns, data.len()))?);
    }
    let pick = |f: fn(&Figures) -> f64| median(runs.iter().map(f).collect());
    let (p50, p99) = (pick(|f| f.median_ms), pick(|f| f.p99_ms));
    let factor = pick(|f| f.wire_per_entry_byte);
    let per_node = factor / (NODES - 1) as f64;
    let join_seconds = pick(|f| f.join_seconds);
    let middle = &runs[runs.len() / 2].served;
    let mode = "20 nodes, 5 links each, fsync per commit";
    row(
        settings,
        "W9",
        "ms until all 20 read a put, median",
        p50,
        None,
        mode,
    );
    row(
        settings,
        "W9",
        "ms until all 20 read a put, p99",
        p99,
        Some(("target", 100.0)),
        mode,
    );
    row(
        settings,
        "W9",
        "wire bytes per entry byte, all nodes",
        factor,
        None,
        mode,
    );
    row(
        settings,
        "W9",
        "wire bytes per entry byte per node",
        per_node,
        Some(("target", 3.0)),
        mode,
    );
    row(
        settings,
        "W9",
        "late joiner entries/s (5 peers)",
        (data.len() + PUTS as u64 + 1) as f64 / join_seconds,
        None,
        mode,
    );
    if !settings.json {
        println!("W9     bytes each serving peer sent the late joiner: {middle:?}");
    }
    println!(
        "{}",
        json!({
            "workload": "W9", "nodes": NODES, "puts": PUTS, "runs": settings.runs,
            "median_ms": p50, "p99_ms": p99, "wire_bytes_per_entry_byte": factor,
            "wire_bytes_per_entry_byte_per_node": per_node,
            "late_join_entries": data.len() + PUTS as u64 + 1,
            "late_join_seconds": join_seconds, "late_join_bytes_per_peer": middle,
        })
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every node has five links, none to itself, and the links join all twenty.
    #[test]
    fn the_links_give_every_node_five_and_join_them_all() {
        let mut degree = [0usize; NODES];
        let mut edges = Vec::new();
        for i in 0..NODES {
            for j in links(i) {
                assert!(j < i, "{i} dials {j}, which starts after it");
                edges.push((j, i));
                degree[i] += 1;
                degree[j] += 1;
            }
        }
        assert_eq!(degree, [5; NODES]);
        let mut reached = vec![0];
        while let Some(&(a, b)) = edges
            .iter()
            .find(|(a, b)| reached.contains(a) != reached.contains(b))
        {
            reached.push(if reached.contains(&a) { b } else { a });
        }
        assert_eq!(reached.len(), NODES, "the mesh is connected");
    }
}
