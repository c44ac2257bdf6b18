//! The Redis listener: the client limit, a task per connection, and a shutdown that lets
//! every connection finish the batch it is on.

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, warn};
use weft_storage::NamespaceId;

use super::batch::commit_loop;
use super::connection::Connection;
use super::{RedisAddr, RedisConfig, RedisError};
use crate::NodeHandle;
use crate::shutdown::Shutdown;

/// How long connections get to finish the batch they are on once shutdown begins.
const DRAIN: Duration = Duration::from_secs(5);

/// A bound listener, not yet serving.
pub struct RedisServer {
    listener: Listener,
    config: Arc<RedisConfig>,
}

enum Listener {
    Tcp(TcpListener),
    /// The socket's path, removed when serving ends.
    Unix(UnixListener, PathBuf),
}

/// A client's stream, whichever listener it came from.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

impl Listener {
    async fn accept(&self) -> std::io::Result<(Box<dyn Stream>, String)> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, peer) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                Ok((Box::new(stream), peer.to_string()))
            }
            Listener::Unix(listener, path) => {
                let (stream, _) = listener.accept().await?;
                Ok((Box::new(stream), path.display().to_string()))
            }
        }
    }
}

impl RedisServer {
    /// Binds the listener. A Unix socket is made readable and writable by this user only; a
    /// stale socket at its path (left by a node that did not stop cleanly) is replaced, but
    /// no other kind of file.
    ///
    /// # Errors
    /// [`RedisError::NeedsPassword`] for a TCP address other than loopback without a
    /// password; [`RedisError::Bind`].
    pub async fn bind(config: RedisConfig) -> Result<RedisServer, RedisError> {
        let bind_error = |source| RedisError::Bind {
            addr: config.addr.clone(),
            source,
        };
        let listener = match &config.addr {
            RedisAddr::Tcp(addr) => {
                if !addr.ip().is_loopback() && config.password.is_none() {
                    return Err(RedisError::NeedsPassword(*addr));
                }
                Listener::Tcp(TcpListener::bind(addr).await.map_err(bind_error)?)
            }
            RedisAddr::Unix(path) => {
                Listener::Unix(bind_unix(path).map_err(bind_error)?, path.clone())
            }
        };
        Ok(RedisServer {
            listener,
            config: Arc::new(config),
        })
    }

    /// The address it listens on (with the port, when 0 was asked for).
    ///
    /// # Errors
    /// When the socket cannot say.
    pub fn local_addr(&self) -> std::io::Result<RedisAddr> {
        match &self.listener {
            Listener::Tcp(listener) => listener.local_addr().map(RedisAddr::Tcp),
            Listener::Unix(_, path) => Ok(RedisAddr::Unix(path.clone())),
        }
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
        if let Listener::Unix(_, path) = &self.listener {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds a Unix socket at `path`, private to this user. Another user can connect to a Unix
/// socket only with write permission on it, which the default umask already withholds; the
/// mode is set right after binding all the same.
fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "something is already listening there",
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}
