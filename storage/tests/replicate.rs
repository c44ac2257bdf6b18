//! Replication at the store level: runs served from one replica and ingested by another,
//! partial holders serving onward, and every kind of bad run refused with nothing changed.

use crate::common::{charter, held, options};
use weft_storage::{Access, IngestError, Ingested, Invalid, Op, Run, Store};

const ANY: usize = usize::MAX;

fn origin() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::init(&dir.path().join("data"), options(), Access::Open).expect("init");
    (dir, store)
}

fn joined(origin: &Store) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::init_joined(&dir.path().join("data"), options(), &charter(origin), None)
        .expect("join");
    (dir, store)
}

fn write_batches(store: &Store, sizes: &[usize]) {
    let ns = store.default_namespace();
    let mut i = 0;
    for size in sizes {
        let ops = (0..*size)
            .map(|_| {
                i += 1;
                (
                    format!("key{:03}", i % 13).into_bytes(),
                    Op::Put(format!("value {i}").into_bytes()),
                )
            })
            .collect();
        store.write(&ns, ops).expect("write");
    }
}

/// Pulls `from`'s feed of `author` into `to` in runs of `step`, as catch-up does.
fn pull(from: &Store, to: &Store, author: &weft_storage::AuthorId, step: usize) -> u64 {
    let ns = to.default_namespace();
    let mut runs = 0;
    loop {
        let held = held(to, author);
        let Some(run) = from
            .read_run(&ns, author, held, step, ANY)
            .expect("read_run")
        else {
            return runs;
        };
        match to.ingest(&run).expect("a served run ingests") {
            Ingested::Appended { .. } => runs += 1,
            other => panic!("expected new entries from {held}, got {other:?}"),
        }
    }
}

/// A key with every live version's id and value.
type Dumped = (Vec<u8>, Vec<(weft_storage::VersionId, Option<Vec<u8>>)>);

/// Every key with every live version, for comparing replicas.
fn dump(store: &Store) -> Vec<Dumped> {
    let ns = store.default_namespace();
    (0..13)
        .map(|i| {
            let key = format!("key{i:03}").into_bytes();
            let versions = store
                .get_all(&ns, &key)
                .expect("get_all")
                .into_iter()
                .map(|v| (v.id, v.value))
                .collect();
            (key, versions)
        })
        .collect()
}

#[test]
fn runs_of_any_size_replicate_a_feed_and_verify_midway() {
    let (_a_dir, a) = origin();
    write_batches(&a, &[5, 1, 10, 3, 17]);
    for step in [1, 3, 7, 36, 100] {
        let (_b_dir, b) = joined(&a);
        // Stop part way: the partial feed verifies against the longer head.
        let ns = a.default_namespace();
        let run = a
            .read_run(&ns, &a.author(), 0, step.min(20), ANY)
            .expect("read")
            .expect("something held");
        b.ingest(&run).expect("ingest");
        let report = b.verify().expect("verify");
        assert!(report.is_clean(), "partial feed: {:?}", report.problems);
        let feeds = b.feeds(&ns).expect("feeds");
        assert_eq!(feeds[0].head.length, 36);
        assert_eq!(feeds[0].held, step.min(20) as u64);

        pull(&a, &b, &a.author(), step);
        assert_eq!(held(&b, &a.author()), 36, "step {step}");
        assert_eq!(dump(&a), dump(&b), "step {step}");
        assert!(b.verify().expect("verify").is_clean());
        assert_eq!(
            b.history(&ns, b"key001").expect("history"),
            a.history(&ns, b"key001").expect("history")
        );
    }
}

#[test]
fn a_partial_holder_serves_what_it_holds_with_proofs_to_the_longer_head() {
    let (_a_dir, a) = origin();
    write_batches(&a, &[40]);
    let ns = a.default_namespace();
    let (_c_dir, c) = joined(&a);
    let run = a
        .read_run(&ns, &a.author(), 0, 23, ANY)
        .expect("read")
        .expect("held");
    c.ingest(&run).expect("ingest");

    for step in [1, 4, 23] {
        let (_b_dir, b) = joined(&a);
        pull(&c, &b, &a.author(), step);
        assert_eq!(held(&b, &a.author()), 23);
        assert!(b.verify().expect("verify").is_clean());
        // And the rest comes from the origin.
        pull(&a, &b, &a.author(), step);
        assert_eq!(held(&b, &a.author()), 40);
        assert_eq!(dump(&a), dump(&b));
    }
}

#[test]
fn concurrent_writes_become_siblings_with_one_winner_everywhere() {
    let (_a_dir, a) = origin();
    let ns = a.default_namespace();
    let (_b_dir, b) = joined(&a);
    a.put(&ns, b"key001", b"from a").expect("put");
    b.put(&ns, b"key001", b"from b").expect("put");
    pull(&a, &b, &a.author(), 10);
    pull(&b, &a, &b.author(), 10);
    let on_a = a.get_all(&ns, b"key001").expect("get_all");
    assert_eq!(on_a.len(), 2, "both writes are live: {on_a:?}");
    assert_eq!(dump(&a), dump(&b));
    assert_eq!(
        a.get(&ns, b"key001").expect("get"),
        b.get(&ns, b"key001").expect("get")
    );
    // A write made after seeing both supersedes both, wherever it is read.
    b.put(&ns, b"key001", b"merged").expect("put");
    pull(&b, &a, &b.author(), 10);
    assert_eq!(a.get_all(&ns, b"key001").expect("get_all").len(), 1);
    assert_eq!(
        a.get(&ns, b"key001").expect("get"),
        Some(b"merged".to_vec())
    );
}

fn refused(store: &Store, run: &Run) -> Invalid {
    let before = store.feeds(&store.default_namespace()).expect("feeds");
    let keys = dump(store);
    let error = match store.ingest(run) {
        Err(IngestError::Invalid(invalid)) => invalid,
        other => panic!("expected the run to be refused, got {other:?}"),
    };
    assert_eq!(
        store.feeds(&store.default_namespace()).expect("feeds"),
        before
    );
    assert_eq!(dump(store), keys, "a refused run changed the view");
    error
}

#[test]
fn bad_runs_are_refused_and_change_nothing() {
    let (_a_dir, a) = origin();
    write_batches(&a, &[10, 10]);
    let ns = a.default_namespace();
    let (_b_dir, b) = joined(&a);
    let good = a
        .read_run(&ns, &a.author(), 0, 8, ANY)
        .expect("read")
        .expect("held");

    let mut flipped = good.clone();
    flipped.entries[3][10] ^= 1;
    assert!(matches!(refused(&b, &flipped), Invalid::Proof(_)));

    let mut wrong_extension = good.clone();
    wrong_extension.extension[0][0] ^= 1;
    assert!(matches!(refused(&b, &wrong_extension), Invalid::Proof(_)));

    let mut short_extension = good.clone();
    short_extension.extension.pop();
    assert!(matches!(refused(&b, &short_extension), Invalid::Proof(_)));

    let mut forged = good.clone();
    forged.head.signature[5] ^= 1;
    assert!(matches!(refused(&b, &forged), Invalid::Proof(_)));

    let mut longer = good.clone();
    longer.head.length += 1;
    assert!(matches!(refused(&b, &longer), Invalid::Proof(_)));

    let mut past_head = good.clone();
    past_head.start = 15;
    assert!(matches!(refused(&b, &past_head), Invalid::BadRange { .. }));

    // A feed of a namespace b does not hold, though validly signed.
    let (_o_dir, other) = origin();
    write_batches(&other, &[3]);
    let foreign = other
        .read_run(&other.default_namespace(), &other.author(), 0, 3, ANY)
        .expect("read")
        .expect("held");
    assert!(matches!(
        refused(&b, &foreign),
        Invalid::UnknownNamespace(_)
    ));

    // a's own feed comes back to it only when a holds less of it: this run it holds.
    assert_eq!(
        a.ingest(&good).expect("own"),
        Ingested::AlreadyHeld { held: 20 }
    );

    // Expected states: a run past the end of what is held, and one already held.
    let later = a
        .read_run(&ns, &a.author(), 12, 3, ANY)
        .expect("read")
        .expect("held");
    assert_eq!(b.ingest(&later).expect("gap"), Ingested::Gap { held: 0 });
    assert!(matches!(
        b.ingest(&good).expect("good"),
        Ingested::Appended { added: 8, held: 8 }
    ));
    assert_eq!(
        b.ingest(&good).expect("again"),
        Ingested::AlreadyHeld { held: 8 }
    );
    assert!(b.verify().expect("verify").is_clean());
}

#[test]
fn runs_respect_the_byte_budget_but_always_carry_one_entry() {
    let (_a_dir, a) = origin();
    let ns = a.default_namespace();
    a.write(
        &ns,
        (0..10)
            .map(|i| (format!("k{i}").into_bytes(), Op::Put(vec![7u8; 1000])))
            .collect(),
    )
    .expect("write");
    let run = a
        .read_run(&ns, &a.author(), 0, 100, 3500)
        .expect("read")
        .expect("held");
    assert_eq!(run.entries.len(), 3);
    let run = a
        .read_run(&ns, &a.author(), 0, 100, 10)
        .expect("read")
        .expect("held");
    assert_eq!(
        run.entries.len(),
        1,
        "a budget smaller than one entry still sends one"
    );
    assert!(
        a.read_run(&ns, &a.author(), 10, 100, ANY)
            .expect("read")
            .is_none()
    );
}

/// A replica restored from an older backup must not write on top of the shorter feed it
/// holds: its next entry would fork its own feed, and every peer would freeze it. Once a peer
/// shows it the longer head, writes wait until the rest is fetched back; then they go on from
/// the end, and the peer takes them as a plain extension.
#[test]
fn a_replica_restored_from_backup_fetches_its_own_feed_back_before_writing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (live_dir, backup_dir) = (dir.path().join("data"), dir.path().join("backup"));
    let ns;
    {
        let store = Store::init(&live_dir, options(), Access::Open).expect("init");
        ns = store.default_namespace();
        write_batches(&store, &[5]);
    }
    weft_storage::copy_data_dir(&live_dir, &backup_dir).expect("back up");
    let live = Store::open(&live_dir, options()).expect("reopen");
    write_batches(&live, &[4, 3]);
    let (_peer_dir, peer) = joined(&live);
    pull(&live, &peer, &live.author(), 16);
    drop(live);

    let restored = Store::open(&backup_dir, options()).expect("open the backup");
    let author = restored.author();
    assert_eq!(held(&restored, &author), 5);
    let peer_head = peer
        .read_run(&ns, &author, 0, 1, ANY)
        .expect("read")
        .expect("held")
        .head;
    assert!(restored.note_own_head(&peer_head).expect("note"));
    match restored.put(&ns, b"k", b"too early") {
        Err(weft_storage::Error::OwnFeedBehind {
            held: 5,
            elsewhere: 12,
            ..
        }) => {}
        other => panic!("a write over a shorter own feed was not refused: {other:?}"),
    }
    assert_eq!(
        held(&restored, &author),
        5,
        "the refused write left nothing"
    );

    assert_eq!(pull(&peer, &restored, &author, 4), 2);
    assert_eq!(held(&restored, &author), 12);
    restored
        .put(&ns, b"k", b"after")
        .expect("a caught-up replica writes");
    pull(&restored, &peer, &author, 16);
    assert_eq!(held(&peer, &author), 13);
    assert!(
        peer.forks(&ns).expect("forks").is_empty(),
        "the author forked itself"
    );
    assert_eq!(
        peer.get(&ns, b"k").expect("get").as_deref(),
        Some(&b"after"[..])
    );
    assert!(restored.verify().expect("verify").is_clean());
}
