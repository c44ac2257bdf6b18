//! The Redis front end over real TCP on 127.0.0.1, driven by a raw RESP client: commands and
//! their exact replies, pipelining and group commit, RESP3, passwords, bad input, and the
//! limits, set and default.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};
use weft_node::config::{NodeConfig, load_identity};
use weft_node::redis::{RedisAddr, RedisConfig, RedisError, RedisServer};
use weft_node::{Node, NodeHandle};
use weft_storage::{Access, Options, Store};

const LIMIT: Duration = Duration::from_secs(20);

/// A reply as the client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum R {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<R>),
    Map(Vec<(R, R)>),
}

fn bulk(text: &str) -> R {
    R::Bulk(text.as_bytes().to_vec())
}

fn ok() -> R {
    R::Status("OK".into())
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Io for S {}

struct Client {
    stream: BufReader<Box<dyn Io>>,
}

impl Client {
    async fn connect(addr: &RedisAddr) -> Client {
        let stream: Box<dyn Io> = match addr {
            RedisAddr::Tcp(addr) => Box::new(TcpStream::connect(addr).await.expect("connect")),
            RedisAddr::Unix(path) => Box::new(UnixStream::connect(path).await.expect("connect")),
        };
        Client {
            stream: BufReader::new(stream),
        }
    }

    fn encode(args: &[&[u8]]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.expect("send");
    }

    async fn call(&mut self, args: &[&str]) -> R {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send_raw(&Client::encode(&args)).await;
        self.reply().await.expect("a reply")
    }

    async fn line(&mut self) -> Option<String> {
        let mut line = Vec::new();
        loop {
            let byte = tokio::time::timeout(LIMIT, self.stream.read_u8())
                .await
                .expect("a reply in time")
                .ok()?;
            line.push(byte);
            if line.ends_with(b"\r\n") {
                line.truncate(line.len() - 2);
                return Some(String::from_utf8(line).expect("utf-8 header"));
            }
        }
    }

    /// The next reply, or `None` when the server closed the connection.
    async fn reply(&mut self) -> Option<R> {
        let line = self.line().await?;
        let (kind, rest) = line.split_at(1);
        let number = || rest.parse::<i64>().expect("a number");
        Some(match kind {
            "+" => R::Status(rest.into()),
            "-" => R::Error(rest.into()),
            ":" => R::Int(number()),
            "_" => R::Nil,
            "$" if number() < 0 => R::Nil,
            "$" => {
                let mut bytes = vec![0; number() as usize + 2];
                self.stream.read_exact(&mut bytes).await.ok()?;
                bytes.truncate(bytes.len() - 2);
                R::Bulk(bytes)
            }
            "*" => {
                let mut items = Vec::new();
                for _ in 0..number() {
                    items.push(Box::pin(self.reply()).await?);
                }
                R::Array(items)
            }
            "%" => {
                let mut pairs = Vec::new();
                for _ in 0..number() {
                    let key = Box::pin(self.reply()).await?;
                    pairs.push((key, Box::pin(self.reply()).await?));
                }
                R::Map(pairs)
            }
            other => panic!("unknown reply type {other:?} in {line:?}"),
        })
    }

    /// True when the server has closed the connection.
    async fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(LIMIT, self.stream.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    node: Node,
    handle: NodeHandle,
    addr: RedisAddr,
    stop_redis: weft_node::shutdown::Trigger,
    redis: tokio::task::JoinHandle<()>,
}

impl Fixture {
    async fn start(configure: impl FnOnce(&mut RedisConfig)) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = Options {
            durable: false,
            ..Options::default()
        };
        let store = Store::init(dir.path(), options, Access::Open).expect("init");
        let ns = store.default_namespace();
        let key = load_identity(dir.path()).expect("identity");
        let config = NodeConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")],
            peers: Vec::new(),
            mdns: false,
            sync_interval: Duration::from_secs(10),
            bootstrap: Vec::new(),
            nat_probe_private: false,
        };
        let node = Node::start(store, key, config).await.expect("node starts");
        let mut redis = RedisConfig::new("127.0.0.1:0".parse::<RedisAddr>().expect("addr"));
        configure(&mut redis);
        let server = RedisServer::bind(redis).await.expect("bind");
        let addr = server.local_addr().expect("address");
        let handle = node.handle();
        let (stop_redis, shutdown) = weft_node::shutdown::channel();
        let redis = tokio::spawn(server.serve(handle.clone(), ns, shutdown));
        Fixture {
            _dir: dir,
            node,
            handle,
            addr,
            stop_redis,
            redis,
        }
    }

    /// Stops the listener, which closes its connections, then the node.
    async fn stop(self) {
        self.stop_redis.fire();
        tokio::time::timeout(LIMIT, self.redis)
            .await
            .expect("the listener stops")
            .expect("the listener did not panic");
        drop(self.handle);
        tokio::time::timeout(LIMIT, self.node.shutdown())
            .await
            .expect("the node stops")
            .expect("no part of the node panicked");
    }

    async fn client(&self) -> Client {
        Client::connect(&self.addr).await
    }

    async fn feed_length(&self) -> u64 {
        let status = self.handle.status().await.expect("status");
        status.feeds.iter().map(|f| f.held).sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_commands_answer_as_redis_does() {
    let fixture = Fixture::start(|_| {}).await;
    let mut c = fixture.client().await;
    assert_eq!(c.call(&["PING"]).await, R::Status("PONG".into()));
    assert_eq!(c.call(&["ECHO", "hi"]).await, bulk("hi"));
    assert_eq!(c.call(&["GET", "a"]).await, R::Nil);
    assert_eq!(c.call(&["SET", "a", "1"]).await, ok());
    assert_eq!(c.call(&["get", "a"]).await, bulk("1"));
    assert_eq!(c.call(&["SET", "a", "2", "NX"]).await, R::Nil);
    assert_eq!(c.call(&["SET", "b", "2", "XX"]).await, R::Nil);
    assert_eq!(c.call(&["SET", "a", "3", "XX", "GET"]).await, bulk("1"));
    assert_eq!(c.call(&["SET", "c", "1", "NX", "GET"]).await, R::Nil);
    assert_eq!(c.call(&["MSET", "x", "1", "y", "2"]).await, ok());
    assert_eq!(
        c.call(&["MGET", "a", "nope", "y"]).await,
        R::Array(vec![bulk("3"), R::Nil, bulk("2")])
    );
    assert_eq!(c.call(&["EXISTS", "a", "a", "nope"]).await, R::Int(2));
    assert_eq!(c.call(&["DEL", "x", "nope"]).await, R::Int(1));
    assert_eq!(c.call(&["TYPE", "a"]).await, R::Status("string".into()));
    assert_eq!(c.call(&["TYPE", "x"]).await, R::Status("none".into()));
    assert_eq!(c.call(&["DBSIZE"]).await, R::Int(3));
    assert_eq!(
        c.call(&["KEYS", "*"]).await,
        R::Array(vec![bulk("a"), bulk("c"), bulk("y")])
    );
    assert_eq!(c.call(&["KEYS", "[ab]"]).await, R::Array(vec![bulk("a")]));
    assert_eq!(
        c.call(&["SET", "k", "v", "EX", "10"]).await,
        R::Error(
            "ERR EX, PX, EXAT, PXAT and KEEPTTL are not supported: weft keys do not expire".into()
        )
    );
    assert_eq!(
        c.call(&["SET", "k", "v", "NX", "XX"]).await,
        R::Error("ERR syntax error".into())
    );
    assert_eq!(
        c.call(&["FOO", "bar"]).await,
        R::Error("ERR unknown command 'FOO', with args beginning with: 'bar' ".into())
    );
    assert_eq!(
        c.call(&["GET"]).await,
        R::Error("ERR wrong number of arguments for 'get' command".into())
    );
    assert_eq!(c.call(&["SELECT", "0"]).await, ok());
    assert_eq!(
        c.call(&["SELECT", "1"]).await,
        R::Error("ERR DB index is out of range".into())
    );
    assert_eq!(
        c.call(&["SET", "", "v"]).await,
        R::Error("ERR keys must not be empty".into())
    );
    assert_eq!(c.call(&["CLIENT", "GETNAME"]).await, R::Nil);
    assert_eq!(c.call(&["CLIENT", "SETNAME", "me"]).await, ok());
    assert_eq!(c.call(&["CLIENT", "GETNAME"]).await, bulk("me"));
    let R::Bulk(info) = c.call(&["INFO"]).await else {
        panic!("INFO is a bulk string")
    };
    let info = String::from_utf8(info).expect("text");
    assert!(
        info.contains("# Replication") && info.contains("authors:1"),
        "{info}"
    );
    match c.call(&["WEFT.SIBLINGS", "a"]).await {
        R::Array(versions) => assert_eq!(versions.len(), 1, "{versions:?}"),
        other => panic!("siblings: {other:?}"),
    }
    // Every write went into the feed: a, a, c, x, y, the delete of x.
    assert_eq!(fixture.feed_length().await, 6);
    assert_eq!(c.call(&["QUIT"]).await, ok());
    assert!(c.closed().await, "QUIT closes the connection");
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_visits_every_key_once_in_pages() {
    let fixture = Fixture::start(|_| {}).await;
    let mut c = fixture.client().await;
    let mut mset = vec!["MSET".to_string()];
    for i in 0..95 {
        mset.push(format!("key:{i:03}"));
        mset.push(i.to_string());
    }
    mset.extend(["other".into(), "x".into()]);
    let args: Vec<&str> = mset.iter().map(String::as_str).collect();
    assert_eq!(c.call(&args).await, ok());
    let (mut cursor, mut seen, mut pages) = ("0".to_string(), Vec::new(), 0);
    loop {
        let R::Array(reply) = c
            .call(&["SCAN", &cursor, "MATCH", "key:*", "COUNT", "10"])
            .await
        else {
            panic!("SCAN replies with an array")
        };
        let [R::Bulk(next), R::Array(keys)] = &reply[..] else {
            panic!("SCAN reply {reply:?}")
        };
        seen.extend(keys.iter().cloned());
        pages += 1;
        cursor = String::from_utf8(next.clone()).expect("cursor");
        if cursor == "0" {
            break;
        }
        assert!(pages < 100, "SCAN does not end");
    }
    let expected: Vec<R> = (0..95).map(|i| bulk(&format!("key:{i:03}"))).collect();
    assert_eq!(seen, expected);
    assert!(pages >= 10, "{pages} pages for 95 keys with COUNT 10");
    // Every weft value is a string: a scan for another type finds nothing, in one page.
    assert_eq!(
        c.call(&["SCAN", "0", "TYPE", "hash"]).await,
        R::Array(vec![bulk("0"), R::Array(Vec::new())])
    );
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_is_answered_in_order_and_every_write_lands() {
    let fixture = Fixture::start(|_| {}).await;
    let mut c = fixture.client().await;
    let mut pipeline = Vec::new();
    for i in 0..200 {
        let key = format!("p{}", i % 50);
        let value = i.to_string();
        pipeline.extend(Client::encode(&[b"SET", key.as_bytes(), value.as_bytes()]));
        pipeline.extend(Client::encode(&[b"GET", key.as_bytes()]));
    }
    c.send_raw(&pipeline).await;
    for i in 0..200 {
        assert_eq!(c.reply().await, Some(ok()), "SET {i}");
        // A read after a write in the same pipeline sees it.
        assert_eq!(c.reply().await, Some(bulk(&i.to_string())), "GET {i}");
    }
    assert_eq!(fixture.feed_length().await, 200);
    assert_eq!(c.call(&["DBSIZE"]).await, R::Int(50));
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_after_hello_3() {
    let fixture = Fixture::start(|_| {}).await;
    let mut c = fixture.client().await;
    let R::Map(hello) = c.call(&["HELLO", "3"]).await else {
        panic!("HELLO 3 answers with a map")
    };
    assert!(hello.contains(&(bulk("proto"), R::Int(3))), "{hello:?}");
    // RESP3 nulls are `_`, which the reader maps to Nil; check the bytes too.
    c.send_raw(&Client::encode(&[b"GET", b"nope"])).await;
    assert_eq!(c.line().await.as_deref(), Some("_"));
    assert_eq!(
        c.call(&["HELLO", "4"]).await,
        R::Error("NOPROTO unsupported protocol version".into())
    );
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_is_required_before_anything_else() {
    let public = RedisConfig::new("0.0.0.0:0".parse::<RedisAddr>().expect("addr"));
    assert!(matches!(
        RedisServer::bind(public).await,
        Err(RedisError::NeedsPassword(_))
    ));
    let fixture = Fixture::start(|c| c.password = Some("sesame".into())).await;
    let mut c = fixture.client().await;
    assert_eq!(
        c.call(&["SET", "a", "1"]).await,
        R::Error("NOAUTH Authentication required.".into())
    );
    assert_eq!(
        c.call(&["AUTH", "wrong"]).await,
        R::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
    );
    assert_eq!(c.call(&["AUTH", "default", "sesame"]).await, ok());
    assert_eq!(c.call(&["SET", "a", "1"]).await, ok());
    let mut other = fixture.client().await;
    assert_eq!(
        other.call(&["GET", "a"]).await,
        R::Error("NOAUTH Authentication required.".into())
    );
    let R::Map(_) = other
        .call(&["HELLO", "3", "AUTH", "default", "sesame"])
        .await
    else {
        panic!("HELLO with AUTH authenticates")
    };
    assert_eq!(other.call(&["GET", "a"]).await, bulk("1"));
    assert_eq!(
        fixture.feed_length().await,
        1,
        "nothing written before AUTH"
    );
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_an_error_and_a_closed_connection_and_writes_nothing() {
    let fixture = Fixture::start(|c| c.max_bulk = 8192).await;
    let cases: [(&[u8], &str); 4] = [
        (
            b"*2\r\n$3\r\nSET\r\n+a\r\n",
            "ERR Protocol error: expected '$', got '+'",
        ),
        (b"*x\r\n", "ERR Protocol error: invalid multibulk length"),
        (
            b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$9000\r\n",
            "ERR Protocol error: invalid bulk length",
        ),
        (
            b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nxyz",
            "ERR Protocol error: bulk string not terminated by CRLF",
        ),
    ];
    for (bytes, error) in cases {
        let mut c = fixture.client().await;
        // A good command first: it is answered before the bad bytes close the connection.
        let mut sent = Client::encode(&[b"PING"]);
        sent.extend_from_slice(bytes);
        c.send_raw(&sent).await;
        assert_eq!(c.reply().await, Some(R::Status("PONG".into())));
        assert_eq!(c.reply().await, Some(R::Error(error.into())), "{bytes:?}");
        assert!(c.closed().await, "{bytes:?}: the connection stays open");
    }
    // An array cut off mid-command, then the client goes away: nothing is written.
    let mut c = fixture.client().await;
    c.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n").await;
    drop(c);
    let mut c = fixture.client().await;
    assert_eq!(c.call(&["DBSIZE"]).await, R::Int(0));
    assert_eq!(fixture.feed_length().await, 0);
    // A value the store refuses is an error reply; the connection goes on.
    let big = "v".repeat(1000);
    let key = "k".repeat(5000);
    assert!(matches!(c.call(&["SET", &key, &big]).await, R::Error(e) if e.contains("key")));
    assert_eq!(c.call(&["PING"]).await, R::Status("PONG".into()));
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_refused_clearly() {
    const LIMIT_CLIENTS: usize = 50;
    let fixture = Fixture::start(|c| c.max_clients = LIMIT_CLIENTS).await;
    let mut idle = Vec::new();
    for _ in 0..LIMIT_CLIENTS {
        let mut c = fixture.client().await;
        assert_eq!(c.call(&["PING"]).await, R::Status("PONG".into()));
        idle.push(c);
    }
    // Many more than the limit: each is told why and closed, and none is served.
    for _ in 0..500 {
        let mut c = fixture.client().await;
        assert_eq!(
            c.reply().await,
            Some(R::Error("ERR max number of clients reached".into()))
        );
        assert!(c.closed().await);
    }
    // Room again once a client leaves.
    drop(idle.pop());
    let started = std::time::Instant::now();
    loop {
        let mut c = fixture.client().await;
        c.send_raw(&Client::encode(&[b"PING"])).await;
        match c.reply().await {
            Some(R::Status(pong)) if pong == "PONG" => break,
            other => assert!(
                started.elapsed() < LIMIT,
                "no room after a client left: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pipelines_all_land_and_each_sees_its_own_writes() {
    let fixture = Fixture::start(|_| {}).await;
    let clients: Vec<_> = (0..20)
        .map(|client| {
            let addr = fixture.addr.clone();
            tokio::spawn(async move {
                let mut c = Client::connect(&addr).await;
                let mut pipeline = Vec::new();
                for i in 0..50 {
                    let key = format!("c{client}/{i}");
                    pipeline.extend(Client::encode(&[b"SET", key.as_bytes(), b"v"]));
                    pipeline.extend(Client::encode(&[b"EXISTS", key.as_bytes()]));
                }
                c.send_raw(&pipeline).await;
                for i in 0..50 {
                    assert_eq!(c.reply().await, Some(ok()), "client {client} SET {i}");
                    assert_eq!(
                        c.reply().await,
                        Some(R::Int(1)),
                        "client {client} EXISTS {i}"
                    );
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("a client panicked");
    }
    assert_eq!(fixture.feed_length().await, 1000);
    assert_eq!(fixture.client().await.call(&["DBSIZE"]).await, R::Int(1000));
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_make_the_node_buffer_much_before_auth() {
    let fixture = Fixture::start(|c| c.password = Some("sesame".into())).await;
    // A bulk string announced over the pre-AUTH limit is refused at its header.
    let mut big = fixture.client().await;
    big.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$100000\r\n")
        .await;
    assert_eq!(
        big.reply().await,
        Some(R::Error("ERR Protocol error: invalid bulk length".into()))
    );
    assert!(big.closed().await, "the connection stays open");
    // Many small pieces of a command that never ends fill no more than the limit.
    let mut endless = fixture.client().await;
    let mut piece = b"*100000\r\n".to_vec();
    for _ in 0..4_000 {
        piece.extend_from_slice(b"$1\r\na\r\n");
    }
    endless.send_raw(&piece).await;
    assert_eq!(
        endless.reply().await,
        Some(R::Error(
            "ERR Protocol error: query buffer over the limit".into()
        ))
    );
    assert!(endless.closed().await);
    // After AUTH, in the same write, a large value is fine.
    let mut member = fixture.client().await;
    let value = vec![b'v'; 100_000];
    let mut both = Client::encode(&[b"AUTH", b"sesame"]);
    both.extend(Client::encode(&[b"SET", b"big", &value]));
    member.send_raw(&both).await;
    assert_eq!(member.reply().await, Some(ok()));
    assert_eq!(member.reply().await, Some(ok()));
    assert_eq!(member.call(&["GET", "big"]).await, R::Bulk(value));
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_is_disconnected_after_the_timeout() {
    let fixture = Fixture::start(|c| c.idle_timeout = Some(Duration::from_secs(1))).await;
    let mut idle = fixture.client().await;
    let mut busy = fixture.client().await;
    let start = std::time::Instant::now();
    // Ten times a second, the busy client is never idle for long.
    while start.elapsed() < Duration::from_secs(3) {
        assert_eq!(busy.call(&["PING"]).await, R::Status("PONG".into()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(idle.closed().await, "the idle client was kept");
    assert_eq!(busy.call(&["PING"]).await, R::Status("PONG".into()));
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_socket_is_private_to_its_user() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("redis.sock");
    // Not over a file that is not a socket.
    std::fs::write(&path, b"mine").expect("write");
    let taken = RedisConfig::new(RedisAddr::Unix(path.clone()));
    assert!(matches!(
        RedisServer::bind(taken).await,
        Err(RedisError::Bind { .. })
    ));
    assert_eq!(
        std::fs::read(&path).expect("read"),
        b"mine",
        "the file was touched"
    );
    std::fs::remove_file(&path).expect("rm");

    assert_eq!(
        "unix:/run/weft.sock".parse::<RedisAddr>().expect("parses"),
        RedisAddr::Unix("/run/weft.sock".into())
    );
    assert!("unix:".parse::<RedisAddr>().is_err());
    assert!("localhost".parse::<RedisAddr>().is_err());

    let unix = path.clone();
    let fixture = Fixture::start(move |c| c.addr = RedisAddr::Unix(unix)).await;
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&path).expect("socket").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "other local users could connect");
    let mut c = fixture.client().await;
    assert_eq!(c.call(&["SET", "a", "1"]).await, ok());
    assert_eq!(c.call(&["GET", "a"]).await, bulk("1"));
    fixture.stop().await;
    assert!(!path.exists(), "the socket is left behind");
}

/// The store's commit count, once the jobs before now have reported theirs.
async fn commits(fixture: &Fixture) -> u64 {
    tokio::time::timeout(LIMIT, fixture.handle.worker().run(|_| ()))
        .await
        .expect("the store answers in time")
        .expect("the store runs");
    *fixture.handle.worker().commits().borrow()
}

/// Group commit: the writes one read of a connection completes are one transaction (and so
/// one signed head), and the pipelines of connections that wait while the store is busy all
/// go into the next one together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_is_one_commit_and_waiting_connections_share_the_next() {
    let fixture = Fixture::start(|_| {}).await;
    let mut c = fixture.client().await;
    assert_eq!(c.call(&["PING"]).await, R::Status("PONG".into()));
    let before = commits(&fixture).await;
    let mut pipeline = Vec::new();
    for i in 0..100 {
        pipeline.extend(Client::encode(&[
            b"SET",
            format!("one/{i}").as_bytes(),
            b"v",
        ]));
    }
    c.send_raw(&pipeline).await;
    for i in 0..100 {
        assert_eq!(c.reply().await, Some(ok()), "SET {i}");
    }
    assert_eq!(commits(&fixture).await - before, 1, "100 SETs, one commit");
    assert_eq!(fixture.feed_length().await, 100);

    // The store is held busy while ten connections send their pipelines: the first one's job
    // waits behind it, and the other nine are taken together after.
    let before = commits(&fixture).await;
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (started, blocking) = std::sync::mpsc::channel::<()>();
    let worker = fixture.handle.worker().clone();
    let blocker = tokio::spawn(async move {
        worker
            .run(move |_| {
                let _ = started.send(());
                held.recv_timeout(LIMIT)
            })
            .await
    });
    tokio::task::spawn_blocking(move || blocking.recv_timeout(LIMIT))
        .await
        .expect("no panic")
        .expect("the store runs the blocker");
    let mut clients = Vec::new();
    for client in 0..10 {
        let mut c = fixture.client().await;
        let mut pipeline = Vec::new();
        for i in 0..10 {
            let key = format!("many/{client}/{i}");
            pipeline.extend(Client::encode(&[b"SET", key.as_bytes(), b"v"]));
        }
        c.send_raw(&pipeline).await;
        clients.push(c);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    release.send(()).expect("the store waits");
    for (client, c) in clients.iter_mut().enumerate() {
        for i in 0..10 {
            assert_eq!(c.reply().await, Some(ok()), "client {client} SET {i}");
        }
    }
    tokio::time::timeout(LIMIT, blocker)
        .await
        .expect("the blocker ends")
        .expect("no panic")
        .expect("the store ran the blocker")
        .expect("released in time");
    let shared = commits(&fixture).await - before;
    assert!(shared <= 2, "ten waiting pipelines took {shared} commits");
    assert_eq!(fixture.feed_length().await, 200);
    fixture.stop().await;
}

/// Lets this process open `files` files, as far as the hard limit allows: a test that opens
/// a thousand connections to a server in the same process needs two thousand.
fn allow_open_files(files: u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|current| current < files) {
        limit.current = Some(limit.maximum.map_or(files, |maximum| maximum.min(files)));
        setrlimit(Resource::Nofile, limit).expect("raise the open file limit");
    }
}

/// The limits a node starts with: bulk strings up to 1 MiB, so a value at the store's limit
/// goes through, and one byte more closes the connection; 1,000 clients, the next refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_limits_are_1_mib_bulk_strings_and_1000_clients() {
    allow_open_files(2_000 + 256);
    let fixture = Fixture::start(|_| {}).await;
    let mut c = fixture.client().await;
    let value = "v".repeat(1 << 20);
    assert_eq!(c.call(&["SET", "big", &value]).await, ok());
    assert_eq!(c.call(&["GET", "big"]).await, bulk(&value));
    let mut over = fixture.client().await;
    over.send_raw(b"*3\r\n$3\r\nSET\r\n$4\r\nbig2\r\n$1048577\r\n")
        .await;
    assert_eq!(
        over.reply().await,
        Some(R::Error("ERR Protocol error: invalid bulk length".into()))
    );
    assert!(over.closed().await);

    let mut clients = vec![c];
    while clients.len() < 1000 {
        let mut c = fixture.client().await;
        assert_eq!(
            c.call(&["PING"]).await,
            R::Status("PONG".into()),
            "client {}",
            clients.len()
        );
        clients.push(c);
    }
    let mut refused = fixture.client().await;
    assert_eq!(
        refused.reply().await,
        Some(R::Error("ERR max number of clients reached".into()))
    );
    assert!(refused.closed().await);
    assert_eq!(clients[999].call(&["DBSIZE"]).await, R::Int(1));
    drop(clients);
    fixture.stop().await;
}
