//! W8: many authors. One namespace whose entries are spread over 1,000 authors' feeds; a fresh
//! node joins; the two caught-up nodes idle; then one author appends one entry.

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use serde_json::json;
use weft_storage::tree::{self, Frontier};
use weft_storage::{Access, Entry, Op, Run, SignedHead, Store, Timestamp};

use crate::net::{self, charter_of, durable, start, wait_held};
use crate::{BenchError, Data, Settings, median, node_error, row};

/// Authors in the namespace: node A's own, and the rest signed here with keys of their own.
const AUTHORS: u64 = 1000;

/// The first minute of idling after the join, counted on its own: the sync rounds are still
/// stretching apart.
const IDLE: Duration = Duration::from_secs(60);

/// Then the settled idle traffic is counted over this long, once the rounds have stretched to
/// their widest (2^4 periods of 5 s).
const SETTLED: Duration = Duration::from_secs(240);

/// The feed of author `author` (a key made from its number): entries `range` of `data`, in
/// one signed run.
fn authored(
    data: &Data,
    ns: weft_storage::NamespaceId,
    author: u64,
    range: std::ops::Range<u64>,
) -> Run {
    let key = SigningKey::from_bytes(
        blake3::Hasher::new_derive_key("weft bench W8 author v1")
            .update(&author.to_le_bytes())
            .finalize()
            .as_bytes(),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let entries: Vec<Vec<u8>> = range
        .map(|i| {
            Entry {
                timestamp: Timestamp((now << 32) + i),
                key: &data.keys[i as usize],
                op: Op::Put(&data.values[i as usize][..]),
                supersedes: Vec::new(),
            }
            .encode()
        })
        .collect();
    let mut frontier = Frontier::default();
    for entry in &entries {
        frontier.push(tree::leaf_hash(entry), |_, _| {});
    }
    Run {
        head: SignedHead::sign(&key, ns, entries.len() as u64, frontier.root()),
        start: 0,
        entries,
        extension: Vec::new(),
    }
}

/// The three phases' figures of one run.
struct Figures {
    join_seconds: f64,
    join_wire: f64,
    idle_per_minute: f64,
    settled_per_minute: f64,
    append_wire: f64,
}

pub(crate) fn w8(data: &Data, settings: &Settings) -> Result<(), BenchError> {
    let runtime = net::runtime()?;
    let per_author = (data.len() / AUTHORS).max(1);
    let total = per_author * AUTHORS;
    if data.len() < total {
        return Err(BenchError::Node(format!(
            "W8 needs at least {AUTHORS} puts (--puts)"
        )));
    }
    let mut runs = Vec::new();
    for _ in 0..settings.runs {
        let root = tempfile::tempdir()?;
        let a = Store::init(&root.path().join("a"), durable(), Access::Open)?;
        let ns = a.default_namespace();
        let ops = (0..per_author)
            .map(|i| {
                (
                    data.keys[i as usize].clone(),
                    Op::Put(data.values[i as usize].clone()),
                )
            })
            .collect();
        a.write(&ns, ops)?;
        for author in 1..AUTHORS {
            let first = author * per_author;
            a.ingest(&authored(data, ns, author, first..first + per_author))
                .map_err(node_error)?;
        }
        let charter = charter_of(&a)?;
        let a_dir = a.dir().to_owned();
        drop(a);
        let b_dir = root.path().join("b");
        drop(Store::init_joined(&b_dir, durable(), &charter, None)?);
        let figures = runtime.block_on(async {
            let (a, a_addr) = start(&a_dir, vec![]).await?;
            let started = Instant::now();
            let (b, _) = start(&b_dir, vec![a_addr]).await?;
            let (a_handle, b_handle) = (a.handle(), b.handle());
            wait_held(&b_handle, total, "W8: the join").await?;
            let join_seconds = started.elapsed().as_secs_f64();
            let join_wire = b_handle.counters().total() as f64;

            let before = b_handle.counters().total();
            tokio::time::sleep(IDLE).await;
            let idle = b_handle.counters().total() - before;
            let idle_per_minute = idle as f64 * 60.0 / IDLE.as_secs_f64();
            let before = b_handle.counters().total();
            tokio::time::sleep(SETTLED).await;
            let settled = b_handle.counters().total() - before;
            let settled_per_minute = settled as f64 * 60.0 / SETTLED.as_secs_f64();

            let before = b_handle.counters().total();
            a_handle
                .write(
                    ns,
                    vec![(b"w8/appended".to_vec(), Op::Put(data.values[0].clone()))],
                )
                .await
                .map_err(node_error)?;
            wait_held(&b_handle, total + 1, "W8: the append").await?;
            let append_wire = (b_handle.counters().total() - before) as f64;
            drop((a_handle, b_handle));
            b.shutdown().await.map_err(node_error)?;
            a.shutdown().await.map_err(node_error)?;
            Ok::<_, BenchError>(Figures {
                join_seconds,
                join_wire,
                idle_per_minute,
                settled_per_minute,
                append_wire,
            })
        })?;
        runs.push(figures);
    }
    let pick = |f: fn(&Figures) -> f64| median(runs.iter().map(f).collect());
    let join_seconds = pick(|f| f.join_seconds);
    let join_rate = total as f64 / join_seconds;
    let join_per_entry = pick(|f| f.join_wire) / total as f64;
    let idle = pick(|f| f.idle_per_minute);
    let settled = pick(|f| f.settled_per_minute);
    let append = pick(|f| f.append_wire);
    let mode = "1,000 authors, sync round every 5 s";
    row(
        settings,
        "W8",
        "join entries/s",
        join_rate,
        Some(("target", 100_000.0)),
        mode,
    );
    row(
        settings,
        "W8",
        "join wire bytes per entry",
        join_per_entry,
        None,
        mode,
    );
    row(
        settings,
        "W8",
        "idle wire bytes, first minute",
        idle,
        None,
        mode,
    );
    row(
        settings,
        "W8",
        "idle wire bytes per minute, settled",
        settled,
        Some(("target", 1000.0)),
        mode,
    );
    row(
        settings,
        "W8",
        "wire bytes for one append",
        append,
        None,
        mode,
    );
    println!(
        "{}",
        json!({
            "workload": "W8", "authors": AUTHORS, "entries": total, "runs": settings.runs,
            "join_seconds": join_seconds, "join_entries_per_s": join_rate.round(),
            "join_wire_bytes_per_entry": join_per_entry, "idle_seconds": IDLE.as_secs(),
            "idle_wire_bytes_first_minute": idle,
            "settled_seconds": SETTLED.as_secs(), "idle_wire_bytes_per_minute": settled,
            "append_wire_bytes": append,
        })
    );
    Ok(())
}
