//! Prometheus metrics: libp2p's own for the swarm and its protocols, and weft's for sync, the
//! store and the node, served in the OpenMetrics text format by [`MetricsServer`] (`weft node
//! --metrics ADDR`). Counters move where things happen; gauges are read from the node's
//! status when scraped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::NodeHandle;
use crate::shutdown::Shutdown;
use crate::status::Status;

/// A label naming a kind: of request, response or fault.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Kind {
    kind: &'static str,
}

/// A label naming a direction or a path.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Way {
    way: &'static str,
}

/// Every metric the node keeps.
pub struct Metrics {
    registry: Registry,
    pub(crate) libp2p: libp2p::metrics::Metrics,
    /// Entries this replica wrote to its own feeds.
    pub(crate) entries_written: Counter,
    /// Entries of other feeds stored from peers.
    pub(crate) entries_ingested: Counter,
    pub(crate) requests_sent: Family<Kind, Counter>,
    pub(crate) responses_received: Family<Kind, Counter>,
    pub(crate) requests_served: Family<Kind, Counter>,
    pub(crate) bans: Family<Kind, Counter>,
    /// Local writes, from the call to its durable commit.
    pub(crate) write_seconds: Histogram,
    wire_bytes: Family<Way, Counter>,
    peers: Family<Way, Gauge>,
    feeds: Gauge,
    store_queue: Gauge,
    resident_bytes: Gauge,
    /// One scrape at a time brings the counters kept elsewhere up to date, so two at once
    /// cannot both add the same bytes.
    scraping: Mutex<()>,
}

impl Kind {
    pub(crate) fn of(kind: &'static str) -> Kind {
        Kind { kind }
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::default();
        let libp2p = libp2p::metrics::Metrics::new(&mut registry);
        let metrics = Metrics {
            registry: Registry::default(),
            libp2p,
            entries_written: Counter::default(),
            entries_ingested: Counter::default(),
            requests_sent: Family::default(),
            responses_received: Family::default(),
            requests_served: Family::default(),
            bans: Family::default(),
            write_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 16)),
            wire_bytes: Family::default(),
            peers: Family::default(),
            feeds: Gauge::default(),
            store_queue: Gauge::default(),
            resident_bytes: Gauge::default(),
            scraping: Mutex::new(()),
        };
        let weft = registry.sub_registry_with_prefix("weft");
        let m = &metrics;
        weft.register(
            "entries_written",
            "Entries this replica wrote to its own feeds",
            m.entries_written.clone(),
        );
        weft.register(
            "entries_ingested",
            "Entries of other authors' feeds stored from peers",
            m.entries_ingested.clone(),
        );
        weft.register(
            "sync_requests_sent",
            "Sync requests sent, by kind",
            m.requests_sent.clone(),
        );
        weft.register(
            "sync_responses_received",
            "Answers to sync requests, by kind (failed: none came)",
            m.responses_received.clone(),
        );
        weft.register(
            "sync_requests_served",
            "Sync requests received from peers, by kind",
            m.requests_served.clone(),
        );
        weft.register("bans", "Peers cut off, by what they sent", m.bans.clone());
        weft.register(
            "write_seconds",
            "Local writes, from the call to the durable commit",
            m.write_seconds.clone(),
        );
        weft.register(
            "wire_bytes",
            "Bytes on the wire below encryption, by direction",
            m.wire_bytes.clone(),
        );
        weft.register(
            "peers",
            "Connected peers, direct or relayed",
            m.peers.clone(),
        );
        weft.register("feeds", "Feeds held", m.feeds.clone());
        weft.register(
            "store_queue",
            "Jobs waiting for the store's thread",
            m.store_queue.clone(),
        );
        weft.register(
            "resident_bytes",
            "The process's resident memory (Linux only)",
            m.resident_bytes.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The metrics as of `status`, in the OpenMetrics text format.
    fn encode(&self, status: &Status, store_queue: usize) -> String {
        let _one_at_a_time = self.scraping.lock().unwrap_or_else(PoisonError::into_inner);
        let counted = |way, total: u64| {
            let counter = self.wire_bytes.get_or_create(&Way { way });
            counter.inc_by(total.saturating_sub(counter.get()));
        };
        counted("sent", status.wire_sent);
        counted("received", status.wire_received);
        let relayed = status.peers.iter().filter(|p| p.relayed).count();
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.peers
            .get_or_create(&Way { way: "direct" })
            .set(gauge(status.peers.len() - relayed));
        self.peers
            .get_or_create(&Way { way: "relayed" })
            .set(gauge(relayed));
        self.feeds
            .set(gauge(status.feeds.iter().filter(|f| f.held > 0).count()));
        self.store_queue.set(gauge(store_queue));
        if let Some(bytes) = resident_bytes() {
            self.resident_bytes.set(gauge(bytes));
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The resident set size, from `/proc/self/status` where there is one.
fn resident_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Scrapes served at once; more wait for their turn at accept.
const MAX_SCRAPES: usize = 16;

/// How long a scraper may take to send its request.
const REQUEST_TIME: Duration = Duration::from_secs(5);

/// The most bytes of a request read: a scrape is one short line and a few headers.
const MAX_REQUEST: usize = 8 * 1024;

/// Serves `GET /metrics` over plain HTTP.
pub struct MetricsServer {
    listener: TcpListener,
}

impl MetricsServer {
    /// Binds `addr`.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<MetricsServer> {
        Ok(MetricsServer {
            listener: TcpListener::bind(addr).await?,
        })
    }

    /// The address bound (its port, when bound to port 0).
    ///
    /// # Errors
    /// From the socket.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Answers scrapes of `node`'s metrics until `shutdown` fires.
    pub async fn serve(self, node: NodeHandle, mut shutdown: Shutdown) {
        let permits = Arc::new(Semaphore::new(MAX_SCRAPES));
        loop {
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                return;
            };
            let stream = tokio::select! {
                () = shutdown.wait() => return,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        warn!(error = %e, "metrics: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let node = node.clone();
            tokio::spawn(async move {
                if let Err(e) = scrape(stream, &node).await {
                    debug!(error = %e, "metrics: a scrape ended early");
                }
                drop(permit);
            });
        }
    }
}

/// Reads one request and answers it: the metrics for `GET /metrics`, 404 for another path,
/// 405 for another method.
async fn scrape(mut stream: TcpStream, node: &NodeHandle) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(REQUEST_TIME, async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < MAX_REQUEST {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return Ok(());
    }
    let line = request.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let (method, path) = (parts.next(), parts.next());
    let (status, content_type, body) = match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => match node.status().await {
            Ok(status) => (
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                node.metrics().encode(&status, node.worker().queued()),
            ),
            Err(e) => ("503 Service Unavailable", "text/plain", format!("{e}\n")),
        },
        (Some(b"GET"), _) => ("404 Not Found", "text/plain", "try /metrics\n".into()),
        _ => ("405 Method Not Allowed", "text/plain", "only GET\n".into()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
