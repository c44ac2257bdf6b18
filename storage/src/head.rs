//! The signed head: an author's signature over the state of its feed.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::ids::{AuthorId, NamespaceId};
use crate::tree::{self, Hash, ProofError};

/// Prefixes every signed message, so that a head signature can never be replayed as any other
/// signature made with the same key.
pub const HEAD_DOMAIN: &[u8; 12] = b"weft/head/v1";

/// An author's signed statement that its feed in a namespace has `length` entries with tree
/// root `root`. One is made per append batch.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SignedHead {
    /// The namespace of the feed.
    pub namespace: NamespaceId,
    /// The feed's author, whose key made the signature.
    pub author: AuthorId,
    /// How many entries the feed has.
    pub length: u64,
    /// The merkle root over them ([`tree::root_hash`]).
    pub root: Hash,
    /// ed25519 over [`SignedHead::message`].
    #[serde(with = "crate::serde_bytes::array64")]
    pub signature: [u8; 64],
}

impl SignedHead {
    /// The bytes the author signs: the domain tag, namespace id, author id, length as u64
    /// little-endian, and root; 116 bytes.
    pub fn message(
        namespace: &NamespaceId,
        author: &AuthorId,
        length: u64,
        root: &Hash,
    ) -> [u8; 116] {
        let mut message = [0u8; 116];
        message[..12].copy_from_slice(HEAD_DOMAIN);
        message[12..44].copy_from_slice(namespace.as_bytes());
        message[44..76].copy_from_slice(author.as_bytes());
        message[76..84].copy_from_slice(&length.to_le_bytes());
        message[84..].copy_from_slice(root);
        message
    }

    /// Signs a head with the author's key.
    pub fn sign(key: &SigningKey, namespace: NamespaceId, length: u64, root: Hash) -> SignedHead {
        let author = crate::ids::author_of(key);
        let signature = key.sign(&Self::message(&namespace, &author, length, &root));
        SignedHead {
            namespace,
            author,
            length,
            root,
            signature: signature.to_bytes(),
        }
    }

    /// Checks the signature against the author id.
    ///
    /// # Errors
    /// [`ProofError::BadSignature`] when it was not made by `author` over these fields.
    pub fn verify(&self) -> Result<(), ProofError> {
        tree::check_length(self.length)?;
        let key = VerifyingKey::from_bytes(self.author.as_bytes())
            .map_err(|_| ProofError::BadSignature)?;
        let message = Self::message(&self.namespace, &self.author, self.length, &self.root);
        key.verify_strict(&message, &Signature::from_bytes(&self.signature))
            .map_err(|_| ProofError::BadSignature)
    }

    /// Verifies that `entries`, the encoded entries `[start, start + entries.len())` of this
    /// feed, belong to it, with the proof nodes of [`tree::proof_nodes`]. A single entry is the
    /// range of one.
    ///
    /// # Errors
    /// A [`ProofError`] saying what does not hold.
    pub fn verify_range<B: AsRef<[u8]>>(
        &self,
        start: u64,
        entries: &[B],
        nodes: &[Hash],
    ) -> Result<(), ProofError> {
        let leaves: Vec<Hash> = entries
            .iter()
            .map(|e| tree::leaf_hash(e.as_ref()))
            .collect();
        let root = tree::root_from_range(self.length, start, &leaves, nodes)?;
        if root != self.root {
            return Err(ProofError::RootMismatch);
        }
        self.verify()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_bytes(&[byte; 32])
    }

    fn feed(length: u64) -> (Vec<Vec<u8>>, tree::Frontier) {
        let entries: Vec<Vec<u8>> = (0..length)
            .map(|i| format!("entry {i}").into_bytes())
            .collect();
        let mut frontier = tree::Frontier::default();
        for entry in &entries {
            frontier.push(tree::leaf_hash(entry), |_, _| {});
        }
        (entries, frontier)
    }

    /// A head signed with an absurd length (its author's own signature, so it is not forged)
    /// is refused before any tree arithmetic could overflow (issue 15, finding 14).
    #[test]
    fn an_absurd_length_is_refused_not_overflowed() {
        let namespace = NamespaceId([7; 32]);
        for length in [tree::MAX_LENGTH + 1, 1 << 63, u64::MAX] {
            let head = SignedHead::sign(&key(1), namespace, length, [3; 32]);
            assert_eq!(head.verify(), Err(ProofError::TooLong(length)));
            assert!(
                head.verify_range(length - 1, &[b"x".to_vec()], &[])
                    .is_err()
            );
            assert!(tree::Frontier::new(length, Vec::new()).is_err());
        }
        let at_most = SignedHead::sign(&key(1), namespace, tree::MAX_LENGTH, [3; 32]);
        assert_eq!(at_most.verify(), Ok(()), "the bound itself is a length");
    }

    #[test]
    fn a_signed_head_verifies_a_range_and_any_tampering_fails() {
        let namespace = NamespaceId([7; 32]);
        let (entries, frontier) = feed(4);
        let head = SignedHead::sign(&key(1), namespace, 4, frontier.root());
        head.verify().expect("fresh head verifies");

        // A 4-leaf tree has one peak, so proving everything needs no extra nodes.
        head.verify_range(0, &entries, &[])
            .expect("whole feed verifies");

        for bit in 0..64 * 8 {
            let mut bad = head.clone();
            bad.signature[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                bad.verify(),
                Err(ProofError::BadSignature),
                "flipped signature bit {bit}"
            );
        }
        let mut other_author = head.clone();
        other_author.author = crate::ids::author_of(&key(2));
        assert_eq!(other_author.verify(), Err(ProofError::BadSignature));
        let mut other_namespace = head.clone();
        other_namespace.namespace = NamespaceId([8; 32]);
        assert_eq!(other_namespace.verify(), Err(ProofError::BadSignature));
        let mut tampered = entries.clone();
        tampered[2].push(b'!');
        assert_eq!(
            head.verify_range(0, &tampered, &[]),
            Err(ProofError::RootMismatch)
        );
    }

    #[test]
    fn serialized_head_round_trips() {
        let (_, frontier) = feed(3);
        let head = SignedHead::sign(&key(1), NamespaceId([7; 32]), 3, frontier.root());
        let bytes = postcard::to_allocvec(&head).expect("encodes");
        assert_eq!(
            postcard::from_bytes::<SignedHead>(&bytes).expect("decodes"),
            head
        );
    }
}
