//! Namespace and author identities, and the keypairs behind them.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

pub use weft_crdt::AuthorId;

/// A namespace: one shared database, named by the public key of its owner keypair.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NamespaceId(pub [u8; 32]);

impl NamespaceId {
    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for NamespaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl fmt::Debug for NamespaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NamespaceId({})", &to_hex(&self.0)[..8])
    }
}

/// A namespace or author id that is not 64 hex digits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid id {0:?}: expected 64 hex digits")]
pub struct ParseIdError(pub String);

impl FromStr for NamespaceId {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_key_hex(s).map(NamespaceId)
    }
}

/// Parses an author id from hex.
pub fn parse_author(s: &str) -> Result<AuthorId, ParseIdError> {
    parse_key_hex(s).map(AuthorId)
}

fn parse_key_hex(s: &str) -> Result<[u8; 32], ParseIdError> {
    from_hex(s)
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| ParseIdError(s.to_owned()))
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

/// Bytes from hex, upper or lower case; `None` if `s` is not hex.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |c: u8| char::from(c).to_digit(16);
            Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}

/// A fresh ed25519 keypair from the operating system's random source.
pub(crate) fn generate_keypair() -> std::io::Result<SigningKey> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(SigningKey::from_bytes(&secret))
}

/// The author id of a signing key.
pub(crate) fn author_of(key: &SigningKey) -> AuthorId {
    AuthorId(key.verifying_key().to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        let id = NamespaceId([0xab; 32]);
        assert_eq!(id.to_string().parse::<NamespaceId>(), Ok(id));
        assert!("zz".repeat(32).parse::<NamespaceId>().is_err());
        assert!("ab".parse::<NamespaceId>().is_err());
        assert_eq!(from_hex("0aFf"), Some(vec![0x0a, 0xff]));
        assert_eq!(from_hex("abc"), None);
    }
}
