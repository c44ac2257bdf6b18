//! Remote reads: a key's live versions sent with proofs from index 0, and checked by the
//! asker without storing them.

use std::collections::HashMap;

use redb::ReadableDatabase;
use weft_crdt::{Op, Register, Superseded, Version, VersionHash, VersionId, Write};

use super::{Invalid, Served, SparseRun};
use crate::entry::Entry;
use crate::error::Result;
use crate::ids::{AuthorId, NamespaceId};
use crate::interest::Interest;
use crate::read::VersionInfo;
use crate::rows::{SparseTree, held_extension, node_hash, read_register};
use crate::store::Store;
use crate::tables::{ENTRIES, NODES, SPARSE_FEEDS, VIEW};
use crate::tree::{self, Hash, ProofError, SparseShape};

impl Store {
    /// The live versions of `key` in `ns`, each in a run proven against its author's head from
    /// index 0: what a peer sends for a remote read. Last writer first, and no more than fit
    /// in `max_bytes` of entries and proof hashes (always at least the winner's), so that a
    /// key with many concurrent versions never yields an answer its asker must refuse.
    ///
    /// # Errors
    /// As [`Store::read_sparse`].
    pub fn read_key(
        &self,
        ns: &NamespaceId,
        key: &[u8],
        max_bytes: usize,
    ) -> Result<Vec<SparseRun>> {
        let ns_number = self.namespace_number(ns)?;
        let live = {
            let txn = self.db().begin_read()?;
            read_register(&txn.open_table(VIEW)?, ns_number, key)?
        };
        // Authors in the order of their best version, last writer first.
        let mut authors: Vec<AuthorId> = Vec::new();
        let mut by_author: HashMap<AuthorId, Vec<u64>> = HashMap::new();
        for version in live.live() {
            let seqs = by_author.entry(version.id.author).or_default();
            if seqs.is_empty() {
                authors.push(version.id.author);
            }
            seqs.push(version.id.seq);
        }
        let mut runs = Vec::new();
        let mut bytes = 0usize;
        let want = Interest::new([key.to_vec()], Vec::new());
        for author in authors {
            let Some(mut seqs) = by_author.remove(&author) else {
                continue;
            };
            seqs.sort_unstable();
            // Read as a sparse run of this one key from 0, then keep only the live versions.
            if let Served::Run(mut run) =
                self.read_sparse(ns, &author, 0, &want, usize::MAX, usize::MAX)?
            {
                // Keys that merely start with `key` ride along; drop them and re-prove.
                run.entries
                    .retain(|(seq, _)| seqs.binary_search(seq).is_ok());
                if let Some(run) = self.reprove(ns, &author, *run)? {
                    let size = run.entries.iter().map(|(_, e)| e.len()).sum::<usize>()
                        + run.nodes.len() * std::mem::size_of::<Hash>();
                    if !runs.is_empty() && bytes + size > max_bytes {
                        break;
                    }
                    bytes += size;
                    runs.push(run);
                }
            }
        }
        Ok(runs)
    }

    /// The live versions of `key` among `runs` a peer sent for a remote read, once each has
    /// passed [`verify_remote_key`], judged by the gate this replica judges what it stores
    /// with: a version that would not count in its view (no grant covering it, past a
    /// revocation, stamped too far ahead of the clock) does not win a remote read either.
    ///
    /// # Errors
    /// [`Invalid`] when a run does not verify, or the namespace is not held. A gate that
    /// cannot read the database (logged) admits nothing.
    pub fn merge_remote_key(
        &self,
        ns: &NamespaceId,
        key: &[u8],
        runs: &[SparseRun],
    ) -> std::result::Result<Vec<VersionInfo>, Invalid> {
        let mut gate = self.gate(ns).map_err(|_| Invalid::UnknownNamespace(*ns))?;
        let tables = self
            .db()
            .begin_read()
            .ok()
            .and_then(|txn| Some((txn.open_table(VIEW).ok()?, txn.open_table(ENTRIES).ok()?)));
        merge(ns, key, runs, |id, entry| {
            let Some((view, entries)) = &tables else {
                tracing::warn!("cannot read the view to judge a remote read");
                return false;
            };
            match gate.judge(view, entries, id, entry) {
                Ok(exclusion) => exclusion.is_none(),
                Err(e) => {
                    tracing::warn!(error = %e, "judging a version of a remote read");
                    false
                }
            }
        })
    }

    /// `run` with its proof remade for the entries it still carries.
    fn reprove(
        &self,
        ns: &NamespaceId,
        author: &AuthorId,
        run: SparseRun,
    ) -> Result<Option<SparseRun>> {
        let txn = self.db().begin_read()?;
        let Some((feed, record)) = self.feed_record(&txn, ns, author)? else {
            return Ok(None);
        };
        if record.head != run.head {
            return Ok(None);
        }
        let entries = txn.open_table(ENTRIES)?;
        let stored = txn.open_table(NODES)?;
        let leaves = run.leaves();
        let shape = SparseShape {
            length: run.head.length,
            start: run.start,
            end: run.end,
            leaves: &leaves,
        };
        let extension = held_extension(&record)?;
        let is_sparse = txn.open_table(SPARSE_FEEDS)?.get(feed)?.is_some();
        let tree = SparseTree {
            entries: &entries,
            nodes: &stored,
            feed,
        };
        let mut nodes = Vec::new();
        for node in shape.proof_nodes() {
            let hash = if is_sparse {
                tree.hash(node)?
            } else {
                Some(node_hash(&entries, feed, record.held, &extension, node)?)
            };
            match hash {
                Some(hash) => nodes.push(hash),
                None => return Ok(None),
            }
        }
        Ok(Some(SparseRun { nodes, ..run }))
    }
}

/// Checks the runs a peer sent for a remote read of `key` in `ns` ([`Store::read_key`]) and
/// merges their versions: the live versions, last writer first, as proofs alone decide them
/// ([`Store::merge_remote_key`] also applies this replica's gates). Nothing is stored.
///
/// # Errors
/// [`Invalid`] when a run does not verify or carries another key.
pub fn verify_remote_key(
    ns: &NamespaceId,
    key: &[u8],
    runs: &[SparseRun],
) -> std::result::Result<Vec<VersionInfo>, Invalid> {
    merge(ns, key, runs, |_, _| true)
}

/// Verifies `runs` and replays the entries `counts` admits into one register.
fn merge(
    ns: &NamespaceId,
    key: &[u8],
    runs: &[SparseRun],
    mut counts: impl FnMut(VersionId, &Entry<'_>) -> bool,
) -> std::result::Result<Vec<VersionInfo>, Invalid> {
    let mut register: Register<Vec<u8>> = Register::default();
    let mut superseded = Superseded::default();
    for run in runs {
        if run.head.namespace != *ns || run.start != 0 {
            return Err(Invalid::UnknownNamespace(run.head.namespace));
        }
        let leaves = run.leaves();
        let shape = SparseShape {
            length: run.head.length,
            start: 0,
            end: run.end,
            leaves: &leaves,
        };
        let hashes: Vec<Hash> = run
            .entries
            .iter()
            .map(|(_, bytes)| tree::leaf_hash(bytes))
            .collect();
        if shape.root(&[], &hashes, &run.nodes, |_, _| {})? != run.head.root {
            return Err(ProofError::RootMismatch.into());
        }
        run.head.verify()?;
        for (seq, bytes) in &run.entries {
            let entry = Entry::decode(bytes).map_err(|e| Invalid::Entry {
                seq: *seq,
                reason: e.to_string(),
            })?;
            if entry.key != key {
                return Err(Invalid::OutsideInterest { seq: Some(*seq) });
            }
            let id = VersionId {
                author: run.head.author,
                seq: *seq,
            };
            if !counts(id, &entry) {
                continue;
            }
            let write = Write {
                version: Version {
                    id,
                    timestamp: entry.timestamp,
                    op: entry.op.map(|value| value.to_vec()),
                    hash: VersionHash(tree::leaf_hash(bytes)),
                },
                supersedes: entry.supersedes.clone(),
            };
            let Ok(_) = register.apply(write, &mut superseded);
        }
    }
    Ok(register
        .live()
        .iter()
        .map(|version| VersionInfo {
            id: version.id,
            timestamp: version.timestamp,
            value: match &version.op {
                Op::Put(value) => Some(value.clone()),
                Op::Delete => None,
            },
        })
        .collect())
}
