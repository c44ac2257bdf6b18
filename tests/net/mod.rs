//! Nodes over real libp2p on 127.0.0.1: shared helpers.

mod hostile;
mod replication;
mod sparse;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use weft_node::config::{NodeConfig, load_identity};
use weft_node::{Node, NodeHandle, Status};
use weft_storage::{Access, Charter, NamespaceId, Op, Options, Store};

/// The charters of the namespaces tests created, so a replica can join one by its id.
static CHARTERS: Mutex<Option<HashMap<NamespaceId, Charter>>> = Mutex::new(None);

/// A new store of a new namespace with `access`, its charter remembered for [`join`].
pub fn create(dir: &Path, access: Access) -> Store {
    let store = Store::init(dir, options(), access).expect("init");
    let ns = store.default_namespace();
    let charter = store.charter(&ns).expect("known").expect("a charter");
    CHARTERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .insert(ns, charter);
    store
}

/// A new store joining `ns`, a namespace made by [`create`].
pub fn join(dir: &Path, ns: NamespaceId) -> Store {
    let charter = CHARTERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(|charters| charters.get(&ns).cloned())
        .expect("the namespace was made by create()");
    Store::init_joined(dir, options(), &charter, None).expect("join")
}

pub fn options() -> Options {
    Options {
        durable: false,
        ..Options::default()
    }
}

pub fn loopback_config(peers: Vec<Multiaddr>) -> NodeConfig {
    NodeConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")],
        peers,
        mdns: false,
        sync_interval: Duration::from_millis(500),
        bootstrap: Vec::new(),
        nat_probe_private: false,
    }
}

/// A node on a data dir, started on loopback.
pub struct TestNode {
    pub node: Node,
    pub handle: NodeHandle,
    pub ns: NamespaceId,
}

impl TestNode {
    pub async fn start(dir: &Path, peers: Vec<Multiaddr>) -> TestNode {
        TestNode::start_with(dir, loopback_config(peers)).await
    }

    pub async fn start_with(dir: &Path, config: NodeConfig) -> TestNode {
        let store = Store::open(dir, options()).expect("open store");
        let ns = store.default_namespace();
        let key = load_identity(dir).expect("identity");
        let node = Node::start(store, key, config).await.expect("node starts");
        TestNode {
            handle: node.handle(),
            node,
            ns,
        }
    }

    /// The address others dial, with the peer id.
    pub fn addr(&self) -> Multiaddr {
        let addr = self
            .node
            .listen_addrs()
            .iter()
            .find(|a| a.iter().any(|p| matches!(p, Protocol::Tcp(_))))
            .expect("a tcp listen address")
            .clone();
        addr.with(Protocol::P2p(self.handle.peer_id()))
    }

    pub async fn put(&self, key: &str, value: &str) {
        self.handle
            .write(
                self.ns,
                vec![(key.as_bytes().to_vec(), Op::Put(value.as_bytes().to_vec()))],
            )
            .await
            .expect("write");
    }

    pub async fn status(&self) -> Status {
        self.handle.status().await.expect("status")
    }

    /// A digest of every key with every live version: equal digests, equal views.
    pub async fn digest(&self) -> [u8; 32] {
        let ns = self.ns;
        self.handle
            .worker()
            .run(move |store| digest(store, &ns))
            .await
            .expect("store running")
    }

    /// Entry rows the node's store holds, over every feed of its namespace.
    pub async fn rows(&self) -> u64 {
        let info = self
            .handle
            .worker()
            .run(|store| store.info())
            .await
            .expect("store running")
            .expect("info");
        info.namespaces[0].feeds.iter().map(|f| f.length).sum()
    }

    /// Panics, naming the node, unless `weft verify` finds its store clean.
    pub async fn assert_verifies(&self, name: &str) {
        let report = self
            .handle
            .worker()
            .run(|store| store.verify())
            .await
            .expect("store running")
            .expect("verify");
        assert!(report.is_clean(), "{name}: {:?}", report.problems);
    }

    /// Stops the node within a bound, failing the test if any part of it had panicked.
    pub async fn stop(self) {
        drop(self.handle);
        tokio::time::timeout(Duration::from_secs(30), self.node.shutdown())
            .await
            .expect("the node stops within 30 s")
            .expect("no part of the node panicked");
    }
}

pub fn digest(store: &Store, ns: &NamespaceId) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    for row in store.scan(ns, b"", false).expect("scan") {
        let (key, _) = row.expect("row");
        hasher.update(&(key.len() as u64).to_le_bytes());
        hasher.update(&key);
        for version in store.get_all(ns, &key).expect("get_all") {
            hasher.update(version.id.author.as_bytes());
            hasher.update(&version.id.seq.to_le_bytes());
            hasher.update(&version.timestamp.0.to_le_bytes());
            hasher.update(version.value.as_deref().unwrap_or(b"(deleted)"));
        }
    }
    *hasher.finalize().as_bytes()
}

/// Data dirs: the first creates a namespace, the rest join it.
pub fn dirs(root: &Path, count: usize) -> Vec<PathBuf> {
    let first = root.join("n0");
    let ns = create(&first, Access::Open).default_namespace();
    let mut out = vec![first];
    for i in 1..count {
        let dir = root.join(format!("n{i}"));
        join(&dir, ns);
        out.push(dir);
    }
    out
}

/// Polls `check` until it holds or `limit` passes; panics with `what` and the last state.
pub async fn wait_for<F, Fut, T>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (bool, T)>,
    T: std::fmt::Debug,
{
    let started = Instant::now();
    loop {
        let (done, state) = check().await;
        if done {
            return state;
        }
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}; last state: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
