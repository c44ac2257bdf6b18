//! The store's own thread: redb calls block, so they run there, one at a time, in the order
//! they were sent, behind a bounded queue.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread;

use tokio::sync::{mpsc, oneshot, watch};
use weft_storage::{AuthorId, NamespaceId, Store};

use crate::NodeError;
use crate::sync::FeedId;

/// Jobs queued for the store thread before senders wait (or, with [`StoreWorker::try_run`],
/// get [`Busy`]).
const QUEUE: usize = 64;

/// Remote ingests run back to back before the store waits for the disk
/// ([`Store::defer_ingest_sync`]): a crash takes back at most this many, which peers send
/// again.
const MAX_UNSYNCED: u32 = 64;

/// A job's result, sent to whoever queued it once what the job committed is durable.
type Reply = Box<dyn FnOnce() + Send>;

struct Job {
    run: Box<dyn FnOnce(&Store) -> Reply + Send>,
    /// The feed it ingests entries of, when that is all it does: its commit may then wait for
    /// the disk with the next job's, if that ingests another feed.
    remote: Option<FeedId>,
    /// Told when the job has committed but its reply waits for a later sync.
    committed: Option<oneshot::Sender<()>>,
}

impl Job {
    fn new<T: Send + 'static>(
        remote: Option<FeedId>,
        committed: Option<oneshot::Sender<()>>,
        job: impl FnOnce(&Store) -> T + Send + 'static,
        reply: oneshot::Sender<T>,
    ) -> Job {
        Job {
            run: Box::new(move |store| {
                let result = job(store);
                Box::new(move || {
                    let _ = reply.send(result);
                })
            }),
            remote,
            committed,
        }
    }
}

/// A cloneable handle to the store thread. The thread ends, closing the store, once every
/// handle is dropped and the queued jobs are done.
#[derive(Clone)]
pub struct StoreWorker {
    jobs: mpsc::Sender<Job>,
    facts: Arc<Facts>,
    commits: watch::Receiver<u64>,
}

/// What never changes while a store is open, readable without a trip to its thread.
#[derive(Debug)]
pub struct Facts {
    /// The data dir.
    pub dir: PathBuf,
    /// The local author.
    pub author: AuthorId,
    /// The default namespace.
    pub default_namespace: NamespaceId,
}

/// The store thread's queue is full.
#[derive(Debug, thiserror::Error)]
#[error("the store is busy")]
pub struct Busy;

/// The store thread has stopped.
#[derive(Debug, thiserror::Error)]
#[error("the store has shut down")]
pub struct Closed;

/// The store's thread, to wait for once every [`StoreWorker`] is dropped.
#[derive(Debug)]
pub struct StoreThread(thread::JoinHandle<()>);

impl StoreThread {
    /// Waits for the thread to finish its queue and close the store; a job that panicked is
    /// reported, never dropped in silence.
    pub async fn join(self) -> Result<(), NodeError> {
        match tokio::task::spawn_blocking(move || self.0.join()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(panic)) => Err(NodeError::panicked("store thread", panic)),
            Err(error) => Err(NodeError::Panicked {
                part: "store thread",
                message: error.to_string(),
            }),
        }
    }
}

impl StoreWorker {
    /// Starts the thread; the returned handle joins it.
    pub fn spawn(store: Store) -> (StoreWorker, StoreThread) {
        let (jobs, mut queue) = mpsc::channel::<Job>(QUEUE);
        let facts = Arc::new(Facts {
            dir: store.dir().to_owned(),
            author: store.author(),
            default_namespace: store.default_namespace(),
        });
        let (published, commits) = watch::channel(store.commits());
        // The thread owns the store: when it ends, the database is closed.
        let thread = thread::Builder::new()
            .name("weft-store".into())
            .spawn(move || {
                // Remote ingests of different feeds queued back to back wait for the disk once,
                // after the last of them (or every MAX_UNSYNCED): any other job, a local write
                // or a read, finds everything before it durable. Their results are held until
                // then, so nobody hears of an ingest a crash could still take back. Runs of one
                // feed are not held for each other: the next is asked for only once the one
                // before is reported.
                let mut next = queue.blocking_recv();
                let mut unsynced = 0;
                let mut held_replies: Vec<Reply> = Vec::new();
                while let Some(Job {
                    run,
                    remote: feed,
                    committed,
                }) = next
                {
                    let after = queue.try_recv().ok();
                    let defer = feed.is_some()
                        && unsynced < MAX_UNSYNCED
                        && after
                            .as_ref()
                            .is_some_and(|after| after.remote.is_some() && after.remote != feed);
                    store.defer_ingest_sync(defer);
                    held_replies.push(run(&store));
                    store.defer_ingest_sync(false);
                    // Unsent, it is dropped here: the job's result follows at once.
                    if let Some(committed) = committed.filter(|_| defer) {
                        let _ = committed.send(());
                    }
                    if defer {
                        unsynced += 1;
                    } else {
                        if let Err(e) = store.sync() {
                            tracing::warn!(error = %e, "making ingested entries durable");
                        }
                        unsynced = 0;
                        for reply in held_replies.drain(..) {
                            reply();
                        }
                    }
                    // After the job, so a woken change feed reader sees the commit.
                    published.send_if_modified(|seen| {
                        let now = store.commits();
                        std::mem::replace(seen, now) != now
                    });
                    next = after.or_else(|| queue.blocking_recv());
                }
            })
            .expect("the OS can start a thread");
        (
            StoreWorker {
                jobs,
                facts,
                commits,
            },
            StoreThread(thread),
        )
    }

    /// The count of the store's commits ([`Store::commits`]), updated after each job that
    /// committed: what a change feed reader waits on.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.commits.clone()
    }

    /// Jobs waiting in the queue to the store's thread.
    pub fn queued(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }

    /// Facts fixed at open.
    pub fn facts(&self) -> &Facts {
        &self.facts
    }

    /// Runs `job` on the store thread, waiting for room in the queue.
    ///
    /// Cancel safety: cancelling before the job is queued drops it; after, the job still runs
    /// and its result is dropped.
    ///
    /// # Errors
    /// [`Closed`] when the thread has stopped.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> Result<T, Closed> {
        let (reply, result) = oneshot::channel();
        self.jobs
            .send(Job::new(None, None, job, reply))
            .await
            .map_err(|_| Closed)?;
        result.await.map_err(|_| Closed)
    }

    /// Queues `job` without waiting; its result arrives on the returned receiver. For the
    /// swarm's task, which must never wait on the store.
    ///
    /// # Errors
    /// [`Busy`] when the queue is full (or the thread has stopped).
    pub fn try_run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> Result<oneshot::Receiver<T>, Busy> {
        Ok(self.reserve()?.run(job))
    }

    /// A place in the queue, taken without waiting, for a job the caller keeps until it knows
    /// there is room.
    ///
    /// # Errors
    /// [`Busy`] when the queue is full (or the thread has stopped).
    pub fn reserve(&self) -> Result<Slot<'_>, Busy> {
        self.jobs.try_reserve().map(Slot).map_err(|_| Busy)
    }
}

/// A place in the store thread's queue ([`StoreWorker::reserve`]).
pub struct Slot<'a>(mpsc::Permit<'a, Job>);

impl Slot<'_> {
    /// Queues `job` in this place; its result arrives on the returned receiver.
    pub fn run<T: Send + 'static>(
        self,
        job: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> oneshot::Receiver<T> {
        self.queue(None, None, job)
    }

    /// [`Slot::run`] for a job that only ingests entries of `feed` that peers hold: its commit
    /// may wait for the disk together with the ingests of other feeds queued right after it.
    /// The first receiver hears when it committed and its result waits for that (what it
    /// ingested is then on the store's pages, no longer in the job); it is dropped unheard
    /// when the result follows at once.
    pub fn run_remote<T: Send + 'static>(
        self,
        feed: FeedId,
        job: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> (oneshot::Receiver<()>, oneshot::Receiver<T>) {
        let (committed, heard) = oneshot::channel();
        (heard, self.queue(Some(feed), Some(committed), job))
    }

    fn queue<T: Send + 'static>(
        self,
        remote: Option<FeedId>,
        committed: Option<oneshot::Sender<()>>,
        job: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> oneshot::Receiver<T> {
        let (reply, result) = oneshot::channel();
        self.0.send(Job::new(remote, committed, job, reply));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_storage::{Access, Options};

    /// Of ingests of different feeds queued back to back, each but the last commits without
    /// the disk and says so at once, while its result waits; the last one's sync releases
    /// them all.
    #[test]
    fn a_held_ingest_says_it_committed_before_its_result_arrives() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::init(dir.path(), Options::default(), Access::Open).expect("init");
        let ns = store.default_namespace();
        let (worker, thread) = StoreWorker::spawn(store);
        let feed = |n: u8| (ns, AuthorId([n; 32]));
        // Held at the gate until the ingests are all queued, so the thread sees them queued.
        let (open, gate) = std::sync::mpsc::channel::<()>();
        let gated = worker.try_run(move |_| gate.recv().is_ok()).expect("room");
        let mut queued = Vec::new();
        for n in 0..3 {
            let slot = worker.reserve().expect("room");
            queued.push(slot.run_remote(feed(n), move |_| n));
        }
        open.send(()).expect("the gated job waits");
        assert!(gated.blocking_recv().expect("answered"));
        let (mut committed, mut results): (Vec<_>, Vec<_>) = queued.into_iter().unzip();
        let last = committed.pop().expect("three");
        for heard in committed {
            heard
                .blocking_recv()
                .expect("a held ingest says it committed");
        }
        assert!(
            last.blocking_recv().is_err(),
            "the last one is durable at once"
        );
        let last_result = results.pop().expect("three").blocking_recv();
        assert_eq!(last_result.ok(), Some(2));
        for (n, result) in results.into_iter().enumerate() {
            assert_eq!(result.blocking_recv().ok(), Some(n as u8));
        }
        drop(worker);
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(thread.join())
            .expect("the thread ends");
    }
}
