//! What the node tests share.

use weft_node::sync::Peer;
use weft_storage::Options;

/// Options for a test store: no fsync per commit, which tests of logic do not need.
pub fn options() -> Options {
    Options {
        durable: false,
        ..Options::default()
    }
}

/// Replica number `n` of a test that drives the sync client and server by hand.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Id(pub usize);

impl Peer for Id {
    fn id_bytes(&self) -> Vec<u8> {
        format!("replica {}", self.0).into_bytes()
    }
}
