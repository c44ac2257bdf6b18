//! Remote reads (`get --remote`): a key asked of every connected peer, each answer checked
//! on its own, the checked ones merged by the store once every peer has answered or failed.

use std::collections::HashMap;

use weft_storage::{Invalid, NamespaceId, SparseRun, verify_remote_key};

use crate::wire::WireSparse;

/// A remote read waiting for its peers' answers.
struct RemoteRead {
    ns: NamespaceId,
    key: Vec<u8>,
    waiting: usize,
    runs: Vec<SparseRun>,
}

/// The remote reads in progress, by query number.
#[derive(Default)]
pub(crate) struct RemoteReads {
    next: u64,
    reads: HashMap<u64, RemoteRead>,
}

impl RemoteReads {
    /// Starts a read of `key` in `ns` asked of `peers` peers; returns its query number.
    pub fn start(&mut self, ns: NamespaceId, key: Vec<u8>, peers: usize) -> u64 {
        let query = self.next;
        self.next += 1;
        self.reads.insert(
            query,
            RemoteRead {
                ns,
                key,
                waiting: peers,
                runs: Vec::new(),
            },
        );
        query
    }

    /// One peer's answer: its runs are kept when they verify. Returns what the peer did wrong,
    /// if anything, and the verified runs once this was the last answer awaited.
    pub fn answered(
        &mut self,
        query: u64,
        runs: Vec<WireSparse>,
    ) -> (Option<Invalid>, Option<Finished>) {
        let Some(read) = self.reads.get_mut(&query) else {
            return (None, None);
        };
        let runs: Vec<SparseRun> = runs.into_iter().map(|r| r.into_run(read.ns)).collect();
        let fault = match verify_remote_key(&read.ns, &read.key, &runs) {
            Ok(_) => {
                read.runs.extend(runs);
                None
            }
            Err(e) => Some(e),
        };
        (fault, self.done(query))
    }

    /// One peer will not answer (it refused, failed or went away). Returns the verified runs
    /// once this was the last answer awaited.
    pub fn done(&mut self, query: u64) -> Option<Finished> {
        let read = self.reads.get_mut(&query)?;
        read.waiting = read.waiting.saturating_sub(1);
        if read.waiting > 0 {
            return None;
        }
        let read = self.reads.remove(&query)?;
        Some(Finished {
            ns: read.ns,
            key: read.key,
            runs: read.runs,
        })
    }
}

/// A remote read every peer has answered: its verified runs, for the store to judge by its
/// gates ([`weft_storage::Store::merge_remote_key`]) before anything is shown.
pub(crate) struct Finished {
    pub ns: NamespaceId,
    pub key: Vec<u8>,
    pub runs: Vec<SparseRun>,
}
