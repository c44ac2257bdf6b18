//! [`NodeHandle`]: the cheap, cloneable way to call a running node, and the commands it sends
//! to the task that owns the swarm.

use std::sync::Arc;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};
use weft_storage::{AuthorId, Interest, NamespaceId, Op, Run, Store, VersionId, VersionInfo};

use crate::metrics::Metrics;
use crate::node::NodeError;
use crate::status::Status;
use crate::transport::WireCounters;
use crate::worker::StoreWorker;

pub(crate) enum Command {
    Published {
        run: Run,
    },
    Status(oneshot::Sender<Status>),
    /// Start a sync round now; answers with its number.
    SyncNow(oneshot::Sender<u64>),
    Dial(Multiaddr),
    /// The interest of `ns` changed; its feeds now stand at `held`.
    Interest {
        ns: NamespaceId,
        interest: Interest,
        held: Vec<(AuthorId, u64)>,
    },
    RemoteGet {
        ns: NamespaceId,
        key: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<VersionInfo>, NodeError>>,
    },
    Shutdown,
}

/// A cheap, cloneable handle to a running node.
#[derive(Clone)]
pub struct NodeHandle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) worker: StoreWorker,
    pub(crate) peer_id: PeerId,
    pub(crate) counters: Arc<WireCounters>,
    pub(crate) metrics: Arc<Metrics>,
}

impl NodeHandle {
    /// The store behind the node, for reads. See [`StoreWorker::run`].
    pub fn worker(&self) -> &StoreWorker {
        &self.worker
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The node's TCP byte counters.
    pub fn counters(&self) -> &WireCounters {
        &self.counters
    }

    /// Writes a batch to the local feed, then gossips the new entries (or, when they are over
    /// [`crate::wire::PUSH_BYTES`], the new head alone, and peers fetch the entries). The write is durable
    /// when this returns, whatever happens to the gossip.
    ///
    /// Cancel safety: once queued, the write happens even if the future is dropped.
    ///
    /// # Errors
    /// [`NodeError::Store`] as [`Store::write`]; [`NodeError::Closed`].
    pub async fn write(
        &self,
        ns: NamespaceId,
        ops: Vec<(Vec<u8>, Op<Vec<u8>>)>,
    ) -> Result<Vec<VersionId>, NodeError> {
        self.append(ns, move |store| store.write(&ns, ops)).await
    }

    /// Runs `append`, a call that appends to the local feed of `ns`, then gossips what it
    /// appended, as [`NodeHandle::write`] does. How grants, revocations and invites reach peers.
    ///
    /// # Errors
    /// [`NodeError::Store`] as `append`; [`NodeError::Closed`].
    pub async fn append<T, E>(
        &self,
        ns: NamespaceId,
        append: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, NodeError>
    where
        T: Send + 'static,
        E: From<weft_storage::Error> + Send + 'static,
        NodeError: From<E>,
    {
        let started = std::time::Instant::now();
        let (value, run, written) = self
            .worker
            .run(move |store| append_and_read_push(store, &ns, append))
            .await??;
        self.metrics
            .write_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.entries_written.inc_by(written);
        if let Some(run) = run {
            // The write is done; a node shutting down just does not gossip it.
            let _ = self.commands.send(Command::Published { run }).await;
        }
        Ok(value)
    }

    /// Dials a peer now, and whenever it is not connected, as if it were configured.
    ///
    /// # Errors
    /// [`NodeError::Closed`].
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NodeError> {
        self.commands
            .send(Command::Dial(addr))
            .await
            .map_err(|_| NodeError::Closed)
    }

    /// Sets the interest of `ns` ([`Store::set_interest`]); sync follows it at once.
    ///
    /// # Errors
    /// [`NodeError::Store`] as [`Store::set_interest`]; [`NodeError::Closed`].
    pub async fn set_interest(&self, ns: NamespaceId, interest: Interest) -> Result<(), NodeError> {
        let (interest, held) = self
            .worker
            .run(move |store| {
                store.set_interest(&ns, interest)?;
                let interest = store.interest(&ns)?.unwrap_or_default();
                let held = store.feeds(&ns)?;
                let held = held.iter().map(|f| (f.head.author, f.held)).collect();
                Ok::<_, weft_storage::Error>((interest, held))
            })
            .await??;
        self.commands
            .send(Command::Interest { ns, interest, held })
            .await
            .map_err(|_| NodeError::Closed)
    }

    /// Asks every connected peer for the live versions of `key` with their proofs, checks
    /// them, and merges them, last writer first. Nothing is stored. A peer whose answer does
    /// not verify is dropped like any peer that sends bad data.
    ///
    /// # Errors
    /// [`NodeError::NoPeers`]; [`NodeError::Closed`].
    pub async fn get_remote(
        &self,
        ns: NamespaceId,
        key: Vec<u8>,
    ) -> Result<Vec<VersionInfo>, NodeError> {
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::RemoteGet { ns, key, reply })
            .await
            .map_err(|_| NodeError::Closed)?;
        result.await.map_err(|_| NodeError::Closed)?
    }

    /// The node's status.
    ///
    /// # Errors
    /// [`NodeError::Closed`].
    pub async fn status(&self) -> Result<Status, NodeError> {
        let (reply, status) = oneshot::channel();
        self.commands
            .send(Command::Status(reply))
            .await
            .map_err(|_| NodeError::Closed)?;
        status.await.map_err(|_| NodeError::Closed)
    }

    /// Starts a sync round now rather than at the next interval, and returns its number:
    /// once [`Status::exchanged_round`] reaches it and [`Status::caught_up`] holds, this node
    /// holds what its peers held when it was called.
    ///
    /// # Errors
    /// [`NodeError::Closed`].
    pub async fn sync_now(&self) -> Result<u64, NodeError> {
        let (reply, round) = oneshot::channel();
        self.commands
            .send(Command::SyncNow(reply))
            .await
            .map_err(|_| NodeError::Closed)?;
        round.await.map_err(|_| NodeError::Closed)
    }
}

/// Runs `append`, then reads what it appended as the gossip push that announces it.
fn append_and_read_push<T, E: From<weft_storage::Error>>(
    store: &Store,
    ns: &NamespaceId,
    append: impl FnOnce(&Store) -> Result<T, E>,
) -> Result<(T, Option<Run>, u64), E> {
    let before = crate::sync::local_length(store, ns);
    let ids = append(store)?;
    let push = crate::sync::read_push(store, ns, before)?;
    let written = push
        .as_ref()
        .map_or(0, |run| run.head.length.saturating_sub(before));
    Ok((ids, push, written))
}
