//! W3, W5 and W6: nodes over real libp2p on 127.0.0.1, wire bytes counted below encryption.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use weft_node::Keypair;
use weft_node::config::{Network, NodeConfig};
use weft_node::multiaddr::Protocol;
use weft_node::{Multiaddr, Node, NodeHandle};
use weft_storage::{Access, NamespaceId, Op, Options, Store};

use crate::process::NodeProcess;
use crate::{BATCH, BenchError, DURABLE, Data, Settings, median, node_error, row, w1b_weft};

/// How long a workload may take before the run is called failed.
pub(crate) const LIMIT: Duration = Duration::from_secs(300);

/// How a benchmark node on `dir` runs: as `weft node` would, on loopback, dialing `peers`.
fn config(dir: &Path, peers: Vec<Multiaddr>) -> Result<(NodeConfig, Keypair), BenchError> {
    let network = Network {
        peers,
        ..Network::loopback()
    };
    let (mut config, key) = NodeConfig::load(dir, &network).map_err(node_error)?;
    config.sync_interval = Duration::from_secs(5);
    Ok((config, key))
}

/// The charter a replica joining `origin`'s namespace needs.
pub(crate) fn charter_of(origin: &Store) -> Result<weft_storage::Charter, BenchError> {
    origin
        .charter(&origin.default_namespace())?
        .ok_or_else(|| BenchError::Node("the origin namespace has no charter".into()))
}

pub(crate) fn durable() -> Options {
    Options {
        durable: true,
        ..Options::default()
    }
}

pub(crate) async fn start(
    dir: &Path,
    peers: Vec<Multiaddr>,
) -> Result<(Node, Multiaddr), BenchError> {
    start_with(dir, peers, durable()).await
}

/// [`start`] with the store opened with `options`.
pub(crate) async fn start_with(
    dir: &Path,
    peers: Vec<Multiaddr>,
    options: Options,
) -> Result<(Node, Multiaddr), BenchError> {
    let store = Store::open(dir, options)?;
    let (config, key) = config(dir, peers)?;
    let node = Node::start(store, key, config).await.map_err(node_error)?;
    let addr = node
        .listen_addrs()
        .first()
        .cloned()
        .ok_or_else(|| BenchError::Node("no listen address".into()))?
        .with(Protocol::P2p(node.handle().peer_id()));
    Ok((node, addr))
}

pub(crate) async fn held(handle: &NodeHandle) -> Result<u64, BenchError> {
    let status = handle.status().await.map_err(node_error)?;
    Ok(status.feeds.iter().map(|f| f.held).sum())
}

/// Waits until `handle`'s node holds at least `want` entries; `what` names the phase in the
/// error when [`LIMIT`] runs out first.
pub(crate) async fn wait_held(
    handle: &NodeHandle,
    want: u64,
    what: &str,
) -> Result<(), BenchError> {
    let started = Instant::now();
    while held(handle).await? < want {
        if started.elapsed() > LIMIT {
            return Err(BenchError::Node(format!("{what} did not finish in time")));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, BenchError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// W2 through the local API: a node on `store`, one client connection, a round trip per get.
pub(crate) fn node_api_gets(store: Store, data: &Data, order: &[u64]) -> Result<f64, BenchError> {
    use weft_node::api::{ApiRequest, ApiResponse, Client};
    let runtime = runtime()?;
    let dir = store.dir().to_owned();
    let ns = store.default_namespace();
    let (config, key) = config(&dir, Vec::new())?;
    let node = runtime
        .block_on(Node::start(store, key, config))
        .map_err(node_error)?;
    let (stop, shutdown) = weft_node::shutdown::channel();
    let server = runtime.spawn({
        let dir = dir.clone();
        let handle = node.handle();
        async move { weft_node::api::serve(&dir, handle, shutdown).await }
    });
    let started = Instant::now();
    let mut client = loop {
        if let Some(client) = Client::connect(&dir).map_err(node_error)? {
            break client;
        }
        if started.elapsed() > LIMIT {
            return Err(BenchError::Node("the local API did not open".into()));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let start = Instant::now();
    for &i in order {
        let request = ApiRequest::Get {
            ns,
            key: data.keys[i as usize].clone(),
        };
        match client.call(&request).map_err(node_error)? {
            ApiResponse::Value(Some(value)) if value == data.values[i as usize] => {}
            _ => return Err(BenchError::WrongValue(i)),
        }
    }
    let rate = order.len() as f64 / start.elapsed().as_secs_f64();
    drop(client);
    stop.fire();
    runtime
        .block_on(async {
            let _ = server.await;
            node.shutdown().await
        })
        .map_err(node_error)?;
    Ok(rate)
}

/// W3: A holds W1(b)'s entries; a fresh B joins and replicates them all.
pub(crate) fn w3(data: &Data, settings: &Settings) -> Result<(), BenchError> {
    let runtime = runtime()?;
    let mut seconds = Vec::new();
    let mut wire = Vec::new();
    let (mut peak, mut disk) = (Vec::new(), Vec::new());
    for _ in 0..settings.runs {
        let root = tempfile::tempdir()?;
        // As W1(b): batches of 1,000 durable puts; fresh_store puts it in `weft/`.
        let (a, _) = w1b_weft(data, root.path())?;
        let ns = a.default_namespace();
        let charter = charter_of(&a)?;
        let a_dir = a.dir().to_owned();
        drop(a);
        let b_dir = root.path().join("b");
        drop(Store::init_joined(&b_dir, durable(), &charter, None)?);
        let (a, a_addr) = runtime.block_on(start_with(&a_dir, vec![], settings.options()))?;
        // The receiver is a `weft node` of its own, so its peak memory leaves out the sender
        // and the generated data.
        let started = Instant::now();
        let mut b = NodeProcess::start(
            &settings.node_program,
            &b_dir,
            &[a_addr],
            settings.cache_size.map(|bytes| bytes >> 20),
        )?;
        b.wait_held(data.len(), "W3")?;
        seconds.push(started.elapsed().as_secs_f64());
        // The sender talks to nobody else: its bytes are the sync's, both directions.
        wire.push(a.handle().counters().total() as f64);
        peak.push(b.peak_memory_mib());
        b.stop()?;
        runtime.block_on(a.shutdown()).map_err(node_error)?;
        check_every_key(&Store::open(&b_dir, durable())?, ns, data)?;
        disk.push(std::fs::metadata(b_dir.join(weft_storage::DB_FILE))?.len() as f64);
    }
    let seconds = median(seconds);
    let wire = median(wire);
    let peak = median(peak);
    let disk_per_entry = median(disk) / data.len() as f64;
    let per_entry = wire / data.len() as f64;
    let limit = 1.3 * (16.0 + 100.0 + 32.0);
    let rate = data.len() as f64 / seconds;
    row(
        settings,
        "W3",
        "entries/s, full sync",
        rate,
        None,
        "receiver: fsync per ingest commit",
    );
    row(
        settings,
        "W3",
        "wire bytes per entry",
        per_entry,
        Some(("limit 1.3x(k+v+32)", limit)),
        "both directions, TCP below noise",
    );
    if !settings.json {
        println!(
            "W3     seconds from connect to every key readable: {seconds:.3}; wire bytes {wire:.0}"
        );
        println!(
            "W3     the receiving node's peak resident MiB: {peak:.0}; its disk bytes per entry {disk_per_entry:.1}"
        );
    }
    println!(
        "{}",
        json!({
            "workload": "W3", "entries": data.len(), "runs": settings.runs, "seconds": seconds,
            "entries_per_s": rate.round(), "wire_bytes": wire, "wire_bytes_per_entry": per_entry,
            "wire_limit_per_entry": limit, "durability": DURABLE,
            "receiver_peak_rss_mib": peak, "receiver_disk_bytes_per_entry": disk_per_entry,
            "cache_mib": settings.options().cache_size >> 20,
        })
    );
    Ok(())
}

/// The peak resident size that the `status` file of `/proc` at `path` gives, in MiB
/// (`VmHWM`); 0 where it does not say.
pub(crate) fn peak_memory_mib(path: &str) -> f64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// W4's prefixes.
const PREFIXES: u64 = 100;

/// The prefix a fresh sparse replica replicates in W4.
const WANTED: u64 = 42;

/// W4's key for entry `i`: `p` + the prefix number + `/` + the index, 16 bytes like W1's. Each
/// batch of 1,000 holds 10 keys of every prefix, round-robin, so a prefix's entries lie 100
/// apart all along the feed: no two of them share a proof node below the level of 128.
fn w4_key(i: u64) -> Vec<u8> {
    format!("p{:03}/{i:011}", i % PREFIXES).into_bytes()
}

/// W4: A holds 100,000 keys over 100 prefixes; a fresh B replicates only `p042/`. For the
/// ratio, a fresh full replica C syncs the same A in the same run.
pub(crate) fn w4(data: &Data, settings: &Settings) -> Result<(), BenchError> {
    let runtime = runtime()?;
    let (mut seconds, mut wire, mut full_wire, mut disk, mut full_disk) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let wanted = data.len() / PREFIXES;
    for _ in 0..settings.runs {
        let root = tempfile::tempdir()?;
        let a = Store::init(&root.path().join("a"), durable(), Access::Open)?;
        let ns = a.default_namespace();
        let charter = charter_of(&a)?;
        let count = data.len();
        for start in (0..count).step_by(BATCH) {
            let ops = (start..(start + BATCH as u64).min(count))
                .map(|i| (w4_key(i), Op::Put(data.values[i as usize].clone())))
                .collect();
            a.write(&ns, ops)?;
        }
        let a_dir = a.dir().to_owned();
        drop(a);
        let b_dir = root.path().join("b");
        let b = Store::init_joined(&b_dir, durable(), &charter, None)?;
        let prefix = format!("p{WANTED:03}/").into_bytes();
        b.set_interest(&ns, weft_storage::Interest::new([prefix], Vec::new()))?;
        drop(b);
        let c_dir = root.path().join("c");
        drop(Store::init_joined(&c_dir, durable(), &charter, None)?);

        let (s, w, fw) = runtime.block_on(async {
            let (a, a_addr) = start(&a_dir, vec![]).await?;
            let started = Instant::now();
            let (b, _) = start(&b_dir, vec![a_addr.clone()]).await?;
            let handle = b.handle();
            // A sparse feed's held length is how far it has been scanned.
            while held(&handle).await? < count {
                if started.elapsed() > LIMIT {
                    return Err(BenchError::Node("W4 did not finish in time".into()));
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let elapsed = started.elapsed();
            let wire = handle.counters().total();
            check_wanted(&handle, ns, data).await?;
            drop(handle);
            b.shutdown().await.map_err(node_error)?;

            let (c, _) = start(&c_dir, vec![a_addr]).await?;
            let handle = c.handle();
            while held(&handle).await? < count {
                if started.elapsed() > LIMIT {
                    return Err(BenchError::Node("W4's full sync did not finish".into()));
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let full_wire = handle.counters().total();
            drop(handle);
            c.shutdown().await.map_err(node_error)?;
            a.shutdown().await.map_err(node_error)?;
            Ok::<_, BenchError>((elapsed.as_secs_f64(), wire, full_wire))
        })?;
        seconds.push(s);
        wire.push(w as f64);
        full_wire.push(fw as f64);
        disk.push(std::fs::metadata(b_dir.join(weft_storage::DB_FILE))?.len() as f64);
        full_disk.push(std::fs::metadata(c_dir.join(weft_storage::DB_FILE))?.len() as f64);
    }
    let (seconds, wire, full_wire) = (median(seconds), median(wire), median(full_wire));
    let (disk, full_disk) = (median(disk), median(full_disk));
    let per_entry = wire / wanted as f64;
    row(
        settings,
        "W4",
        "seconds, sparse sync of 1 prefix",
        seconds * 1000.0,
        Some(("limit ms", 500.0)),
        "ms; receiver: fsync per ingest commit",
    );
    row(
        settings,
        "W4",
        "wire bytes per entry received",
        per_entry,
        Some(("limit", 400.0)),
        "both directions, TCP below noise",
    );
    row(
        settings,
        "W4",
        "sparse disk bytes",
        disk,
        Some(("5% of full", 0.05 * full_disk)),
        "redb file of the sparse replica",
    );
    if !settings.json {
        println!(
            "W4     {wanted} entries in {seconds:.3} s; wire {wire:.0} bytes, {:.4} of a full sync's {full_wire:.0}; disk {disk:.0} of a full replica's {full_disk:.0} ({:.4})",
            wire / full_wire,
            disk / full_disk
        );
    }
    println!(
        "{}",
        json!({
            "workload": "W4", "entries": data.len(), "wanted": wanted, "runs": settings.runs,
            "seconds": seconds, "wire_bytes": wire, "wire_bytes_per_entry": per_entry,
            "full_sync_wire_bytes": full_wire, "wire_fraction_of_full": wire / full_wire,
            "disk_bytes": disk, "full_disk_bytes": full_disk, "disk_fraction": disk / full_disk,
            "durability": DURABLE,
        })
    );
    Ok(())
}

/// Every key of the wanted prefix reads its value on the sparse replica.
async fn check_wanted(handle: &NodeHandle, ns: NamespaceId, data: &Data) -> Result<(), BenchError> {
    let values = data.values.clone();
    let count = data.len();
    handle
        .worker()
        .run(move |store| {
            let snapshot = store.snapshot()?;
            for i in (WANTED..count).step_by(PREFIXES as usize) {
                if snapshot.get(&ns, &w4_key(i))?.as_ref() != Some(&values[i as usize]) {
                    return Err(BenchError::WrongValue(i));
                }
            }
            Ok(())
        })
        .await
        .map_err(node_error)?
}

/// Every key of `data` reads back its value from `store`.
fn check_every_key(store: &Store, ns: NamespaceId, data: &Data) -> Result<(), BenchError> {
    let snapshot = store.snapshot()?;
    for (i, (key, value)) in data.keys.iter().zip(&data.values).enumerate() {
        if snapshot.get(&ns, key)?.as_ref() != Some(value) {
            return Err(BenchError::WrongValue(i as u64));
        }
    }
    Ok(())
}

fn digest(store: &Store, ns: &NamespaceId) -> Result<[u8; 32], weft_storage::Error> {
    let mut hasher = blake3::Hasher::new();
    for row in store.scan(ns, b"", true)? {
        let (key, value) = row?;
        hasher.update(&key);
        hasher.update(value.as_deref().unwrap_or_default());
    }
    Ok(*hasher.finalize().as_bytes())
}

/// W5: three authors write the same 10,000 keys apart, then connect in a full mesh.
pub(crate) fn w5(settings: &Settings) -> Result<(), BenchError> {
    const KEYS: usize = 10_000;
    let runtime = runtime()?;
    let mut seconds = Vec::new();
    for _ in 0..settings.runs {
        let root = tempfile::tempdir()?;
        let dirs: Vec<_> = (0..3).map(|i| root.path().join(format!("n{i}"))).collect();
        let first = Store::init(&dirs[0], durable(), Access::Open)?;
        let (ns, charter) = (first.default_namespace(), charter_of(&first)?);
        drop(first);
        for dir in &dirs[1..] {
            drop(Store::init_joined(dir, durable(), &charter, None)?);
        }
        for (n, dir) in dirs.iter().enumerate() {
            let store = Store::open(dir, durable())?;
            for chunk in (0..KEYS).collect::<Vec<_>>().chunks(BATCH) {
                let ops = chunk
                    .iter()
                    .map(|i| {
                        (
                            format!("k{i}").into_bytes(),
                            Op::Put(format!("node {n} value {i}").into_bytes()),
                        )
                    })
                    .collect();
                store.write(&ns, ops)?;
            }
        }
        let s = runtime.block_on(async {
            let mut nodes = Vec::new();
            for dir in &dirs {
                nodes.push(start(dir, vec![]).await?);
            }
            let started = Instant::now();
            // Full mesh: each dials the ones before it.
            for i in 1..3 {
                for j in 0..i {
                    nodes[i]
                        .0
                        .handle()
                        .dial(nodes[j].1.clone())
                        .await
                        .map_err(node_error)?;
                }
            }
            loop {
                // Digests read every key on the store thread the ingest runs on, so they are
                // taken only once every node holds every entry, not while sync is under way.
                let mut complete = true;
                for (node, _) in &nodes {
                    complete &= held(&node.handle()).await? == 3 * KEYS as u64;
                }
                if complete {
                    let mut digests = Vec::new();
                    for (node, _) in &nodes {
                        let d = node
                            .handle()
                            .worker()
                            .run(move |store| digest(store, &ns))
                            .await
                            .map_err(node_error)??;
                        digests.push(d);
                    }
                    if digests.iter().all(|d| *d == digests[0]) {
                        break;
                    }
                }
                if started.elapsed() > LIMIT {
                    return Err(BenchError::Node("W5 did not converge in time".into()));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let elapsed = started.elapsed().as_secs_f64();
            // 100 sampled keys agree, and each shows the three concurrent writes as siblings.
            for i in (0..KEYS).step_by(KEYS / 100) {
                let key = format!("k{i}").into_bytes();
                let mut winners = Vec::new();
                for (node, _) in &nodes {
                    let key = key.clone();
                    let (winner, siblings) = node
                        .handle()
                        .worker()
                        .run(move |store| {
                            Ok::<_, weft_storage::Error>((
                                store.get(&ns, &key)?,
                                store.get_all(&ns, &key)?.len(),
                            ))
                        })
                        .await
                        .map_err(node_error)??;
                    if siblings != 3 {
                        return Err(BenchError::Node(format!(
                            "key k{i} has {siblings} siblings, not 3"
                        )));
                    }
                    winners.push(winner);
                }
                if winners.windows(2).any(|w| w[0] != w[1]) {
                    return Err(BenchError::WrongValue(i as u64));
                }
            }
            for (node, _) in nodes {
                node.shutdown().await.map_err(node_error)?;
            }
            Ok::<_, BenchError>(elapsed)
        })?;
        seconds.push(s);
    }
    let seconds = median(seconds);
    row(
        settings,
        "W5",
        "ms to converge after connecting",
        seconds * 1000.0,
        Some(("target", 1000.0)),
        "fsync per commit",
    );
    println!(
        "{}",
        json!({"workload": "W5", "entries": 3 * KEYS, "runs": settings.runs, "seconds": seconds, "durability": DURABLE})
    );
    Ok(())
}

/// W6: a put on one of three connected nodes, until both others can read it.
pub(crate) fn w6(settings: &Settings) -> Result<(), BenchError> {
    const PUTS: usize = 1000;
    let runtime = runtime()?;
    let root = tempfile::tempdir()?;
    let dirs: Vec<_> = (0..3).map(|i| root.path().join(format!("n{i}"))).collect();
    let first = Store::init(&dirs[0], durable(), Access::Open)?;
    let (ns, charter) = (first.default_namespace(), charter_of(&first)?);
    drop(first);
    for dir in &dirs[1..] {
        drop(Store::init_joined(dir, durable(), &charter, None)?);
    }
    let mut latencies = runtime.block_on(async {
        let (a, a_addr) = start(&dirs[0], vec![]).await?;
        let (b, b_addr) = start(&dirs[1], vec![a_addr.clone()]).await?;
        let (c, _) = start(&dirs[2], vec![a_addr, b_addr]).await?;
        let (a_handle, others) = (a.handle(), [b.handle(), c.handle()]);
        // Wait for the mesh: a first put must reach both.
        let mut latencies = Vec::with_capacity(PUTS);
        for i in 0..=PUTS {
            let key = format!("live/{i}").into_bytes();
            let started = Instant::now();
            a_handle
                .write(ns, vec![(key.clone(), Op::Put(vec![1; 100]))])
                .await
                .map_err(node_error)?;
            for other in &others {
                loop {
                    let key = key.clone();
                    let found = other
                        .worker()
                        .run(move |store| store.get(&ns, &key))
                        .await
                        .map_err(node_error)??;
                    if found.is_some() {
                        break;
                    }
                    if started.elapsed() > Duration::from_secs(30) {
                        return Err(BenchError::Node(format!("put {i} did not arrive")));
                    }
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
            if i > 0 {
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        drop((a_handle, others));
        for node in [a, b, c] {
            node.shutdown().await.map_err(node_error)?;
        }
        Ok::<_, BenchError>(latencies)
    })?;
    latencies.sort_by(f64::total_cmp);
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    if !settings.json {
        println!(
            "W6     put on one node until both others read it: median {p50:.2} ms, p99 {p99:.2} ms (target p99 < 50 ms); puts fsync on every node"
        );
    }
    println!(
        "{}",
        json!({"workload": "W6", "puts": PUTS, "median_ms": p50, "p99_ms": p99, "durability": DURABLE})
    );
    Ok(())
}
