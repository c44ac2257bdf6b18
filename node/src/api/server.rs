//! The local API: the CLI's data commands, over a Unix socket in the data dir, against the
//! store a running node holds.
//!
//! Each frame is a u32 little-endian length then a postcard [`ApiRequest`] or
//! [`ApiResponse`]; a connection carries any number of request/response pairs in turn. The
//! socket is mode 0600: only the data dir's owner can use it.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};
use weft_storage::{
    AuthorId, ChangePage, Grant, HistoryItem, Info, Interest, NamespaceId, Op, PruneReport,
    Timestamp, TrustReport, VerifyReport, VersionId, VersionInfo,
};

use crate::config::SOCKET_FILE;
use crate::node::{NodeError, NodeHandle, Status};
use crate::watch::Watcher;

/// The largest frame either side reads.
pub const MAX_FRAME: usize = 64 << 20;

/// The most keys a scan page holds; a page also stops past [`PAGE_BYTES`].
pub const PAGE_KEYS: u32 = 1000;

/// The key and value bytes past which a scan page stops (it always holds one key).
pub const PAGE_BYTES: usize = 4 << 20;

/// The longest a [`ApiRequest::Changes`] waits for a change before answering with none.
pub const MAX_WAIT_MS: u32 = 30_000;

/// Local API connections served at once.
const MAX_CONNECTIONS: usize = 64;

/// A request to the node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum ApiRequest {
    /// The replica's author and default namespace.
    Facts,
    Write {
        ns: NamespaceId,
        ops: Vec<(Vec<u8>, Op<Vec<u8>>)>,
    },
    Get {
        ns: NamespaceId,
        key: Vec<u8>,
    },
    GetAll {
        ns: NamespaceId,
        key: Vec<u8>,
    },
    /// The value as of a past time ([`Store::get_at`](weft_storage::Store::get_at)).
    GetAt {
        ns: NamespaceId,
        key: Vec<u8>,
        at: Timestamp,
    },
    History {
        ns: NamespaceId,
        key: Vec<u8>,
    },
    /// Up to `limit` (capped at [`PAGE_KEYS`]) keys under `prefix` after `after`.
    Scan {
        ns: NamespaceId,
        prefix: Vec<u8>,
        after: Option<Vec<u8>>,
        values: bool,
        limit: u32,
    },
    Info,
    Verify,
    Reindex,
    Status,
    SetInterest {
        ns: NamespaceId,
        interest: Interest,
    },
    Prune,
    /// The live versions of a key as connected peers prove them, not stored.
    GetRemote {
        ns: NamespaceId,
        key: Vec<u8>,
    },
    /// The owner lets `author` write ([`Store::grant`](weft_storage::Store::grant)).
    Grant {
        ns: NamespaceId,
        author: AuthorId,
        grant: Grant,
    },
    /// The owner revokes `author` ([`Store::revoke`](weft_storage::Store::revoke)).
    Revoke {
        ns: NamespaceId,
        author: AuthorId,
    },
    /// The owner makes and grants a fresh author key for a write ticket ([`Store::invite`](weft_storage::Store::invite)).
    Invite {
        ns: NamespaceId,
        grant: Grant,
    },
    /// Charter, members, excluded entries and forks ([`Store::trust`](weft_storage::Store::trust)).
    Trust {
        ns: NamespaceId,
    },
    /// The changes of `ns` under `prefix` from seq `from` on (`None`: only later ones), a page
    /// of them; when there are none yet, the node waits up to `wait_ms` (at most
    /// [`MAX_WAIT_MS`]) for one before answering.
    Changes {
        ns: NamespaceId,
        prefix: Vec<u8>,
        from: Option<u64>,
        wait_ms: u32,
    },
}

/// The node's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum ApiResponse {
    Facts {
        author: AuthorId,
        default_namespace: NamespaceId,
    },
    Written(Vec<VersionId>),
    Value(Option<Vec<u8>>),
    Versions(Vec<VersionInfo>),
    History(Vec<HistoryItem>),
    Page(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    Info(Info),
    Verify(VerifyReport),
    Reindexed(u64),
    Status(Status),
    /// The request succeeded and has nothing to return.
    Done,
    Pruned(PruneReport),
    Revoked(u64),
    /// A write ticket's author secret key.
    Invited([u8; 32]),
    Trust(TrustReport),
    /// The request failed; the text is what the CLI prints.
    Error(String),
    /// Changes, and the seq the next request continues from.
    Changes(ChangePage),
}

/// The error text the CLI prints: the error and its causes, `: `-separated.
fn error_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// Serves the local API on `dir`'s socket until `shutdown` resolves. A socket file left by a
/// node that was killed is replaced; one a live node answers on is an error.
///
/// # Errors
/// When the socket cannot be bound.
pub async fn serve(
    dir: &Path,
    node: NodeHandle,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let path = dir.join(SOCKET_FILE);
    let listener = bind(&path)?;
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        warn!(error = %e, "local API accept failed");
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    warn!("too many local API connections; refusing one");
                    continue;
                };
                let node = node.clone();
                connections.spawn(async move {
                    if let Err(e) = connection(stream, node).await {
                        debug!(error = %e, "local API connection ended");
                    }
                    drop(permit);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // A request already handed to the store still completes: the store drains its queue.
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    let _ = std::fs::remove_file(&path);
    Ok(())
}

fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("a node is already running on {}", path.display()),
            ));
        }
        // Left by a node that did not shut down cleanly.
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

async fn connection(mut stream: tokio::net::UnixStream, node: NodeHandle) -> std::io::Result<()> {
    loop {
        let mut len = [0u8; 4];
        match stream.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("frame of {len} bytes"),
            ));
        }
        let mut bytes = vec![0u8; len];
        stream.read_exact(&mut bytes).await?;
        let response = match postcard::from_bytes::<ApiRequest>(&bytes) {
            Ok(request) => handle(&node, request).await,
            Err(e) => ApiResponse::Error(format!("malformed local API request: {e}")),
        };
        let bytes = postcard::to_allocvec(&response).expect("responses always encode");
        stream
            .write_all(&(bytes.len() as u32).to_le_bytes())
            .await?;
        stream.write_all(&bytes).await?;
    }
}

async fn handle(node: &NodeHandle, request: ApiRequest) -> ApiResponse {
    let result = answer(node, request).await;
    result.unwrap_or_else(|e| ApiResponse::Error(error_text(&e)))
}

async fn answer(node: &NodeHandle, request: ApiRequest) -> Result<ApiResponse, NodeError> {
    let worker = node.worker();
    Ok(match request {
        ApiRequest::Facts => ApiResponse::Facts {
            author: worker.facts().author,
            default_namespace: worker.facts().default_namespace,
        },
        ApiRequest::Write { ns, ops } => ApiResponse::Written(node.write(ns, ops).await?),
        ApiRequest::Get { ns, key } => {
            ApiResponse::Value(worker.run(move |s| s.get(&ns, &key)).await??)
        }
        ApiRequest::GetAt { ns, key, at } => {
            ApiResponse::Value(worker.run(move |s| s.get_at(&ns, &key, at)).await??)
        }
        ApiRequest::GetAll { ns, key } => {
            ApiResponse::Versions(worker.run(move |s| s.get_all(&ns, &key)).await??)
        }
        ApiRequest::History { ns, key } => {
            ApiResponse::History(worker.run(move |s| s.history(&ns, &key)).await??)
        }
        ApiRequest::Scan {
            ns,
            prefix,
            after,
            values,
            limit,
        } => ApiResponse::Page(
            worker
                .run(move |s| {
                    let mut page = Vec::new();
                    let mut bytes = 0;
                    for row in s.scan_after(&ns, &prefix, after.as_deref(), values)? {
                        let (key, value) = row?;
                        bytes += key.len() + value.as_ref().map_or(0, Vec::len);
                        page.push((key, value));
                        if page.len() >= limit.clamp(1, PAGE_KEYS) as usize || bytes > PAGE_BYTES {
                            break;
                        }
                    }
                    Ok::<_, weft_storage::Error>(page)
                })
                .await??,
        ),
        ApiRequest::Info => ApiResponse::Info(worker.run(|s| s.info()).await??),
        ApiRequest::Verify => ApiResponse::Verify(worker.run(|s| s.verify()).await??),
        ApiRequest::Reindex => ApiResponse::Reindexed(worker.run(|s| s.reindex()).await??),
        ApiRequest::Status => ApiResponse::Status(node.status().await?),
        ApiRequest::SetInterest { ns, interest } => {
            node.set_interest(ns, interest).await?;
            ApiResponse::Done
        }
        ApiRequest::GetRemote { ns, key } => ApiResponse::Versions(node.get_remote(ns, key).await?),
        ApiRequest::Prune => ApiResponse::Pruned(worker.run(|s| s.prune()).await??),
        ApiRequest::Grant { ns, author, grant } => ApiResponse::Written(vec![
            node.append(ns, move |s| s.grant(&ns, &author, grant))
                .await?,
        ]),
        ApiRequest::Revoke { ns, author } => {
            ApiResponse::Revoked(node.append(ns, move |s| s.revoke(&ns, &author)).await?)
        }
        ApiRequest::Invite { ns, grant } => {
            ApiResponse::Invited(node.append(ns, move |s| s.invite(&ns, grant)).await?)
        }
        ApiRequest::Trust { ns } => ApiResponse::Trust(worker.run(move |s| s.trust(&ns)).await??),
        ApiRequest::Changes {
            ns,
            prefix,
            from,
            wait_ms,
        } => {
            let mut watcher = Watcher::new(worker, ns, prefix, from);
            let wait = Duration::from_millis(u64::from(wait_ms.min(MAX_WAIT_MS)));
            let changes = watcher.next_page(Some(wait)).await?;
            // Set by any read that succeeded, past every change looked at.
            let next = watcher.position().unwrap_or_default();
            ApiResponse::Changes(ChangePage { changes, next })
        }
    })
}

/// Why a local API call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The node answered with an error; the text is the node's.
    #[error("{0}")]
    Node(String),
    /// The socket failed.
    #[error("talking to the node on {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The node's answer is not one this client reads.
    #[error("the node sent an answer this weft does not understand (is it another version?)")]
    Protocol,
}

/// A blocking client of a running node's local API.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    path: PathBuf,
}

impl Client {
    /// Connects to the node running on `dir`, or `None` when none is: no socket, or a socket
    /// left behind by a node that was killed.
    ///
    /// # Errors
    /// [`ClientError::Io`] for other failures, such as a socket owned by another user.
    pub fn connect(dir: &Path) -> Result<Option<Client>, ClientError> {
        let path = dir.join(SOCKET_FILE);
        match UnixStream::connect(&path) {
            Ok(stream) => Ok(Some(Client { stream, path })),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(None)
            }
            Err(source) => Err(ClientError::Io { path, source }),
        }
    }

    /// Sends one request and waits for its answer; an [`ApiResponse::Error`] becomes
    /// [`ClientError::Node`].
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn call(&mut self, request: &ApiRequest) -> Result<ApiResponse, ClientError> {
        let io = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        let bytes = postcard::to_allocvec(request).expect("requests always encode");
        let len = u32::try_from(bytes.len())
            .ok()
            .filter(|len| *len as usize <= MAX_FRAME)
            .ok_or_else(|| {
                ClientError::Node(format!(
                    "request of {} bytes is over the local API's limit of {MAX_FRAME}",
                    bytes.len()
                ))
            })?;
        self.stream.write_all(&len.to_le_bytes()).map_err(io)?;
        self.stream.write_all(&bytes).map_err(io)?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).map_err(io)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(ClientError::Protocol);
        }
        let mut bytes = vec![0u8; len];
        self.stream.read_exact(&mut bytes).map_err(io)?;
        match postcard::from_bytes(&bytes).map_err(|_| ClientError::Protocol)? {
            ApiResponse::Error(text) => Err(ClientError::Node(text)),
            response => Ok(response),
        }
    }
}
