//! Sparse replicas at the store level: after random concurrent workloads, a replica holding
//! only some prefixes has exactly the view a full replica has for them, serves it onward, and
//! refuses every bad sparse run with nothing changed.

use crate::common::{charter, held, options};
use weft_storage::{
    Access, FEED_WALK_ENTRIES, IngestError, Ingested, Interest, Invalid, NamespaceId, Op, Served,
    SparseRun, Store, VIEW_WALK_KEYS, VersionId, verify_remote_key,
};

const ANY: usize = usize::MAX;

/// A store of a new open namespace, or one joining `origin`'s.
fn store(origin: Option<&Store>) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data");
    let store = match origin {
        Some(origin) => Store::init_joined(&path, options(), &charter(origin), None),
        None => Store::init(&path, options(), Access::Open),
    }
    .expect("init");
    (dir, store)
}

fn sparse(origin: &Store, prefixes: &[&str]) -> (tempfile::TempDir, Store) {
    let ns = origin.default_namespace();
    let (dir, store) = store(Some(origin));
    let interest = Interest::new(prefixes.iter().map(|p| p.as_bytes().to_vec()), Vec::new());
    store
        .set_interest(&ns, interest)
        .expect("a fresh replica may become sparse");
    (dir, store)
}

/// A small deterministic generator, so a failing seed can be rerun.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const KEYS: &[&str] = &[
    "a/1", "a/2", "a/3", "b/1", "b/2", "b/3", "b/4", "c/1", "c/x1", "c/x2", "cx", "d",
];

/// Every feed of `from` into the full replica `to`, as catch-up does.
fn full_pull(from: &Store, to: &Store) {
    let ns = to.default_namespace();
    for feed in from.feeds(&ns).expect("feeds") {
        let author = feed.head.author;
        if author == to.author() {
            continue;
        }
        while let Some(run) = from
            .read_run(&ns, &author, held(to, &author), 7, ANY)
            .expect("read_run")
        {
            if !matches!(to.ingest(&run).expect("ingest"), Ingested::Appended { .. }) {
                break;
            }
        }
    }
}

/// What `to`'s interest wants of every feed `from` holds, in sparse runs of `step` entries.
fn sparse_pull(from: &Store, to: &Store, step: usize) {
    let ns = to.default_namespace();
    let want = to.interest(&ns).expect("ns").expect("sparse");
    for feed in from.feeds(&ns).expect("feeds") {
        let author = feed.head.author;
        if author == to.author() {
            continue;
        }
        loop {
            let start = held(to, &author);
            match from
                .read_sparse(&ns, &author, start, &want, step, ANY)
                .expect("read_sparse")
            {
                Served::Run(run) => match to.ingest_sparse(&run).expect("a served run ingests") {
                    Ingested::Appended { held, .. } => assert_eq!(held, run.end),
                    Ingested::AlreadyHeld { .. } => break,
                    Ingested::Gap { held } => panic!("gap at {held} for a run from {start}"),
                    Ingested::Frozen { held, .. } => panic!("{author} frozen at {held}"),
                    Ingested::NotMember { .. } => panic!("{author} is not a member"),
                },
                Served::Nothing => break,
                Served::NotCovered => panic!("{start} of {author} not covered"),
            }
        }
    }
}

/// Every live version of `key`, or `None` when the replica does not replicate it.
fn versions(store: &Store, key: &str) -> Vec<(VersionId, Option<Vec<u8>>)> {
    store
        .get_all(&store.default_namespace(), key.as_bytes())
        .expect("get_all")
        .into_iter()
        .map(|v| (v.id, v.value))
        .collect()
}

fn assert_same_view(full: &Store, sparse: &Store, prefixes: &[&str], seed: u64) {
    for key in KEYS
        .iter()
        .filter(|k| prefixes.iter().any(|p| k.starts_with(p)))
    {
        assert_eq!(
            versions(sparse, key),
            versions(full, key),
            "seed {seed}: key {key} differs"
        );
    }
    let report = sparse.verify().expect("verify");
    assert!(report.is_clean(), "seed {seed}: {:?}", report.problems);
}

/// Three writers that sync with each other now and then, so versions supersede versions of
/// other authors; sparse replicas pull during the writing and at the end.
#[test]
fn sparse_views_equal_the_full_view_after_random_concurrent_workloads() {
    for seed in 1..=12u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let (_d0, w0) = store(None);
        let ns = w0.default_namespace();
        let (_d1, w1) = store(Some(&w0));
        let (_d2, w2) = store(Some(&w0));
        let writers = [&w0, &w1, &w2];
        let (_ds, s) = sparse(&w0, &["b/", "c/x"]);
        for round in 0..12 {
            for writer in writers {
                let ops = (0..1 + rng.below(6))
                    .map(|i| {
                        let key = KEYS[rng.below(KEYS.len() as u64) as usize];
                        let op = if rng.below(5) == 0 {
                            Op::Delete
                        } else {
                            Op::Put(format!("{seed}/{round}/{i}").into_bytes())
                        };
                        (key.as_bytes().to_vec(), op)
                    })
                    .collect();
                writer.write(&ns, ops).expect("write");
            }
            let from = writers[rng.below(3) as usize];
            let to = writers[rng.below(3) as usize];
            if from.author() != to.author() {
                full_pull(from, to);
            }
            if rng.below(2) == 0 {
                sparse_pull(
                    writers[rng.below(3) as usize],
                    &s,
                    1 + rng.below(4) as usize,
                );
            }
        }
        full_pull(&w1, &w0);
        full_pull(&w2, &w0);
        sparse_pull(&w0, &s, 3);
        assert_same_view(&w0, &s, &["b/", "c/x"], seed);

        // Served onward: a narrower sparse replica filled only from the sparse one.
        let (_dn, narrow) = sparse(&w0, &["b/"]);
        sparse_pull(&s, &narrow, 2);
        assert_same_view(&w0, &narrow, &["b/"], seed);

        // Pushed: whole runs, of which only the wanted entries are kept.
        let (_dp, pushed) = sparse(&w0, &["c/x"]);
        for writer in writers {
            let author = writer.author();
            while let Some(run) = w0
                .read_run(&ns, &author, held(&pushed, &author), 5, ANY)
                .expect("read_run")
            {
                match pushed.ingest(&run).expect("a pushed run ingests") {
                    Ingested::Appended { .. } => {}
                    other => panic!("seed {seed}: {other:?}"),
                }
            }
        }
        assert_same_view(&w0, &pushed, &["c/x"], seed);
        let info = pushed.info().expect("info");
        let kept: u64 = info.namespaces[0].feeds.iter().map(|f| f.length).sum();
        let all: u64 = w0.info().expect("info").namespaces[0]
            .feeds
            .iter()
            .map(|f| f.length)
            .sum();
        assert!(kept < all, "seed {seed}: kept {kept} of {all}");

        // Pruning a sparse replica keeps its view and its proofs.
        s.prune().expect("prune");
        assert_same_view(&w0, &s, &["b/", "c/x"], seed);
    }
}

#[test]
fn keys_outside_the_interest_are_neither_read_nor_written() {
    let (_d0, full) = store(None);
    let ns = full.default_namespace();
    let (_d1, s) = sparse(&full, &["b/"]);
    let refused = |result: weft_storage::Result<_>| match result {
        Err(weft_storage::Error::NotReplicated { key }) => key,
        other => panic!("expected NotReplicated, got {other:?}"),
    };
    assert_eq!(refused(s.get(&ns, b"a/1").map(|_| ())), "a/1");
    assert_eq!(refused(s.get_all(&ns, b"a/1").map(|_| ())), "a/1");
    assert_eq!(refused(s.put(&ns, b"a/1", b"v").map(|_| ())), "a/1");
    assert_eq!(s.get(&ns, b"b/1").expect("covered"), None);
    s.put(&ns, b"b/1", b"mine")
        .expect("a covered key is written");
    assert_eq!(s.get(&ns, b"b/1").expect("covered"), Some(b"mine".to_vec()));
}

#[test]
fn interests_change_within_their_rules() {
    let (_d0, full) = store(None);
    let ns = full.default_namespace();
    full.put(&ns, b"a/1", b"1").expect("put");
    full.put(&ns, b"b/1", b"1").expect("put");
    let (_d1, s) = sparse(&full, &["b/"]);
    sparse_pull(&full, &s, 10);
    assert_eq!(s.get(&ns, b"b/1").expect("b/"), Some(b"1".to_vec()));

    // Widening scans again from the start and fetches what lies under the new prefix.
    s.set_interest(
        &ns,
        Interest::new([b"a/".to_vec(), b"b/".to_vec()], Vec::new()),
    )
    .expect("widen");
    sparse_pull(&full, &s, 1);
    assert_eq!(s.get(&ns, b"a/1").expect("a/"), Some(b"1".to_vec()));
    assert!(s.verify().expect("verify").is_clean());

    let empty = s.set_interest(&ns, Interest::default());
    assert!(
        matches!(empty, Err(weft_storage::Error::Interest(_))),
        "{empty:?}"
    );
    let blank = s.set_interest(&ns, Interest::new([Vec::new()], Vec::new()));
    assert!(
        matches!(blank, Err(weft_storage::Error::Interest(_))),
        "{blank:?}"
    );

    // A replica already holding other feeds in full cannot turn sparse.
    let (_d2, other) = store(Some(&full));
    full_pull(&full, &other);
    let turned = other.set_interest(&ns, Interest::new([b"a/".to_vec()], Vec::new()));
    assert!(
        matches!(turned, Err(weft_storage::Error::Interest(_))),
        "{turned:?}"
    );
    assert_eq!(other.interest(&ns).expect("ns"), None);
}

#[test]
fn an_interest_narrowed_to_authors_fetches_only_theirs() {
    let (_d0, w0) = store(None);
    let ns = w0.default_namespace();
    let (_d1, w1) = store(Some(&w0));
    w0.put(&ns, b"b/1", b"from w0").expect("put");
    w1.put(&ns, b"b/2", b"from w1").expect("put");
    full_pull(&w1, &w0);
    let (_ds, s) = store(Some(&w0));
    s.set_interest(&ns, Interest::new([b"b/".to_vec()], vec![w1.author()]))
        .expect("sparse");
    sparse_pull(&w0, &s, 10);
    assert_eq!(s.get(&ns, b"b/2").expect("b/"), Some(b"from w1".to_vec()));
    assert_eq!(s.get(&ns, b"b/1").expect("b/"), None);
}

fn first_run(full: &Store, ns: &NamespaceId, prefixes: &[&str]) -> SparseRun {
    let want = Interest::new(prefixes.iter().map(|p| p.as_bytes().to_vec()), Vec::new());
    match full
        .read_sparse(ns, &full.author(), 0, &want, ANY, ANY)
        .expect("read_sparse")
    {
        Served::Run(run) => *run,
        other => panic!("{other:?}"),
    }
}

fn refused(store: &Store, run: &SparseRun) -> Invalid {
    let before = store.feeds(&store.default_namespace()).expect("feeds");
    let outcome = store.ingest_sparse(run);
    assert_eq!(
        store.feeds(&store.default_namespace()).expect("feeds"),
        before,
        "a refused run changed the store"
    );
    match outcome {
        Err(IngestError::Invalid(invalid)) => invalid,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn bad_sparse_runs_are_refused_and_change_nothing() {
    let (_d0, full) = store(None);
    let ns = full.default_namespace();
    for i in 0..40 {
        let key = format!("{}/{i}", ["a", "b"][i % 2]);
        full.put(&ns, key.as_bytes(), b"value").expect("put");
    }
    let (_d1, s) = sparse(&full, &["b/"]);
    let good = first_run(&full, &ns, &["b/"]);

    // Entries outside the area asked for, though honestly proven.
    let wider = first_run(&full, &ns, &["a/", "b/"]);
    assert!(matches!(
        refused(&s, &wider),
        Invalid::OutsideInterest { seq: Some(_) }
    ));

    let mut flipped = good.clone();
    let last = flipped.entries[0].1.len() - 1;
    flipped.entries[0].1[last] ^= 1;
    assert!(matches!(
        refused(&s, &flipped),
        Invalid::Proof(_) | Invalid::Entry { .. }
    ));

    let mut wrong_node = good.clone();
    wrong_node.nodes[0][0] ^= 1;
    assert!(matches!(refused(&s, &wrong_node), Invalid::Proof(_)));

    let mut short = good.clone();
    short.nodes.pop();
    assert!(matches!(refused(&s, &short), Invalid::Proof(_)));

    // A head signed by another key: the same root and length, a signature of its own.
    let (_d2, forger) = store(Some(&full));
    let mut forged = good.clone();
    forged.head.author = forger.author();
    assert!(matches!(refused(&s, &forged), Invalid::Proof(_)));

    let mut out_of_order = good.clone();
    out_of_order.entries.swap(0, 1);
    assert!(matches!(refused(&s, &out_of_order), Invalid::Proof(_)));

    assert!(matches!(
        s.ingest_sparse(&good),
        Ok(Ingested::Appended { .. })
    ));
    assert_eq!(s.get(&ns, b"b/1").expect("b/"), Some(b"value".to_vec()));
    assert!(s.verify().expect("verify").is_clean());
}

#[test]
fn remote_reads_verify_without_storing() {
    let (_d0, w0) = store(None);
    let ns = w0.default_namespace();
    let (_d1, w1) = store(Some(&w0));
    w0.put(&ns, b"k", b"from w0").expect("put");
    w1.put(&ns, b"k", b"from w1").expect("put");
    w0.put(&ns, b"k2", b"a longer key that shares the prefix")
        .expect("put");
    full_pull(&w1, &w0);
    let runs = w0.read_key(&ns, b"k", usize::MAX).expect("read_key");
    let versions = verify_remote_key(&ns, b"k", &runs).expect("honest runs verify");
    let local: Vec<_> = w0.get_all(&ns, b"k").expect("get_all");
    assert_eq!(versions, local);
    assert_eq!(versions.len(), 2, "two concurrent versions");

    let mut tampered = runs.clone();
    tampered[0].entries[0].1[3] ^= 1;
    assert!(verify_remote_key(&ns, b"k", &tampered).is_err());
    assert!(
        verify_remote_key(&ns, b"k2", &runs).is_err(),
        "another key's versions"
    );
    let other = NamespaceId([7; 32]);
    assert!(verify_remote_key(&other, b"k", &runs).is_err());
}

/// A sparse answer counts its proof hashes toward the byte budget, so the honest answer to a
/// wide spread of leaves never outgrows what the asker accepts; an interest no replica could
/// hold (an empty prefix, a scan of the whole view per request) is refused.
#[test]
fn sparse_answers_count_their_proofs_and_refuse_impossible_interests() {
    let (_d0, full) = store(None);
    let ns = full.default_namespace();
    for i in 0..2_000u32 {
        // One wanted key in sixteen: each wanted leaf needs hashes of its own to prove it.
        let key = if i % 16 == 0 {
            format!("a/{i:05}")
        } else {
            format!("z/{i:05}")
        };
        full.put(&ns, key.as_bytes(), b"v").expect("put");
    }
    let (_d1, part) = sparse(&full, &["a/"]);
    let want = part.interest(&ns).expect("ns").expect("sparse");
    const BUDGET: usize = 4096;
    let mut runs = 0;
    loop {
        let start = held(&part, &full.author());
        let run = match full
            .read_sparse(&ns, &full.author(), start, &want, ANY, BUDGET)
            .expect("read_sparse")
        {
            Served::Run(run) => run,
            Served::Nothing => break,
            Served::NotCovered => panic!("{start} not covered"),
        };
        let entry_bytes: usize = run.entries.iter().map(|(_, e)| e.len()).sum();
        let proof_bytes = run.nodes.len() * 32;
        assert!(
            run.entries.len() == 1 || entry_bytes + proof_bytes <= BUDGET,
            "{} entries of {entry_bytes} bytes with {proof_bytes} bytes of proof, over {BUDGET}",
            run.entries.len()
        );
        assert!(matches!(
            part.ingest_sparse(&run).expect("ingest"),
            Ingested::Appended { .. }
        ));
        runs += 1;
        assert!(runs < 200, "the runs do not advance");
    }
    assert!(
        runs > 1,
        "one run carried everything: the budget was not exercised"
    );
    for i in (0..2_000u32).step_by(16) {
        let key = format!("a/{i:05}");
        assert_eq!(
            part.get(&ns, key.as_bytes()).expect("get").as_deref(),
            Some(&b"v"[..]),
            "{key}"
        );
    }
    assert!(part.verify().expect("verify").is_clean());

    for prefixes in [vec![Vec::new()], Vec::new()] {
        let impossible = Interest::new(prefixes, Vec::new());
        assert!(
            matches!(
                full.read_sparse(&ns, &full.author(), 0, &impossible, ANY, ANY)
                    .expect("read_sparse"),
                Served::NotCovered
            ),
            "{impossible:?} was served"
        );
    }
}

/// Under a prefix with more keys than [`VIEW_WALK_KEYS`], a request must not walk them all
/// each time: the answer is made from the feed, reads at most [`FEED_WALK_ENTRIES`] of it and
/// ends there, and still carries every version of the wanted keys in that stretch, superseded
/// ones too, so a sparse replica pulled this way ends with the full replica's view.
#[test]
fn a_wide_prefix_is_served_from_the_feed_a_stretch_at_a_time() {
    let (_d0, full) = store(None);
    let ns = full.default_namespace();
    let total = FEED_WALK_ENTRIES as usize + 4_000;
    let key = |i: usize| {
        if i.is_multiple_of(2) {
            format!("w/{:06}", i % (2 * VIEW_WALK_KEYS + 100))
        } else {
            format!("z/{i:06}")
        }
    };
    for batch in (0..total).collect::<Vec<_>>().chunks(2_000) {
        let ops = batch
            .iter()
            .map(|&i| (key(i).into_bytes(), Op::Put(i.to_le_bytes().to_vec())))
            .collect();
        full.write(&ns, ops).expect("write");
    }
    let (_d1, part) = sparse(&full, &["w/"]);
    let want = part.interest(&ns).expect("ns").expect("sparse");
    let Served::Run(first) = full
        .read_sparse(&ns, &full.author(), 0, &want, ANY, ANY)
        .expect("read_sparse")
    else {
        panic!("nothing served");
    };
    assert_eq!(
        first.end, FEED_WALK_ENTRIES,
        "the answer ends where its walk did"
    );
    let wanted: Vec<u64> = (0..FEED_WALK_ENTRIES)
        .filter(|i| i.is_multiple_of(2))
        .collect();
    let sent: Vec<u64> = first.entries.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(
        sent, wanted,
        "every wanted entry of the stretch, superseded ones too"
    );

    sparse_pull(&full, &part, ANY);
    for i in (0..2 * VIEW_WALK_KEYS + 100).step_by(2) {
        let key = format!("w/{i:06}");
        assert_eq!(versions(&part, &key), versions(&full, &key), "{key}");
    }
    assert!(part.verify().expect("verify").is_clean());
}
