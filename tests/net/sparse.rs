//! Sparse replicas over real libp2p on 127.0.0.1: a chain where the only source of a prefix
//! is another sparse replica, live pushes filtered by interest, remote reads, and an interest
//! that grows while the node runs.

use std::path::Path;
use std::time::Duration;

use weft_storage::{Interest, NamespaceId, Op, Store, VersionInfo};

use super::{TestNode, dirs, options, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

fn make_sparse(dir: &Path, prefix: &str) {
    let store = Store::open(dir, options()).expect("open");
    let ns = store.default_namespace();
    store
        .set_interest(&ns, Interest::new([prefix.as_bytes().to_vec()], Vec::new()))
        .expect("a fresh replica may become sparse");
}

/// 300 keys over `p1/`, `p2/` and `p3/`, written in batches that interleave the prefixes.
fn fill(dir: &Path) -> Vec<String> {
    let store = Store::open(dir, options()).expect("open");
    let ns = store.default_namespace();
    let mut keys = Vec::new();
    for batch in 0..10 {
        let ops = (0..30)
            .map(|i| {
                let key = format!("p{}/{batch:02}{i:02}", 1 + i % 3);
                keys.push(key.clone());
                (key.into_bytes(), Op::Put(vec![b'v'; 20 + i]))
            })
            .collect();
        store.write(&ns, ops).expect("write");
    }
    keys
}

async fn versions(node: &TestNode, key: &str) -> Vec<VersionInfo> {
    let (ns, key) = (node.ns, key.as_bytes().to_vec());
    node.handle
        .worker()
        .run(move |store| store.get_all(&ns, &key))
        .await
        .expect("store")
        .expect("get_all")
}

async fn same_prefix(full: &TestNode, sparse: &TestNode, keys: &[String], prefix: &str) -> bool {
    for key in keys.iter().filter(|k| k.starts_with(prefix)) {
        if versions(full, key).await != versions(sparse, key).await {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_replica_serves_its_prefix_onward_and_follows_live_writes() {
    let root = tempfile::tempdir().expect("temp dir");
    let d = dirs(root.path(), 3);
    let keys = fill(&d[0]);
    make_sparse(&d[1], "p1/");
    make_sparse(&d[2], "p1/");
    let a = TestNode::start(&d[0], vec![]).await;
    let b = TestNode::start(&d[1], vec![a.addr()]).await;
    // C knows only B: whatever it gets of p1/, it gets from a sparse replica.
    let c = TestNode::start(&d[2], vec![b.addr()]).await;

    wait_for(LIMIT, "C to hold every p1/ key as A has it", || async {
        (same_prefix(&a, &c, &keys, "p1/").await, c.rows().await)
    })
    .await;
    assert!(same_prefix(&a, &b, &keys, "p1/").await, "B differs from A");
    assert_eq!(b.rows().await, 100, "B holds exactly the p1/ entries");
    assert_eq!(c.rows().await, 100, "C holds exactly the p1/ entries");
    let status = c.status().await;
    assert_eq!(status.peers.len(), 1, "C is connected to B only");
    assert_eq!(status.peers[0].id, b.handle.peer_id().to_string());

    // Live: A writes under p1/ and p2/; the sparse replicas take only p1/.
    a.handle
        .write(
            a.ns,
            vec![
                (b"p1/live".to_vec(), Op::Put(b"new".to_vec())),
                (b"p2/live".to_vec(), Op::Put(b"not wanted".to_vec())),
            ],
        )
        .await
        .expect("write");
    wait_for(LIMIT, "the p1/ write to reach C through B", || async {
        let got = versions(&c, "p1/live").await;
        (got.len() == 1, got)
    })
    .await;
    assert_eq!(
        b.rows().await,
        101,
        "B must hold the p1/ entries and p1/live, and not p2/live"
    );
    assert_eq!(
        c.rows().await,
        101,
        "C must hold the p1/ entries and p1/live, and not p2/live"
    );
    b.assert_verifies("B").await;
    c.assert_verifies("C").await;

    // A remote read from B: A proves it, C (which does not replicate p2/) refuses.
    let refused_before = b.status().await.refusals;
    let remote = b
        .handle
        .get_remote(b.ns, b"p2/live".to_vec())
        .await
        .expect("remote read");
    assert_eq!(remote, versions(&a, "p2/live").await);
    wait_for(LIMIT, "C to refuse B's remote read", || async {
        let refused = b.status().await.refusals;
        (refused > refused_before, refused)
    })
    .await;
    assert_eq!(b.rows().await, 101, "a remote read stores nothing");

    c.stop().await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interest_added_while_running_is_fetched() {
    let root = tempfile::tempdir().expect("temp dir");
    let d = dirs(root.path(), 2);
    let keys = fill(&d[0]);
    make_sparse(&d[1], "p1/");
    let a = TestNode::start(&d[0], vec![]).await;
    let b = TestNode::start(&d[1], vec![a.addr()]).await;
    wait_for(LIMIT, "B to hold p1/", || async {
        let held = b.rows().await;
        (held == 100, held)
    })
    .await;
    let ns: NamespaceId = b.ns;
    let wider = Interest::new([b"p1/".to_vec(), b"p3/".to_vec()], Vec::new());
    b.handle.set_interest(ns, wider).await.expect("add p3/");
    wait_for(LIMIT, "B to hold p3/ as A has it", || async {
        (same_prefix(&a, &b, &keys, "p3/").await, b.rows().await)
    })
    .await;
    assert_eq!(b.rows().await, 200, "p1/ and p3/, nothing of p2/");
    b.assert_verifies("B").await;
    b.stop().await;
    a.stop().await;
}

/// A sparse peer that does not hold what is asked refuses, and is not asked again until it
/// advertises again, rather than at once in a loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_interest_does_not_cover_the_ask_is_not_asked_in_a_loop() {
    let root = tempfile::tempdir().expect("temp dir");
    let d = dirs(root.path(), 3);
    fill(&d[0]);
    make_sparse(&d[1], "p1/");
    make_sparse(&d[2], "p2/");
    let a = TestNode::start(&d[0], vec![]).await;
    let b = TestNode::start(&d[1], vec![a.addr()]).await;
    wait_for(LIMIT, "B to hold p1/", || async {
        let held = b.rows().await;
        (held == 100, held)
    })
    .await;
    a.stop().await;
    // C wants p2/; its only peer, B, holds p1/ alone and refuses.
    let c = TestNode::start(&d[2], vec![b.addr()]).await;
    wait_for(LIMIT, "C to connect to B", || async {
        let peers = c.status().await.peers.len();
        (peers == 1, peers)
    })
    .await;
    // C must ask (and be refused) at least once, or the bound below proves nothing.
    let first = wait_for(LIMIT, "C to ask B and be refused", || async {
        let status = c.status().await;
        (status.refusals > 0, status)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = c.status().await;
    // A request and its refusal are about 200 bytes: a loop would send megabytes in 2 s,
    // a head exchange every 500 ms a few kilobytes, and at most one ask per exchange.
    let sent = status.wire_sent - first.wire_sent;
    let refused = status.refusals - first.refusals;
    assert!(
        sent < 100_000 && refused <= 2 * 2_000 / 500 + 2,
        "C sent {sent} bytes and was refused {refused} times in 2 s by a peer that keeps \
         refusing"
    );
    assert_eq!(c.rows().await, 0, "C stored nothing it did not want");
    c.stop().await;
    b.stop().await;
}
