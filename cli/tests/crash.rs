//! `weft node` killed with SIGKILL, at random moments: during a storm of writes through its
//! local API, and while ingesting a large catch-up from a peer. After each kill the replica
//! reopens with every acknowledged write, `verify` clean and the view equal to a reindex.
//!
//! These live beside the binary rather than in `tests/` because cargo only gives a package's
//! own tests the path of its binaries.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{Dir, NodeProcess};
use weft_node::api::{ApiRequest, ApiResponse, Client};
use weft_storage::{NamespaceId, Op, Options, Store};

const STORM_KILLS: u64 = 20;

/// A xorshift generator: the seed printed at the start replays a run's timings.
struct Rng(u64);

impl Rng {
    fn from_clock(test: &str) -> Rng {
        let seed = std::env::var("WEFT_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .expect("clock")
                    .as_nanos() as u64
            });
        eprintln!("{test}: seed {seed} (WEFT_CRASH_SEED replays it)");
        Rng(seed | 1)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

type View = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Puts the node acknowledged, as (key, value).
type Acknowledged = Arc<Mutex<Vec<(Vec<u8>, Vec<u8>)>>>;

fn view(store: &Store, ns: &NamespaceId) -> View {
    store
        .scan(ns, b"", true)
        .expect("scan")
        .map(|row| row.expect("row"))
        .collect()
}

/// Opens the replica a killed node left, and checks that it is whole: `verify` clean and the
/// view equal to one rebuilt from the log. Returns the view.
fn reopen_whole(data: &Path, context: &str) -> (Store, View) {
    let store = Store::open(data, Options::default())
        .unwrap_or_else(|e| panic!("{context}: reopen failed: {e}"));
    let report = store.verify().expect("verify runs");
    assert!(report.is_clean(), "{context}: {:?}", report.problems);
    let ns = store.default_namespace();
    let before = view(&store, &ns);
    store.reindex().expect("reindex");
    assert_eq!(
        view(&store, &ns),
        before,
        "{context}: the view differs from a reindex"
    );
    (store, before)
}

/// Set just before the test kills the node: only then may a call fail.
type Killed = Arc<AtomicBool>;

/// A call to the node, or `None` once the test has killed it (the request may or may not have
/// committed). A call that fails while the node should be running fails the test.
fn call(client: &mut Client, request: &ApiRequest, killed: &AtomicBool) -> Option<ApiResponse> {
    match client.call(request) {
        Ok(ApiResponse::Error(e)) => panic!("the node refused {request:?}: {e}"),
        Ok(response) => Some(response),
        Err(_) if killed.load(Ordering::SeqCst) => None,
        Err(e) => panic!("{request:?} failed while the node was running: {e}"),
    }
}

fn connect(data: &Path) -> Client {
    Client::connect(data)
        .expect("connect to the node")
        .expect("a node answers")
}

fn default_namespace(data: &Path) -> NamespaceId {
    match call(
        &mut connect(data),
        &ApiRequest::Facts,
        &AtomicBool::new(false),
    ) {
        Some(ApiResponse::Facts {
            default_namespace, ..
        }) => default_namespace,
        other => panic!("facts: {other:?}"),
    }
}

/// Writes batches of puts through the API until the node dies, recording each batch once the
/// node has acknowledged it.
fn storm(
    data: &Path,
    ns: NamespaceId,
    (round, writer): (u64, u64),
    acknowledged: Acknowledged,
    killed: Killed,
) {
    let mut client = connect(data);
    for batch in 0u64.. {
        let ops: Vec<(Vec<u8>, Vec<u8>)> = (0..1 + batch % 16)
            .map(|i| {
                let key = format!("r{round}/w{writer}/b{batch}/{i}").into_bytes();
                let value = format!("value of {}", String::from_utf8_lossy(&key)).into_bytes();
                (key, value)
            })
            .collect();
        let request = ApiRequest::Write {
            ns,
            ops: ops
                .iter()
                .map(|(k, v)| (k.clone(), Op::Put(v.clone())))
                .collect(),
        };
        match call(&mut client, &request, &killed) {
            Some(ApiResponse::Written(ids)) => {
                assert_eq!(ids.len(), ops.len(), "one version per put");
                acknowledged.lock().expect("lock").extend(ops);
            }
            Some(other) => panic!("a write answered {other:?}"),
            None => return,
        }
    }
}

#[test]
fn sigkill_during_an_api_write_storm_loses_no_acknowledged_write() {
    let mut rng = Rng::from_clock("write storm");
    let dir = Dir::initialized();
    let acknowledged: Acknowledged = Arc::default();
    let mut rounds_with_writes = 0;
    for round in 0..STORM_KILLS {
        let mut node = NodeProcess::start(&dir);
        let ns = default_namespace(&dir.data);
        let before = acknowledged.lock().expect("lock").len();
        let killed = Killed::default();
        let writers: Vec<_> = (0..2)
            .map(|writer| {
                let (data, acknowledged) = (dir.data.clone(), Arc::clone(&acknowledged));
                let killed = Arc::clone(&killed);
                thread::spawn(move || storm(&data, ns, (round, writer), acknowledged, killed))
            })
            .collect();
        thread::sleep(Duration::from_millis(rng.below(400)));
        killed.store(true, Ordering::SeqCst);
        node.signal("-KILL");
        for writer in writers {
            writer.join().expect("a writer panicked");
        }
        let acknowledged = acknowledged.lock().expect("lock");
        rounds_with_writes += usize::from(acknowledged.len() > before);

        let context = format!("round {round}");
        let (store, _) = reopen_whole(&dir.data, &context);
        let lost: Vec<_> = acknowledged
            .iter()
            .filter(|(key, value)| {
                store.get(&ns, key).expect("get").as_deref() != Some(value.as_slice())
            })
            .map(|(key, _)| String::from_utf8_lossy(key).into_owned())
            .collect();
        assert!(
            lost.is_empty(),
            "{context}: {} of {} acknowledged writes lost, e.g. {:?}",
            lost.len(),
            acknowledged.len(),
            &lost[..lost.len().min(5)]
        );
        eprintln!(
            "round {round}: {} writes acknowledged so far, none lost",
            acknowledged.len()
        );
    }
    assert!(
        rounds_with_writes >= STORM_KILLS as usize / 2,
        "only {rounds_with_writes} rounds acknowledged a write before the kill: the test proved little"
    );
}

/// The node's count of entries held across every feed, from its status.
fn held(client: &mut Client) -> u64 {
    match call(client, &ApiRequest::Status, &AtomicBool::new(false)) {
        Some(ApiResponse::Status(status)) => status.feeds.iter().map(|f| f.held).sum(),
        other => panic!("status: {other:?}"),
    }
}

#[test]
fn sigkill_during_a_large_catch_up_resumes_from_what_was_stored() {
    const ENTRIES: u64 = 40_000;
    let mut rng = Rng::from_clock("catch-up");
    let source = Dir::initialized();
    let lines: String = (0..ENTRIES)
        .map(|i| format!("{{\"key\":\"k{i:06}\",\"value\":\"{}\"}}\n", "v".repeat(64)))
        .collect();
    source.weft_stdin(["import"], lines.as_bytes()).ok();
    let _source_node = NodeProcess::start(&source);
    let ticket = source.weft(["ticket"]).ok().text();
    let replica = Dir::new();
    replica.weft(["init", "--join", ticket.trim()]).ok();

    // Kill the replica as soon as it has made progress, plus a random few milliseconds, until
    // it holds everything; every kill in between must leave a whole replica.
    let (mut stored, mut mid_sync_kills) = (0, 0);
    let started = Instant::now();
    while stored < ENTRIES {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the replica did not catch up within 120 s ({stored} of {ENTRIES} held)"
        );
        let mut node = NodeProcess::start(&replica);
        let mut client = connect(&replica.data);
        let waiting = Instant::now();
        while held(&mut client) <= stored {
            assert!(
                waiting.elapsed() < Duration::from_secs(30),
                "no progress past {stored} entries in 30 s"
            );
            thread::sleep(Duration::from_millis(2));
        }
        thread::sleep(Duration::from_millis(rng.below(30)));
        // What the node said it held is what it had committed: all of it must survive the kill.
        let reported = held(&mut client);
        node.signal("-KILL");

        let context = format!("kill {mid_sync_kills} after {stored} entries");
        let (store, view) = reopen_whole(&replica.data, &context);
        let now = store
            .feeds(&store.default_namespace())
            .expect("feeds")
            .iter()
            .map(|f| f.held)
            .sum::<u64>();
        assert!(
            now >= reported,
            "{context}: the node reported {reported} held just before the kill, {now} after"
        );
        assert_eq!(
            view.len() as u64,
            now,
            "{context}: the view's keys are not the entries held"
        );
        eprintln!("{context}: now {now} held");
        mid_sync_kills += u64::from(now < ENTRIES);
        stored = now;
    }
    assert!(
        mid_sync_kills >= 1,
        "no kill landed before the catch-up finished: the test proved nothing"
    );
    drop(_source_node);
    let source_store = Store::open(&source.data, Options::default()).expect("open the source");
    let replica_store = Store::open(&replica.data, Options::default()).expect("open the replica");
    let ns = source_store.default_namespace();
    assert_eq!(view(&replica_store, &ns), view(&source_store, &ns));
}
