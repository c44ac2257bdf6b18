//! What a replica holds when a sync client starts from it.

use std::collections::HashMap;

use weft_storage::{AuthorId, Interest, NamespaceId, Store};

use super::FeedId;

/// What a replica holds, as a client starts from it ([`Holdings::of`]).
#[derive(Clone, Debug)]
pub struct Holdings {
    /// This replica's author: its own feed is asked for only when a peer holds more of it.
    pub author: AuthorId,
    /// The namespaces held.
    pub namespaces: Vec<NamespaceId>,
    /// The interest of each namespace held sparsely.
    pub interests: HashMap<NamespaceId, Interest>,
    /// Every feed held, with the entries stored.
    pub feeds: Vec<(FeedId, u64)>,
}

impl Holdings {
    /// What `store` holds.
    ///
    /// # Errors
    /// Store failures.
    pub fn of(store: &Store) -> Result<Holdings, weft_storage::Error> {
        let namespaces = store.namespaces();
        let mut interests = HashMap::new();
        let mut feeds = Vec::new();
        for ns in &namespaces {
            if let Some(interest) = store.interest(ns)? {
                interests.insert(*ns, interest);
            }
            for feed in store.feeds(ns)? {
                feeds.push(((*ns, feed.head.author), feed.held));
            }
        }
        Ok(Holdings {
            author: store.author(),
            namespaces,
            interests,
            feeds,
        })
    }
}
