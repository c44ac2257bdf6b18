//! The replica on disk: the data dir, its keys, and the database of feeds and view.

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ed25519_dalek::SigningKey;
use redb::{Database, Durability, ReadableDatabase, ReadableTable};
use weft_crdt::{Op, Timestamp};

use crate::changelog;
use crate::error::{Error, Result};
use crate::head::SignedHead;
use crate::ids::{self, AuthorId, NamespaceId};
use crate::interest::Interest;
use crate::members::records::{Charter, Mode, RESERVED_PREFIX};
use crate::migrations;
use crate::rows::{FeedRecord, feed_of, with_entry};
use crate::tables::{
    self, CHARTERS, ENTRIES, FEED_IDS, FEEDS, FORKS, INTERESTS, META, NAMESPACES, VIEW,
};
use crate::tree::Hash;
use crate::view::{Gate, ViewTables, rebuild_namespace};

/// The database file inside the data dir.
pub const DB_FILE: &str = "weft.redb";
/// The directory of secret keys inside the data dir (mode 0700; each key file 0600).
pub const KEYS_DIR: &str = "keys";
const AUTHOR_KEY_FILE: &str = "author.key";

/// Limits and write behaviour of a store.
#[derive(Clone, Debug)]
pub struct Options {
    /// The longest key accepted, in bytes.
    pub max_key_len: usize,
    /// The longest value accepted, in bytes.
    pub max_value_len: usize,
    /// Whether each commit is flushed to disk (fsync) before it returns. Turning it off trades
    /// durability for throughput: after a crash the replica reopens at its last durable commit,
    /// losing later ones whole (the log and view still agree).
    pub durable: bool,
    /// How far ahead of this machine's clock a remote entry's timestamp may be and still count
    /// in the view. A later one is stored but kept out of the view until the clock catches up,
    /// so a peer with a fast clock (or a forged one) cannot pin a key by writing "from the
    /// future". Default 60 s.
    pub max_future: std::time::Duration,
    /// How many of the newest changes the change feed ([`Store::changes`]) keeps for
    /// consumers to resume from; older ones are dropped in batches. Default 1,000,000 (at
    /// most about 50 MB, when every change is a transaction of its own; a batch shares one row).
    pub changes_kept: u64,
    /// Bytes of redb's page cache, the bulk of a replica's memory: pages read or written stay
    /// cached up to this much. Default [`DEFAULT_CACHE_SIZE`] (redb's own default is 1 GiB,
    /// more than a small device has to spare); more speeds up reads of a large replica.
    pub cache_size: usize,
    /// For fault tests only: the replica acts as a device whose clock runs this far ahead of
    /// the real time. Its writes are stamped ahead, and it judges other entries' timestamps
    /// by the same fast clock. Default zero; never set it on a replica users rely on.
    pub clock_ahead: std::time::Duration,
}

/// The default [`Options::cache_size`]: 128 MiB.
pub const DEFAULT_CACHE_SIZE: usize = 128 << 20;

impl Options {
    /// Checks a write against these limits.
    ///
    /// # Errors
    /// [`Error::EmptyKey`], [`Error::KeyTooLarge`] or [`Error::ValueTooLarge`].
    pub fn validate(&self, key: &[u8], op: &Op<Vec<u8>>) -> Result<()> {
        if key.is_empty() {
            return Err(Error::EmptyKey);
        }
        if key.len() > self.max_key_len {
            return Err(Error::KeyTooLarge {
                len: key.len(),
                max: self.max_key_len,
            });
        }
        if let Op::Put(value) = op
            && value.len() > self.max_value_len
        {
            return Err(Error::ValueTooLarge {
                len: value.len(),
                max: self.max_value_len,
            });
        }
        Ok(())
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_key_len: 4096,
            max_value_len: 1 << 20,
            durable: true,
            max_future: std::time::Duration::from_secs(60),
            changes_kept: 1_000_000,
            cache_size: DEFAULT_CACHE_SIZE,
            clock_ahead: std::time::Duration::ZERO,
        }
    }
}

/// How far ahead of the local clock a remote timestamp may be and still move it: 500 ms, in
/// NTP64 units (the low 32 bits are fractions of a second), as uhlc allows by default.
pub const MAX_CLOCK_AHEAD: u64 = 1 << 31;

/// Hands out timestamps that only grow, even across restarts with a clock that went back.
struct Clock {
    hlc: uhlc::HLC,
    last: Mutex<u64>,
    /// [`Options::clock_ahead`], in NTP64 units.
    ahead: u64,
}

impl Clock {
    fn new(floor: u64, ahead: std::time::Duration) -> Clock {
        Clock {
            hlc: uhlc::HLCBuilder::new().build(),
            last: Mutex::new(floor),
            ahead: uhlc::NTP64::from(ahead).as_u64(),
        }
    }

    /// This machine's time, as the replica sees it.
    fn physical(&self) -> u64 {
        self.hlc
            .new_timestamp()
            .get_time()
            .as_u64()
            .saturating_add(self.ahead)
    }

    /// Moves the clock past a timestamp seen in a remote entry, so that a later local write
    /// orders after it. A timestamp further ahead of this machine's clock than
    /// [`MAX_CLOCK_AHEAD`] does not move the clock, so one peer with a wrong clock cannot drag
    /// every replica's clock into the future. The entry is still stored: a later local write of
    /// its key supersedes it explicitly, whatever the timestamps say. Returns whether it moved.
    pub(crate) fn observe(&self, remote: Timestamp) -> bool {
        let now = self.physical();
        if remote.0 > now.saturating_add(MAX_CLOCK_AHEAD) {
            return false;
        }
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        *last = remote.0.max(*last);
        true
    }

    fn now(&self) -> Timestamp {
        let time = self.physical();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        *last = time.max(*last + 1);
        Timestamp(*last)
    }
}

/// A local replica: keys, feeds and view in one data dir.
///
/// All methods take `&self`; redb serializes writers, and readers see the last commit.
pub struct Store {
    dir: PathBuf,
    db: Database,
    author_key: SigningKey,
    author: AuthorId,
    default_namespace: NamespaceId,
    options: Options,
    clock: Clock,
    /// The local number of each namespace, read at open so reads need no extra lookup.
    namespaces: HashMap<NamespaceId, u32>,
    /// The interest of each namespace this replica holds sparsely.
    interests: RwLock<HashMap<NamespaceId, Interest>>,
    /// Who may write each namespace; a namespace without one (made by an earlier build) is open.
    charters: HashMap<NamespaceId, Charter>,
    /// Write transactions committed since open, for [`Store::commits`].
    commits: AtomicU64,
    /// Whether remote ingests may commit without waiting for the disk
    /// ([`Store::defer_ingest_sync`]).
    ingest_sync_deferred: AtomicBool,
    /// Whether an ingest committed without waiting for the disk since the last [`Store::sync`].
    unsynced: AtomicBool,
    /// Per namespace, the longest length of this replica's own feed a peer was seen to hold,
    /// when longer than what is held here (a replica restored from an older backup): writes
    /// wait until sync has fetched the rest back, or the next one would fork the feed.
    own_elsewhere: Mutex<HashMap<NamespaceId, u64>>,
    /// Per namespace number, where each feed frozen by a fork stops counting
    /// ([`crate::fork`]), mirrored from [`tables::FORKS`].
    frozen: Mutex<HashMap<u32, HashMap<AuthorId, u64>>>,
}

/// Who may write a namespace [`Store::init`] creates.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    /// Anyone who holds the namespace id may write.
    Open,
    /// Only this replica's author and the authors it grants may write.
    Closed,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("author", &self.author)
            .finish()
    }
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

impl Store {
    /// Creates a replica in `dir`: an author keypair, a new namespace (with its key, which signs
    /// the namespace's [`Charter`]: open, or closed and owned by this replica's author) and an
    /// empty database. `dir` may be missing or empty.
    ///
    /// # Errors
    /// [`Error::AlreadyInitialized`] if `dir` holds a replica, [`Error::NotAWeftDir`] if it
    /// holds other files; nothing is changed in either case.
    pub fn init(dir: &Path, options: Options, access: Access) -> Result<Store> {
        Store::create(dir, options, Err(access), None)
    }

    /// Creates a replica in `dir` of an existing namespace, to be filled by replication: an
    /// empty database whose default namespace is `charter`'s. The author keypair is
    /// `author_key` when given (a write ticket's, which the owner has granted), else a new one.
    ///
    /// # Errors
    /// [`Error::BadCharter`] when the namespace key did not sign `charter`; otherwise as
    /// [`Store::init`].
    pub fn init_joined(
        dir: &Path,
        options: Options,
        charter: &Charter,
        author_key: Option<[u8; 32]>,
    ) -> Result<Store> {
        charter.verify()?;
        let author_key = author_key.map(|secret| SigningKey::from_bytes(&secret));
        Store::create(dir, options, Ok(charter.clone()), author_key)
    }

    fn create(
        dir: &Path,
        options: Options,
        charter: std::result::Result<Charter, Access>,
        author_key: Option<SigningKey>,
    ) -> Result<Store> {
        let db_path = dir.join(DB_FILE);
        if db_path.exists() {
            return Err(Error::AlreadyInitialized {
                dir: dir.to_owned(),
            });
        }
        if dir.exists() && fs::read_dir(dir).map_err(io_error(dir))?.next().is_some() {
            return Err(Error::NotAWeftDir {
                dir: dir.to_owned(),
            });
        }
        // The data is the user's own: other local users get no access to a dir made here.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error(dir))?;
        make_private(dir)?;
        let keys_dir = dir.join(KEYS_DIR);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&keys_dir)
            .map_err(io_error(&keys_dir))?;
        let author_key = match author_key {
            Some(key) => key,
            None => ids::generate_keypair().map_err(io_error(dir))?,
        };
        write_secret(&keys_dir.join(AUTHOR_KEY_FILE), &author_key)?;
        let charter = match charter {
            Ok(charter) => charter,
            Err(access) => {
                let namespace_key = ids::generate_keypair().map_err(io_error(dir))?;
                let namespace = NamespaceId(namespace_key.verifying_key().to_bytes());
                write_secret(&namespace_key_path(dir, &namespace), &namespace_key)?;
                let mode = match access {
                    Access::Open => Mode::Open,
                    Access::Closed => Mode::Closed {
                        owner: ids::author_of(&author_key),
                    },
                };
                Charter::sign(&namespace_key, mode)
            }
        };
        let namespace = charter.namespace;

        // The database comes last: until it exists the dir is not a replica, and a failed init
        // can be retried into a fresh dir without a half-made one being opened.
        let db = redb::Builder::new()
            .set_cache_size(options.cache_size)
            .create(&db_path)
            .map_err(|e| open_error(dir, &db_path, e))?;
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert("format", &[tables::STORE_FORMAT][..])?;
            meta.insert("author", &ids::author_of(&author_key).0[..])?;
            meta.insert("default-namespace", &namespace.0[..])?;
            txn.open_table(NAMESPACES)?
                .insert(namespace.as_bytes(), 0)?;
            txn.open_table(FEEDS)?;
            txn.open_table(FEED_IDS)?;
            txn.open_table(ENTRIES)?;
            txn.open_table(VIEW)?;
            txn.open_table(tables::SUPERSEDED)?;
        }
        migrations::run(&txn, 0)?;
        // A new store has no view to rebuild.
        txn.open_table(META)?.remove(migrations::REINDEX)?;
        let charter = postcard::to_allocvec(&charter).expect("charters always encode");
        txn.open_table(CHARTERS)?
            .insert(namespace.as_bytes(), &charter[..])?;
        txn.commit()?;
        drop(db);
        Store::open(dir, options)
    }

    /// Opens the replica in `dir`.
    ///
    /// # Errors
    /// [`Error::NotInitialized`] or [`Error::NotAWeftDir`] when `dir` holds no replica,
    /// [`Error::Locked`] when another process has it open, [`Error::Corrupt`] when the
    /// database or key file is damaged or not weft's.
    pub fn open(dir: &Path, options: Options) -> Result<Store> {
        let db_path = dir.join(DB_FILE);
        if !db_path.exists() {
            let has_files = fs::read_dir(dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
            return Err(if has_files {
                Error::NotAWeftDir {
                    dir: dir.to_owned(),
                }
            } else {
                Error::NotInitialized {
                    dir: dir.to_owned(),
                }
            });
        }
        make_private(dir)?;
        let db = redb::Builder::new()
            .set_cache_size(options.cache_size)
            .open(&db_path)
            .map_err(|e| open_error(dir, &db_path, e))?;
        let corrupt = |reason: String| Error::Corrupt {
            path: db_path.clone(),
            reason,
        };

        let txn = db.begin_read()?;
        let meta = match txn.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                return Err(corrupt(
                    "a redb database, but not weft's (no meta table)".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let meta_value = |name: &str| -> Result<Vec<u8>> {
            Ok(meta
                .get(name)?
                .ok_or_else(|| corrupt(format!("meta table has no {name:?}")))?
                .value()
                .to_vec())
        };
        let format = meta_value("format")?;
        if format != [tables::STORE_FORMAT] {
            return Err(corrupt(format!(
                "store format {format:?}; this build reads format {}",
                tables::STORE_FORMAT
            )));
        }
        let as_id = |bytes: Vec<u8>, what: &str| {
            <[u8; 32]>::try_from(bytes).map_err(|_| corrupt(format!("{what} is not 32 bytes")))
        };
        let author = AuthorId(as_id(meta_value("author")?, "author")?);
        let default_namespace = NamespaceId(as_id(
            meta_value("default-namespace")?,
            "default namespace",
        )?);
        let schema = migrations::schema(&meta)?;
        if schema > migrations::SCHEMA {
            return Err(corrupt(format!(
                "schema {schema}; this build reads schemas up to {} (a newer weft made it)",
                migrations::SCHEMA
            )));
        }
        drop((meta, txn));
        if schema < migrations::SCHEMA {
            let txn = db.begin_write()?;
            migrations::run(&txn, schema)?;
            txn.commit()?;
        }
        let txn = db.begin_read()?;
        let reindex = txn.open_table(META)?.get(migrations::REINDEX)?.is_some();

        let key_path = dir.join(KEYS_DIR).join(AUTHOR_KEY_FILE);
        let author_key = read_secret(&key_path)?;
        if ids::author_of(&author_key) != author {
            return Err(Error::Corrupt {
                path: key_path,
                reason: format!("this key is not the replica's author {author}"),
            });
        }

        let mut namespaces = HashMap::new();
        for row in txn.open_table(NAMESPACES)?.iter()? {
            let (id, number) = row?;
            namespaces.insert(NamespaceId(*id.value()), number.value());
        }
        let mut floor = 0;
        let feeds = txn.open_table(FEEDS)?;
        let entries = txn.open_table(ENTRIES)?;
        for row in feeds.iter()? {
            let (feed, record) = row?;
            let record = FeedRecord::decode(record.value())?;
            if record.head.author == author && record.held > 0 {
                let seq = record.held - 1;
                let last = with_entry(&entries, feed.value(), seq, |entry| entry.timestamp.0)?;
                floor = floor.max(last);
            }
        }
        let mut charters = HashMap::new();
        for row in txn.open_table(CHARTERS)?.iter()? {
            let (ns, bytes) = row?;
            let charter: Charter = postcard::from_bytes(bytes.value())
                .map_err(|e| corrupt(format!("a charter does not decode ({e})")))?;
            charters.insert(NamespaceId(*ns.value()), charter);
        }
        let mut interests = HashMap::new();
        for row in txn.open_table(INTERESTS)?.iter()? {
            let (ns, bytes) = row?;
            let interest: Interest = postcard::from_bytes(bytes.value())
                .map_err(|e| corrupt(format!("an interest does not decode ({e})")))?;
            interests.insert(NamespaceId(*ns.value()), interest);
        }
        let clock = Clock::new(floor, options.clock_ahead);
        let frozen = read_frozen(&txn)?;
        let store = Store {
            dir: dir.to_owned(),
            db,
            author_key,
            author,
            default_namespace,
            options,
            clock,
            namespaces,
            interests: RwLock::new(interests),
            charters,
            commits: AtomicU64::new(0),
            ingest_sync_deferred: AtomicBool::new(false),
            unsynced: AtomicBool::new(false),
            own_elsewhere: Mutex::new(HashMap::new()),
            frozen: Mutex::new(frozen),
        };
        if reindex {
            let replayed = store.reindex()?;
            tracing::info!(replayed, "rebuilt the view after a migration");
        }
        Ok(store)
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The local author.
    pub fn author(&self) -> AuthorId {
        self.author
    }

    /// The namespace created by [`Store::init`].
    pub fn default_namespace(&self) -> NamespaceId {
        self.default_namespace
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &Options {
        &self.options
    }
    /// The charter of `ns`: who may write it. `None` for a namespace made by a build before
    /// charters, which is open.
    ///
    /// # Errors
    /// [`Error::UnknownNamespace`].
    pub fn charter(&self, ns: &NamespaceId) -> Result<Option<Charter>> {
        self.namespace_number(ns)?;
        Ok(self.charters.get(ns).cloned())
    }

    /// Checks a write against the limits without writing it.
    ///
    /// # Errors
    /// [`Error::EmptyKey`], [`Error::KeyTooLarge`] or [`Error::ValueTooLarge`].
    pub fn validate(&self, key: &[u8], op: &Op<Vec<u8>>) -> Result<()> {
        self.options.validate(key, op)
    }

    /// Checks a user write of `key` in `ns` without writing it: the limits, weft's reserved
    /// keys, and a sparse replica's interest. Every user write passes here first.
    ///
    /// # Errors
    /// As [`Store::validate`]; [`Error::ReservedKey`]; [`Error::NotReplicated`].
    pub fn check_write(&self, ns: &NamespaceId, key: &[u8], op: &Op<Vec<u8>>) -> Result<()> {
        self.validate(key, op)?;
        self.check_covered(ns, key)
    }

    /// The latest signed head of `author`'s feed in `ns`, if this replica holds any of it.
    ///
    /// # Errors
    /// Database failures.
    pub fn head(&self, ns: &NamespaceId, author: &AuthorId) -> Result<Option<SignedHead>> {
        let txn = self.db().begin_read()?;
        Ok(self
            .feed_record(&txn, ns, author)?
            .map(|(_, record)| record.head))
    }

    /// The feed id and record of `author`'s feed in `ns`, if this replica holds any of it.
    pub(crate) fn feed_record(
        &self,
        txn: &redb::ReadTransaction,
        ns: &NamespaceId,
        author: &AuthorId,
    ) -> Result<Option<(u64, FeedRecord)>> {
        let ns_number = self.namespace_number(ns)?;
        let Some(feed) = feed_of(&txn.open_table(FEED_IDS)?, ns_number, author)? else {
            return Ok(None);
        };
        let record = txn
            .open_table(FEEDS)?
            .get(feed)?
            .ok_or_else(|| Error::Damaged(format!("feed {feed} is indexed but has no record")))?;
        Ok(Some((feed, FeedRecord::decode(record.value())?)))
    }

    /// How many write transactions this store has committed since it was opened. A change
    /// feed consumer that has read everything waits for it to move.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Acquire)
    }

    /// Trims the change feed to [`Options::changes_kept`], commits `txn`, and counts it in
    /// [`Store::commits`]. Every transaction that can change the view commits through here.
    pub(crate) fn commit(&self, txn: redb::WriteTransaction) -> Result<()> {
        changelog::trim(&txn, self.options.changes_kept)?;
        txn.commit()?;
        self.commits.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Commits `txn`, first rebuilding namespace `ns`'s view when `gate` saw the owner write a
    /// membership record in it, so entries that a grant now covers (or a revocation no longer
    /// does) are judged again in the same transaction.
    pub(crate) fn commit_view(
        &self,
        txn: redb::WriteTransaction,
        gate: &Gate,
        ns: &NamespaceId,
    ) -> Result<()> {
        if gate.membership_changed {
            rebuild_namespace(&txn, &mut ViewTables::open(&txn)?, self.gate(ns)?)?;
        }
        self.commit(txn)
    }

    pub(crate) fn frozen_feeds(&self) -> MutexGuard<'_, HashMap<u32, HashMap<AuthorId, u64>>> {
        self.frozen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where a fork froze `author`'s feed in namespace number `ns`, if one did.
    pub(crate) fn frozen_at(&self, ns: u32, author: &AuthorId) -> Option<u64> {
        self.frozen_feeds().get(&ns)?.get(author).copied()
    }

    pub(crate) fn own_elsewhere(&self) -> MutexGuard<'_, HashMap<NamespaceId, u64>> {
        self.own_elsewhere
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A new timestamp from this replica's clock, for a local write.
    pub(crate) fn clock_now(&self) -> Timestamp {
        self.clock.now()
    }

    /// This author's signature over a head of its feed in `ns`.
    pub(crate) fn sign_head(&self, ns: &NamespaceId, length: u64, root: Hash) -> SignedHead {
        SignedHead::sign(&self.author_key, *ns, length, root)
    }

    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    pub(crate) fn clock_observe(&self, remote: Timestamp) -> bool {
        self.clock.observe(remote)
    }

    /// Moves the local clock `ahead` into the future, as a machine with a wrong clock has it.
    #[cfg(feature = "test-util")]
    pub(crate) fn skew_clock(&self, ahead: std::time::Duration) {
        let now = self.clock.physical();
        let mut last = self
            .clock
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *last = now.saturating_add(uhlc::NTP64::from(ahead).as_u64());
    }

    /// While `deferred`, remote ingests ([`Store::ingest`], [`Store::ingest_sparse`]) commit
    /// without waiting for the disk, until [`Store::sync`]: for a caller that runs ingests back
    /// to back, as the node's store thread does, so a catch-up of many feeds waits for the
    /// disk once a burst rather than once a feed. Each ingest is still one transaction, seen by
    /// every read at once; a crash can take back those not yet synced, which are then fetched
    /// again from peers that hold them. Local writes always wait for the disk (and make every
    /// earlier commit durable with them).
    pub fn defer_ingest_sync(&self, deferred: bool) {
        self.ingest_sync_deferred.store(deferred, Ordering::Relaxed);
    }

    /// Makes every ingest committed under [`Store::defer_ingest_sync`] durable: one commit
    /// that waits for the disk, when any did not.
    ///
    /// # Errors
    /// Database failures.
    pub fn sync(&self) -> Result<()> {
        if !self.unsynced.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let synced = self.commit_nothing_durably();
        if synced.is_err() {
            // Still owed: the next sync tries again.
            self.unsynced.store(true, Ordering::Release);
        }
        synced
    }

    /// An empty commit that waits for the disk, and so makes every commit before it durable.
    fn commit_nothing_durably(&self) -> Result<()> {
        let mut txn = self.db().begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        Ok(())
    }

    /// The durability of a remote ingest's commit: [`Store::durability`], unless deferred.
    pub(crate) fn ingest_durability(&self) -> Durability {
        if self.options.durable && self.ingest_sync_deferred.load(Ordering::Relaxed) {
            self.unsynced.store(true, Ordering::Release);
            return Durability::None;
        }
        self.durability()
    }

    /// The durability of a commit under this store's options.
    pub(crate) fn durability(&self) -> Durability {
        if self.options.durable {
            Durability::Immediate
        } else {
            Durability::None
        }
    }

    /// Refuses a key outside the interest of this sparse replica of `ns`: it is neither read
    /// nor written here.
    pub(crate) fn check_covered(&self, ns: &NamespaceId, key: &[u8]) -> Result<()> {
        if key.starts_with(RESERVED_PREFIX) {
            return Err(Error::ReservedKey);
        }
        match self.interests().get(ns) {
            Some(interest) if !interest.covers_key(key) => Err(Error::NotReplicated {
                key: String::from_utf8_lossy(key).into_owned(),
            }),
            _ => Ok(()),
        }
    }

    pub(crate) fn interests(&self) -> RwLockReadGuard<'_, HashMap<NamespaceId, Interest>> {
        self.interests
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn interests_mut(&self) -> RwLockWriteGuard<'_, HashMap<NamespaceId, Interest>> {
        self.interests
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn namespace_ids(&self) -> Vec<NamespaceId> {
        self.namespaces.keys().copied().collect()
    }

    /// Every namespace held with its local number, in no particular order.
    pub(crate) fn namespace_numbers(&self) -> Vec<(u32, NamespaceId)> {
        self.namespaces.iter().map(|(id, n)| (*n, *id)).collect()
    }

    /// The gate that decides which of `ns`'s entries count in the view.
    pub(crate) fn gate(&self, ns: &NamespaceId) -> Result<Gate> {
        let number = self.namespace_number(ns)?;
        Ok(self.gate_of(ns, number))
    }

    fn gate_of(&self, ns: &NamespaceId, number: u32) -> Gate {
        Gate::new(
            number,
            self.charters.get(ns),
            self.options.max_future,
            Some(self.author),
            self.clock_now(),
            self.frozen_feeds()
                .get(&number)
                .cloned()
                .unwrap_or_default(),
        )
    }

    /// The gate of every namespace held.
    pub(crate) fn gates(&self) -> Vec<Gate> {
        self.namespaces
            .iter()
            .map(|(ns, number)| self.gate_of(ns, *number))
            .collect()
    }

    pub(crate) fn namespace_number(&self, ns: &NamespaceId) -> Result<u32> {
        self.namespaces
            .get(ns)
            .copied()
            .ok_or(Error::UnknownNamespace(*ns))
    }
}

fn open_error(dir: &Path, db_path: &Path, error: redb::DatabaseError) -> Error {
    match error {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::Locked {
            dir: dir.to_owned(),
        },
        redb::DatabaseError::Storage(redb::StorageError::Io(source))
            if source.kind() != std::io::ErrorKind::InvalidData
                && source.kind() != std::io::ErrorKind::UnexpectedEof =>
        {
            Error::Io {
                path: db_path.to_owned(),
                source,
            }
        }
        other => Error::Corrupt {
            path: db_path.to_owned(),
            reason: other.to_string(),
        },
    }
}

/// Where a namespace's secret key is kept.
pub(crate) fn namespace_key_path(dir: &Path, ns: &NamespaceId) -> PathBuf {
    dir.join(KEYS_DIR).join(format!("namespace-{ns}.key"))
}

/// Takes every access to `dir` from other local users. A dir made by hand (or by an older
/// weft) may be open to them, and it holds the keys, the database and the node's API socket:
/// the socket is bound before its mode can be set, so only a private dir keeps another user
/// from connecting in between and writing as this replica's author.
fn make_private(dir: &Path) -> Result<()> {
    let mode = fs::metadata(dir)
        .map_err(io_error(dir))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_error(dir))?;
        tracing::info!(dir = %dir.display(), was = format_args!("{:o}", mode & 0o777), "data dir made private (700)");
    }
    Ok(())
}

/// Writes a secret key as hex, readable by the owner only. Never overwrites a key.
fn write_secret(path: &Path, key: &SigningKey) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))?;
    writeln!(file, "{}", ids::to_hex(&key.to_bytes())).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

fn read_secret(path: &Path) -> Result<SigningKey> {
    let text = fs::read_to_string(path).map_err(io_error(path))?;
    let mode = fs::metadata(path)
        .map_err(io_error(path))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format_args!("{mode:o}"), "secret key is readable by others; chmod 600 it");
    }
    let bytes = ids::from_hex(text.trim())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| Error::Corrupt {
            path: path.to_owned(),
            reason: "not a 64-hex-digit secret key".into(),
        })?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Where each frozen feed of a store stops counting, by namespace number and author.
fn read_frozen(txn: &redb::ReadTransaction) -> Result<HashMap<u32, HashMap<AuthorId, u64>>> {
    let mut out: HashMap<u32, HashMap<AuthorId, u64>> = HashMap::new();
    for row in txn.open_table(FORKS)?.iter()? {
        let (key, bytes) = row?;
        let key = key.value();
        let (Some(ns), Some(author)) = (
            key.get(..4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes),
            key.get(4..36).and_then(|b| b.try_into().ok()).map(AuthorId),
        ) else {
            return Err(Error::Damaged("a fork record has a malformed key".into()));
        };
        out.entry(ns)
            .or_default()
            .insert(author, frozen_length(bytes.value())?);
    }
    Ok(out)
}

/// Where the fork recorded as `bytes` (a [`tables::FORKS`] value) freezes its feed: a
/// [`crate::ForkProof`] begins with it, so it is read without decoding the rest.
pub(crate) fn frozen_length(bytes: &[u8]) -> Result<u64> {
    postcard::take_from_bytes::<u64>(bytes)
        .map(|(agreed, _)| agreed)
        .map_err(|e| Error::Damaged(format!("a fork record does not decode ({e})")))
}
