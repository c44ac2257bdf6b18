//! The merge rules of weft's multi-writer key-value view, with no I/O, no async and no clock reads.
//!
//! # Layout
//! - [`ids`]: who wrote a version ([`AuthorId`]), where it sits ([`VersionId`]) and when
//!   ([`Timestamp`], a hybrid-logical-clock reading passed in by the caller).
//! - [`register`]: the multi-value register of one key. A version is *live* while no known version
//!   supersedes it; the last-writer-wins read is the live version with the greatest
//!   `(timestamp, author, seq)`.
//! - [`replica`]: an in-memory replica of many keys, the reference model that storage's view and
//!   the property tests are checked against.
//!
//! Merging is a set union: a key's live versions are all known versions minus every version
//! that some known version links to in its `supersedes`. That makes merge commutative,
//! associative and idempotent, whatever order versions arrive in and however often. A link names
//! a version by id and hash, so it can only supersede a version its writer held, never one
//! written later under the same id.
#![deny(missing_docs)]

pub mod ids;
pub mod register;
pub mod replica;

pub use ids::{AuthorId, Timestamp, VersionHash, VersionId};
pub use register::{Applied, Link, Op, Register, Superseded, SupersededSet, Version, Write};
pub use replica::Replica;
