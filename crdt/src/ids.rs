//! Identities of authors and versions, and the timestamps that order concurrent writes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An author's ed25519 public key: the writer of one feed per namespace.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AuthorId(pub [u8; 32]);

impl AuthorId {
    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for AuthorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for AuthorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Eight hex digits tell authors apart in test output without flooding it.
        write!(f, "AuthorId({})", &self.to_string()[..8])
    }
}

/// A hybrid-logical-clock reading: the 64-bit NTP time (32 bits of seconds since the Unix epoch,
/// 32 bits of fraction) whose low bits carry the logical counter.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
)]
pub struct Timestamp(pub u64);

/// Where a version lives: entry `seq` (0-based) of `author`'s feed in the namespace.
///
/// Feeds are append-only and signed, so the pair names one entry for good.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct VersionId {
    /// The feed's author.
    pub author: AuthorId,
    /// The entry's index in that feed.
    pub seq: u64,
}

/// What a version's bytes hash to (storage's blake3 leaf hash of its entry). A link names it
/// beside the id, so that it supersedes only a version its writer actually held: an entry not
/// written yet has no hash anyone can know.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct VersionHash(pub [u8; 32]);

impl fmt::Debug for VersionHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VersionHash(")?;
        for byte in &self.0[..4] {
            write!(f, "{byte:02x}")?;
        }
        write!(f, ")")
    }
}
