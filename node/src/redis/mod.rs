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

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub use server::RedisServer;

/// Where the Redis listener listens: a TCP address, or a Unix socket (`unix:PATH`) that only
/// this user may connect to, as `redis-cli -s PATH` does.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum RedisAddr {
    /// A TCP address; anything but loopback needs a password.
    Tcp(SocketAddr),
    /// A Unix socket path, made readable and writable by this user only.
    Unix(PathBuf),
}

impl RedisAddr {
    /// The TCP address, for a TCP listener.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            RedisAddr::Tcp(addr) => Some(*addr),
            RedisAddr::Unix(_) => None,
        }
    }
}

impl From<SocketAddr> for RedisAddr {
    fn from(addr: SocketAddr) -> RedisAddr {
        RedisAddr::Tcp(addr)
    }
}

impl fmt::Display for RedisAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisAddr::Tcp(addr) => write!(f, "{addr}"),
            RedisAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A Redis address that is neither `HOST:PORT` nor `unix:PATH`.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an address: give IP:PORT (e.g. 127.0.0.1:6379) or unix:PATH")]
pub struct BadRedisAddr(String);

impl FromStr for RedisAddr {
    type Err = BadRedisAddr;

    fn from_str(text: &str) -> Result<RedisAddr, BadRedisAddr> {
        match text.strip_prefix("unix:") {
            Some("") => Err(BadRedisAddr(text.to_owned())),
            Some(path) => Ok(RedisAddr::Unix(PathBuf::from(path))),
            None => text
                .parse()
                .map(RedisAddr::Tcp)
                .map_err(|_| BadRedisAddr(text.to_owned())),
        }
    }
}

/// How the Redis listener runs.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// Where to listen. A TCP address other than loopback needs a password.
    pub addr: RedisAddr,
    /// The password `AUTH` (or `HELLO ... AUTH`) must give before any other command.
    pub password: Option<String>,
    /// The longest bulk string accepted; a longer one closes the connection.
    pub max_bulk: usize,
    /// Connections served at once; one more is told so and closed.
    pub max_clients: usize,
    /// A client that sends nothing for this long is disconnected (Redis's `timeout`);
    /// `None` keeps idle clients, as Redis does by default.
    pub idle_timeout: Option<Duration>,
}

impl RedisConfig {
    /// Defaults at `addr`: no password (so TCP on loopback only), 1 MiB bulk strings, 1,000
    /// clients, no idle timeout.
    pub fn new(addr: impl Into<RedisAddr>) -> RedisConfig {
        RedisConfig {
            addr: addr.into(),
            password: None,
            max_bulk: 1 << 20,
            max_clients: 1000,
            idle_timeout: None,
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
        addr: RedisAddr,
        /// Why.
        source: std::io::Error,
    },
}
