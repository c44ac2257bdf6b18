//! Serving the local API on the data dir's socket, and answering a request through a running
//! node.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};
use weft_storage::ChangePage;

use super::execute::execute;
use super::messages::{ApiError, ApiRequest, ApiResponse, ErrorKind, MAX_FRAME, MAX_WAIT_MS};
use crate::config::SOCKET_FILE;
use crate::handle::NodeHandle;
use crate::node::NodeError;
use crate::shutdown::Shutdown;
use crate::watch::Watcher;

/// Local API connections served at once.
const MAX_CONNECTIONS: usize = 64;

/// How long connections get to finish the request they are on once shutdown begins.
const DRAIN: Duration = Duration::from_secs(5);

/// Answers `request` through `node`: writes are gossiped once durable, and status, remote
/// reads and waiting for changes use the node; everything else runs on its store thread
/// ([`execute`]).
///
/// Cancel safety: a request already handed to the store still completes; its answer is lost.
///
/// # Errors
/// As [`execute`], and [`NodeError::Closed`] once the node has stopped.
pub async fn answer(node: &NodeHandle, request: ApiRequest) -> Result<ApiResponse, NodeError> {
    let worker = node.worker();
    Ok(match request {
        ApiRequest::Status => ApiResponse::Status(node.status().await?),
        ApiRequest::SyncNow => ApiResponse::SyncRound(node.sync_now().await?),
        ApiRequest::GetRemote { ns, key } => ApiResponse::Versions(node.get_remote(ns, key).await?),
        ApiRequest::SetInterest { ns, interest } => {
            node.set_interest(ns, interest).await?;
            ApiResponse::Done
        }
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
        request => match request.appends() {
            Some(ns) => {
                node.append(ns, move |store| execute(store, request))
                    .await?
            }
            None => worker.run(move |store| execute(store, request)).await??,
        },
    })
}

/// Serves the local API on `dir`'s socket until `shutdown` fires, then lets each connection
/// finish the request it is on (for at most a few seconds) and removes the socket. A socket
/// file left by a node that was killed is replaced; one a live node answers on is an error.
///
/// # Errors
/// When the socket cannot be bound.
pub async fn serve(dir: &Path, node: NodeHandle, mut shutdown: Shutdown) -> std::io::Result<()> {
    let path = dir.join(SOCKET_FILE);
    let listener = bind(&path)?;
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.wait() => break,
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
                let shutdown = shutdown.clone();
                connections.spawn(async move {
                    if let Err(e) = connection(stream, node, shutdown).await {
                        debug!(error = %e, "local API connection ended");
                    }
                    drop(permit);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let drained = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        warn!("local API connections did not finish in time; closing them");
        connections.shutdown().await;
    }
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
    // The socket is reachable between bind and chmod only through its dir, which the store
    // keeps private (700) whenever it opens it.
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// One client: requests answered in turn until it hangs up or shutdown begins. A request
/// being answered is finished first, except a wait for changes, which has nothing to lose.
async fn connection(
    mut stream: tokio::net::UnixStream,
    node: NodeHandle,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    loop {
        let mut len = [0u8; 4];
        tokio::select! {
            () = shutdown.wait() => return Ok(()),
            read = stream.read_exact(&mut len) => match read {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            },
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
            Ok(request @ ApiRequest::Changes { .. }) => tokio::select! {
                () = shutdown.wait() => return Ok(()),
                answered = answer(&node, request) => respond(answered),
            },
            Ok(request) => respond(answer(&node, request).await),
            Err(e) => ApiResponse::Error(ApiError {
                kind: ErrorKind::Invalid,
                message: format!("malformed local API request: {e}"),
            }),
        };
        let bytes = postcard::to_allocvec(&response).expect("responses always encode");
        stream
            .write_all(&(bytes.len() as u32).to_le_bytes())
            .await?;
        stream.write_all(&bytes).await?;
    }
}

fn respond(answered: Result<ApiResponse, NodeError>) -> ApiResponse {
    answered.unwrap_or_else(|e| ApiResponse::Error(ApiError::of(&e)))
}
