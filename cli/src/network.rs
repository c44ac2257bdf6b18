//! The commands about peers: `node`, `ticket`, `init --join`, `status`, `peers`, `sync`.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use weft_node::api::{self, ApiRequest, ApiResponse};
use weft_node::config::{ConfigFile, Network, NodeConfig, load_identity, peer_id};
use weft_node::metrics::MetricsServer;
use weft_node::multiaddr::Protocol;
use weft_node::redis::{RedisConfig, RedisError, RedisServer};
use weft_node::relay::RelayNode;
use weft_node::ticket::Ticket;
use weft_node::{Multiaddr, Node, Status};
use weft_storage::{Grant, Interest, Options, Store};

use crate::backend::{Backend, answer};

/// `init --join`: a replica of the ticket's namespace, with its peers as bootstrap peers.
pub fn join(dir: &Path, ticket: &str, interest: Option<Interest>) -> anyhow::Result<Store> {
    let ticket: Ticket = ticket.parse()?;
    Ok(ticket.join(dir, Options::default(), interest)?)
}

/// How long `weft node` waits for another process to let go of the store: a CLI command run
/// without a node (`weft status` as the node starts, say) holds it for a moment.
const LOCKED_PATIENCE: Duration = Duration::from_secs(10);

/// Opens the store, waiting (bounded) while another process has it open.
fn open_when_free(dir: &Path, options: Options) -> Result<Store, weft_storage::Error> {
    let started = Instant::now();
    loop {
        match Store::open(dir, options.clone()) {
            Err(weft_storage::Error::Locked { .. }) if started.elapsed() < LOCKED_PATIENCE => {
                std::thread::sleep(Duration::from_millis(50));
            }
            opened => return opened,
        }
    }
}

/// How `weft node` opens its store.
pub struct StoreSettings {
    /// `--cache-size`, else the config file's `cache_mib`, else the default.
    pub cache_mib: Option<u64>,
    /// `--test-clock-ahead`: zero but in fault tests.
    pub clock_ahead: std::time::Duration,
}

/// `weft node`: runs until Ctrl-C or SIGTERM.
pub fn node(
    dir: &Path,
    network: Network,
    redis: Option<RedisConfig>,
    metrics: Option<SocketAddr>,
    settings: StoreSettings,
) -> anyhow::Result<ExitCode> {
    if api::Client::connect(dir)?.is_some() {
        bail!("a node is already running on {}", dir.display());
    }
    let (config, key) = NodeConfig::load(dir, &network)?;
    let mut options = Options {
        clock_ahead: settings.clock_ahead,
        ..ConfigFile::load(dir)?.store_options()
    };
    if let Some(mib) = settings.cache_mib {
        options.cache_size = weft_node::config::mib_to_bytes(mib);
    }
    let store = open_when_free(dir, options).map_err(api::ApiError::from)?;
    raise_open_file_limit(redis.as_ref().map_or(0, |r| r.max_clients));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let node = Node::start(store, key, config).await?;
        let peer = node.handle().peer_id();
        println!("peer id {peer}");
        for addr in node.listen_addrs() {
            println!("listening on {}", addr.clone().with(Protocol::P2p(peer)));
        }
        println!(
            "local API on {}",
            dir.join(weft_node::config::SOCKET_FILE).display()
        );
        let (stop, shutdown) = weft_node::shutdown::channel();
        let redis = match redis {
            Some(config) => {
                let server = RedisServer::bind(config).await.map_err(|e| match e {
                    RedisError::NeedsPassword(_) => anyhow::anyhow!(
                        "{e}: give one with --redis-password (or WEFT_REDIS_PASSWORD)"
                    ),
                    other => other.into(),
                })?;
                println!("redis on {}", server.local_addr()?);
                let handle = node.handle();
                let ns = handle.worker().facts().default_namespace;
                Some(tokio::spawn(server.serve(handle, ns, shutdown.clone())))
            }
            None => None,
        };
        let metrics = match metrics {
            Some(addr) => {
                let server = MetricsServer::bind(addr)
                    .await
                    .with_context(|| format!("serving metrics on {addr}"))?;
                let addr = server.local_addr()?;
                if !addr.ip().is_loopback() {
                    eprintln!(
                        "weft: warning: metrics on {addr} can be read by anyone who reaches it"
                    );
                }
                println!("metrics on http://{addr}/metrics");
                Some(tokio::spawn(server.serve(node.handle(), shutdown.clone())))
            }
            None => None,
        };
        let serving = api::serve(dir, node.handle(), shutdown);
        tokio::pin!(serving);
        let served = tokio::select! {
            // Ends early only when the socket cannot be served.
            served = &mut serving => served,
            () = shutdown_signal() => {
                stop.fire();
                serving.await
            }
        };
        stop.fire();
        if let Some(redis) = redis {
            redis.await.context("the Redis task failed")?;
        }
        if let Some(metrics) = metrics {
            metrics.await.context("the metrics task failed")?;
        }
        let stopped = node.shutdown().await;
        served.context("serving the local API")?;
        stopped.context("stopping the node")?;
        eprintln!("weft: node stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// File descriptors a node needs beside its Redis clients: peers' connections, the store,
/// the local API's connections, the listeners.
const NODE_FILES: u64 = 512;

/// Raises the soft limit on open files towards what `redis_clients` clients and the node's
/// own files need, as Redis does for its `maxclients`: many systems start processes at 1,024,
/// which 1,000 clients and a few peers would pass. Warns when the hard limit is lower.
fn raise_open_file_limit(redis_clients: usize) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let wanted = NODE_FILES + redis_clients as u64;
    let limit = getrlimit(Resource::Nofile);
    let (Some(current), maximum) = (limit.current, limit.maximum) else {
        return; // unlimited
    };
    if current >= wanted {
        return;
    }
    let raised = maximum.map_or(wanted, |maximum| maximum.min(wanted));
    let mut new = limit;
    new.current = Some(raised);
    let limit = match setrlimit(Resource::Nofile, new) {
        Ok(()) => raised,
        Err(_) => current,
    };
    if limit < wanted {
        eprintln!(
            "weft: warning: at most {limit} open files, and the node may need {wanted} \
             ({redis_clients} Redis clients and its peers): raise the limit (ulimit -n)"
        );
    }
}

/// `weft node --relay`: a relay and bootstrap node for others, until Ctrl-C or SIGTERM. It
/// uses only the data dir's node identity (made on first use) and config file.
pub fn relay(dir: &Path, listen: Vec<Multiaddr>) -> anyhow::Result<ExitCode> {
    for dir in [dir.to_owned(), dir.join(weft_storage::KEYS_DIR)] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    if dir.join(weft_storage::DB_FILE).exists() {
        eprintln!(
            "weft: a relay serves no replica: the one in {} stays offline while it runs",
            dir.display()
        );
    }
    let file = ConfigFile::load(dir)?;
    let listen = match (listen.is_empty(), file.listen.is_empty()) {
        (false, _) => listen,
        (true, false) => file.listen.clone(),
        (true, true) => NodeConfig::default_listen(),
    };
    let key = load_identity(dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let relay = RelayNode::start(
            key,
            &listen,
            file.relay.unwrap_or_default(),
            file.nat_probe_private,
        )
        .await?;
        let peer = relay.peer_id();
        println!("relay peer id {peer}");
        for addr in relay.listen_addrs() {
            println!(
                "bootstrap address {}",
                addr.clone().with(Protocol::P2p(peer))
            );
        }
        let (stop, shutdown) = weft_node::shutdown::channel();
        let serving = tokio::spawn(relay.run(shutdown));
        shutdown_signal().await;
        stop.fire();
        let counts = serving.await.context("the relay task failed")?;
        eprintln!(
            "weft: relay stopped after {} reservations and {} circuits",
            counts.reservations, counts.circuits
        );
        Ok(ExitCode::SUCCESS)
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(term) => {
                term.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// `weft ticket`: the running node's addresses, or the configured ones. With `write`, for a
/// closed namespace, a fresh author key granted `write` now.
pub fn ticket(dir: &Path, out: &mut impl Write, write: Option<Grant>) -> anyhow::Result<ExitCode> {
    let backend = Backend::open(dir)?;
    let ns = backend.default_namespace();
    let (charter, author_key) = match backend.call(ApiRequest::Share { ns, write })? {
        ApiResponse::Share {
            charter,
            author_key,
        } => (charter, author_key),
        other => bail!("the node answered {other:?} to a share request"),
    };
    // What the running node listens on and reaches others through, else what it would.
    let (listen, bootstrap): (Vec<Multiaddr>, Vec<Multiaddr>) = match backend.status()? {
        Some(status) => (
            status
                .listen
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect(),
            status
                .reservations
                .iter()
                .filter_map(|r| r.relay.parse().ok())
                .collect(),
        ),
        None => {
            let (config, _) = NodeConfig::load(dir, &Network::default())?;
            (config.listen, config.bootstrap)
        }
    };
    let ticket = Ticket::mint(charter, author_key, peer_id(dir)?, listen, bootstrap);
    if ticket.peers.is_empty() {
        eprintln!(
            "weft: warning: no reachable address to put in the ticket (the node listens on every interface); run `weft node` and ask again for one with addresses"
        );
    } else if ticket.local_only() {
        eprintln!(
            "weft: warning: this ticket works on this network only: its addresses are private and it names no bootstrap node; run `weft node --relay` on a host both devices can reach and start nodes with `--bootstrap ADDR` (or \"bootstrap\" in config.json)"
        );
    }
    writeln!(out, "{ticket}")?;
    Ok(ExitCode::SUCCESS)
}

fn running_status(dir: &Path) -> anyhow::Result<Status> {
    match Backend::open(dir)?.status()? {
        Some(status) => Ok(status),
        None => bail!(
            "no node is running on {}: start one with `weft node`",
            dir.display()
        ),
    }
}

/// `weft status`: the node's sync state when one runs, then who may write and what does not
/// count, which are read from the store when no node runs.
pub fn status(dir: &Path, out: &mut impl Write, json: bool) -> anyhow::Result<ExitCode> {
    let backend = Backend::open(dir)?;
    let ns = backend.default_namespace();
    let trust = answer!(backend.call(ApiRequest::Trust { ns })?, Trust)?;
    let Some(status) = backend.status()? else {
        if json {
            writeln!(out, "{}", json!({"node": null, "trust": trust}))?;
        } else {
            writeln!(out, "node:      not running (start one with `weft node`)")?;
            crate::trust::status(out, &trust)?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    if json {
        writeln!(out, "{}", json!({"node": status, "trust": trust}))?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "peer id:   {}", status.peer_id)?;
    for addr in &status.listen {
        writeln!(out, "listening: {addr}")?;
    }
    writeln!(out, "reach:     {}", status.reachability)?;
    for reservation in &status.reservations {
        match &reservation.address {
            Some(address) => writeln!(out, "relay:     {address}")?,
            None => writeln!(out, "relay:     {} (no reservation yet)", reservation.relay)?,
        }
    }
    writeln!(out, "peers:     {}", status.peers.len())?;
    for peer in &status.peers {
        let how = if peer.relayed { "relayed" } else { "direct" };
        writeln!(out, "  {} {how} {}", peer.id, peer.address)?;
    }
    for ban in &status.bans {
        writeln!(
            out,
            "banned:    {} for {} s more: {}",
            ban.peer, ban.seconds_left, ban.reason
        )?;
    }
    writeln!(
        out,
        "wire:      {} bytes sent, {} received",
        status.wire_sent, status.wire_received
    )?;
    let state = if status.caught_up() {
        "caught up"
    } else if status.head_exchanges == 0 {
        "waiting for a peer"
    } else {
        "syncing"
    };
    writeln!(out, "sync:      {state}")?;
    let mut namespace = None;
    for feed in &status.feeds {
        if namespace != Some(feed.namespace) {
            writeln!(out, "namespace: {}", feed.namespace)?;
            namespace = Some(feed.namespace);
        }
        write!(
            out,
            "  feed {}: local {} remote {}",
            feed.author, feed.held, feed.best_remote
        )?;
        if feed.unserved > feed.held {
            write!(
                out,
                " (a peer advertises {} but sent nothing past {}: pruned there, or not fetched \
                 there yet)",
                feed.unserved, feed.held
            )?;
        }
        writeln!(out)?;
    }
    crate::trust::status(out, &trust)?;
    Ok(ExitCode::SUCCESS)
}

/// `weft peers`.
pub fn peers(dir: &Path, out: &mut impl Write, json: bool) -> anyhow::Result<ExitCode> {
    let status = running_status(dir)?;
    for peer in &status.peers {
        if json {
            writeln!(
                out,
                "{}",
                json!({"id": peer.id, "address": peer.address, "relayed": peer.relayed})
            )?;
        } else {
            writeln!(out, "{}", peer.id)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft sync`: waits, with a progress bar on a terminal, until the node has caught up.
pub fn sync(dir: &Path, timeout: Option<u64>) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(0).with_style(
            ProgressStyle::with_template(
                "{bar:40} {pos}/{len} entries, {per_sec}, eta {eta} {msg}",
            )
            .expect("the template is valid"),
        )
    } else {
        ProgressBar::hidden()
    };
    running_status(dir)?;
    // A round of its own, so that what peers hold now counts, not only what they advertised
    // before: a write made elsewhere a moment ago is here when this returns.
    let round = answer!(Backend::open(dir)?.call(ApiRequest::SyncNow)?, SyncRound)?;
    loop {
        let status = running_status(dir)?;
        let held: u64 = status.feeds.iter().map(|f| f.held).sum();
        let total: u64 = status.feeds.iter().map(|f| f.held.max(f.best_remote)).sum();
        bar.set_length(total);
        bar.set_position(held);
        if status.peers.is_empty() {
            bar.set_message("(no peers connected)");
        } else {
            bar.set_message("");
        }
        if status.caught_up() && status.exchanged_round >= round {
            bar.finish_and_clear();
            let short: Vec<_> = status.held_short().collect();
            if short.is_empty() {
                eprintln!("weft: caught up: {held} entries");
                return Ok(ExitCode::SUCCESS);
            }
            let missing: u64 = short.iter().map(|f| f.unserved - f.held).sum();
            bail!(
                "not caught up: {held} entries held; peers advertise {missing} more in {} feeds \
                 but sent none of them: they pruned them (`weft prune`) or are still fetching \
                 them; connect to a peer that holds them, or run `weft sync` again later",
                short.len()
            );
        }
        if let Some(limit) = timeout
            && started.elapsed() >= Duration::from_secs(limit)
        {
            bar.abandon();
            bail!("not caught up after {limit} s: {held} of {total} entries held");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
