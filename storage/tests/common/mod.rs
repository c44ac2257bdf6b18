//! What the storage tests share.

pub mod replay;

use weft_storage::{AuthorId, Charter, Options, Store};

/// Options for a test store: no fsync per commit, which tests of logic do not need.
pub fn options() -> Options {
    Options {
        durable: false,
        ..Options::default()
    }
}

/// The charter of `origin`'s namespace, for a replica that joins it.
pub fn charter(origin: &Store) -> Charter {
    origin
        .charter(&origin.default_namespace())
        .expect("known namespace")
        .expect("a charter")
}

/// How many entries of `author`'s feed `store` holds.
pub fn held(store: &Store, author: &AuthorId) -> u64 {
    store
        .feeds(&store.default_namespace())
        .expect("feeds")
        .iter()
        .find(|f| f.head.author == *author)
        .map_or(0, |f| f.held)
}
