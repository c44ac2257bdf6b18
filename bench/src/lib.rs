//! The workloads of `shared/WORKLOADS.md`, run against weft and, in the same run, against the
//! raw building blocks (plain redb, one ed25519 signature per batch), so every figure comes
//! with its ratio to what the machine can do.
//!
//! Every write figure names its durability mode. Each figure is the median of several runs,
//! each in a fresh temporary directory.
#![deny(missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer, SigningKey};
use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use serde_json::json;
use weft_storage::{Op, Options, Store};

mod authors;
mod net;
mod nodes;
mod process;
mod redis;

/// A workload of `shared/WORKLOADS.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// One author, puts: (a) one durable put per commit, (b) 1,000 puts per commit.
    W1,
    /// Random gets of W1's keys.
    W2,
    /// Full sync of W1(b)'s entries to a fresh node over loopback.
    W3,
    /// Sparse sync of one prefix of 100 to a fresh node over loopback.
    W4,
    /// Three writers of the same keys converge after connecting.
    W5,
    /// Live latency of a put between three connected nodes.
    W6,
    /// `redis-benchmark` SET and GET against `weft node --redis` and against `redis-server`.
    W7,
    /// Many authors: a fresh node joins 1,000 authors' feeds, the two idle, one appends.
    W8,
    /// Many nodes: a put on one of 20 until all read it; a late joiner catches up from five.
    W9,
}

/// How to run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Puts per run (the workloads say 100,000).
    pub puts: u64,
    /// Runs per figure; the median is reported.
    pub runs: u32,
    /// Print JSON lines only.
    pub json: bool,
    /// The store's page cache in W3's nodes, in bytes; `None`: the default.
    pub cache_size: Option<usize>,
    /// The `weft` binary: W3's receiving node runs as `weft node` in a process of its own, so
    /// that its memory is measured alone.
    pub node_program: std::path::PathBuf,
}

impl Settings {
    /// Durable stores with the cache asked for.
    fn options(&self) -> weft_storage::Options {
        let options = net::durable();
        weft_storage::Options {
            cache_size: self.cache_size.unwrap_or(options.cache_size),
            ..options
        }
    }
}

/// A benchmark that could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// weft itself failed.
    #[error(transparent)]
    Store(#[from] weft_storage::Error),
    /// The raw redb baseline failed.
    #[error("redb baseline: {0}")]
    Redb(#[from] redb::Error),
    /// A temporary directory could not be made.
    #[error("temporary directory: {0}")]
    Io(#[from] std::io::Error),
    /// A node failed or a network workload did not finish.
    #[error("node: {0}")]
    Node(String),
    /// A read returned the wrong value: the figures would be meaningless.
    #[error("get of key {0} returned the wrong value")]
    WrongValue(u64),
}

/// A node's (or an ingest's) failure as a benchmark's.
fn node_error(e: impl std::fmt::Display) -> BenchError {
    BenchError::Node(e.to_string())
}

const DURABLE: &str = "fsync per commit (Durability::Immediate)";
const BATCH: usize = 1000;
const RAW: TableDefinition<&[u8], &[u8]> = TableDefinition::new("raw");

/// Runs the workloads and prints a table row per figure and a JSON line per workload.
///
/// # Errors
/// Whatever stops a run; figures printed before it stand.
pub fn run(workloads: &[Workload], settings: &Settings) -> Result<(), BenchError> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build; figures will be far too low. Use: cargo run --release -p weft-cli -- bench"
        );
    }
    let data = Data::new(settings.puts);
    for workload in workloads {
        match workload {
            Workload::W1 => w1(&data, settings)?,
            Workload::W2 => w2(&data, settings)?,
            Workload::W3 => net::w3(&data, settings)?,
            Workload::W4 => net::w4(&data, settings)?,
            Workload::W5 => net::w5(settings)?,
            Workload::W6 => net::w6(settings)?,
            Workload::W7 => redis::w7(settings)?,
            Workload::W8 => authors::w8(&data, settings)?,
            Workload::W9 => nodes::w9(&data, settings)?,
        }
    }
    Ok(())
}

/// W1's keys and values: `k` + the index zero-padded to 15 digits, and 100 bytes from a
/// seeded stream (blake3's extendable output), the same on every run and machine.
struct Data {
    keys: Vec<Vec<u8>>,
    values: Vec<Vec<u8>>,
}

impl Data {
    fn new(count: u64) -> Data {
        let mut stream = blake3::Hasher::new_derive_key("weft bench values v1").finalize_xof();
        let keys = (0..count)
            .map(|i| format!("k{i:015}").into_bytes())
            .collect();
        let values = (0..count)
            .map(|_| {
                let mut value = vec![0u8; 100];
                stream.fill(&mut value);
                value
            })
            .collect();
        Data { keys, values }
    }

    fn len(&self) -> u64 {
        self.keys.len() as u64
    }
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn row(
    settings: &Settings,
    workload: &str,
    figure: &str,
    value: f64,
    limit: Option<(&str, f64)>,
    mode: &str,
) {
    if settings.json {
        return;
    }
    let limit_text = limit.map_or_else(String::new, |(name, limit)| {
        format!("{name} {limit:>12.0}  ratio {:.2}", value / limit)
    });
    println!("{workload:<6} {figure:<34} {value:>12.0}  {limit_text:<44} {mode}");
}

fn fresh_store(dir: &Path) -> Result<Store, BenchError> {
    Ok(Store::init(
        &dir.join("weft"),
        Options {
            durable: true,
            ..Options::default()
        },
        weft_storage::Access::Open,
    )?)
}

/// W1(a): one durable put per commit.
fn w1a_weft(data: &Data) -> Result<f64, BenchError> {
    let dir = tempfile::tempdir()?;
    let store = fresh_store(dir.path())?;
    let ns = store.default_namespace();
    let start = Instant::now();
    for (key, value) in data.keys.iter().zip(&data.values) {
        store.put(&ns, key, value)?;
    }
    Ok(rate(data.len(), start.elapsed()))
}

/// Writes `data` to `store` in batches of 1,000 puts per commit, calling `committed` with each
/// batch's size after its commit.
fn write_batches(
    store: &Store,
    data: &Data,
    mut committed: impl FnMut(u64),
) -> Result<(), BenchError> {
    let ns = store.default_namespace();
    for (keys, values) in data.keys.chunks(BATCH).zip(data.values.chunks(BATCH)) {
        let ops = keys
            .iter()
            .zip(values)
            .map(|(k, v)| (k.clone(), Op::Put(v.clone())))
            .collect();
        store.write(&ns, ops)?;
        committed(keys.len() as u64);
    }
    Ok(())
}

/// Batches of 1,000 puts per commit, into `dir`.
fn w1b_weft(data: &Data, dir: &Path) -> Result<(Store, f64), BenchError> {
    let store = fresh_store(dir)?;
    let start = Instant::now();
    write_batches(&store, data, |_| {})?;
    Ok((store, rate(data.len(), start.elapsed())))
}

/// The raw limit of W1(a): redb alone, one insert per fsynced commit.
fn w1a_raw(data: &Data) -> Result<f64, BenchError> {
    let dir = tempfile::tempdir()?;
    let db = Database::create(dir.path().join("raw.redb")).map_err(redb::Error::from)?;
    let start = Instant::now();
    for (key, value) in data.keys.iter().zip(&data.values) {
        let mut txn = db.begin_write().map_err(redb::Error::from)?;
        txn.set_durability(Durability::Immediate)
            .map_err(redb::Error::from)?;
        txn.open_table(RAW)
            .map_err(redb::Error::from)?
            .insert(&key[..], &value[..])
            .map_err(redb::Error::from)?;
        txn.commit().map_err(redb::Error::from)?;
    }
    Ok(rate(data.len(), start.elapsed()))
}

/// The raw limit of W1(b): the same keys and values as plain redb inserts, 1,000 per fsynced
/// commit, plus one ed25519 signature per batch.
fn w1b_raw(data: &Data, dir: &Path) -> Result<(Database, f64), BenchError> {
    let db = Database::create(dir.join("raw.redb")).map_err(redb::Error::from)?;
    let key = SigningKey::from_bytes(&[7; 32]);
    let start = Instant::now();
    for (keys, values) in data.keys.chunks(BATCH).zip(data.values.chunks(BATCH)) {
        let mut txn = db.begin_write().map_err(redb::Error::from)?;
        txn.set_durability(Durability::Immediate)
            .map_err(redb::Error::from)?;
        {
            let mut table = txn.open_table(RAW).map_err(redb::Error::from)?;
            for (k, v) in keys.iter().zip(values) {
                table.insert(&k[..], &v[..]).map_err(redb::Error::from)?;
            }
        }
        let signature = key.sign(&[0u8; 116]);
        std::hint::black_box(signature);
        txn.commit().map_err(redb::Error::from)?;
    }
    Ok((db, rate(data.len(), start.elapsed())))
}

/// What a change feed reader saw while W1(b) wrote.
struct Watched {
    /// The writer's puts/s with the reader running.
    puts_per_s: f64,
    /// Changes read per second, from the first write until the reader had read the last.
    changes_per_s: f64,
    /// The most changes the reader was behind the writer at any read.
    max_behind: u64,
    /// How long after the last commit the reader had read everything.
    tail: Duration,
}

/// W1(b) with a reader following the change feed on another thread, as `weft watch` does: a
/// page of up to 1,024 changes per read, and a short sleep when it has read everything.
fn w1b_watched(data: &Data) -> Result<Watched, BenchError> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let dir = tempfile::tempdir()?;
    let store = fresh_store(dir.path())?;
    let ns = store.default_namespace();
    let (written, done) = (AtomicU64::new(0), AtomicBool::new(false));
    let start = Instant::now();
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let (mut read, mut next, mut max_behind) = (0u64, 0u64, 0u64);
            loop {
                let finished = done.load(Ordering::Acquire);
                let page = store.changes(&ns, b"", Some(next), 1024)?;
                read += page.changes.len() as u64;
                next = page.next;
                max_behind = max_behind.max(written.load(Ordering::Acquire).saturating_sub(read));
                if page.changes.is_empty() {
                    if finished {
                        return Ok::<_, BenchError>((read, max_behind, Instant::now()));
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        });
        write_batches(&store, data, |puts| {
            written.fetch_add(puts, Ordering::Release);
        })?;
        let wrote = Instant::now();
        done.store(true, Ordering::Release);
        let (read, max_behind, caught_up) = reader.join().expect("the reader does not panic")?;
        if read != data.len() {
            return Err(BenchError::Node(format!(
                "the change feed gave {read} changes for {} puts",
                data.len()
            )));
        }
        Ok(Watched {
            puts_per_s: rate(data.len(), wrote - start),
            changes_per_s: rate(read, caught_up - start),
            max_behind,
            tail: caught_up.saturating_duration_since(wrote),
        })
    })
}

fn w1(data: &Data, settings: &Settings) -> Result<(), BenchError> {
    let (mut a, mut a_raw, mut b, mut b_raw) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut watched = Vec::new();
    for _ in 0..settings.runs {
        a.push(w1a_weft(data)?);
        a_raw.push(w1a_raw(data)?);
        let dir = tempfile::tempdir()?;
        b.push(w1b_weft(data, dir.path())?.1);
        b_raw.push(w1b_raw(data, dir.path())?.1);
        watched.push(w1b_watched(data)?);
    }
    let (a, a_raw, b, b_raw) = (median(a), median(a_raw), median(b), median(b_raw));
    watched.sort_by(|x, y| x.puts_per_s.total_cmp(&y.puts_per_s));
    let watched = &watched[watched.len() / 2];
    row(
        settings,
        "W1(a)",
        "puts/s, one put per commit",
        a,
        Some(("redb commits/s", a_raw)),
        DURABLE,
    );
    row(
        settings,
        "W1(b)",
        "puts/s, 1,000 puts per commit",
        b,
        Some(("redb+sign/s", b_raw)),
        DURABLE,
    );
    row(
        settings,
        "W1(b)",
        "puts/s, with a watch reader",
        watched.puts_per_s,
        Some(("W1(b) alone", b)),
        DURABLE,
    );
    row(
        settings,
        "watch",
        "changes/s read during W1(b)",
        watched.changes_per_s,
        Some(("W1(b) puts/s", watched.puts_per_s)),
        &format!(
            "at most {} behind; caught up {} ms after the last commit",
            watched.max_behind,
            watched.tail.as_millis()
        ),
    );
    println!(
        "{}",
        json!({
            "workload": "W1", "entries": data.len(), "runs": settings.runs, "durability": DURABLE,
            "watched_puts_per_s": watched.puts_per_s.round(),
            "watch_changes_per_s": watched.changes_per_s.round(),
            "watch_max_behind": watched.max_behind,
            "watch_tail_ms": watched.tail.as_millis() as u64,
            "a_puts_per_s": a.round(), "a_raw_redb_commits_per_s": a_raw.round(), "a_ratio": a / a_raw,
            "a_seconds": data.len() as f64 / a,
            "b_puts_per_s": b.round(), "b_raw_puts_per_s": b_raw.round(), "b_ratio": b / b_raw,
            "b_seconds": data.len() as f64 / b,
        })
    );
    Ok(())
}

/// A fixed permutation of `0..n` (xorshift-driven Fisher–Yates), so every run reads the same
/// random order.
fn shuffled(n: u64) -> Vec<u64> {
    let mut order: Vec<u64> = (0..n).collect();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..order.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    order
}

/// Reads every key in `order` with `get`, checking each value against W1's; returns gets per
/// second. Every reader returns an owned copy of the value, as `Store::get` does.
fn time_gets(
    data: &Data,
    order: &[u64],
    mut get: impl FnMut(&[u8]) -> Result<Option<Vec<u8>>, BenchError>,
) -> Result<f64, BenchError> {
    let start = Instant::now();
    for &i in order {
        if get(&data.keys[i as usize])?.as_deref() != Some(&data.values[i as usize][..]) {
            return Err(BenchError::WrongValue(i));
        }
    }
    Ok(rate(order.len() as u64, start.elapsed()))
}

fn w2(data: &Data, settings: &Settings) -> Result<(), BenchError> {
    let order = shuffled(data.len());
    let (mut gets, mut raw) = (Vec::new(), Vec::new());
    let (mut snapshot_gets, mut raw_one_txn) = (Vec::new(), Vec::new());
    let mut api_gets = Vec::new();
    for _ in 0..settings.runs {
        let dir = tempfile::tempdir()?;
        let (store, _) = w1b_weft(data, dir.path())?;
        let ns = store.default_namespace();
        gets.push(time_gets(data, &order, |key| Ok(store.get(&ns, key)?))?);
        let snapshot = store.snapshot()?;
        snapshot_gets.push(time_gets(data, &order, |key| Ok(snapshot.get(&ns, key)?))?);
        drop(snapshot);
        api_gets.push(net::node_api_gets(store, data, &order)?);

        let (db, _) = w1b_raw(data, dir.path())?;
        raw.push(time_gets(data, &order, |key| {
            let txn = db.begin_read().map_err(redb::Error::from)?;
            let table = txn.open_table(RAW).map_err(redb::Error::from)?;
            let value = table.get(key).map_err(redb::Error::from)?;
            Ok(value.map(|v| v.value().to_vec()))
        })?);
        let txn = db.begin_read().map_err(redb::Error::from)?;
        let table = txn.open_table(RAW).map_err(redb::Error::from)?;
        raw_one_txn.push(time_gets(data, &order, |key| {
            let value = table.get(key).map_err(redb::Error::from)?;
            Ok(value.map(|v| v.value().to_vec()))
        })?);
    }
    let (gets, raw) = (median(gets), median(raw));
    let (snapshot_gets, raw_one_txn) = (median(snapshot_gets), median(raw_one_txn));
    let per_get = "a read transaction per get";
    row(
        settings,
        "W2",
        "gets/s, Store::get",
        gets,
        Some(("redb gets/s", raw)),
        per_get,
    );
    let shared = "one read transaction for all gets";
    let limit = Some(("redb gets/s", raw_one_txn));
    row(
        settings,
        "W2",
        "gets/s, Snapshot::get",
        snapshot_gets,
        limit,
        shared,
    );
    let api_gets = median(api_gets);
    row(
        settings,
        "W2",
        "gets/s, node API (one connection)",
        api_gets,
        Some(("Store::get", gets)),
        "a socket round trip per get",
    );
    println!(
        "{}",
        json!({
            "workload": "W2", "entries": data.len(), "runs": settings.runs,
            "gets_per_s": gets.round(), "raw_redb_gets_per_s": raw.round(), "ratio": gets / raw,
            "snapshot_gets_per_s": snapshot_gets.round(), "raw_redb_one_txn_gets_per_s": raw_one_txn.round(),
            "snapshot_ratio": snapshot_gets / raw_one_txn,
            "seconds": data.len() as f64 / gets, "node_api_gets_per_s": api_gets.round(),
        })
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_deterministic_and_shaped_as_the_workload_says() {
        let (one, two) = (Data::new(3), Data::new(3));
        assert_eq!(one.keys[2], b"k000000000000002");
        assert_eq!(one.values, two.values);
        assert!(one.values.iter().all(|v| v.len() == 100));
        assert_ne!(one.values[0], one.values[1]);
    }

    #[test]
    fn shuffled_is_a_permutation() {
        let mut order = shuffled(1000);
        assert_ne!(order[..10], (0..10).collect::<Vec<u64>>()[..]);
        order.sort_unstable();
        assert_eq!(order, (0..1000).collect::<Vec<u64>>());
    }
}
