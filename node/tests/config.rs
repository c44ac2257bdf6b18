//! Settings a node cannot run with are refused at start, not met with a panic later.

use std::time::Duration;

use weft_node::config::{NodeConfig, load_identity};
use weft_node::{Node, NodeError};
use weft_storage::{Access, Store};

use crate::common::options;

#[tokio::test]
async fn a_zero_sync_interval_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::init(dir.path(), options(), Access::Open).expect("init");
    let key = load_identity(dir.path()).expect("identity");
    let config = NodeConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")],
        peers: Vec::new(),
        mdns: false,
        sync_interval: Duration::ZERO,
        bootstrap: Vec::new(),
        nat_probe_private: false,
    };
    match Node::start(store, key, config).await {
        Err(NodeError::Config(why)) => assert!(why.contains("sync_interval"), "{why}"),
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(node) => {
            node.shutdown().await.expect("shutdown");
            panic!("a node started with a zero sync interval");
        }
    }
}
