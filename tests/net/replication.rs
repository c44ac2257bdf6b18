//! Replication between real nodes: concurrent writers converge, a late joiner and a node that
//! was offline catch up, and partitioned writes become siblings with one winner everywhere.

use std::time::Duration;

use weft_storage::{Op, Store};

use super::{TestNode, dirs, options, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_writers_converge_to_one_view() {
    let root = tempfile::tempdir().expect("temp dir");
    let dirs = dirs(root.path(), 3);
    let a = TestNode::start(&dirs[0], vec![]).await;
    let b = TestNode::start(&dirs[1], vec![a.addr()]).await;
    let c = TestNode::start(&dirs[2], vec![a.addr(), b.addr()]).await;
    let nodes = [&a, &b, &c];

    // Every node writes, concurrently, its own keys and some shared ones.
    let writes = nodes.iter().enumerate().map(|(n, node)| async move {
        for batch in 0..10 {
            let ops = (0..20)
                .map(|i| {
                    let key = if i % 4 == 0 {
                        format!("shared/{i}")
                    } else {
                        format!("node{n}/{batch}/{i}")
                    };
                    (
                        key.into_bytes(),
                        Op::Put(format!("{n}:{batch}:{i}").into_bytes()),
                    )
                })
                .collect();
            node.handle.write(node.ns, ops).await.expect("write");
        }
    });
    futures::future::join_all(writes).await;

    let digests = wait_for(LIMIT, "three nodes to agree on every key", || async {
        let digests = [a.digest().await, b.digest().await, c.digest().await];
        let lengths: Vec<Vec<u64>> = {
            let mut out = Vec::new();
            for node in nodes {
                out.push(node.status().await.feeds.iter().map(|f| f.held).collect());
            }
            out
        };
        (
            digests[0] == digests[1] && digests[1] == digests[2],
            (digests, lengths),
        )
    })
    .await;
    assert_eq!(
        digests.1,
        vec![vec![200; 3]; 3],
        "every node holds all three feeds of 200 entries"
    );
    for node in [a, b, c] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_catches_up_100k_entries() {
    let root = tempfile::tempdir().expect("temp dir");
    let dirs = dirs(root.path(), 2);
    {
        let store = Store::open(&dirs[0], options()).expect("open");
        let ns = store.default_namespace();
        for batch in 0..100u32 {
            let ops = (0..1000u32)
                .map(|i| {
                    let n = batch * 1000 + i;
                    (
                        format!("k{n:015}").into_bytes(),
                        Op::Put(vec![(n % 251) as u8; 100]),
                    )
                })
                .collect();
            store.write(&ns, ops).expect("write");
        }
    }
    let a = TestNode::start(&dirs[0], vec![]).await;
    let b = TestNode::start(&dirs[1], vec![a.addr()]).await;
    wait_for(LIMIT, "the joiner to hold 100,000 entries", || async {
        let status = b.status().await;
        let held: u64 = status.feeds.iter().map(|f| f.held).sum();
        (held == 100_000, status.feeds)
    })
    .await;
    assert_eq!(a.digest().await, b.digest().await);
    b.assert_verifies("the late joiner").await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_offline_during_writes_catches_up_after_restart() {
    let root = tempfile::tempdir().expect("temp dir");
    let dirs = dirs(root.path(), 2);
    let a = TestNode::start(&dirs[0], vec![]).await;
    let b = TestNode::start(&dirs[1], vec![a.addr()]).await;
    a.put("before", "1").await;
    wait_for(LIMIT, "the first write to arrive", || async {
        let d = (a.digest().await, b.digest().await);
        (d.0 == d.1, d)
    })
    .await;
    b.stop().await;

    for i in 0..300 {
        a.put(&format!("while-offline/{i}"), "x").await;
    }
    let b = TestNode::start(&dirs[1], vec![a.addr()]).await;
    wait_for(LIMIT, "the restarted node to catch up", || async {
        let d = (a.digest().await, b.digest().await);
        (d.0 == d.1, b.status().await.feeds)
    })
    .await;
    a.stop().await;
    b.stop().await;
}

/// A node started on a copy of its data dir from before its last writes learns from a peer
/// that its own feed is longer, fetches it back, and only then writes: its next entry extends
/// the feed instead of forking it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restored_from_a_backup_fetches_its_own_feed_back() {
    let root = tempfile::tempdir().expect("temp dir");
    let dirs = dirs(root.path(), 2);
    let backup = root.path().join("backup");
    {
        let a = TestNode::start(&dirs[0], vec![]).await;
        for i in 0..3 {
            a.put(&format!("old/{i}"), "x").await;
        }
        a.stop().await;
    }
    weft_storage::copy_data_dir(&dirs[0], &backup).expect("back up");
    let a = TestNode::start(&dirs[0], vec![]).await;
    let b = TestNode::start(&dirs[1], vec![a.addr()]).await;
    for i in 0..200 {
        a.put(&format!("lost/{i}"), "x").await;
    }
    wait_for(LIMIT, "the peer to hold every write", || async {
        let d = (a.digest().await, b.digest().await);
        (d.0 == d.1, b.rows().await)
    })
    .await;
    a.stop().await;

    let restored = TestNode::start(&backup, vec![b.addr()]).await;
    wait_for(
        LIMIT,
        "the restored node to fetch its own feed back",
        || async {
            let rows = restored.rows().await;
            (rows == 203, rows)
        },
    )
    .await;
    restored.put("after", "restore").await;
    wait_for(LIMIT, "the peer to take the write", || async {
        let rows = b.rows().await;
        (rows == 204, rows)
    })
    .await;
    let ns = b.ns;
    let forks = b
        .handle
        .worker()
        .run(move |store| store.forks(&ns))
        .await
        .expect("store running")
        .expect("forks");
    assert!(forks.is_empty(), "the restored node forked its own feed");
    assert_eq!(restored.digest().await, b.digest().await);
    restored.assert_verifies("restored").await;
    restored.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_writes_become_siblings_with_one_winner() {
    let root = tempfile::tempdir().expect("temp dir");
    let dirs = dirs(root.path(), 3);
    // No peers: a partition.
    let nodes = [
        TestNode::start(&dirs[0], vec![]).await,
        TestNode::start(&dirs[1], vec![]).await,
        TestNode::start(&dirs[2], vec![]).await,
    ];
    for (n, node) in nodes.iter().enumerate() {
        node.put("contested", &format!("from node {n}")).await;
    }
    // Heal it.
    let first = nodes[0].addr();
    for node in &nodes[1..] {
        node.handle.dial(first.clone()).await.expect("dial");
    }
    let ns = nodes[0].ns;
    let mut winners = Vec::new();
    for node in &nodes {
        let versions = wait_for(LIMIT, "three siblings on every node", || async {
            let versions = node
                .handle
                .worker()
                .run(move |store| store.get_all(&ns, b"contested"))
                .await
                .expect("store")
                .expect("get_all");
            (versions.len() == 3, versions)
        })
        .await;
        let values: std::collections::BTreeSet<Vec<u8>> =
            versions.iter().filter_map(|v| v.value.clone()).collect();
        assert_eq!(values.len(), 3, "each node's write is a sibling");
        let winner = node
            .handle
            .worker()
            .run(move |store| store.get(&ns, b"contested"))
            .await
            .expect("store")
            .expect("get");
        winners.push(winner);
    }
    assert!(
        winners.windows(2).all(|w| w[0] == w[1]),
        "every node returns the same last writer: {winners:?}"
    );
    for node in nodes {
        node.stop().await;
    }
}

/// A panic inside a node is never silent: shutting the node down reports it, so a test (or
/// `weft node`, which then exits non-zero) sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_store_thread_is_reported_at_shutdown() {
    let root = tempfile::tempdir().expect("temp dir");
    let dirs = dirs(root.path(), 1);
    let node = TestNode::start(&dirs[0], vec![]).await;
    node.put("before", "the panic").await;
    let job = node
        .handle
        .worker()
        .run(|_| -> () { panic!("a store job failed its own invariant") })
        .await;
    assert!(job.is_err(), "a job that panicked cannot answer");
    drop(node.handle);
    let stopped = tokio::time::timeout(LIMIT, node.node.shutdown())
        .await
        .expect("the node stops");
    match stopped {
        Err(weft_node::NodeError::Panicked { part, message }) => {
            assert_eq!(part, "store thread");
            assert!(message.contains("its own invariant"), "{message}");
        }
        other => panic!("the panic was not reported: {other:?}"),
    }
    let store = Store::open(&dirs[0], options()).expect("the store reopens");
    let report = store.verify().expect("verify runs");
    assert!(report.is_clean(), "{:?}", report.problems);
}
