//! A Redis protocol front end on the node: `redis-cli`, client libraries and
//! `redis-benchmark` read and write the default namespace as ordinary weft writes.
//!
//! Each read from a connection is one batch: every command it completes runs in one job on
//! the store's thread, together with the batches other connections have waiting, and all the
//! writes among them are one transaction and one signature (group commit). Replies are sent
//! only after that commit returns, so none acknowledges a write that is not durable.
//!
//! # Layout
//! - `server.rs`: [`RedisServer`], the listener: the client limit, one task per connection,
//!   and shutdown that lets every connection finish the batch it is on.
//! - `connection.rs`: one client's state and its read, answer, write loop.
//! - `cmd/`: the commands, a file per family: what each parses to and how it runs.
//! - `batch.rs`: group commit: the store job that runs every waiting connection's commands.
//! - `resp.rs`: the protocol's bytes.

mod batch;
mod cmd;
mod connection;
mod resp;
mod server;

use std::net::SocketAddr;

pub use server::RedisServer;

/// How the Redis listener runs.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// Where to listen. Anything but loopback needs a password.
    pub addr: SocketAddr,
    /// The password `AUTH` (or `HELLO ... AUTH`) must give before any other command.
    pub password: Option<String>,
    /// The longest bulk string accepted; a longer one closes the connection.
    pub max_bulk: usize,
    /// Connections served at once; one more is told so and closed.
    pub max_clients: usize,
}

impl RedisConfig {
    /// Loopback-only defaults at `addr`: no password, 1 MiB bulk strings, 1,000 clients.
    pub fn new(addr: SocketAddr) -> RedisConfig {
        RedisConfig {
            addr,
            password: None,
            max_bulk: 1 << 20,
            max_clients: 1000,
        }
    }
}

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// A non-loopback address without a password would open the database to the network.
    #[error("listening on {0} (not loopback) needs a password")]
    NeedsPassword(SocketAddr),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}
