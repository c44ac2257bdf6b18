//! The sync protocol, free of libp2p.

mod scheduler;

pub use scheduler::{FeedProgress, MAX_OUTSTANDING, MAX_QUEUED_PER_FEED, Scheduler, Want};
use weft_storage::{AuthorId, NamespaceId};

/// A feed: an author's log in a namespace.
pub type FeedId = (NamespaceId, AuthorId);
