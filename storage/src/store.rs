//! The replica on disk: the data dir, its keys, and the database of feeds and view.

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ed25519_dalek::SigningKey;
use redb::{Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use weft_crdt::{Op, Register, Timestamp, VersionId};

use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::head::SignedHead;
use crate::ids::{self, AuthorId, NamespaceId};
use crate::members::{
    Charter, Grant, MEMBER_PREFIX, Membership, Mode, RESERVED_PREFIX, member_key,
};
use crate::prune::Stub;
use crate::sparse::{Interest, SparseRecord};
use crate::tables::{
    self, CHARTERS, ENTRIES, FEED_IDS, FEEDS, FORKS, INTERESTS, META, NAMESPACES, NODES,
    SPARSE_FEEDS, VIEW, feed_key, view_key,
};
use crate::tree::{self, Frontier, Hash, Node};
use crate::view::{Gate, ViewTables, decode_register, read_membership};

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
}

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
        }
    }
}

/// A [`FEEDS`] row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct FeedRecord {
    /// The local number of the feed's namespace.
    pub ns: u32,
    /// The latest signed head.
    pub head: SignedHead,
    /// How many entries of the feed are stored: always a prefix, and at most `head.length`.
    pub held: u64,
    /// The hashes of [`tree::extension_nodes`]`(held, head.length)`: with the stored tree they
    /// prove the held prefix against `head`. Empty when everything is held.
    pub extension: Vec<Hash>,
}

impl FeedRecord {
    pub fn decode(bytes: &[u8]) -> Result<FeedRecord> {
        postcard::from_bytes(bytes)
            .map_err(|e| Error::Damaged(format!("a feed record does not decode ({e})")))
    }
}

/// One version of a key as reads return it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Where it was written.
    pub id: VersionId,
    /// When, by its author's clock.
    pub timestamp: Timestamp,
    /// The value, or `None` for a delete.
    pub value: Option<Vec<u8>>,
}

/// One version in a key's history.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct HistoryItem {
    /// The version.
    pub version: VersionInfo,
    /// Whether it is still live (not superseded).
    pub live: bool,
}

/// A summary of the replica.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Info {
    /// The local author.
    pub author: AuthorId,
    /// The namespace commands use by default.
    pub default_namespace: NamespaceId,
    /// Every namespace held.
    pub namespaces: Vec<NamespaceInfo>,
    /// The size of the database file.
    pub db_bytes: u64,
}

/// A namespace in [`Info`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NamespaceInfo {
    /// Its id.
    pub id: NamespaceId,
    /// Its feeds.
    pub feeds: Vec<FeedInfo>,
    /// Keys whose last writer put a value (deleted keys are not counted).
    pub keys: u64,
    /// What a sparse replica replicates; `None` when it replicates everything.
    pub interest: Option<Interest>,
}

/// A feed in [`Info`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FeedInfo {
    /// Its author.
    pub author: AuthorId,
    /// How many of its entries are held.
    pub length: u64,
    /// The length of its latest signed head: more than `length` while a catch-up is under way.
    pub signed_length: u64,
    /// For a feed held with holes: every wanted entry before this index is held.
    pub scanned: Option<u64>,
}

/// How far ahead of the local clock a remote timestamp may be and still move it: 500 ms, in
/// NTP64 units (the low 32 bits are fractions of a second), as uhlc allows by default.
pub const MAX_CLOCK_AHEAD: u64 = 1 << 31;

/// Hands out timestamps that only grow, even across restarts with a clock that went back.
struct Clock {
    hlc: uhlc::HLC,
    last: Mutex<u64>,
}

impl Clock {
    fn new(floor: u64) -> Clock {
        Clock {
            hlc: uhlc::HLCBuilder::new().build(),
            last: Mutex::new(floor),
        }
    }

    /// Moves the clock past a timestamp seen in a remote entry, so that a later local write
    /// orders after it. A timestamp further ahead of this machine's clock than
    /// [`MAX_CLOCK_AHEAD`] does not move the clock, so one peer with a wrong clock cannot drag
    /// every replica's clock into the future. The entry is still stored: a later local write of
    /// its key supersedes it explicitly, whatever the timestamps say. Returns whether it moved.
    pub(crate) fn observe(&self, remote: Timestamp) -> bool {
        let now = self.hlc.new_timestamp().get_time().as_u64();
        if remote.0 > now.saturating_add(MAX_CLOCK_AHEAD) {
            return false;
        }
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        *last = remote.0.max(*last);
        true
    }

    fn now(&self) -> Timestamp {
        let time = self.hlc.new_timestamp().get_time().as_u64();
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
    db_path: PathBuf,
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
}

/// Who may write a namespace, and what of it does not count.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrustReport {
    /// The charter; `None` for a namespace made before charters (open).
    pub charter: Option<Charter>,
    /// Every author the owner has granted or revoked.
    pub members: Vec<(AuthorId, Membership)>,
    /// Entries held that do not count, by author and reason.
    pub excluded: Vec<crate::view::Excluded>,
    /// Feeds frozen by a proven fork.
    pub forks: Vec<crate::fork::Fork>,
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

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
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
        let db = Database::create(&db_path).map_err(|e| open_error(dir, &db_path, e))?;
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
            ViewTables::open(&txn)?;
            create_sparse_tables(&txn)?;
            create_trust_tables(&txn)?;
            txn.open_table(CHARTERS)?
                .insert(namespace.as_bytes(), &encode_charter(&charter)[..])?;
        }
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
        let db = Database::open(&db_path).map_err(|e| open_error(dir, &db_path, e))?;
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
        let charters = match txn.open_table(CHARTERS) {
            Ok(table) => {
                let mut charters = HashMap::new();
                for row in table.iter()? {
                    let (ns, bytes) = row?;
                    let charter: Charter = postcard::from_bytes(bytes.value())
                        .map_err(|e| corrupt(format!("a charter does not decode ({e})")))?;
                    charters.insert(NamespaceId(*ns.value()), charter);
                }
                charters
            }
            // A store made before charters existed: its namespaces are open, as they were.
            Err(redb::TableError::TableDoesNotExist(_)) => {
                let txn = db.begin_write()?;
                create_trust_tables(&txn)?;
                txn.commit()?;
                HashMap::new()
            }
            Err(e) => return Err(e.into()),
        };

        let interests = match txn.open_table(INTERESTS) {
            Ok(table) => {
                let mut interests = HashMap::new();
                for row in table.iter()? {
                    let (ns, bytes) = row?;
                    let interest: Interest = postcard::from_bytes(bytes.value())
                        .map_err(|e| corrupt(format!("an interest does not decode ({e})")))?;
                    interests.insert(NamespaceId(*ns.value()), interest);
                }
                interests
            }
            // A store made before sparse replicas existed: every namespace is full.
            Err(redb::TableError::TableDoesNotExist(_)) => {
                drop((meta, feeds, entries, txn));
                let txn = db.begin_write()?;
                create_sparse_tables(&txn)?;
                txn.commit()?;
                HashMap::new()
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Store {
            dir: dir.to_owned(),
            db_path,
            db,
            author_key,
            author,
            default_namespace,
            options,
            clock: Clock::new(floor),
            namespaces,
            interests: RwLock::new(interests),
            charters,
            commits: AtomicU64::new(0),
        })
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

    /// Puts `value` under `key`: one entry, one commit, one signature.
    ///
    /// # Errors
    /// See [`Store::write`].
    pub fn put(&self, ns: &NamespaceId, key: &[u8], value: &[u8]) -> Result<VersionId> {
        let ids = self.write(ns, vec![(key.to_vec(), Op::Put(value.to_vec()))])?;
        Ok(ids[0])
    }

    /// Deletes `key`, leaving a tombstone that wins over the versions seen now.
    ///
    /// # Errors
    /// See [`Store::write`].
    pub fn delete(&self, ns: &NamespaceId, key: &[u8]) -> Result<VersionId> {
        let ids = self.write(ns, vec![(key.to_vec(), Op::Delete)])?;
        Ok(ids[0])
    }

    /// Appends a batch of writes to the local author's feed: one redb transaction that appends
    /// the entries, extends the merkle tree, updates the view and stores one new signed head.
    /// Later writes of a key in the batch supersede earlier ones. Returns the new versions' ids.
    ///
    /// # Errors
    /// [`Error::KeyTooLarge`], [`Error::ValueTooLarge`] or [`Error::EmptyKey`] for any op, and
    /// [`Error::UnknownNamespace`], before anything is written; database failures, after which
    /// nothing of the batch is kept.
    pub fn write(
        &self,
        ns: &NamespaceId,
        ops: Vec<(Vec<u8>, Op<Vec<u8>>)>,
    ) -> Result<Vec<VersionId>> {
        for (key, op) in &ops {
            self.validate(key, op)?;
            self.check_covered(ns, key)?;
        }
        self.append(ns, ops)
    }

    /// Appends `ops` to the local author's feed, checked only against the namespace's charter
    /// and grants: [`Store::write`] for user writes, and the owner's membership records.
    fn append(&self, ns: &NamespaceId, ops: Vec<(Vec<u8>, Op<Vec<u8>>)>) -> Result<Vec<VersionId>> {
        let ns_number = self.namespace_number(ns)?;
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let mut txn = self.db.begin_write()?;
        txn.set_durability(self.durability())?;
        let mut ids = Vec::with_capacity(ops.len());
        let mut gate = self.gate(ns)?;
        {
            let mut feeds = txn.open_table(FEEDS)?;
            let mut feed_ids = txn.open_table(FEED_IDS)?;
            let mut entries = txn.open_table(ENTRIES)?;
            let mut view = ViewTables::open(&txn)?;
            let index_key = tables::feed_ids_key(ns_number, &self.author);
            let known = feed_ids.get(&index_key[..])?.map(|id| id.value());
            let (feed, length) = match known {
                Some(feed) => {
                    let record = feeds.get(feed)?.ok_or_else(|| {
                        Error::Damaged(format!("feed {feed} is indexed but has no record"))
                    })?;
                    (feed, FeedRecord::decode(record.value())?.held)
                }
                None => {
                    let feed = feeds.last()?.map_or(0, |(id, _)| id.value() + 1);
                    feed_ids.insert(&index_key[..], feed)?;
                    (feed, 0)
                }
            };
            let mut frontier = load_frontier(&entries, feed, length)?;
            let (mut bytes, mut row) = (Vec::new(), Vec::new());
            for (key, op) in &ops {
                let register = view.register(ns_number, key)?;
                let id = VersionId {
                    author: self.author,
                    seq: frontier.length(),
                };
                let entry = Entry {
                    timestamp: self.clock.now(),
                    key,
                    op: match op {
                        Op::Put(value) => Op::Put(&value[..]),
                        Op::Delete => Op::Delete,
                    },
                    supersedes: register.heads(),
                };
                bytes.clear();
                entry.encode_into(&mut bytes);
                let leaf = tree::leaf_hash(&bytes);
                row.clear();
                row.extend_from_slice(&leaf);
                frontier.push(leaf, |_, parent| row.extend_from_slice(&parent));
                row.extend_from_slice(&bytes);
                entries.insert(feed_key(feed, id.seq), &row[..])?;
                if let Some(reason) = view.admit(&mut gate, &entries, feed, id, &entry)? {
                    // Dropping the transaction aborts it: nothing of the batch is kept.
                    return Err(Error::NotAllowed {
                        author: self.author,
                        key: String::from_utf8_lossy(key).into_owned(),
                        reason,
                    });
                }
                ids.push(id);
            }
            let head = SignedHead::sign(&self.author_key, *ns, frontier.length(), frontier.root());
            let record = postcard::to_allocvec(&FeedRecord {
                ns: ns_number,
                held: head.length,
                head,
                extension: Vec::new(),
            })
            .expect("feed records always encode");
            feeds.insert(feed, &record[..])?;
        }
        crate::view::commit(self, txn, &gate, ns)?;
        Ok(ids)
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

    /// Lets `author` write `ns` as `grant` says: an owner entry under the author's member key.
    /// Entries of `author` already held that the grant covers join the view in the same
    /// transaction.
    ///
    /// # Errors
    /// [`Error::NotOwner`] unless `ns` is closed and this replica's author owns it.
    pub fn grant(&self, ns: &NamespaceId, author: &AuthorId, grant: Grant) -> Result<VersionId> {
        self.check_owner(ns)?;
        let record = Membership::Granted(grant).encode();
        let ids = self.append(ns, vec![(member_key(author), Op::Put(record))])?;
        Ok(ids[0])
    }

    /// Makes a fresh author key and grants it: what a write ticket carries, so the joining
    /// device writes as an author the owner already trusts, and the namespace key never
    /// leaves this replica.
    ///
    /// # Errors
    /// As [`Store::grant`]; [`Error::Io`] when no randomness is to be had.
    pub fn invite(&self, ns: &NamespaceId, grant: Grant) -> Result<[u8; 32]> {
        let key = ids::generate_keypair().map_err(io_error(&self.dir))?;
        self.grant(ns, &ids::author_of(&key), grant)?;
        Ok(key.to_bytes())
    }

    /// Who may write `ns` and what does not count: for `weft status` and `weft members`.
    ///
    /// # Errors
    /// [`Error::UnknownNamespace`]; database failures.
    pub fn trust(&self, ns: &NamespaceId) -> Result<TrustReport> {
        Ok(TrustReport {
            charter: self.charter(ns)?,
            members: self.members(ns)?,
            excluded: self.excluded(ns)?,
            forks: self.forks(ns)?,
        })
    }

    /// Revokes `author`: its entries from the length of its feed held now on no longer count,
    /// whatever their timestamps; earlier ones keep counting as its grant said. Returns that
    /// length.
    ///
    /// # Errors
    /// As [`Store::grant`]; [`Error::NotOwner`] when `author` is the owner.
    pub fn revoke(&self, ns: &NamespaceId, author: &AuthorId) -> Result<u64> {
        self.check_owner(ns)?;
        if *author == self.author {
            return Err(Error::NotOwner(
                "the owner cannot revoke itself; it holds the namespace".into(),
            ));
        }
        let until = self
            .feeds(ns)?
            .into_iter()
            .find(|feed| feed.head.author == *author)
            .map_or(0, |feed| feed.held);
        let grant = match self.membership(ns, author)? {
            Some(Membership::Granted(grant)) => Some(grant),
            Some(Membership::Revoked { grant, .. }) => grant,
            None => None,
        };
        let record = Membership::Revoked { grant, until }.encode();
        self.append(ns, vec![(member_key(author), Op::Put(record))])?;
        Ok(until)
    }

    /// Every author the owner of `ns` has granted or revoked, with its standing, by id.
    ///
    /// # Errors
    /// [`Error::UnknownNamespace`]; database failures.
    pub fn members(&self, ns: &NamespaceId) -> Result<Vec<(AuthorId, Membership)>> {
        let ns_number = self.namespace_number(ns)?;
        let txn = self.db.begin_read()?;
        let view = txn.open_table(VIEW)?;
        let entries = txn.open_table(ENTRIES)?;
        let low = view_key(ns_number, MEMBER_PREFIX);
        let high = prefix_end(&low).ok_or_else(|| Error::Damaged("member prefix".into()))?;
        let mut out = Vec::new();
        for row in view.range(&low[..]..&high[..])? {
            let (key, _) = row?;
            let Some(author) = crate::members::member_of_key(&key.value()[4..]) else {
                continue;
            };
            if let Some(membership) = read_membership(&view, &entries, ns_number, &author)? {
                out.push((author, membership));
            }
        }
        Ok(out)
    }

    /// `author`'s standing in `ns`, as the owner last wrote it.
    ///
    /// # Errors
    /// As [`Store::members`].
    pub fn membership(&self, ns: &NamespaceId, author: &AuthorId) -> Result<Option<Membership>> {
        let ns_number = self.namespace_number(ns)?;
        let txn = self.db.begin_read()?;
        read_membership(
            &txn.open_table(VIEW)?,
            &txn.open_table(ENTRIES)?,
            ns_number,
            author,
        )
    }

    fn check_owner(&self, ns: &NamespaceId) -> Result<()> {
        match self.charter(ns)?.map(|c| c.mode) {
            Some(Mode::Closed { owner }) if owner == self.author => Ok(()),
            Some(Mode::Closed { owner }) => Err(Error::NotOwner(format!(
                "only the namespace owner ({owner}) may grant or revoke"
            ))),
            _ => Err(Error::NotOwner(
                "the namespace is open: anyone holding its ticket may write, so there is nothing to grant or revoke".into(),
            )),
        }
    }

    /// Checks a write against the limits without writing it.
    ///
    /// # Errors
    /// [`Error::EmptyKey`], [`Error::KeyTooLarge`] or [`Error::ValueTooLarge`].
    pub fn validate(&self, key: &[u8], op: &Op<Vec<u8>>) -> Result<()> {
        self.options.validate(key, op)
    }

    /// The last writer's value of `key`, or `None` if it is absent or deleted.
    ///
    /// # Errors
    /// [`Error::UnknownNamespace`]; database failures; [`Error::Corrupt`] if the view points at
    /// an entry that is not there.
    pub fn get(&self, ns: &NamespaceId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.snapshot()?.get(ns, key)
    }

    /// Every live version of `key`, the last writer first: the multi-value read.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub fn get_all(&self, ns: &NamespaceId, key: &[u8]) -> Result<Vec<VersionInfo>> {
        self.snapshot()?.get_all(ns, key)
    }

    /// A consistent read-only view of the replica as of the last commit. Reads through one
    /// snapshot skip the per-call cost of starting a read transaction and opening tables, and
    /// see no write committed after it was taken. Holding one for long keeps the pages it
    /// reads from being reused, so the file grows while it lives.
    ///
    /// # Errors
    /// Database failures.
    pub fn snapshot(&self) -> Result<Snapshot<'_>> {
        let txn = self.db.begin_read()?;
        Ok(Snapshot {
            store: self,
            view: txn.open_table(VIEW)?,
            entries: txn.open_table(ENTRIES)?,
        })
    }

    /// The last writer's value of `key` as of `at`: what [`Store::get`] would have returned if
    /// only the versions held that are timestamped at or before `at` had been written. A
    /// version counts as superseded only by another of those.
    ///
    /// # Errors
    /// As [`Store::get`]; [`Error::Pruned`] when the version that won at `at` has had its value
    /// dropped by [`Store::prune`].
    pub fn get_at(&self, ns: &NamespaceId, key: &[u8], at: Timestamp) -> Result<Option<Vec<u8>>> {
        // A pruned stub keeps the timestamp and supersedes, so it still takes part.
        let then: Vec<HeldVersion> = self
            .held_versions(ns, key)?
            .into_iter()
            .filter(|version| version.timestamp <= at)
            .collect();
        let superseded: std::collections::HashSet<VersionId> = then
            .iter()
            .flat_map(|version| version.supersedes.iter().copied())
            .collect();
        // The last writer by the register's order: timestamp, then author, then seq.
        let winner = then
            .into_iter()
            .filter(|version| !superseded.contains(&version.id))
            .max_by_key(|version| (version.timestamp, version.id.author, version.id.seq));
        match winner {
            None => Ok(None),
            Some(version) if version.pruned => Err(Error::Pruned {
                key: String::from_utf8_lossy(key).into_owned(),
            }),
            Some(version) => Ok(version.value),
        }
    }

    /// Every version of `key` held in the feeds, oldest first, live or superseded.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub fn history(&self, ns: &NamespaceId, key: &[u8]) -> Result<Vec<HistoryItem>> {
        let mut items: Vec<HistoryItem> = self
            .held_versions(ns, key)?
            .into_iter()
            // `weft prune` dropped its value.
            .filter(|version| !version.pruned)
            .map(|version| HistoryItem {
                version: VersionInfo {
                    id: version.id,
                    timestamp: version.timestamp,
                    value: version.value,
                },
                live: version.live,
            })
            .collect();
        items.sort_by_key(|item| (item.version.timestamp, item.version.id));
        Ok(items)
    }

    /// Every version of `key` the view knows, live or superseded, whose entry this replica
    /// holds, pruned stubs included, read from one snapshot.
    fn held_versions(&self, ns: &NamespaceId, key: &[u8]) -> Result<Vec<HeldVersion>> {
        self.check_covered(ns, key)?;
        let ns_number = self.namespace_number(ns)?;
        let txn = self.db.begin_read()?;
        let versions = key_versions(
            &txn.open_table(VIEW)?,
            &txn.open_table(tables::SUPERSEDED)?,
            ns_number,
            key,
        )?;
        let entries = txn.open_table(ENTRIES)?;
        let feed_ids = txn.open_table(FEED_IDS)?;
        let mut held = Vec::with_capacity(versions.len());
        for (id, live) in versions {
            // Superseded rows may name versions this replica has not received.
            let Some(feed) = feed_of(&feed_ids, ns_number, &id.author)? else {
                continue;
            };
            let Some(row) = entries.get(feed_key(feed, id.seq))? else {
                continue;
            };
            let pruned =
                tables::split_row(id.seq, row.value()).is_some_and(|p| tables::is_pruned(p.entry));
            let entry = decode_row(feed, id.seq, row.value())?;
            held.push(HeldVersion {
                id,
                live,
                pruned,
                timestamp: entry.timestamp,
                value: match entry.op {
                    Op::Put(value) => Some(value.to_vec()),
                    Op::Delete => None,
                },
                supersedes: entry.supersedes,
            });
        }
        Ok(held)
    }

    /// The keys under `prefix` whose last writer put a value, in byte order, read from one
    /// snapshot. With `values`, each comes with its value.
    ///
    /// # Errors
    /// [`Error::UnknownNamespace`] and database failures here; each item can fail like
    /// [`Store::get`].
    pub fn scan(&self, ns: &NamespaceId, prefix: &[u8], values: bool) -> Result<Scan> {
        self.scan_after(ns, prefix, None, values)
    }

    /// As [`Store::scan`], starting after the key `after` when given: how a scan is paged.
    ///
    /// # Errors
    /// As [`Store::scan`].
    pub fn scan_after(
        &self,
        ns: &NamespaceId,
        prefix: &[u8],
        after: Option<&[u8]>,
        values: bool,
    ) -> Result<Scan> {
        let ns_number = self.namespace_number(ns)?;
        let txn = self.db.begin_read()?;
        let view = txn.open_table(VIEW)?;
        let start = view_key(ns_number, prefix);
        let low = match after {
            Some(after) => {
                // The least key greater than `after`.
                let mut next = view_key(ns_number, after);
                next.push(0);
                next.max(start.clone())
            }
            None => start.clone(),
        };
        let range = match prefix_end(&start) {
            Some(high) if low >= high => view.range(&high[..]..&high[..])?,
            Some(high) => view.range(&low[..]..&high[..])?,
            None => view.range(&low[..]..)?,
        };
        Ok(Scan {
            range,
            entries: txn.open_table(ENTRIES)?,
            values,
        })
    }

    /// A summary: ids, feed lengths, key counts and the database's size on disk.
    ///
    /// # Errors
    /// Database failures.
    pub fn info(&self) -> Result<Info> {
        let txn = self.db.begin_read()?;
        let mut namespaces: Vec<NamespaceInfo> = Vec::new();
        let mut numbers: Vec<(u32, NamespaceId)> =
            self.namespaces.iter().map(|(id, n)| (*n, *id)).collect();
        numbers.sort();
        let view = txn.open_table(VIEW)?;
        for (number, id) in &numbers {
            let mut keys = 0;
            let low = number.to_be_bytes();
            let rows = match prefix_end(&low) {
                Some(high) => view.range(&low[..]..&high[..])?,
                None => view.range(&low[..]..)?,
            };
            for row in rows {
                let (key, register) = row?;
                if key.value()[4..].starts_with(RESERVED_PREFIX) {
                    continue;
                }
                if decode_register(Some(register.value()))?.value().is_some() {
                    keys += 1;
                }
            }
            namespaces.push(NamespaceInfo {
                id: *id,
                feeds: Vec::new(),
                keys,
                interest: self.interests().get(id).cloned(),
            });
        }
        let sparse = txn.open_table(SPARSE_FEEDS)?;
        for row in txn.open_table(FEEDS)?.iter()? {
            let (feed, record) = row?;
            let record = FeedRecord::decode(record.value())?;
            let holes = match sparse.get(feed.value())? {
                Some(bytes) => Some(SparseRecord::decode(bytes.value())?),
                None => None,
            };
            if let Some(i) = numbers.iter().position(|(n, _)| *n == record.ns) {
                namespaces[i].feeds.push(FeedInfo {
                    author: record.head.author,
                    length: holes.map_or(record.held, |h| h.entries),
                    signed_length: record.head.length,
                    scanned: holes.map(|h| h.scanned),
                });
            }
        }
        let db_bytes = fs::metadata(&self.db_path)
            .map_err(io_error(&self.db_path))?
            .len();
        Ok(Info {
            author: self.author,
            default_namespace: self.default_namespace,
            namespaces,
            db_bytes,
        })
    }

    /// The latest signed head of `author`'s feed in `ns`, if this replica holds any of it.
    ///
    /// # Errors
    /// Database failures.
    pub fn head(&self, ns: &NamespaceId, author: &AuthorId) -> Result<Option<SignedHead>> {
        let txn = self.db.begin_read()?;
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

    /// The encoded entries `[start, end)` of `author`'s feed in `ns`, and the proof nodes that
    /// verify them against a head of `length` entries ([`SignedHead::verify_range`]).
    ///
    /// # Errors
    /// [`Error::Proof`] when the range does not fit `length` or `length` exceeds what is held.
    pub fn read_range(
        &self,
        ns: &NamespaceId,
        author: &AuthorId,
        start: u64,
        end: u64,
        length: u64,
    ) -> Result<(Vec<Vec<u8>>, Vec<Hash>)> {
        let txn = self.db.begin_read()?;
        let found = self.feed_record(&txn, ns, author)?;
        let held = found.as_ref().map_or(0, |(_, record)| record.held);
        tree::check_range(start, end, length)?;
        if length > held {
            return Err(tree::ProofError::BadRange {
                start,
                end: length,
                length: held,
            }
            .into());
        }
        let Some((feed, _)) = found else {
            // Nothing held, and the range is empty: no entries, and the peaks of nothing.
            return Ok((Vec::new(), Vec::new()));
        };
        let entries = txn.open_table(ENTRIES)?;
        let mut bytes = Vec::with_capacity((end - start) as usize);
        for row in entries.range(feed_key(feed, start)..feed_key(feed, end))? {
            let (key, row) = row?;
            let seq = key.value() as u64;
            let parts = tables::split_row(seq, row.value()).ok_or_else(|| {
                Error::Damaged(format!("entry {seq} of local feed {feed} is truncated"))
            })?;
            bytes.push(parts.entry.to_vec());
        }
        let nodes = tree::proof_nodes(length, start, end, |node| read_node(&entries, feed, node))?;
        Ok((bytes, nodes))
    }

    /// How many write transactions this store has committed since it was opened. A change
    /// feed consumer that has read everything waits for it to move.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Acquire)
    }

    /// Trims the change feed to [`Options::changes_kept`], commits `txn`, and counts it in
    /// [`Store::commits`]. Every transaction that can change the view commits through here.
    pub(crate) fn commit(&self, txn: redb::WriteTransaction) -> Result<()> {
        crate::changes::trim(&txn, self.options.changes_kept)?;
        txn.commit()?;
        self.commits.fetch_add(1, Ordering::Release);
        Ok(())
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
        let now = self.clock.hlc.new_timestamp().get_time().as_u64();
        let mut last = self
            .clock
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *last = now.saturating_add(uhlc::NTP64::from(ahead).as_u64());
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

    /// The gate that decides which of `ns`'s entries count in the view.
    pub(crate) fn gate(&self, ns: &NamespaceId) -> Result<Gate> {
        Ok(Gate::new(
            self.namespace_number(ns)?,
            self.charters.get(ns),
            self.options.max_future,
            Some(self.author),
        ))
    }

    /// The gate of every namespace held.
    pub(crate) fn gates(&self) -> Vec<Gate> {
        self.namespaces
            .iter()
            .map(|(ns, number)| {
                Gate::new(
                    *number,
                    self.charters.get(ns),
                    self.options.max_future,
                    Some(self.author),
                )
            })
            .collect()
    }

    pub(crate) fn namespace_number(&self, ns: &NamespaceId) -> Result<u32> {
        self.namespaces
            .get(ns)
            .copied()
            .ok_or(Error::UnknownNamespace(*ns))
    }
}

/// A version of a key as [`Store::held_versions`] reads it from its entry row.
struct HeldVersion {
    id: VersionId,
    /// Live in the view now.
    live: bool,
    /// `weft prune` dropped its value: `value` is meaningless.
    pruned: bool,
    timestamp: Timestamp,
    value: Option<Vec<u8>>,
    supersedes: Vec<VersionId>,
}

/// A consistent read-only view of a [`Store`], from [`Store::snapshot`].
pub struct Snapshot<'a> {
    store: &'a Store,
    view: ReadOnlyTable<&'static [u8], &'static [u8]>,
    entries: ReadOnlyTable<u128, &'static [u8]>,
}

impl Snapshot<'_> {
    /// As [`Store::get`], as of the snapshot.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub fn get(&self, ns: &NamespaceId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.store.check_covered(ns, key)?;
        let register = read_register(&self.view, self.store.namespace_number(ns)?, key)?;
        match register.winner() {
            Some(winner) => match winner.op {
                Op::Put(feed) => value_at(&self.entries, feed, winner.id.seq),
                Op::Delete => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// As [`Store::get_all`], as of the snapshot.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub fn get_all(&self, ns: &NamespaceId, key: &[u8]) -> Result<Vec<VersionInfo>> {
        self.store.check_covered(ns, key)?;
        let register = read_register(&self.view, self.store.namespace_number(ns)?, key)?;
        register
            .live()
            .iter()
            .map(|version| {
                let value = match version.op {
                    Op::Put(feed) => value_at(&self.entries, feed, version.id.seq)?,
                    Op::Delete => None,
                };
                Ok(VersionInfo {
                    id: version.id,
                    timestamp: version.timestamp,
                    value,
                })
            })
            .collect()
    }
}

/// Items of [`Store::scan`].
pub struct Scan {
    range: redb::Range<'static, &'static [u8], &'static [u8]>,
    entries: ReadOnlyTable<u128, &'static [u8]>,
    values: bool,
}

impl Iterator for Scan {
    /// A key, and its value when asked for.
    type Item = Result<(Vec<u8>, Option<Vec<u8>>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (key, register) = match self.range.next()? {
                Ok(row) => row,
                Err(e) => return Some(Err(e.into())),
            };
            let register = match decode_register(Some(register.value())) {
                Ok(register) => register,
                Err(e) => return Some(Err(e)),
            };
            let Some(winner) = register.winner() else {
                continue;
            };
            let Op::Put(feed) = winner.op else {
                continue;
            };
            if key.value()[4..].starts_with(RESERVED_PREFIX) {
                continue;
            }
            let user_key = key.value()[4..].to_vec();
            if !self.values {
                return Some(Ok((user_key, None)));
            }
            return Some(
                value_at(&self.entries, feed, winner.id.seq).map(|value| (user_key, value)),
            );
        }
    }
}

/// The smallest byte string greater than every string starting with `prefix`, or `None` when
/// there is none (the prefix is all `0xff`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The local feed id of `author` in namespace number `ns`, if any.
pub(crate) fn feed_of(
    feed_ids: &impl ReadableTable<&'static [u8], u64>,
    ns: u32,
    author: &AuthorId,
) -> Result<Option<u64>> {
    Ok(feed_ids
        .get(&tables::feed_ids_key(ns, author)[..])?
        .map(|id| id.value()))
}

pub(crate) fn read_register(
    view: &ReadOnlyTable<&[u8], &[u8]>,
    ns: u32,
    key: &[u8],
) -> Result<Register<u64>> {
    decode_register(
        view.get(&view_key(ns, key)[..])?
            .as_ref()
            .map(|g| g.value()),
    )
}

/// The ids of every version of `key` the view knows of: the live ones (flagged `true`), then
/// those some known version superseded, which may or may not be held.
pub(crate) fn key_versions(
    view: &impl ReadableTable<&'static [u8], &'static [u8]>,
    superseded: &impl ReadableTable<&'static [u8], ()>,
    ns: u32,
    key: &[u8],
) -> Result<Vec<(VersionId, bool)>> {
    let register = decode_register(
        view.get(&view_key(ns, key)[..])?
            .as_ref()
            .map(|g| g.value()),
    )?;
    let mut versions: Vec<(VersionId, bool)> =
        register.live().iter().map(|v| (v.id, true)).collect();
    let prefix = tables::superseded_prefix(ns, key);
    let (mut low, mut high) = (prefix.clone(), prefix);
    low.extend_from_slice(&[0; 40]);
    high.extend_from_slice(&[0xff; 40]);
    for row in superseded.range(&low[..]..=&high[..])? {
        let (row, _) = row?;
        let tail = row
            .value()
            .len()
            .checked_sub(40)
            .map(|at| &row.value()[at..])
            .ok_or_else(|| Error::Damaged("a superseded row is truncated".into()))?;
        let (author, seq) = tail.split_at(32);
        let author = AuthorId(author.try_into().expect("32 of 40 bytes"));
        let seq = u64::from_be_bytes(seq.try_into().expect("8 of 40 bytes"));
        versions.push((VersionId { author, seq }, false));
    }
    Ok(versions)
}

/// Opens (so creates) the tables of charters, excluded entries and forks.
fn create_trust_tables(txn: &redb::WriteTransaction) -> Result<()> {
    txn.open_table(CHARTERS)?;
    txn.open_table(tables::EXCLUDED)?;
    txn.open_table(tables::FUTURE)?;
    txn.open_table(FORKS)?;
    Ok(())
}

fn encode_charter(charter: &Charter) -> Vec<u8> {
    postcard::to_allocvec(charter).expect("charters always encode")
}

/// Opens (so creates) the tables sparse replicas use.
fn create_sparse_tables(txn: &redb::WriteTransaction) -> Result<()> {
    txn.open_table(INTERESTS)?;
    txn.open_table(SPARSE_FEEDS)?;
    txn.open_table(NODES)?;
    Ok(())
}

/// The entry in the [`ENTRIES`] row of `seq` in `feed`.
pub(crate) fn decode_row(feed: u64, seq: u64, row: &[u8]) -> Result<Entry<'_>> {
    let damaged = |what: String| Error::Damaged(format!("entry {seq} of local feed {feed} {what}"));
    let parts = tables::split_row(seq, row).ok_or_else(|| damaged("is truncated".into()))?;
    if tables::is_pruned(parts.entry) {
        let stub: Stub<'_> = postcard::from_bytes(&parts.entry[1..])
            .map_err(|e| damaged(format!("is a pruned stub that does not decode ({e})")))?;
        return Ok(stub.into_entry());
    }
    Entry::decode(parts.entry).map_err(|e| damaged(format!("does not decode ({e})")))
}

/// The value of entry `seq` of `feed`, or `None` for a delete.
fn value_at(
    entries: &impl ReadableTable<u128, &'static [u8]>,
    feed: u64,
    seq: u64,
) -> Result<Option<Vec<u8>>> {
    with_entry(entries, feed, seq, |entry| match entry.op {
        Op::Put(value) => Some(value.to_vec()),
        Op::Delete => None,
    })
}

/// Calls `read` with entry `seq` of `feed`, which must be stored.
pub(crate) fn with_entry<T>(
    entries: &impl ReadableTable<u128, &'static [u8]>,
    feed: u64,
    seq: u64,
    read: impl FnOnce(Entry<'_>) -> T,
) -> Result<T> {
    let row = entries
        .get(feed_key(feed, seq))?
        .ok_or_else(|| Error::Damaged(format!("entry {seq} of local feed {feed} is missing")))?;
    Ok(read(decode_row(feed, seq, row.value())?))
}

/// The hash of a tree node, from the entry row of its last leaf ([`tables::node_location`]).
pub(crate) fn read_node(
    entries: &impl ReadableTable<u128, &'static [u8]>,
    feed: u64,
    node: Node,
) -> Result<Hash> {
    let (seq, at) = tables::node_location(node);
    let missing = || {
        Error::Damaged(format!(
            "tree node {} of local feed {feed} is missing",
            node.flat_index()
        ))
    };
    let row = entries.get(feed_key(feed, seq))?.ok_or_else(missing)?;
    row.value()
        .get(at..at + 32)
        .and_then(|hash| hash.try_into().ok())
        .ok_or_else(missing)
}

pub(crate) fn load_frontier(
    entries: &impl ReadableTable<u128, &'static [u8]>,
    feed: u64,
    length: u64,
) -> Result<Frontier> {
    let hashes = tree::peaks(length)
        .into_iter()
        .map(|node| read_node(entries, feed, node))
        .collect::<Result<Vec<Hash>>>()?;
    Ok(Frontier::new(length, hashes)?)
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
