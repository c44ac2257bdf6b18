//! The Redis listener: the client limit, a task per connection, and a shutdown that lets
//! every connection finish the batch it is on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, warn};
use weft_storage::NamespaceId;

use super::batch::commit_loop;
use super::connection::Connection;
use super::{RedisConfig, RedisError};
use crate::NodeHandle;
use crate::shutdown::Shutdown;

/// How long connections get to finish the batch they are on once shutdown begins.
const DRAIN: Duration = Duration::from_secs(5);

/// A bound listener, not yet serving.
pub struct RedisServer {
    listener: TcpListener,
    config: Arc<RedisConfig>,
}

impl RedisServer {
    /// Binds the listener.
    ///
    /// # Errors
    /// [`RedisError::NeedsPassword`] for a non-loopback address without a password;
    /// [`RedisError::Bind`].
    pub async fn bind(config: RedisConfig) -> Result<RedisServer, RedisError> {
        if !config.addr.ip().is_loopback() && config.password.is_none() {
            return Err(RedisError::NeedsPassword(config.addr));
        }
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| RedisError::Bind {
                addr: config.addr,
                source,
            })?;
        Ok(RedisServer {
            listener,
            config: Arc::new(config),
        })
    }

    /// The address it listens on (the port, when 0 was asked for).
    ///
    /// # Errors
    /// When the socket cannot say.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `ns` through `node` until `shutdown` fires; then each connection finishes the
    /// batch it is on (for at most a few seconds), its writes are committed and replied to,
    /// and it closes. A reply cut off by that never acknowledged anything: writes are durable
    /// before their replies are sent.
    pub async fn serve(self, node: NodeHandle, ns: NamespaceId, mut shutdown: Shutdown) {
        let clients = Arc::new(Semaphore::new(self.config.max_clients));
        let mut connections = tokio::task::JoinSet::new();
        let (committer, queue) = mpsc::channel(self.config.max_clients);
        let committing = tokio::spawn(commit_loop(node.clone(), ns, queue));
        let mut next_id = 0u64;
        loop {
            let (mut stream, peer) = tokio::select! {
                () = shutdown.wait() => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        warn!(error = %e, "redis: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = Arc::clone(&clients).try_acquire_owned() else {
                debug!(%peer, "redis: refusing a client over the limit");
                tokio::spawn(async move {
                    let _ = stream
                        .write_all(b"-ERR max number of clients reached\r\n")
                        .await;
                });
                continue;
            };
            next_id += 1;
            let connection = Connection {
                id: next_id,
                node: node.clone(),
                committer: committer.clone(),
                ns,
                config: Arc::clone(&self.config),
                proto: 2,
                authenticated: self.config.password.is_none(),
                name: None,
                cursors: HashMap::new(),
                next_cursor: 1,
            };
            let shutdown = shutdown.clone();
            connections.spawn(async move {
                if let Err(e) = connection.run(stream, shutdown).await {
                    debug!(%peer, error = %e, "redis: connection ended");
                }
                drop(permit);
            });
        }
        let drained = tokio::time::timeout(DRAIN, async {
            while connections.join_next().await.is_some() {}
        });
        if drained.await.is_err() {
            warn!("redis: connections did not finish in time; closing them");
            connections.shutdown().await;
        }
        drop(committer);
        let _ = committing.await;
    }
}
