//! The local API's messages: every data operation is one [`ApiRequest`] variant, answered by
//! one [`ApiResponse`], over the socket or in-process alike.
//!
//! New variants are appended to both enums, so the tags of older ones never move.

use serde::{Deserialize, Serialize};
use weft_storage::{
    AuthorId, ChangePage, Charter, Grant, HistoryItem, Info, Interest, NamespaceId, Op,
    PruneReport, Timestamp, TrustReport, VerifyReport, VersionId, VersionInfo,
};

use crate::node::NodeError;
use crate::status::Status;

/// The largest frame either side reads.
pub const MAX_FRAME: usize = 64 << 20;

/// The most keys a scan page holds; a page also stops past [`PAGE_BYTES`].
pub const PAGE_KEYS: u32 = 1000;

/// The key and value bytes past which a scan page stops (it always holds one key).
pub const PAGE_BYTES: usize = 4 << 20;

/// The longest a [`ApiRequest::Changes`] waits for a change before answering with none.
pub const MAX_WAIT_MS: u32 = 30_000;

/// A request to the replica.
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
    /// The running node's status; a replica with no node refuses it ([`ErrorKind::NeedsNode`]).
    Status,
    SetInterest {
        ns: NamespaceId,
        interest: Interest,
    },
    Prune,
    /// The live versions of a key as connected peers prove them, not stored; needs a node.
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
    /// of them; when there are none yet, a node waits up to `wait_ms` (at most
    /// [`MAX_WAIT_MS`]) for one before answering.
    Changes {
        ns: NamespaceId,
        prefix: Vec<u8>,
        from: Option<u64>,
        wait_ms: u32,
    },
    /// What a ticket of `ns` carries from the replica: the charter and, with `write` in a
    /// closed namespace this replica owns, a fresh author key granted `write` now.
    Share {
        ns: NamespaceId,
        write: Option<Grant>,
    },
    /// Start a sync round now ([`NodeHandle::sync_now`](crate::NodeHandle::sync_now)); needs a
    /// node.
    SyncNow,
}

impl ApiRequest {
    /// The namespace whose local feed the request appends to, if it writes: a node gossips
    /// what such a request appended.
    pub fn appends(&self) -> Option<NamespaceId> {
        match self {
            ApiRequest::Write { ns, .. }
            | ApiRequest::Grant { ns, .. }
            | ApiRequest::Revoke { ns, .. }
            | ApiRequest::Invite { ns, .. }
            | ApiRequest::Share { ns, write: Some(_) } => Some(*ns),
            _ => None,
        }
    }
}

/// The replica's answer.
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
    /// The request failed.
    Error(ApiError),
    /// Changes, and the seq the next request continues from.
    Changes(ChangePage),
    /// What [`ApiRequest::Share`] asked for.
    Share {
        charter: Charter,
        author_key: Option<[u8; 32]>,
    },
    /// The sync round [`ApiRequest::SyncNow`] started.
    SyncRound(u64),
}

/// Why a request failed: what kind of failure, so a caller can act on it without reading the
/// text, and the text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The error and its causes, `: `-separated.
    pub message: String,
}

/// The kinds of failure a caller may want to tell apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No replica in the data dir yet.
    NotInitialized,
    /// The data dir holds other files.
    NotAWeftDir,
    /// Another process has the replica open.
    Locked,
    /// Stored data or a file does not check out.
    Damaged,
    /// A key outside a sparse replica's interest.
    NotReplicated,
    /// A write this replica's author is not granted.
    NotAllowed {
        /// The author the owner would have to grant.
        author: AuthorId,
    },
    /// A full replica asked to become sparse.
    AlreadyFull,
    /// A sparse replica asked to become full.
    AlreadySparse,
    /// A change feed reader further behind than the replica keeps.
    ChangesDropped,
    /// The value a past read needs was pruned.
    Pruned,
    /// The request needs a running node: peers, status, or waiting for changes.
    NeedsNode,
    /// No peer is connected to ask.
    NoPeers,
    /// Bad input, refused before anything changed: limits, reserved keys, a bad interest or
    /// change number, an operation only the owner may do.
    Invalid,
    /// The node or its store has shut down.
    Closed,
    /// Anything else: a disk or database failure.
    Internal,
    /// A peer holds more of this replica's own feed (it was restored from an older backup):
    /// writes wait until sync has fetched the rest back.
    OwnFeedBehind,
}

impl ApiError {
    /// The error a caller sees for `error`.
    pub fn of(error: &NodeError) -> ApiError {
        ApiError {
            kind: ErrorKind::of(error),
            message: error_text(error),
        }
    }
}

impl From<NodeError> for ApiError {
    fn from(error: NodeError) -> ApiError {
        ApiError::of(&error)
    }
}

impl From<weft_storage::Error> for ApiError {
    fn from(error: weft_storage::Error) -> ApiError {
        ApiError::of(&NodeError::Store(error))
    }
}

impl ErrorKind {
    /// The kind of `error`.
    pub fn of(error: &NodeError) -> ErrorKind {
        match error {
            NodeError::Store(error) => ErrorKind::of_store(error),
            NodeError::Closed => ErrorKind::Closed,
            NodeError::NoPeers => ErrorKind::NoPeers,
            NodeError::NotRunning => ErrorKind::NeedsNode,
            _ => ErrorKind::Internal,
        }
    }

    /// The kind of a store's `error`.
    pub fn of_store(error: &weft_storage::Error) -> ErrorKind {
        use weft_storage::{Error as E, InterestError};
        match error {
            E::NotInitialized { .. } => ErrorKind::NotInitialized,
            E::NotAWeftDir { .. } => ErrorKind::NotAWeftDir,
            E::Locked { .. } => ErrorKind::Locked,
            E::Corrupt { .. } | E::Damaged(_) => ErrorKind::Damaged,
            E::NotReplicated { .. } => ErrorKind::NotReplicated,
            E::NotAllowed { author, .. } => ErrorKind::NotAllowed { author: *author },
            E::Interest(InterestError::AlreadyFull) => ErrorKind::AlreadyFull,
            E::Interest(InterestError::NoPrefix) => ErrorKind::AlreadySparse,
            E::ChangesDropped { .. } => ErrorKind::ChangesDropped,
            E::Pruned { .. } => ErrorKind::Pruned,
            E::OwnFeedBehind { .. } => ErrorKind::OwnFeedBehind,
            E::Io { .. } | E::Db(_) => ErrorKind::Internal,
            _ => ErrorKind::Invalid,
        }
    }
}

/// The error and its causes, `: `-separated.
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
