//! A Redis protocol front end on the node: `redis-cli`, client libraries and
//! `redis-benchmark` read and write the default namespace as ordinary weft writes.
//!
//! Each read from a connection is one batch: every command it completes runs in one job on
//! the store's thread, together with the batches other connections have waiting, and all the
//! writes among them are one transaction and one signature (group commit). Replies are sent
//! only after that commit returns, so none acknowledges a write that is not durable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{debug, warn};
use weft_storage::members::RESERVED_PREFIX;
use weft_storage::{NamespaceId, Op, Store};

use crate::NodeHandle;
use crate::resp::{self, Reply};

/// How the Redis listener runs.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// Where to listen. Anything but loopback needs a password.
    pub addr: SocketAddr,
    /// The password `AUTH` (or `HELLO ... AUTH`) must give before any other command.
    pub password: Option<String>,
    /// The longest bulk string accepted; a longer one closes the connection.
    pub max_bulk: usize,
    /// Connections served at once; one more is told so and closed.
    pub max_clients: usize,
}

impl RedisConfig {
    /// Loopback-only defaults at `addr`: no password, 1 MiB bulk strings, 1,000 clients.
    pub fn new(addr: SocketAddr) -> RedisConfig {
        RedisConfig {
            addr,
            password: None,
            max_bulk: 1 << 20,
            max_clients: 1000,
        }
    }
}

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// A non-loopback address without a password would open the database to the network.
    #[error("listening on {0} (not loopback) needs --redis-password")]
    NeedsPassword(SocketAddr),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A bound listener, not yet serving.
pub struct RedisServer {
    listener: TcpListener,
    config: Arc<RedisConfig>,
}

/// The most bytes one connection buffers for commands it has not yet completed.
const MAX_QUERY: usize = 64 << 20;
/// Keys a `SCAN` looks at when no `COUNT` is given, as Redis.
const SCAN_COUNT: usize = 10;
/// `SCAN` cursors a connection remembers; an older one starts over.
const CURSORS: usize = 64;

impl RedisServer {
    /// Binds the listener.
    ///
    /// # Errors
    /// [`RedisError::NeedsPassword`] for a non-loopback address without a password;
    /// [`RedisError::Bind`].
    pub async fn bind(config: RedisConfig) -> Result<RedisServer, RedisError> {
        if !config.addr.ip().is_loopback() && config.password.is_none() {
            return Err(RedisError::NeedsPassword(config.addr));
        }
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| RedisError::Bind {
                addr: config.addr,
                source,
            })?;
        Ok(RedisServer {
            listener,
            config: Arc::new(config),
        })
    }

    /// The address it listens on (the port, when 0 was asked for).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `ns` through `node` until `shutdown` completes, then closes every connection
    /// (dropping the future does too). A reply cut off by that never acknowledged anything:
    /// writes are durable before their replies are sent.
    pub async fn serve(
        self,
        node: NodeHandle,
        ns: NamespaceId,
        mut shutdown: crate::shutdown::Shutdown,
    ) {
        let clients = Arc::new(Semaphore::new(self.config.max_clients));
        let mut connections = tokio::task::JoinSet::new();
        let (committer, queue) = mpsc::channel(self.config.max_clients);
        let committing = tokio::spawn(commit_loop(node.clone(), ns, queue));
        let mut next_id = 0u64;
        loop {
            let (mut stream, peer) = tokio::select! {
                () = shutdown.wait() => {
                    connections.shutdown().await;
                    drop(committer);
                    let _ = committing.await;
                    return;
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        warn!(error = %e, "redis: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = Arc::clone(&clients).try_acquire_owned() else {
                debug!(%peer, "redis: refusing a client over the limit");
                tokio::spawn(async move {
                    let _ = stream
                        .write_all(b"-ERR max number of clients reached\r\n")
                        .await;
                });
                continue;
            };
            next_id += 1;
            let connection = Connection {
                id: next_id,
                node: node.clone(),
                committer: committer.clone(),
                ns,
                config: Arc::clone(&self.config),
                proto: 2,
                authenticated: self.config.password.is_none(),
                name: None,
                cursors: HashMap::new(),
                next_cursor: 1,
            };
            connections.spawn(async move {
                if let Err(e) = connection.run(stream).await {
                    debug!(%peer, error = %e, "redis: connection ended");
                }
                drop(permit);
            });
        }
    }
}

/// One client's state.
struct Connection {
    id: u64,
    node: NodeHandle,
    committer: mpsc::Sender<Submission>,
    ns: NamespaceId,
    config: Arc<RedisConfig>,
    proto: u8,
    authenticated: bool,
    name: Option<Vec<u8>>,
    /// `SCAN` cursor number to the last key it returned.
    cursors: HashMap<u64, Vec<u8>>,
    next_cursor: u64,
}

/// What a command needs to be answered.
enum Slot {
    /// Its reply, already known.
    Ready(Reply),
    /// A store command.
    Data(Data),
}

/// A command that reads or writes the store.
enum Data {
    Get(Vec<u8>),
    Set {
        key: Vec<u8>,
        value: Vec<u8>,
        when: Option<Condition>,
        get: bool,
    },
    Del(Vec<Vec<u8>>),
    Exists(Vec<Vec<u8>>),
    MGet(Vec<Vec<u8>>),
    MSet(Vec<(Vec<u8>, Vec<u8>)>),
    Keys(Vec<u8>),
    Scan {
        after: Option<Vec<u8>>,
        pattern: Option<Vec<u8>>,
        count: usize,
    },
    DbSize,
    Type(Vec<u8>),
    Siblings(Vec<u8>),
}

#[derive(Clone, Copy)]
enum Condition {
    /// Only if the key is absent.
    Nx,
    /// Only if it is present.
    Xx,
}

/// Keys, and the key to go on after when there are more.
type Page = (Vec<Vec<u8>>, Option<Vec<u8>>);

/// A store job's answer to one [`Data`] command.
enum Out {
    Reply(Reply),
    /// A `SCAN` page and the key to go on after, if any.
    Page(Vec<Vec<u8>>, Option<Vec<u8>>),
}

impl Connection {
    async fn run(mut self, mut stream: TcpStream) -> std::io::Result<()> {
        let _ = stream.set_nodelay(true);
        let mut buf = Vec::with_capacity(16 * 1024);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut out = Vec::new();
        loop {
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..read]);
            let mut commands = Vec::new();
            let mut used = 0;
            let mut broken = None;
            loop {
                match resp::parse_command(&buf[used..], self.config.max_bulk) {
                    Ok(Some((args, len))) => {
                        used += len;
                        if !args.is_empty() {
                            commands.push(args);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        broken = Some(e);
                        break;
                    }
                }
            }
            buf.drain(..used);
            if broken.is_none() && buf.len() > MAX_QUERY {
                broken = Some(resp::ProtocolError::QueryTooLarge);
            }
            let quit = self.answer(commands, &mut out).await;
            if let Some(e) = &broken {
                // What came before the bad bytes is answered; then, as Redis does, the error
                // and the connection closes.
                Reply::err(e).write(self.proto, &mut out);
            }
            stream.write_all(&out).await?;
            out.clear();
            if quit || broken.is_some() {
                return Ok(());
            }
        }
    }

    /// Runs a batch of commands and appends their replies to `out`. True after `QUIT`.
    async fn answer(&mut self, commands: Vec<Vec<Vec<u8>>>, out: &mut Vec<u8>) -> bool {
        // Each command's reply, or None for a store command's, and the protocol version to
        // write it in: the one in force after the command (HELLO 3 answers in RESP3).
        let mut replies = Vec::with_capacity(commands.len());
        let mut data = Vec::new();
        let mut quit = false;
        for args in commands {
            if quit {
                break;
            }
            quit = is(&args[0], "QUIT");
            let slot = self.classify(args).await;
            let proto = self.proto;
            match slot {
                Slot::Ready(reply) => replies.push((Some(reply), proto)),
                Slot::Data(command) => {
                    data.push(command);
                    replies.push((None, proto));
                }
            }
        }
        let mut outs = self.run_data(data).await.into_iter();
        for (reply, proto) in replies {
            let reply = match reply {
                Some(reply) => reply,
                None => match outs.next() {
                    Some(Out::Reply(reply)) => reply,
                    Some(Out::Page(keys, next)) => self.scan_reply(keys, next),
                    None => Reply::err("the node has shut down"),
                },
            };
            reply.write(proto, out);
        }
        quit
    }

    fn scan_reply(&mut self, keys: Vec<Vec<u8>>, next: Option<Vec<u8>>) -> Reply {
        let cursor = match next {
            None => 0,
            Some(last) => {
                if self.cursors.len() >= CURSORS {
                    self.cursors.clear();
                }
                let cursor = self.next_cursor;
                self.next_cursor += 1;
                self.cursors.insert(cursor, last);
                cursor
            }
        };
        Reply::Array(vec![
            Reply::text(cursor.to_string()),
            Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
        ])
    }

    /// Runs the store commands of a batch, together with whatever other connections have
    /// waiting ([`commit_loop`]).
    async fn run_data(&self, data: Vec<Data>) -> Vec<Out> {
        if data.is_empty() {
            return Vec::new();
        }
        let (reply, outs) = oneshot::channel();
        if self.committer.send((data, reply)).await.is_err() {
            return Vec::new();
        }
        outs.await.unwrap_or_default()
    }

    /// Answers a connection command at once, or says which store command it is.
    async fn classify(&mut self, args: Vec<Vec<u8>>) -> Slot {
        let typed = args[0].clone();
        let name = String::from_utf8_lossy(&typed).to_ascii_uppercase();
        if !self.authenticated && !matches!(name.as_str(), "AUTH" | "HELLO" | "QUIT") {
            return Slot::Ready(Reply::Error("NOAUTH Authentication required.".into()));
        }
        let arity = |ok: bool| {
            (!ok).then(|| {
                Reply::err(format!(
                    "wrong number of arguments for '{}' command",
                    name.to_ascii_lowercase()
                ))
            })
        };
        let n = args.len();
        let checked = match name.as_str() {
            "GET" | "TYPE" | "WEFT.SIBLINGS" => arity(n == 2),
            "SET" => arity(n >= 3),
            "DEL" | "EXISTS" | "MGET" => arity(n >= 2),
            "MSET" => arity(n >= 3 && n % 2 == 1),
            "KEYS" => arity(n == 2),
            "SCAN" => arity(n >= 2),
            "DBSIZE" => arity(n == 1),
            "ECHO" => arity(n == 2),
            "SELECT" => arity(n == 2),
            "AUTH" => arity(n == 2 || n == 3),
            _ => None,
        };
        if let Some(error) = checked {
            return Slot::Ready(error);
        }
        let mut args = args.into_iter();
        args.next();
        let data = Slot::Data;
        let ready = Slot::Ready;
        match name.as_str() {
            "GET" => data(Data::Get(args.next().unwrap_or_default())),
            "TYPE" => data(Data::Type(args.next().unwrap_or_default())),
            "WEFT.SIBLINGS" => data(Data::Siblings(args.next().unwrap_or_default())),
            "SET" => match parse_set(args) {
                Ok(set) => data(set),
                Err(reply) => ready(reply),
            },
            "DEL" => data(Data::Del(args.collect())),
            "EXISTS" => data(Data::Exists(args.collect())),
            "MGET" => data(Data::MGet(args.collect())),
            "MSET" => {
                let mut pairs = Vec::new();
                while let (Some(key), Some(value)) = (args.next(), args.next()) {
                    pairs.push((key, value));
                }
                data(Data::MSet(pairs))
            }
            "KEYS" => data(Data::Keys(args.next().unwrap_or_default())),
            "SCAN" => match self.parse_scan(args) {
                Ok(Some(scan)) => data(scan),
                Ok(None) => ready(self.scan_reply(Vec::new(), None)),
                Err(reply) => ready(reply),
            },
            "DBSIZE" => data(Data::DbSize),
            "PING" => ready(match args.next() {
                Some(message) => Reply::Bulk(message),
                None => Reply::Status("PONG"),
            }),
            "ECHO" => ready(Reply::Bulk(args.next().unwrap_or_default())),
            "QUIT" => ready(Reply::Status("OK")),
            "SELECT" => ready(if args.next().as_deref() == Some(b"0") {
                Reply::Status("OK")
            } else {
                Reply::err("DB index is out of range")
            }),
            "AUTH" => {
                let args: Vec<Vec<u8>> = args.collect();
                let (user, password) = match &args[..] {
                    [password] => (None, password),
                    [user, password] => (Some(user), password),
                    _ => unreachable!("arity checked"),
                };
                ready(self.auth(user.map(Vec::as_slice), password))
            }
            "HELLO" => ready(self.hello(args.collect())),
            "CLIENT" => ready(self.client(args.collect())),
            "COMMAND" => ready(match args.next() {
                Some(sub) if is(&sub, "COUNT") => Reply::Integer(COMMANDS.len() as i64),
                // redis-cli asks for COMMAND DOCS to offer hints; none is fine.
                _ => Reply::Array(Vec::new()),
            }),
            "INFO" => ready(self.info().await),
            _ => {
                let mut text = format!(
                    "unknown command '{}', with args beginning with: ",
                    String::from_utf8_lossy(&typed)
                );
                for arg in args.take(16) {
                    text.push_str(&format!("'{}' ", String::from_utf8_lossy(&arg)));
                }
                ready(Reply::err(text))
            }
        }
    }

    fn auth(&mut self, user: Option<&[u8]>, password: &[u8]) -> Reply {
        let Some(expected) = &self.config.password else {
            return Reply::err(
                "AUTH <password> called without any password configured for the default user. \
                 Are you sure your configuration is correct?",
            );
        };
        let user_ok = user.is_none_or(|u| u == b"default");
        // Compare as hashes so the time taken does not depend on how much of it is right.
        if user_ok && blake3::hash(password) == blake3::hash(expected.as_bytes()) {
            self.authenticated = true;
            Reply::Status("OK")
        } else {
            Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
        }
    }

    fn hello(&mut self, args: Vec<Vec<u8>>) -> Reply {
        let mut args = args.into_iter();
        let mut proto = self.proto;
        if let Some(version) = args.next() {
            match std::str::from_utf8(&version)
                .ok()
                .and_then(|v| v.parse().ok())
            {
                Some(v @ (2 | 3)) => proto = v,
                Some(_) => return Reply::Error("NOPROTO unsupported protocol version".into()),
                None => return Reply::err("Protocol version is not an integer or out of range"),
            }
        }
        while let Some(option) = args.next() {
            if is(&option, "AUTH") {
                let (Some(user), Some(password)) = (args.next(), args.next()) else {
                    return Reply::err("Syntax error in HELLO option 'auth'");
                };
                if let Reply::Error(e) = self.auth(Some(&user), &password) {
                    return Reply::Error(e);
                }
            } else if is(&option, "SETNAME") {
                let Some(name) = args.next() else {
                    return Reply::err("Syntax error in HELLO option 'setname'");
                };
                self.name = Some(name);
            } else {
                return Reply::err(format!(
                    "Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&option)
                ));
            }
        }
        if !self.authenticated {
            return Reply::Error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into());
        }
        self.proto = proto;
        Reply::Map(vec![
            (Reply::text("server"), Reply::text("weft")),
            (
                Reply::text("version"),
                Reply::text(env!("CARGO_PKG_VERSION")),
            ),
            (Reply::text("proto"), Reply::Integer(i64::from(proto))),
            (Reply::text("id"), Reply::Integer(self.id as i64)),
            (Reply::text("mode"), Reply::text("standalone")),
            (Reply::text("role"), Reply::text("master")),
            (Reply::text("modules"), Reply::Array(Vec::new())),
        ])
    }

    fn client(&mut self, args: Vec<Vec<u8>>) -> Reply {
        match &args[..] {
            [sub, name] if is(sub, "SETNAME") => {
                if name.iter().any(|b| *b <= b' ' || *b > b'~') {
                    return Reply::err(
                        "Client names cannot contain spaces, newlines or special characters.",
                    );
                }
                self.name = (!name.is_empty()).then(|| name.clone());
                Reply::Status("OK")
            }
            [sub] if is(sub, "GETNAME") => self.name.clone().map_or(Reply::Null, Reply::Bulk),
            [sub] if is(sub, "ID") => Reply::Integer(self.id as i64),
            [sub, ..] => Reply::err(format!(
                "unknown subcommand '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(sub)
            )),
            [] => Reply::err("wrong number of arguments for 'client' command"),
        }
    }

    async fn info(&self) -> Reply {
        let mut text = format!(
            "# Server\r\nredis_version:7.0.0\r\nweft_version:{}\r\nredis_mode:standalone\r\n\r\n# Replication\r\nrole:master\r\n",
            env!("CARGO_PKG_VERSION")
        );
        if let Ok(status) = self.node.status().await {
            text.push_str(&format!(
                "weft_peer_id:{}\r\nconnected_peers:{}\r\n",
                status.peer_id,
                status.peers.len()
            ));
            for (i, peer) in status.peers.iter().enumerate() {
                text.push_str(&format!("peer{i}:{}\r\n", peer.id));
            }
            let authors: Vec<_> = status
                .feeds
                .iter()
                .filter(|f| f.namespace == self.ns)
                .collect();
            text.push_str(&format!("authors:{}\r\n", authors.len()));
            for (i, feed) in authors.iter().enumerate() {
                text.push_str(&format!(
                    "author{i}:id={},held={},best_remote={}\r\n",
                    feed.author, feed.held, feed.best_remote
                ));
            }
        }
        Reply::Bulk(text.into_bytes())
    }

    /// The scan asked for, or `None` when no key can match (a `TYPE` other than string).
    fn parse_scan(&self, mut args: impl Iterator<Item = Vec<u8>>) -> Result<Option<Data>, Reply> {
        let cursor = args.next().unwrap_or_default();
        let cursor: u64 = std::str::from_utf8(&cursor)
            .ok()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| Reply::err("invalid cursor"))?;
        // An unknown cursor (forgotten, or from another connection) starts over: SCAN may
        // return a key twice, never miss one.
        let after = self.cursors.get(&cursor).cloned();
        let (mut pattern, mut count, mut strings_only) = (None, SCAN_COUNT, false);
        while let Some(option) = args.next() {
            let value = args.next().ok_or_else(|| Reply::err("syntax error"))?;
            if is(&option, "MATCH") {
                pattern = Some(value);
            } else if is(&option, "COUNT") {
                count = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|c| c.parse().ok())
                    .filter(|&c| c > 0)
                    .ok_or_else(|| Reply::err("syntax error"))?;
            } else if is(&option, "TYPE") {
                // Every weft value is a string: no key has another type.
                strings_only |= !is(&value, "string");
            } else {
                return Err(Reply::err("syntax error"));
            }
        }
        if strings_only {
            return Ok(None);
        }
        Ok(Some(Data::Scan {
            after,
            pattern,
            count: count.min(100_000),
        }))
    }
}

/// A connection's store commands and where their answers go.
type Submission = (Vec<Data>, oneshot::Sender<Vec<Out>>);

/// The most store commands one job runs, so one job's latency stays bounded.
const JOB_COMMANDS: usize = 16 * 1024;

/// Runs the connections' store commands: everything waiting when the store is free goes into
/// one job, in arrival order, so the writes of all connections share one transaction and one
/// signature (group commit across connections). With a write among them the job goes through
/// [`NodeHandle::append`], so what it wrote is gossiped.
async fn commit_loop(node: NodeHandle, ns: NamespaceId, mut queue: mpsc::Receiver<Submission>) {
    while let Some(first) = queue.recv().await {
        let mut submissions = vec![first];
        let mut commands = submissions[0].0.len();
        while commands < JOB_COMMANDS {
            match queue.try_recv() {
                Ok(next) => {
                    commands += next.0.len();
                    submissions.push(next);
                }
                Err(_) => break,
            }
        }
        let (data, replies): (Vec<Vec<Data>>, Vec<_>) = submissions.into_iter().unzip();
        let lengths: Vec<usize> = data.iter().map(Vec::len).collect();
        let data: Vec<Data> = data.into_iter().flatten().collect();
        let writes = data.iter().any(Data::writes);
        let job = move |store: &Store| Ok(Batch::new(store, ns).run(data));
        let result = if writes {
            node.append(ns, job).await
        } else {
            node.worker()
                .run(job)
                .await
                .map_err(|_| crate::NodeError::Closed)
                .and_then(|r: Result<_, weft_storage::Error>| Ok(r?))
        };
        let mut outs = match result {
            Ok(outs) => outs.into_iter(),
            Err(e) => {
                // The connections answer "the node has shut down" for what is missing.
                warn!(error = %e, "redis: a batch failed");
                Vec::new().into_iter()
            }
        };
        for (length, reply) in lengths.into_iter().zip(replies) {
            let _ = reply.send(outs.by_ref().take(length).collect());
        }
    }
}

/// The commands this front end knows, for `COMMAND COUNT`.
const COMMANDS: [&str; 20] = [
    "PING",
    "ECHO",
    "HELLO",
    "AUTH",
    "SELECT",
    "GET",
    "SET",
    "DEL",
    "EXISTS",
    "MGET",
    "MSET",
    "KEYS",
    "SCAN",
    "DBSIZE",
    "TYPE",
    "INFO",
    "COMMAND",
    "CLIENT",
    "QUIT",
    "WEFT.SIBLINGS",
];

fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

fn parse_set(mut args: impl Iterator<Item = Vec<u8>>) -> Result<Data, Reply> {
    let (Some(key), Some(value)) = (args.next(), args.next()) else {
        return Err(Reply::err("wrong number of arguments for 'set' command"));
    };
    let (mut when, mut get) = (None, false);
    for option in args {
        if is(&option, "NX") && when.is_none() {
            when = Some(Condition::Nx);
        } else if is(&option, "XX") && when.is_none() {
            when = Some(Condition::Xx);
        } else if is(&option, "GET") {
            get = true;
        } else if ["EX", "PX", "EXAT", "PXAT", "KEEPTTL"]
            .iter()
            .any(|o| is(&option, o))
        {
            return Err(Reply::err(
                "EX, PX, EXAT, PXAT and KEEPTTL are not supported: weft keys do not expire",
            ));
        } else {
            return Err(Reply::err("syntax error"));
        }
    }
    Ok(Data::Set {
        key,
        value,
        when,
        get,
    })
}

impl Data {
    fn writes(&self) -> bool {
        matches!(self, Data::Set { .. } | Data::Del(_) | Data::MSet(_))
    }
}

/// A batch's store commands on the store's thread. Writes gather in `ops`, and reads see them
/// through `overlay`, until a command that reads many keys (or the end) commits them.
struct Batch<'a> {
    store: &'a Store,
    /// One read transaction for the reads between commits, rather than one per key.
    snapshot: Option<weft_storage::Snapshot<'a>>,
    ns: NamespaceId,
    overlay: HashMap<Vec<u8>, Option<Vec<u8>>>,
    ops: Vec<(Vec<u8>, Op<Vec<u8>>)>,
    /// For each command with uncommitted writes: its index in the outputs and its ops' range.
    writers: Vec<(usize, std::ops::Range<usize>)>,
}

impl<'a> Batch<'a> {
    fn new(store: &'a Store, ns: NamespaceId) -> Batch<'a> {
        Batch {
            store,
            snapshot: None,
            ns,
            overlay: HashMap::new(),
            ops: Vec::new(),
            writers: Vec::new(),
        }
    }

    fn run(mut self, data: Vec<Data>) -> Vec<Out> {
        let mut outs = Vec::with_capacity(data.len());
        for command in data {
            if matches!(
                command,
                Data::Keys(_) | Data::Scan { .. } | Data::DbSize | Data::Siblings(_)
            ) {
                self.commit(&mut outs);
            }
            let index = outs.len();
            let first_op = self.ops.len();
            let out = match self.one(command) {
                Ok(out) => out,
                Err(e) => {
                    // Nothing of a refused command stays pending.
                    self.ops.truncate(first_op);
                    Out::Reply(Reply::err(e))
                }
            };
            if self.ops.len() > first_op {
                self.writers.push((index, first_op..self.ops.len()));
            }
            outs.push(out);
        }
        self.commit(&mut outs);
        outs
    }

    /// Writes the pending ops in one transaction. If that fails, each command's ops are tried
    /// alone, so only the commands at fault answer with the error.
    fn commit(&mut self, outs: &mut [Out]) {
        let ops = std::mem::take(&mut self.ops);
        let writers = std::mem::take(&mut self.writers);
        self.overlay.clear();
        if !ops.is_empty() {
            // Reads after the commit must see it.
            self.snapshot = None;
        }
        if ops.is_empty() || self.store.write(&self.ns, ops.clone()).is_ok() {
            return;
        }
        for (index, range) in writers {
            if let Err(e) = self.store.write(&self.ns, ops[range].to_vec()) {
                outs[index] = Out::Reply(Reply::err(e));
            }
        }
    }

    fn value(&mut self, key: &[u8]) -> weft_storage::Result<Option<Vec<u8>>> {
        if let Some(value) = self.overlay.get(key) {
            return Ok(value.clone());
        }
        let snapshot = match &mut self.snapshot {
            Some(snapshot) => snapshot,
            empty => empty.insert(self.store.snapshot()?),
        };
        snapshot.get(&self.ns, key)
    }

    fn write(&mut self, key: Vec<u8>, op: Op<Vec<u8>>) -> weft_storage::Result<()> {
        self.store.validate(&key, &op)?;
        if key.starts_with(RESERVED_PREFIX) {
            return Err(weft_storage::Error::ReservedKey);
        }
        self.overlay.insert(
            key.clone(),
            match &op {
                Op::Put(value) => Some(value.clone()),
                Op::Delete => None,
            },
        );
        self.ops.push((key, op));
        Ok(())
    }

    fn one(&mut self, command: Data) -> weft_storage::Result<Out> {
        let reply = match command {
            Data::Get(key) => self.value(&key)?.map_or(Reply::Null, Reply::Bulk),
            Data::Type(key) => Reply::Status(if self.value(&key)?.is_some() {
                "string"
            } else {
                "none"
            }),
            Data::Set {
                key,
                value,
                when,
                get,
            } => {
                let old = self.value(&key)?;
                let go = match when {
                    None => true,
                    Some(Condition::Nx) => old.is_none(),
                    Some(Condition::Xx) => old.is_some(),
                };
                if go {
                    self.write(key, Op::Put(value))?;
                }
                match (get, go) {
                    (true, _) => old.map_or(Reply::Null, Reply::Bulk),
                    (false, true) => Reply::Status("OK"),
                    (false, false) => Reply::Null,
                }
            }
            Data::Del(keys) => {
                let mut deleted = 0;
                for key in keys {
                    if self.value(&key)?.is_some() {
                        self.write(key, Op::Delete)?;
                        deleted += 1;
                    }
                }
                Reply::Integer(deleted)
            }
            Data::Exists(keys) => {
                let mut present = 0;
                for key in &keys {
                    present += i64::from(self.value(key)?.is_some());
                }
                Reply::Integer(present)
            }
            Data::MGet(keys) => Reply::Array(
                keys.iter()
                    .map(|key| Ok(self.value(key)?.map_or(Reply::Null, Reply::Bulk)))
                    .collect::<weft_storage::Result<_>>()?,
            ),
            Data::MSet(pairs) => {
                for (key, value) in pairs {
                    self.write(key, Op::Put(value))?;
                }
                Reply::Status("OK")
            }
            Data::Keys(pattern) => Reply::Array(
                self.keys(&pattern, None, usize::MAX)?
                    .0
                    .into_iter()
                    .map(Reply::Bulk)
                    .collect(),
            ),
            Data::Scan {
                after,
                pattern,
                count,
            } => {
                let pattern = pattern.unwrap_or_else(|| b"*".to_vec());
                let (keys, next) = self.keys(&pattern, after.as_deref(), count)?;
                return Ok(Out::Page(keys, next));
            }
            Data::DbSize => {
                let mut count = 0;
                for row in self.store.scan(&self.ns, b"", false)? {
                    row?;
                    count += 1;
                }
                Reply::Integer(count)
            }
            Data::Siblings(key) => Reply::Array(
                self.store
                    .get_all(&self.ns, &key)?
                    .into_iter()
                    .map(|version| {
                        Reply::Map(vec![
                            (
                                Reply::text("author"),
                                Reply::text(version.id.author.to_string()),
                            ),
                            (Reply::text("seq"), Reply::Integer(version.id.seq as i64)),
                            (
                                Reply::text("timestamp"),
                                Reply::text(weft_storage::format_timestamp(version.timestamp)),
                            ),
                            (
                                Reply::text("value"),
                                version.value.map_or(Reply::Null, Reply::Bulk),
                            ),
                        ])
                    })
                    .collect(),
            ),
        };
        Ok(Out::Reply(reply))
    }

    /// Keys matching `pattern` after `after`, looking at no more than `examine` keys: the keys
    /// and, when it stopped early, the last key looked at.
    fn keys(
        &self,
        pattern: &[u8],
        after: Option<&[u8]>,
        examine: usize,
    ) -> weft_storage::Result<Page> {
        // The pattern's literal start narrows the scan to a prefix.
        let literal = pattern
            .iter()
            .position(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
            .unwrap_or(pattern.len());
        let mut keys = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        let rows = self
            .store
            .scan_after(&self.ns, &pattern[..literal], after, false)?;
        for (examined, row) in rows.enumerate() {
            let (key, _) = row?;
            if examined == examine {
                // There is more: go on after the last key looked at.
                return Ok((keys, last));
            }
            if !key.starts_with(RESERVED_PREFIX) && resp::glob_match(pattern, &key) {
                keys.push(key.clone());
            }
            last = Some(key);
        }
        Ok((keys, None))
    }
}
