//! weft's replication node: a libp2p swarm that pushes new entries by gossip, catches feeds up
//! with a verified request/response protocol, and serves the local API.
//!
//! # Layout
//! - [`wire`]: the bytes peers exchange, and reading them with a size cap.
//! - [`access`]: capabilities and sealed gossip, so only holders of a namespace id use it.
//! - [`sync`]: the sync protocol as a state machine with no libp2p in it: the client that
//!   decides what to ask and whom to blame, the scheduler, the server's answers. The node
//!   and the simulation (`tests/sim.rs`) run the same code.
//! - `node`: [`Node`], the task that owns the swarm and moves bytes and store jobs between
//!   libp2p and [`sync`]; `handle`: [`NodeHandle`] to call it; `status`: [`Status`].
//! - `swarm`: the libp2p behaviours, listening and the request-response codec; `gossip`:
//!   topics, sealing, publishing and validating; `transport`: TCP + noise + yamux and QUIC,
//!   with TCP bytes counted.
//! - `worker`: the store's own thread behind a bounded queue.
//! - [`api`]: every data operation as one request, carried out in one place
//!   ([`api::execute`]), served on a Unix socket and called by the CLI.
//! - [`watch`]: following the change feed, waiting for commits.
//! - [`redis`]: the Redis protocol front end.
//! - [`metrics`]: Prometheus metrics and the endpoint that serves them.
//! - [`shutdown`]: the one signal every server stops on.
//! - [`config`]: flags, the config file, the node's identity; [`ticket`]: the string that
//!   shares a namespace.
#![deny(missing_docs)]

pub mod access;
pub mod api;
mod book;
pub mod config;
mod gossip;
mod handle;
pub mod metrics;
mod node;
mod reach;
pub mod redis;
pub mod relay;
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
pub use status::{BanStatus, FeedStatus, PeerStatus, Reachability, Reservation, Status};
pub use transport::WireCounters;
pub use worker::{Busy, Closed, Facts, Slot, StoreThread, StoreWorker};
