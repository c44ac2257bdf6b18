//! weft, embedded: a peer-to-peer replicated key-value database inside a Rust program, with no
//! daemon and no server.
//!
//! A [`Weft`] is one replica in a data dir. Reads and writes go to it locally and work offline.
//! [`Weft::start`] connects it to peers in the program's own tokio runtime, and from then on
//! it syncs. Another device joins with the string [`Weft::ticket`] returns, through
//! [`Weft::join`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), weft::Error> {
//! let mut notes = weft::Weft::open("notes")?;
//! notes.put("todo/1", "buy milk").await?;
//! assert_eq!(notes.get("todo/1").await?.as_deref(), Some(&b"buy milk"[..]));
//!
//! notes.start(weft::Network::default()).await?;
//! println!("on another device: Weft::join(dir, {:?})", notes.ticket(true).await?);
//! let mut changes = notes.watch("todo/", None);
//! let change = changes.next().await?;
//! println!("change {}: {:?} is now {:?}", change.seq, change.key, change.value);
//! notes.close().await?;
//! # Ok(()) }
//! ```
//!
//! The same replica can be used by the `weft` command line when the program is not running:
//! the data dir is the same format.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};

use weft_node::api::{self, ApiRequest, ApiResponse};
use weft_node::config::{ConfigError, NodeConfig};
use weft_node::ticket::{BadTicket, JoinError, Ticket, dialable};
use weft_node::{Node, NodeError, StoreThread, StoreWorker};
use weft_storage::{Access, Op, Options, Store};

pub use weft_node::Multiaddr;
pub use weft_node::config::Network;
pub use weft_node::watch::{WatchError, Watcher};
pub use weft_storage::{
    AuthorId, Change, ChangeValue, NamespaceId, Timestamp, VersionId, VersionInfo,
};

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The replica refused or failed: a key over the limit, a write the namespace does not
    /// allow, a damaged or locked data dir.
    #[error(transparent)]
    Store(#[from] weft_storage::Error),
    /// Networking failed, or the replica has been closed.
    #[error(transparent)]
    Node(NodeError),
    /// A string passed to [`Weft::join`] is not a ticket.
    #[error(transparent)]
    Ticket(#[from] BadTicket),
    /// The data dir's config file or node key could not be read or written.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A replica could not be made from a ticket.
    #[error(transparent)]
    Join(#[from] JoinError),
    /// Following the change feed stopped: the reader fell further behind than the replica
    /// keeps, or the replica closed.
    #[error(transparent)]
    Watch(#[from] WatchError),
}

impl From<weft_node::Closed> for Error {
    fn from(closed: weft_node::Closed) -> Self {
        Error::Node(closed.into())
    }
}

impl From<NodeError> for Error {
    /// A store's refusal stays a [`Error::Store`], whichever way the call went.
    fn from(error: NodeError) -> Self {
        match error {
            NodeError::Store(error) => Error::Store(error),
            other => Error::Node(other),
        }
    }
}

/// One replica of one namespace, in a data dir.
///
/// Its store runs on a thread of its own, so the async methods never block the runtime. Call
/// [`Weft::close`] when done: it stops networking and closes the store after the writes
/// already queued.
pub struct Weft {
    worker: StoreWorker,
    store_thread: Option<StoreThread>,
    node: Option<Node>,
    /// The bootstrap nodes networking started with, for tickets.
    bootstrap: Vec<Multiaddr>,
    dir: PathBuf,
}

impl Weft {
    /// Opens the replica in `dir`, making one there (a new namespace that only this replica
    /// and the authors it grants may write) when `dir` holds none.
    ///
    /// # Errors
    /// [`Error::Store`]: the dir holds something else, is damaged, or is open in another
    /// process (such as `weft node`).
    pub fn open(dir: impl AsRef<Path>) -> Result<Weft, Error> {
        let dir = dir.as_ref();
        let store = match Store::open(dir, Options::default()) {
            Err(weft_storage::Error::NotInitialized { .. }) => {
                Store::init(dir, Options::default(), Access::Closed)?
            }
            opened => opened?,
        };
        Ok(Weft::serve(store))
    }

    /// Makes a replica in `dir` of the namespace a [`Weft::ticket`] (or `weft ticket`) shares;
    /// the ticket's peers are dialed once networking starts. A write ticket lets it write.
    ///
    /// # Errors
    /// [`Error::Ticket`]; [`Error::Join`] when `dir` already holds a replica.
    pub fn join(dir: impl AsRef<Path>, ticket: &str) -> Result<Weft, Error> {
        let ticket: Ticket = ticket.parse()?;
        Ok(Weft::serve(ticket.join(
            dir.as_ref(),
            Options::default(),
            None,
        )?))
    }

    fn serve(store: Store) -> Weft {
        let dir = store.dir().to_owned();
        let (worker, store_thread) = StoreWorker::spawn(store);
        Weft {
            worker,
            store_thread: Some(store_thread),
            node: None,
            bootstrap: Vec::new(),
            dir,
        }
    }

    /// The namespace this replica holds.
    pub fn namespace(&self) -> NamespaceId {
        self.worker.facts().default_namespace
    }

    /// The author this replica writes as.
    pub fn author(&self) -> AuthorId {
        self.worker.facts().author
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Puts `value` under `key`: durable when this returns, and sent to connected peers.
    ///
    /// # Errors
    /// [`Error::Store`]: an empty key, a key over 4 KiB or a value over 1 MiB, or a write the
    /// namespace does not allow this author.
    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<VersionId, Error> {
        let op = Op::Put(value.as_ref().to_vec());
        self.write_one(key.as_ref().to_vec(), op).await
    }

    /// Deletes `key`: a tombstone that wins over every version this replica has seen.
    ///
    /// # Errors
    /// As [`Weft::put`].
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<VersionId, Error> {
        self.write_one(key.as_ref().to_vec(), Op::Delete).await
    }

    async fn write_one(&self, key: Vec<u8>, op: Op<Vec<u8>>) -> Result<VersionId, Error> {
        let ns = self.namespace();
        let ops = vec![(key, op)];
        match self.call(ApiRequest::Write { ns, ops }).await? {
            ApiResponse::Written(ids) => Ok(ids[0]),
            other => unreachable!("{other:?}: a write is answered with its versions"),
        }
    }

    /// The value of `key`: the last writer's, or `None` when it is absent or deleted.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, Error> {
        let (ns, key) = (self.namespace(), key.as_ref().to_vec());
        match self.call(ApiRequest::Get { ns, key }).await? {
            ApiResponse::Value(value) => Ok(value),
            other => unreachable!("{other:?}: a get is answered with a value"),
        }
    }

    /// Every live version of `key`: more than one when writes were concurrent, the last
    /// writer's first.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn get_all(&self, key: impl AsRef<[u8]>) -> Result<Vec<VersionInfo>, Error> {
        let (ns, key) = (self.namespace(), key.as_ref().to_vec());
        match self.call(ApiRequest::GetAll { ns, key }).await? {
            ApiResponse::Versions(versions) => Ok(versions),
            other => unreachable!("{other:?}: a get_all is answered with versions"),
        }
    }

    /// Every key under `prefix` with its value, in byte order, from one snapshot.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn scan(&self, prefix: impl AsRef<[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>, Error> {
        let (ns, prefix) = (self.namespace(), prefix.as_ref().to_vec());
        let rows = self
            .worker
            .run(move |s| {
                s.scan(&ns, &prefix, true)?
                    .map(|row| row.map(|(key, value)| (key, value.unwrap_or_default())))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await??;
        Ok(rows)
    }

    /// Carries out `request`: through the node while networking runs, so writes are
    /// gossiped, else on the store thread.
    async fn call(&self, request: ApiRequest) -> Result<ApiResponse, Error> {
        Ok(match &self.node {
            Some(node) => api::answer(&node.handle(), request).await?,
            None => {
                self.worker
                    .run(move |store| api::execute(store, request))
                    .await??
            }
        })
    }

    /// The changes of keys under `prefix`, local and synced, from change `from` on: 0 for the
    /// oldest kept, `None` for only those committed after this call. Each [`Change`] carries
    /// its `seq`; keep the last one seen and pass it plus one as `from` to resume after a
    /// restart with no gap. A reader further behind than the replica keeps (1,000,000 changes) gets
    /// [`weft_storage::Error::ChangesDropped`].
    pub fn watch(&self, prefix: impl AsRef<[u8]>, from: Option<u64>) -> Watcher {
        Watcher::new(
            &self.worker,
            self.namespace(),
            prefix.as_ref().to_vec(),
            from,
        )
    }

    /// Connects to peers in the current tokio runtime: listens, dials the peers of
    /// `network` and of the ticket joined, and syncs from then on. Does nothing when
    /// already started.
    ///
    /// # Errors
    /// [`Error::Node`] when an address cannot be listened on; [`Error::Config`].
    pub async fn start(&mut self, network: Network) -> Result<(), Error> {
        if self.node.is_some() {
            return Ok(());
        }
        let (config, key) = NodeConfig::load(&self.dir, &network)?;
        self.bootstrap = config.bootstrap.clone();
        self.node = Some(Node::attach(self.worker.clone(), key, config).await?);
        Ok(())
    }

    /// Disconnects from every peer; the replica stays open. Does nothing when not started.
    /// Fails if the node's swarm task had panicked.
    pub async fn stop(&mut self) -> Result<(), Error> {
        match self.node.take() {
            Some(node) => Ok(node.shutdown().await?),
            None => Ok(()),
        }
    }

    /// The addresses peers can dial, each ending in `/p2p/<peer id>`; empty before
    /// [`Weft::start`].
    pub fn addresses(&self) -> Vec<Multiaddr> {
        match &self.node {
            Some(node) => dialable(node.handle().peer_id(), node.listen_addrs().iter().cloned()),
            None => Vec::new(),
        }
    }

    /// Dials a peer now, and whenever it is not connected.
    ///
    /// # Errors
    /// [`Error::Node`] when networking is not started or has stopped.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), Error> {
        match &self.node {
            Some(node) => Ok(node.handle().dial(addr).await?),
            None => Err(Error::Node(NodeError::Closed)),
        }
    }

    /// A ticket for [`Weft::join`] or `weft init --join`: the namespace and this replica's
    /// [`Weft::addresses`] (start networking first, or the joiner has no one to dial). With
    /// `write`, in a namespace only some may write, it carries a fresh author key granted
    /// now, so the joining device writes: treat it as a password, and give each device its
    /// own.
    ///
    /// # Errors
    /// [`Error::Store`]: `write` on a namespace this replica does not own.
    pub async fn ticket(&self, write: bool) -> Result<String, Error> {
        let ns = self.namespace();
        let write = write.then(|| weft_storage::Grant {
            prefixes: Vec::new(),
            expires: None,
        });
        let (charter, author_key) = match self.call(ApiRequest::Share { ns, write }).await? {
            ApiResponse::Share {
                charter,
                author_key,
            } => (charter, author_key),
            other => unreachable!("{other:?}: a share request is answered with a share"),
        };
        let (peer, listen) = match &self.node {
            Some(node) => (node.handle().peer_id(), node.listen_addrs().to_vec()),
            None => (weft_node::config::peer_id(&self.dir)?, Vec::new()),
        };
        Ok(Ticket::mint(charter, author_key, peer, listen, self.bootstrap.clone()).to_string())
    }

    /// Stops networking, lets the store finish every write queued, and closes it. A
    /// [`Watcher`] keeps the store open: drop every one first, or this waits for them. Fails
    /// if a part of the node or the store had panicked; the store is closed either way.
    pub async fn close(mut self) -> Result<(), Error> {
        let stopped = self.stop().await;
        let thread = self.store_thread.take();
        // The thread ends once the last handle to it is gone.
        drop(self);
        if let Some(thread) = thread {
            thread.join().await?;
        }
        stopped
    }
}
