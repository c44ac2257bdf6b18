//! Who may write a namespace: its charter, the owner's grants and revocations, and the rule
//! that decides whether an entry counts in the view.
//!
//! The namespace key signs one [`Charter`]: the namespace is open (anyone holding its id may
//! write) or closed, owned by one author. The owner's grants and revocations are ordinary
//! entries of the owner's own feed, under the reserved keys [`member_key`]`(author)`, so they
//! replicate, verify and order like any other write. An entry from anyone else counts in the
//! view only while a grant covers its key and timestamp ([`Membership::admits`]); one that is
//! not covered stays in its feed (it is signed, and later entries hash over it) and is listed
//! as excluded, never silently dropped.
//!
//! A revocation names the revoked author's feed length the owner held when revoking: entries
//! before it keep counting, later ones do not, whatever timestamps they claim. An author cannot
//! escape a revocation by backdating its clock.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use weft_crdt::Timestamp;

use crate::entry::Entry;
use crate::ids::{AuthorId, NamespaceId};

/// Keys starting with this byte string are weft's own; no user write may use them.
pub const RESERVED_PREFIX: &[u8] = b"\xffweft/";

/// The reserved keys the owner's memberships live under.
pub const MEMBER_PREFIX: &[u8] = b"\xffweft/member/";

/// Prefixes the charter signature, so it can never be replayed as another signature.
const CHARTER_DOMAIN: &[u8] = b"weft/charter/v1";

/// The first byte of a membership record, so a later layout is told apart.
const MEMBERSHIP_FORMAT: u8 = 1;

/// The reserved key of `author`'s membership.
pub fn member_key(author: &AuthorId) -> Vec<u8> {
    let mut key = MEMBER_PREFIX.to_vec();
    key.extend_from_slice(author.as_bytes());
    key
}

/// The author a membership key names, if `key` is one.
pub fn member_of_key(key: &[u8]) -> Option<AuthorId> {
    let id = key.strip_prefix(MEMBER_PREFIX)?;
    Some(AuthorId(id.try_into().ok()?))
}

/// Who may write a namespace.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Mode {
    /// Anyone who holds the namespace id may write.
    Open,
    /// Only `owner` and the authors it grants may write.
    Closed {
        /// The author whose feed carries the grants and revocations.
        owner: AuthorId,
    },
}

/// The namespace key's signed statement of a namespace's [`Mode`]. It travels in tickets, so a
/// joining device learns who may write from the namespace key itself, not from whoever handed
/// it the ticket.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Charter {
    /// The namespace.
    pub namespace: NamespaceId,
    /// Who may write.
    pub mode: Mode,
    /// ed25519 by the namespace key over the charter's message (`docs/format.md`).
    #[serde(with = "crate::serde_bytes::array64")]
    pub signature: [u8; 64],
}

/// A charter whose signature does not hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the namespace charter is not signed by the namespace key")]
pub struct BadCharter;

impl Charter {
    fn message(namespace: &NamespaceId, mode: &Mode) -> Vec<u8> {
        let mut message = CHARTER_DOMAIN.to_vec();
        message.extend_from_slice(namespace.as_bytes());
        postcard::to_extend(mode, message).expect("modes always encode")
    }

    /// Signs `mode` with the namespace key.
    pub fn sign(namespace_key: &SigningKey, mode: Mode) -> Charter {
        let namespace = NamespaceId(namespace_key.verifying_key().to_bytes());
        let signature = namespace_key.sign(&Self::message(&namespace, &mode));
        Charter {
            namespace,
            mode,
            signature: signature.to_bytes(),
        }
    }

    /// Checks the signature against the namespace id.
    ///
    /// # Errors
    /// [`BadCharter`] when the namespace key did not sign this mode.
    pub fn verify(&self) -> Result<(), BadCharter> {
        let key = VerifyingKey::from_bytes(self.namespace.as_bytes()).map_err(|_| BadCharter)?;
        key.verify_strict(
            &Self::message(&self.namespace, &self.mode),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| BadCharter)
    }

    /// The owner of a closed namespace.
    pub fn owner(&self) -> Option<AuthorId> {
        match self.mode {
            Mode::Open => None,
            Mode::Closed { owner } => Some(owner),
        }
    }
}

/// What an author may write.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Grant {
    /// Key prefixes the author may write under; empty for every key.
    pub prefixes: Vec<Vec<u8>>,
    /// Entries timestamped at or after this do not count.
    pub expires: Option<Timestamp>,
}

impl Grant {
    fn covers(&self, entry: &Entry<'_>) -> Result<(), Exclusion> {
        if !self.prefixes.is_empty() && !self.prefixes.iter().any(|p| entry.key.starts_with(p)) {
            return Err(Exclusion::OutsideGrant);
        }
        if self
            .expires
            .is_some_and(|expires| entry.timestamp >= expires)
        {
            return Err(Exclusion::Expired);
        }
        Ok(())
    }
}

/// An author's standing in a closed namespace, as the owner last wrote it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Membership {
    /// The author may write what the grant covers.
    Granted(Grant),
    /// The author's entries from `until` on do not count; earlier ones count as `grant` says.
    Revoked {
        /// The grant in force before the revocation, if any.
        grant: Option<Grant>,
        /// The revoked author's feed length the owner held when revoking.
        until: u64,
    },
}

impl Membership {
    /// The record's bytes, the value of an owner entry under [`member_key`].
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_extend(self, vec![MEMBERSHIP_FORMAT]).expect("memberships always encode")
    }

    /// Decodes a membership record.
    ///
    /// # Errors
    /// A reason when the bytes are not a record of this format.
    pub fn decode(bytes: &[u8]) -> Result<Membership, String> {
        match bytes.split_first() {
            Some((&MEMBERSHIP_FORMAT, body)) => {
                let (membership, rest) =
                    postcard::take_from_bytes(body).map_err(|e| e.to_string())?;
                if rest.is_empty() {
                    Ok(membership)
                } else {
                    Err(format!("{} trailing bytes", rest.len()))
                }
            }
            Some((format, _)) => Err(format!("unknown membership format {format}")),
            None => Err("empty membership record".into()),
        }
    }

    /// Whether entry `seq` of the member's feed counts.
    ///
    /// # Errors
    /// The [`Exclusion`] that keeps it out.
    pub fn admits(&self, seq: u64, entry: &Entry<'_>) -> Result<(), Exclusion> {
        match self {
            Membership::Granted(grant) => grant.covers(entry),
            Membership::Revoked { grant, until } => {
                if seq >= *until {
                    return Err(Exclusion::Revoked);
                }
                grant.as_ref().ok_or(Exclusion::NoGrant)?.covers(entry)
            }
        }
    }
}

/// Why an entry held in a feed does not count in the view. Stored as one byte in
/// [`crate::tables::EXCLUDED`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Exclusion {
    /// The namespace is closed and its owner has granted this author nothing (yet).
    NoGrant,
    /// The author's grant does not cover the key.
    OutsideGrant,
    /// The entry's timestamp is at or past its grant's expiry.
    Expired,
    /// The entry comes after the length at which its author was revoked.
    Revoked,
    /// A key under [`RESERVED_PREFIX`] written by someone other than the owner.
    Reserved,
    /// The timestamp lies further ahead of this machine's clock than the store allows; it
    /// counts once the clock catches up.
    Future,
    /// The author signed two histories of its feed ([`crate::ForkProof`]), and the entry lies
    /// at or past the index where they part.
    Forked,
}

impl Exclusion {
    /// Every reason, in byte order.
    pub const ALL: [Exclusion; 7] = [
        Exclusion::NoGrant,
        Exclusion::OutsideGrant,
        Exclusion::Expired,
        Exclusion::Revoked,
        Exclusion::Reserved,
        Exclusion::Future,
        Exclusion::Forked,
    ];

    /// The stored byte.
    pub fn to_byte(self) -> u8 {
        self as u8
    }

    /// The reason stored as `byte`.
    pub fn from_byte(byte: u8) -> Option<Exclusion> {
        Exclusion::ALL.get(usize::from(byte)).copied()
    }

    /// A short name for logs and `weft status`.
    pub fn name(self) -> &'static str {
        match self {
            Exclusion::NoGrant => "no grant",
            Exclusion::OutsideGrant => "outside its grant",
            Exclusion::Expired => "grant expired",
            Exclusion::Revoked => "revoked",
            Exclusion::Reserved => "reserved key",
            Exclusion::Future => "timestamp in the future",
            Exclusion::Forked => "past a fork of its feed",
        }
    }
}

impl std::fmt::Display for Exclusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_crdt::Op;

    fn entry(key: &'static [u8], timestamp: u64) -> Entry<'static> {
        Entry {
            timestamp: Timestamp(timestamp),
            key,
            op: Op::Put(b"v"),
            supersedes: Vec::new(),
        }
    }

    #[test]
    fn grants_cover_prefixes_and_times_and_revocations_cut_by_length() {
        let grant = Grant {
            prefixes: vec![b"notes/".to_vec()],
            expires: Some(Timestamp(100)),
        };
        let granted = Membership::Granted(grant.clone());
        assert_eq!(granted.admits(0, &entry(b"notes/a", 99)), Ok(()));
        assert_eq!(
            granted.admits(0, &entry(b"other", 1)),
            Err(Exclusion::OutsideGrant)
        );
        assert_eq!(
            granted.admits(0, &entry(b"notes/a", 100)),
            Err(Exclusion::Expired)
        );
        let revoked = Membership::Revoked {
            grant: Some(grant),
            until: 5,
        };
        assert_eq!(revoked.admits(4, &entry(b"notes/a", 1)), Ok(()));
        // A backdated entry after the revocation length still does not count.
        assert_eq!(
            revoked.admits(5, &entry(b"notes/a", 1)),
            Err(Exclusion::Revoked)
        );
        for record in [granted, revoked] {
            assert_eq!(Membership::decode(&record.encode()), Ok(record));
        }
        assert!(Membership::decode(&[]).is_err());
        assert!(Membership::decode(&[2, 0]).is_err());
    }

    #[test]
    fn charters_verify_only_under_the_namespace_key() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let owner = AuthorId([1; 32]);
        let charter = Charter::sign(&key, Mode::Closed { owner });
        assert_eq!(charter.verify(), Ok(()));
        assert_eq!(charter.owner(), Some(owner));
        let mut opened = charter.clone();
        opened.mode = Mode::Open;
        assert_eq!(opened.verify(), Err(BadCharter));
        let mut moved = charter;
        moved.namespace = NamespaceId([2; 32]);
        assert_eq!(moved.verify(), Err(BadCharter));
    }

    #[test]
    fn member_keys_round_trip_and_exclusions_are_one_byte() {
        let author = AuthorId([9; 32]);
        assert_eq!(member_of_key(&member_key(&author)), Some(author));
        assert_eq!(member_of_key(b"\xffweft/member/short"), None);
        for reason in Exclusion::ALL {
            assert_eq!(Exclusion::from_byte(reason.to_byte()), Some(reason));
        }
        assert_eq!(Exclusion::from_byte(200), None);
    }
}
