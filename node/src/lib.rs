//! weft's replication node: a libp2p swarm that pushes new entries by gossip, catches feeds up
//! with a verified request/response protocol, and serves the local API.
//!
//! # Layout
//! - [`wire`]: the bytes on the wire, and reading them with a size cap.
//! - [`sync`]: the catch-up state machine, independent of libp2p.
//! - `worker`: the store's own thread behind a bounded queue.
//! - [`api`]: the local API on a Unix socket, and its blocking client.
//! - [`config`]: flags, the config file, the node's identity.
//! - [`ticket`]: the string that shares a namespace.
//! - `node`: [`Node`], the task that owns the swarm, and [`NodeHandle`] to call it.
//! - `transport`: TCP + noise + yamux and QUIC, with TCP bytes counted.
//! - [`redis`]: the Redis protocol front end.
//! - [`watch`]: following the change feed, waiting for commits.
#![deny(missing_docs)]

pub mod access;
pub mod api;
pub mod config;
mod gossip;
mod handle;
mod node;
pub mod redis;
pub mod shutdown;
mod status;
mod swarm;
pub mod sync;
pub mod ticket;
mod transport;
pub mod watch;
pub mod wire;
mod worker;

pub use handle::NodeHandle;
pub use libp2p::identity::Keypair;
pub use libp2p::{Multiaddr, PeerId, multiaddr};
pub use node::{Node, NodeError};
pub use status::{FeedStatus, PeerStatus, Status};
pub use transport::WireCounters;
pub use worker::{Busy, Closed, Facts, Slot, StoreWorker};
