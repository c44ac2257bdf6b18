//! Following the change feed ([`Store::changes`](weft_storage::Store::changes)): pages read on
//! the store thread, and a wait for the next commit when there is nothing new. The reader
//! pulls, so a slow one holds nothing in memory; the log it reads from is on disk.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use weft_storage::{Change, NamespaceId};

use crate::worker::{Closed, StoreWorker};

/// The most changes of the whole replica one read looks at.
pub const PAGE_CHANGES: usize = 1024;

/// Why following the change feed stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The store refused the read: [`weft_storage::Error::ChangesDropped`] when the reader fell
    /// further behind than the feed keeps, among others.
    #[error(transparent)]
    Store(#[from] weft_storage::Error),
    /// The store has shut down.
    #[error(transparent)]
    Closed(#[from] Closed),
}

/// A reader of one namespace's change feed, from a given seq on.
pub struct Watcher {
    worker: StoreWorker,
    ns: NamespaceId,
    prefix: Vec<u8>,
    /// The seq the next read starts at; `None` until the first read when following only new
    /// changes.
    next: Option<u64>,
    /// For a reader of only new changes: where the change feed stood when it was made, read
    /// by a job queued then, so a change committed before its first read is not skipped.
    start: Option<oneshot::Receiver<Result<u64, weft_storage::Error>>>,
    commits: watch::Receiver<u64>,
    buffer: VecDeque<Change>,
}

impl Watcher {
    /// A reader of the changes of `ns` under `prefix` from seq `from` on: 0 for the oldest kept,
    /// `None` for only those committed after this call.
    pub fn new(worker: &StoreWorker, ns: NamespaceId, prefix: Vec<u8>, from: Option<u64>) -> Self {
        // A full queue leaves the position to the first read, as late as that is.
        let start = match from {
            None => worker
                .try_run(move |store| store.changes(&ns, &[], None, 0).map(|page| page.next))
                .ok(),
            Some(_) => None,
        };
        Watcher {
            worker: worker.clone(),
            ns,
            prefix,
            next: from,
            start,
            commits: worker.commits(),
            buffer: VecDeque::new(),
        }
    }

    /// The seq to resume from to see every change not yet returned: pass it as `from` after a
    /// restart. `None` before the first read of a reader of only new changes.
    pub fn position(&self) -> Option<u64> {
        self.buffer.front().map(|change| change.seq).or(self.next)
    }

    /// The next change, waiting for one as long as it takes.
    ///
    /// # Errors
    /// [`WatchError`]; after one, the reader is where it was.
    pub async fn next(&mut self) -> Result<Change, WatchError> {
        loop {
            if let Some(change) = self.buffer.pop_front() {
                return Ok(change);
            }
            let page = self.next_page(None).await?;
            self.buffer.extend(page);
        }
    }

    /// The changes not yet returned, up to a page; when there are none, waits up to `wait`
    /// (`None`: as long as it takes) for some, and returns none if the time runs out.
    ///
    /// # Errors
    /// [`WatchError`]; after one, the reader is where it was.
    pub async fn next_page(&mut self, wait: Option<Duration>) -> Result<Vec<Change>, WatchError> {
        if !self.buffer.is_empty() {
            return Ok(self.buffer.drain(..).collect());
        }
        if let Some(start) = self.start.take()
            && let Ok(next) = start.await
        {
            self.next = Some(next?);
        }
        let deadline = wait.map(|wait| tokio::time::Instant::now() + wait);
        loop {
            // Marked seen before the read: a commit after it wakes the wait below.
            self.commits.borrow_and_update();
            let (ns, prefix, from) = (self.ns, self.prefix.clone(), self.next);
            let page = self
                .worker
                .run(move |store| store.changes(&ns, &prefix, from, PAGE_CHANGES))
                .await??;
            let moved = self.next != Some(page.next);
            self.next = Some(page.next);
            if !page.changes.is_empty() {
                return Ok(page.changes);
            }
            if moved {
                // Changes of other keys or namespaces: read on without waiting.
                continue;
            }
            let changed = self.commits.changed();
            match deadline {
                None => changed.await.map_err(|_| Closed)?,
                Some(deadline) => match tokio::time::timeout_at(deadline, changed).await {
                    Ok(result) => result.map_err(|_| Closed)?,
                    Err(_) => return Ok(Vec::new()),
                },
            }
        }
    }
}
