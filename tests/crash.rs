//! A replica killed with SIGKILL in the middle of a batch reopens with its log and view in
//! agreement: every acknowledged batch is there whole, no batch is there in part, `verify` is
//! clean and the view equals a reindex. Remote ingests that the store thread ran back to back
//! without waiting for the disk are all durable once its queue has drained.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use weft_storage::{Options, Store};

const KILLS: u64 = 6;

/// Reads like a snapshot of the whole view.
fn view(store: &Store) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let ns = store.default_namespace();
    store
        .scan(&ns, b"", true)
        .expect("scan")
        .map(|row| row.expect("row"))
        .collect()
}

#[test]
fn sigkill_mid_batch_loses_no_acknowledged_write_and_leaves_log_and_view_agreeing() {
    let seed = std::env::var("WEFT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
        });
    eprintln!("crash test seed {seed} (WEFT_CRASH_SEED replays it)");
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    drop(Store::init(&data, Options::default(), weft_storage::Access::Closed).expect("init"));

    let mut acknowledged: Option<u64> = None;
    let mut batches_before = 0u64;
    let mut state = seed | 1;
    for kill in 0..KILLS {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Kill somewhere within the first few batches after start, at no fixed phase.
        let delay = Duration::from_micros(20_000 + state % 400_000);
        let mut child = Command::new(env!("CARGO_BIN_EXE_weft-crash-writer"))
            .arg(&data)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the writer");
        let stdout = child.stdout.take().expect("piped stdout");
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.parse::<u64>().ok())
                .last()
        });
        let started = Instant::now();
        std::thread::sleep(delay);
        child.kill().expect("SIGKILL the writer");
        child.wait().expect("reap the writer");
        let last = reader.join().expect("reader thread");
        if last.is_some() {
            acknowledged = last;
        }

        let store = Store::open(&data, Options::default())
            .unwrap_or_else(|e| panic!("seed {seed}, kill {kill}: reopen failed: {e}"));
        let report = store.verify().expect("verify runs");
        assert!(
            report.is_clean(),
            "seed {seed}, kill {kill} after {:?}: {:?}",
            started.elapsed(),
            report.problems
        );
        let ns = store.default_namespace();
        let length = store
            .head(&ns, &store.author())
            .expect("head")
            .map_or(0, |h| h.length);
        eprintln!(
            "kill {kill} after {:?}: feed length {length}, acknowledged up to {acknowledged:?}",
            started.elapsed()
        );
        // The writer numbers its batches on from the `batches_before` it found. Every batch it
        // acknowledged must be there; one more may be, committed just before the kill and not
        // acknowledged yet. Nothing else: no part of a batch, no batch twice.
        let must_hold = last.map_or(batches_before, |batch| batch + 1);
        assert!(
            length == must_hold * 1000 || length == (must_hold + 1) * 1000,
            "seed {seed}, kill {kill}: the writer started at batch {batches_before} and \
             acknowledged up to {last:?}, yet the feed holds {length} entries"
        );
        let before = view(&store);
        assert_eq!(
            before.len() as u64,
            length,
            "seed {seed}, kill {kill}: every entry wrote its own key, yet the view has {} keys \
             for {length} entries",
            before.len()
        );
        batches_before = length / 1000;
        store.reindex().expect("reindex");
        assert_eq!(
            view(&store),
            before,
            "seed {seed}, kill {kill}: the view differs from a reindex"
        );
    }
    assert!(
        acknowledged.is_some(),
        "seed {seed}: the writer never finished a batch; the test proved nothing"
    );
}

#[test]
fn ingests_run_back_to_back_are_durable_once_the_store_thread_is_idle() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (source, replica) = (dir.path().join("source"), dir.path().join("replica"));
    let origin =
        Store::init(&source, Options::default(), weft_storage::Access::Open).expect("init");
    let ns = origin.default_namespace();
    for batch in 0..2 {
        let ops = (0..1000)
            .map(|i| {
                (
                    format!("k{batch}/{i:04}").into_bytes(),
                    weft_storage::Op::Put(vec![7; 100]),
                )
            })
            .collect();
        origin.write(&ns, ops).expect("write");
    }
    let charter = origin.charter(&ns).expect("charter").expect("a charter");
    drop(origin);
    drop(Store::init_joined(&replica, Options::default(), &charter, None).expect("join"));

    let mut child = Command::new(env!("CARGO_BIN_EXE_weft-crash-ingester"))
        .arg(&source)
        .arg(&replica)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the ingester");
    let stdout = child.stdout.take().expect("piped stdout");
    let (sent, printed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let line = BufReader::new(stdout).lines().next();
        let _ = sent.send(line.and_then(Result::ok));
    });
    let line = printed.recv_timeout(Duration::from_secs(120));
    child.kill().expect("SIGKILL the ingester");
    child.wait().expect("reap the ingester");
    let held: u64 = line
        .expect("the ingester finished within 2 minutes")
        .expect("the ingester printed a line")
        .parse()
        .expect("a length");
    assert_eq!(held, 2000, "the ingester took every run");

    let store = Store::open(&replica, Options::default()).expect("reopen");
    let author = Store::open(&source, Options::default())
        .expect("source")
        .author();
    assert_eq!(
        store.head(&ns, &author).expect("head").map(|h| h.length),
        Some(2000),
        "every ingested run survived the kill"
    );
    assert!(store.verify().expect("verify").is_clean());
    assert_eq!(view(&store).len(), 2000);
}
