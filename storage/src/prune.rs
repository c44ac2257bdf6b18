//! Dropping the payloads of superseded versions while keeping every remaining entry provable.
//!
//! A pruned entry's row keeps its leaf hash and tree nodes, so proofs of the rest of the feed
//! still hold, and keeps in a stub ([`tables::PRUNED_FORMAT`]) what the view needs to rebuild:
//! the timestamp, the key and the versions it superseded. Only the value and the signature
//! of authorship over it (the entry bytes) are gone, so a pruned entry can no longer be sent
//! to a peer.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use weft_crdt::Op;

use crate::error::{Error, Result};
use crate::rows::{Stub, decode_row, feed_of, key_versions, row_hash};
use crate::store::Store;
use crate::tables::{self, ENTRIES, FEED_IDS, PRUNED_FORMAT, SUPERSEDED, VIEW, feed_key};
use crate::view::replaced_in;

/// What [`Store::prune`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneReport {
    /// Superseded puts whose value was dropped.
    pub versions: u64,
    /// Entry bytes freed (the stubs kept are subtracted). The database file keeps its size;
    /// later writes reuse the space.
    pub bytes: u64,
}

impl Store {
    /// Drops the values of every superseded put held, in one transaction. A version live in
    /// the view is never pruned: only versions some held version supersedes are.
    ///
    /// # Errors
    /// Database failures; [`Error::Damaged`] when a row does not read.
    pub fn prune(&self) -> Result<PruneReport> {
        let mut txn = self.db().begin_write()?;
        txn.set_durability(self.durability())?;
        let mut report = PruneReport::default();
        {
            let superseded = txn.open_table(SUPERSEDED)?;
            let view = txn.open_table(VIEW)?;
            let feed_ids = txn.open_table(FEED_IDS)?;
            let mut entries = txn.open_table(ENTRIES)?;
            let mut last_key: Option<(u32, Vec<u8>)> = None;
            for row in superseded.iter()? {
                let (row, _) = row?;
                let (ns, key) = split_superseded_row(row.value())?;
                if last_key.as_ref() == Some(&(ns, key.to_vec())) {
                    continue;
                }
                last_key = Some((ns, key.to_vec()));
                for (id, live) in key_versions(&view, &superseded, ns, key)? {
                    if live {
                        continue;
                    }
                    let Some(feed) = feed_of(&feed_ids, ns, &id.author)? else {
                        continue;
                    };
                    let Some(stored) = entries.get(feed_key(feed, id.seq))? else {
                        continue;
                    };
                    let bytes = stored.value().to_vec();
                    drop(stored);
                    let Some(parts) = tables::split_row(id.seq, &bytes) else {
                        return Err(Error::Damaged(format!(
                            "entry {} of local feed {feed} is truncated",
                            id.seq
                        )));
                    };
                    if tables::is_pruned(parts.entry) {
                        continue;
                    }
                    let entry = decode_row(feed, id.seq, &bytes)?;
                    if !matches!(entry.op, Op::Put(_)) {
                        continue;
                    }
                    // Not live may also mean kept out of the view (an excluded entry) and
                    // named by a link that does not match it: only a replaced one goes.
                    let prefix = tables::superseded_prefix(ns, key);
                    if !replaced_in(
                        &superseded,
                        &prefix,
                        &id,
                        &row_hash(&bytes),
                        entry.timestamp,
                    )? {
                        continue;
                    }
                    let stub = Stub {
                        timestamp: entry.timestamp,
                        key: entry.key,
                        supersedes: entry.supersedes.clone(),
                    };
                    let hashes = bytes.len() - parts.entry.len();
                    let mut row = bytes[..hashes].to_vec();
                    row.push(PRUNED_FORMAT);
                    row = postcard::to_extend(&stub, row).expect("stubs always encode");
                    report.bytes += (bytes.len().saturating_sub(row.len())) as u64;
                    report.versions += 1;
                    entries.insert(feed_key(feed, id.seq), &row[..])?;
                }
            }
        }
        txn.commit()?;
        Ok(report)
    }
}

/// The namespace number and key of a [`tables::SUPERSEDED`] row.
fn split_superseded_row(row: &[u8]) -> Result<(u32, &[u8])> {
    let damaged = || Error::Damaged("a superseded row is truncated".into());
    let (ns, rest) = row.split_first_chunk::<4>().ok_or_else(damaged)?;
    let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(damaged)?;
    let key = rest
        .get(..u32::from_be_bytes(*len) as usize)
        .ok_or_else(damaged)?;
    Ok((u32::from_be_bytes(*ns), key))
}
