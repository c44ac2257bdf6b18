//! The address book: the peers this node has synced a namespace with, where they were last
//! seen and when, kept in the data dir so a restarted node (or one on another network) finds
//! them again with no new ticket.
//!
//! `peers.json`: `{"peers": [{"id": "12D3Koo...", "addrs": ["/ip4/..."], "last_seen": 1764620000}]}`,
//! newest first, at most [`MAX_PEERS`] entries. A damaged file is set aside, not fatal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use tracing::warn;

/// The address book file inside the data dir.
pub const BOOK_FILE: &str = "peers.json";

/// Peers kept; the ones seen longest ago go first.
pub const MAX_PEERS: usize = 256;

/// Addresses kept per peer.
const MAX_ADDRS: usize = 16;

#[derive(Default, Serialize, Deserialize)]
struct BookFile {
    peers: Vec<Entry>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Entry {
    id: String,
    addrs: Vec<Multiaddr>,
    last_seen: u64,
}

/// Where the namespace's members were last seen.
pub(crate) struct AddressBook {
    path: Option<PathBuf>,
    peers: HashMap<PeerId, (Vec<Multiaddr>, u64)>,
    dirty: bool,
}

impl AddressBook {
    /// The book in `dir`, empty when there is none yet. With `dir` `None`, nothing is kept.
    pub fn load(dir: Option<&Path>) -> AddressBook {
        let path = dir.map(|dir| dir.join(BOOK_FILE));
        let mut book = AddressBook {
            path: path.clone(),
            peers: HashMap::new(),
            dirty: false,
        };
        let Some(path) = path else {
            return book;
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return book,
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot read the address book");
                return book;
            }
        };
        match serde_json::from_str::<BookFile>(&text) {
            Ok(file) => {
                for entry in file.peers.into_iter().take(MAX_PEERS) {
                    if let Ok(peer) = entry.id.parse() {
                        book.peers.insert(peer, (entry.addrs, entry.last_seen));
                    }
                }
            }
            Err(e) => {
                let aside = path.with_extension("json.damaged");
                warn!(path = %path.display(), error = %e, aside = %aside.display(), "the address book does not parse; setting it aside");
                let _ = std::fs::rename(&path, aside);
            }
        }
        book
    }

    /// `peer`, a member of a namespace held here, is reachable at `addrs` now.
    pub fn seen(&mut self, peer: PeerId, addrs: impl IntoIterator<Item = Multiaddr>) {
        let mut addrs: Vec<Multiaddr> = addrs.into_iter().collect();
        addrs.dedup();
        addrs.truncate(MAX_ADDRS);
        if addrs.is_empty() {
            return;
        }
        let now = unix_now();
        let changed = self
            .peers
            .get(&peer)
            .is_none_or(|(known, seen)| *known != addrs || now > seen + 60);
        if changed {
            self.peers.insert(peer, (addrs, now));
            self.dirty = true;
            if self.peers.len() > MAX_PEERS
                && let Some(oldest) = self
                    .peers
                    .iter()
                    .min_by_key(|(_, (_, seen))| *seen)
                    .map(|(peer, _)| *peer)
            {
                self.peers.remove(&oldest);
            }
        }
    }

    /// Every peer with its addresses, most recently seen first.
    pub fn peers(&self) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let mut peers: Vec<_> = self.peers.iter().collect();
        peers.sort_by_key(|(_, (_, seen))| std::cmp::Reverse(*seen));
        peers
            .into_iter()
            .map(|(peer, (addrs, _))| (*peer, addrs.clone()))
            .collect()
    }

    /// Writes the book if it changed since the last save; a failure is logged, and retried
    /// on the next save.
    pub fn save(&mut self) {
        let Some(path) = &self.path else {
            return;
        };
        if !self.dirty {
            return;
        }
        let mut entries: Vec<Entry> = self
            .peers
            .iter()
            .map(|(peer, (addrs, seen))| Entry {
                id: peer.to_string(),
                addrs: addrs.clone(),
                last_seen: *seen,
            })
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.last_seen));
        let text = serde_json::to_string_pretty(&BookFile { peers: entries })
            .expect("an address book always serializes");
        // Written aside and renamed, so a crash never leaves half a file.
        let temporary = path.with_extension("json.new");
        match std::fs::write(&temporary, text + "\n")
            .and_then(|()| std::fs::rename(&temporary, path))
        {
            Ok(()) => self.dirty = false,
            Err(e) => warn!(path = %path.display(), error = %e, "cannot save the address book"),
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_book_survives_a_restart_keeps_the_newest_and_sets_damage_aside() {
        let dir = tempfile::tempdir().expect("temp dir");
        let addr: Multiaddr = "/ip4/192.0.2.7/tcp/4919".parse().expect("addr");
        let peer = PeerId::random();
        let mut book = AddressBook::load(Some(dir.path()));
        assert!(book.peers().is_empty());
        book.seen(peer, [addr.clone()]);
        book.save();
        let book = AddressBook::load(Some(dir.path()));
        assert_eq!(book.peers(), vec![(peer, vec![addr.clone()])]);

        let mut book = AddressBook::load(Some(dir.path()));
        for _ in 0..MAX_PEERS + 10 {
            book.seen(PeerId::random(), [addr.clone()]);
        }
        assert_eq!(book.peers().len(), MAX_PEERS, "bounded");

        std::fs::write(dir.path().join(BOOK_FILE), "{not json").expect("write");
        let book = AddressBook::load(Some(dir.path()));
        assert!(book.peers().is_empty());
        assert!(dir.path().join("peers.json.damaged").exists());
    }
}
