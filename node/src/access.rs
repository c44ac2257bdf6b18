//! Read gating: only peers that know a namespace's id may sync it or read its gossip.
//!
//! Nothing on the wire names a namespace: requests and gossip carry its [`Topic`], a hash of
//! the id. A peer that sniffs a topic from gossip subscriptions still cannot use it:
//! - every sync request carries a [`Cap`], a MAC keyed by the namespace id over the two peers'
//!   ids, asker first. The transport (noise) authenticates both ids, so a capability seen on
//!   one connection proves nothing on another, and a node refuses a request without the right
//!   one exactly as it refuses a namespace it does not hold;
//! - every gossip message is sealed: authenticated with a MAC keyed by the namespace id and
//!   encrypted with a keystream keyed by it, taking the MAC as its nonce (SIV). A subscriber
//!   without the id sees random bytes.
//!
//! Both keys are BLAKE3 `derive_key` outputs from the namespace id under their own context
//! strings, so neither reveals the id or the other key.
//!
//! [`Topic`]: crate::wire::Topic

use serde::{Deserialize, Serialize};
use weft_storage::NamespaceId;

const CAP_CONTEXT: &str = "weft 2026 sync capability v1";
const SEAL_KEY_CONTEXT: &str = "weft 2026 gossip keystream v2";
const SEAL_MAC_CONTEXT: &str = "weft 2026 gossip mac v2";
const DISCOVERY_CONTEXT: &str = "weft 2026 rendezvous v1";
const MAC: usize = 32;

/// The bytes sealing adds to a gossip message: its MAC.
pub const SEAL_OVERHEAD: usize = MAC;

/// Proof, in a sync request, that the asker knows the namespace id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Cap(pub [u8; 32]);

impl Cap {
    /// The capability `asker` presents to `server` for `ns`, given the bytes of their peer
    /// ids.
    pub fn new(ns: &NamespaceId, asker: &[u8], server: &[u8]) -> Cap {
        let key = blake3::derive_key(CAP_CONTEXT, ns.as_bytes());
        let mut mac = blake3::Hasher::new_keyed(&key);
        // Lengths first, so the two ids cannot be re-split into two others.
        mac.update(&(asker.len() as u32).to_le_bytes());
        mac.update(asker);
        mac.update(&(server.len() as u32).to_le_bytes());
        mac.update(server);
        Cap(*mac.finalize().as_bytes())
    }

    /// Whether this is the capability `asker` should present to `server` for `ns`, compared
    /// in constant time.
    pub fn admits(&self, ns: &NamespaceId, asker: &[u8], server: &[u8]) -> bool {
        blake3::Hash::from(Cap::new(ns, asker, server).0) == blake3::Hash::from(self.0)
    }
}

/// The key a namespace's members register and discover each other under at a rendezvous
/// point: 64 hex digits of `derive_key("weft 2026 rendezvous v1", namespace id)`. Only holders
/// of the id can compute it; the rendezvous point, which sees it, cannot get the id back.
pub fn discovery_key(ns: &NamespaceId) -> String {
    weft_storage::ids::to_hex(&blake3::derive_key(DISCOVERY_CONTEXT, ns.as_bytes()))
}

/// Gossip that does not open under a namespace's key: from a peer without the id, or damaged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a sealed gossip message that does not open")]
pub struct BadSeal;

fn keystream(ns: &NamespaceId, nonce: &[u8], data: &mut [u8]) {
    let key = blake3::derive_key(SEAL_KEY_CONTEXT, ns.as_bytes());
    let mut stream = blake3::Hasher::new_keyed(&key).update(nonce).finalize_xof();
    let mut block = [0u8; 64];
    for chunk in data.chunks_mut(64) {
        stream.fill(&mut block[..chunk.len()]);
        for (byte, key) in chunk.iter_mut().zip(&block) {
            *byte ^= key;
        }
    }
}

fn mac(ns: &NamespaceId, message: &[u8]) -> [u8; MAC] {
    let key = blake3::derive_key(SEAL_MAC_CONTEXT, ns.as_bytes());
    *blake3::keyed_hash(&key, message).as_bytes()
}

/// Seals `message` for the peers that hold `ns`: ciphertext ‖ MAC, the MAC (of the message)
/// being the keystream's nonce as well. A random nonce would cost 24 bytes in every copy of
/// every push; what determinism gives away, that two sealed messages are the same message,
/// gossipsub's message ids show anyway.
pub fn seal(ns: &NamespaceId, message: &[u8]) -> Vec<u8> {
    let tag = mac(ns, message);
    let mut sealed = Vec::with_capacity(message.len() + MAC);
    sealed.extend_from_slice(message);
    keystream(ns, &tag, &mut sealed);
    sealed.extend_from_slice(&tag);
    sealed
}

/// Opens a message sealed for `ns`.
///
/// # Errors
/// [`BadSeal`] when it is too short or its MAC does not hold.
pub fn unseal(ns: &NamespaceId, sealed: &[u8]) -> Result<Vec<u8>, BadSeal> {
    let Some(split) = sealed.len().checked_sub(MAC) else {
        return Err(BadSeal);
    };
    let (ciphertext, tag) = sealed.split_at(split);
    let mut message = ciphertext.to_vec();
    keystream(ns, tag, &mut message);
    let tag = <[u8; MAC]>::try_from(tag).map_err(|_| BadSeal)?;
    // blake3's Hash compares in constant time.
    if blake3::Hash::from(mac(ns, &message)) != blake3::Hash::from(tag) {
        return Err(BadSeal);
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_bind_the_namespace_and_both_peers() {
        let ns = NamespaceId([1; 32]);
        let ids = [
            libp2p::PeerId::random(),
            libp2p::PeerId::random(),
            libp2p::PeerId::random(),
        ];
        let [a, b, c] = ids.map(|id| id.to_bytes());
        let cap = Cap::new(&ns, &a, &b);
        assert!(cap.admits(&ns, &a, &b));
        assert!(!cap.admits(&ns, &b, &a), "reflected");
        assert!(!cap.admits(&ns, &c, &b), "replayed by another asker");
        assert!(!cap.admits(&ns, &a, &c), "replayed to another server");
        assert!(
            !cap.admits(&NamespaceId([2; 32]), &a, &b),
            "another namespace"
        );
    }

    #[test]
    fn sealed_gossip_opens_only_under_its_namespace_and_hides_the_message() {
        let ns = NamespaceId([1; 32]);
        let message = b"k000000000000001 a value anyone would recognise".repeat(3);
        let sealed = seal(&ns, &message);
        assert_eq!(sealed.len(), message.len() + SEAL_OVERHEAD);
        assert!(
            !sealed
                .windows(16)
                .any(|w| message.windows(16).any(|m| m == w)),
            "plaintext visible in the sealed bytes"
        );
        assert_eq!(unseal(&ns, &sealed), Ok(message.clone()));
        let mut other = message.clone();
        other[0] ^= 1;
        let resealed = seal(&ns, &other);
        let differing = sealed[..message.len()]
            .iter()
            .zip(&resealed)
            .filter(|(a, b)| a != b)
            .count();
        assert!(
            differing > message.len() / 2,
            "a one-byte change of the message changed {differing} sealed bytes: the keystream \
             was reused"
        );
        assert_eq!(unseal(&NamespaceId([2; 32]), &sealed), Err(BadSeal));
        for at in [0, message.len() - 1, message.len(), sealed.len() - 1] {
            let mut damaged = sealed.clone();
            damaged[at] ^= 1;
            assert_eq!(unseal(&ns, &damaged), Err(BadSeal), "byte {at} flipped");
        }
        assert_eq!(unseal(&ns, &sealed[..SEAL_OVERHEAD - 1]), Err(BadSeal));
        assert_eq!(unseal(&ns, &[]), Err(BadSeal));
    }
}
