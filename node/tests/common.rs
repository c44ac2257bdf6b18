//! What the node tests share.

use weft_storage::Options;

/// Options for a test store: no fsync per commit, which tests of logic do not need.
pub fn options() -> Options {
    Options {
        durable: false,
        ..Options::default()
    }
}
