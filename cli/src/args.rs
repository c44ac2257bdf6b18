//! The command line as clap parses it: flags only, no I/O.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// weft: a peer-to-peer replicated key-value database. Data lives in a local replica; every
/// command works offline.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about, max_term_width = 100)]
pub struct Cli {
    /// Where the replica lives [default: the platform data dir, e.g. ~/.local/share/weft]
    #[arg(long, global = true, env = "WEFT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Machine-readable output: one JSON object per line
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the replica: an author identity and a default namespace. Prints the namespace id
    Init {
        /// Replicate the namespace of a ticket from another device (`weft ticket` prints one)
        /// instead of creating one; its peers become this replica's bootstrap peers
        #[arg(long, value_name = "TICKET")]
        join: Option<String>,
        /// With --join: replicate only the keys under this prefix (repeatable), a sparse
        /// replica; without it, every key
        #[arg(long, value_name = "PREFIX", requires = "join")]
        prefix: Vec<OsString>,
        /// With --prefix: replicate only this author's entries (repeatable, hex id)
        #[arg(long, value_name = "AUTHOR", requires = "prefix", value_parser = parse_author)]
        author: Vec<weft_storage::AuthorId>,
        /// Let anyone holding a ticket write the new namespace. Without it the namespace is
        /// closed: only this replica and the authors it grants (`weft grant`) may write
        #[arg(long, conflicts_with = "join")]
        open: bool,
    },
    /// Let AUTHOR (a hex id, as `weft info` prints it) write this closed namespace; owner only
    Grant {
        /// The author to let in
        #[arg(value_parser = parse_author)]
        author: weft_storage::AuthorId,
        /// Only keys under this prefix (repeatable) [default: every key]
        #[arg(long, value_name = "PREFIX")]
        prefix: Vec<OsString>,
        /// Entries stamped later than this from now do not count, e.g. 30m, 12h, 7d
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires: Option<std::time::Duration>,
    },
    /// Stop counting AUTHOR's entries past the length of its feed held now; owner only
    Revoke {
        /// The author to revoke
        #[arg(value_parser = parse_author)]
        author: weft_storage::AuthorId,
    },
    /// Show who may write the namespace: open, or the owner and each grant and revocation
    Members,
    /// Show or change what this replica replicates: the key prefixes of a sparse replica
    Interest {
        #[command(subcommand)]
        action: InterestAction,
    },
    /// Run the node in the foreground: sync with peers and serve the local API (log level from
    /// RUST_LOG, default info). Ctrl-C or SIGTERM stops it cleanly
    Node {
        /// Listen on this address (repeatable) [default: /ip4/0.0.0.0/tcp/4919 and
        /// /ip4/0.0.0.0/udp/4919/quic-v1, or any free port when 4919 is taken]
        #[arg(long, value_name = "MULTIADDR")]
        listen: Vec<weft_node::Multiaddr>,
        /// Dial this peer at start and whenever it is not connected (repeatable); added to the
        /// `peers` of the config file
        #[arg(long, value_name = "MULTIADDR")]
        peer: Vec<weft_node::Multiaddr>,
        /// Do not look for peers on the local network with mDNS
        #[arg(long)]
        no_mdns: bool,
        /// Reach peers across networks through this bootstrap node, a `weft node --relay`
        /// (repeatable): reserve a relayed address on it, and find the namespace's members
        /// there. A multiaddr ending in /p2p/<peer id>; added to the `bootstrap` of the config
        /// file
        #[arg(long, value_name = "MULTIADDR")]
        bootstrap: Vec<weft_node::Multiaddr>,
        /// Be a relay and bootstrap node for others instead of a replica: circuit relay for
        /// devices behind NAT, a rendezvous point for finding each other, AutoNAT answers. Run
        /// it where others can reach it; it needs no replica and sees only sealed traffic
        #[arg(long, conflicts_with_all = ["redis", "peer", "bootstrap"])]
        relay: bool,
        /// Also serve the Redis protocol (RESP2/3) on this address: `redis-cli` and Redis
        /// clients read and write the default namespace. IP:PORT (127.0.0.1:6379; loopback
        /// needs no password, as with Redis, so any local user could write as this node), or
        /// unix:PATH, a socket only this user can open (`redis-cli -s PATH`)
        #[arg(long, value_name = "ADDR")]
        redis: Option<weft_node::redis::RedisAddr>,
        /// The password Redis clients must give (AUTH); required when --redis is not a
        /// loopback address
        #[arg(
            long,
            value_name = "PASSWORD",
            env = "WEFT_REDIS_PASSWORD",
            requires = "redis"
        )]
        redis_password: Option<String>,
        /// Disconnect a Redis client idle for this many seconds (Redis's `timeout`); by
        /// default idle clients stay
        #[arg(long, value_name = "SECONDS", requires = "redis", value_parser = clap::value_parser!(u64).range(1..))]
        redis_timeout: Option<u64>,
        /// Serve Prometheus metrics over HTTP at http://ADDR/metrics (IP:PORT, say
        /// 127.0.0.1:9464): sync, the store, peers, memory, and libp2p's own. Anyone who
        /// can reach ADDR can read them, so keep it on loopback unless a scraper elsewhere
        /// needs it
        #[arg(long, value_name = "ADDR", conflicts_with = "relay")]
        metrics: Option<std::net::SocketAddr>,
        /// MiB of the store's page cache, the bulk of the node's memory [default: the config
        /// file's `cache_mib`, else 128]
        #[arg(long, value_name = "MIB", conflicts_with = "relay", value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
        cache_size: Option<u64>,
        /// For fault tests only: act as a device whose clock runs SECONDS ahead (writes
        /// stamped ahead, others' timestamps judged by it). Hidden; never on a real replica
        #[arg(long, value_name = "SECONDS", hide = true, conflicts_with = "relay")]
        test_clock_ahead: Option<u64>,
    },
    /// Print a ticket: the default namespace and this node's addresses, for `init --join`.
    /// A read ticket by default
    Ticket {
        /// A read ticket: the joining device replicates and reads, and writes only if the
        /// namespace is open or the owner grants its author
        #[arg(long, conflicts_with = "write")]
        read: bool,
        /// A write ticket: for a closed namespace, carries a fresh author key granted now
        /// (owner only; one device per ticket, since two devices writing as one author fork
        /// its feed). Treat it as a password
        #[arg(long)]
        write: bool,
        /// With --write: the grant covers only keys under this prefix (repeatable)
        #[arg(long, value_name = "PREFIX", requires = "write")]
        prefix: Vec<OsString>,
        /// With --write: the grant expires this long from now, e.g. 30m, 12h, 7d
        #[arg(long, value_name = "DURATION", requires = "write", value_parser = parse_duration)]
        expires: Option<std::time::Duration>,
    },
    /// Show the node's peers and each feed's local and best-known remote length (when a node
    /// runs), then who may write, entries that do not count and why, and forks
    Status,
    /// List connected peers
    Peers,
    /// Wait until the running node has caught up with its peers, showing progress
    Sync {
        /// Give up (exit 2) after this many seconds
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
    },
    /// Set KEY to VALUE
    Put {
        /// The key (any bytes the shell can pass)
        key: OsString,
        /// The value; `-` reads it from stdin
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        value: Option<OsString>,
        /// Read the value from a file
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// Print KEY's value (the last writer's), raw. Exits 1 if it is absent
    Get {
        /// The key
        key: OsString,
        /// Print every live version (concurrent writes), one per line, with author and time
        #[arg(long)]
        all: bool,
        /// Ask the connected peers (through the running node) and check their proofs, for a
        /// key this sparse replica does not hold; nothing is stored
        #[arg(long)]
        remote: bool,
        /// The value as of this time (RFC 3339 as `weft history` prints it, or the "hlc"
        /// number of `--json history`), from the versions held
        #[arg(long, value_name = "TIME", value_parser = parse_time, conflicts_with_all = ["all", "remote"])]
        at: Option<weft_storage::Timestamp>,
    },
    /// Delete KEY. Exits 1 if it is absent
    Del {
        /// The key
        key: OsString,
    },
    /// List keys, sorted bytewise
    Ls {
        /// Only keys starting with this
        prefix: Option<OsString>,
        /// Stop after N keys
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Print each key's value after a tab
        #[arg(long)]
        values: bool,
    },
    /// Every version of KEY in the feeds, oldest first
    History {
        /// The key
        key: OsString,
    },
    /// Print each change of a key's value as it happens, local or synced, numbered (SEQ).
    /// Follows a running node until stopped; resume with --from the SEQ after the last one seen
    Watch {
        /// Only keys starting with this
        prefix: Option<OsString>,
        /// Start at change SEQ, which may be in the past (0: the oldest kept), instead of at
        /// the next one. Without a running node, print the changes kept from SEQ and exit
        #[arg(long, value_name = "SEQ")]
        from: Option<u64>,
    },
    /// Show ids, feed lengths and sizes on disk
    Info,
    /// Re-check every hash and signature, and the view against the feeds
    Verify,
    /// Rebuild the view from the feeds
    Reindex,
    /// Drop the values of superseded versions, keeping what proves the rest; prints how many
    /// versions and bytes. Live versions are never touched; pruned versions leave `history`
    /// and can no longer be sent to peers
    Prune,
    /// Load JSON lines {"key": "...", "value": "..."} (or key_b64/value_b64), 1,000 per commit
    Import {
        /// The file to read; `-` or nothing reads stdin
        file: Option<PathBuf>,
    },
    /// Write every key and value under PREFIX as JSON lines, the format import reads
    Export {
        /// Only keys starting with this
        prefix: Option<OsString>,
    },
    /// Run the benchmark workloads of shared/WORKLOADS.md (build with --release first)
    Bench {
        /// Which workloads
        #[arg(value_enum, default_value = "all")]
        workload: Workload,
        /// Puts per run (the workloads say 100000)
        #[arg(long, default_value_t = 100_000, value_name = "N")]
        puts: u64,
        /// Runs per figure; the median is reported
        #[arg(long, default_value_t = 3, value_name = "N")]
        runs: u32,
        /// MiB of each store's page cache in W3 [default: 128, as `weft node`]
        #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
        cache_size: Option<u64>,
    },
}

/// A benchmark workload.
#[derive(Debug, Subcommand)]
pub enum InterestAction {
    /// Replicate the keys under PREFIX too (a replica that holds no other author's entries
    /// yet becomes sparse)
    Add {
        /// The key prefix
        prefix: OsString,
        /// Replicate only this author's entries (repeatable, hex id)
        #[arg(long, value_name = "AUTHOR", value_parser = parse_author)]
        author: Vec<weft_storage::AuthorId>,
    },
    /// Stop replicating the keys under PREFIX; what is held stays on disk
    Rm {
        /// The key prefix, exactly as added
        prefix: OsString,
    },
    /// Print the prefixes replicated, one per line; nothing for a full replica
    Ls,
}

/// A duration as a number and a unit: s, m, h or d.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit; use s, m, h or d, e.g. 12h"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit {unit:?}; use s, m, h or d")),
    };
    number
        .checked_mul(seconds)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

fn parse_author(s: &str) -> Result<weft_storage::AuthorId, weft_storage::ids::ParseIdError> {
    weft_storage::ids::parse_author(s)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Puts: one durable put per commit, then batches of 1,000
    W1,
    /// Random gets of W1's keys
    W2,
    /// Full sync of W1(b)'s 100,000 entries to a fresh node over loopback
    W3,
    /// Sparse sync of 1 prefix (1,000 entries) of 100 to a fresh node over loopback
    W4,
    /// Three writers of the same 10,000 keys converge after connecting
    W5,
    /// Live latency of 1,000 puts between three connected nodes
    W6,
    /// redis-benchmark SET and GET (-P 16) against weft node --redis and redis-server
    W7,
    /// Many authors: a fresh node joins 1,000 authors' feeds (100,000 entries), then the two
    /// idle for 5 minutes, then one appends an entry
    W8,
    /// Many nodes: 1,000 puts on one of 20 nodes (5 links each) until all read it, then a
    /// late joiner catches up from 5 of them
    W9,
    /// Every workload above
    All,
}

fn parse_time(text: &str) -> Result<weft_storage::Timestamp, String> {
    // The exact HLC value, as `--json history` prints it under "hlc", or RFC 3339.
    text.parse()
        .ok()
        .map(weft_storage::Timestamp)
        .or_else(|| weft_storage::parse_timestamp(text))
        .ok_or_else(|| {
            format!("{text:?} is not an RFC 3339 time such as 2026-11-21T01:06:06.369602193Z, nor an HLC value")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("weft").chain(args.iter().copied()))
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse(&["get", "k", "--json", "--data-dir", "/tmp/x"]).expect("parses");
        assert!(cli.json);
        assert_eq!(cli.data_dir, Some(PathBuf::from("/tmp/x")));
    }

    #[test]
    fn put_needs_exactly_one_value_source() {
        assert!(parse(&["put", "k"]).is_err());
        assert!(parse(&["put", "k", "v", "--file", "f"]).is_err());
        assert!(matches!(
            parse(&["put", "k", "--file", "f"]).expect("parses").command,
            Command::Put { file: Some(_), .. }
        ));
        assert!(matches!(
            parse(&["put", "k", "-"]).expect("parses").command,
            Command::Put { value: Some(_), .. }
        ));
    }

    #[test]
    fn ls_takes_a_numeric_limit() {
        assert!(matches!(
            parse(&["ls", "p/", "--limit", "3"])
                .expect("parses")
                .command,
            Command::Ls { limit: Some(3), .. }
        ));
        assert!(parse(&["ls", "--limit", "three"]).is_err());
    }

    #[test]
    fn unknown_flags_and_commands_are_usage_errors() {
        let err = parse(&["get", "k", "--frobnicate"]).expect_err("unknown flag");
        assert_eq!(err.exit_code(), 2);
        assert!(parse(&["frobnicate"]).is_err());
        assert!(parse(&["get"]).is_err());
    }

    #[test]
    fn node_flags_repeat_and_addresses_are_checked() {
        let cli = parse(&[
            "node",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--peer",
            "/ip4/127.0.0.1/tcp/1",
            "--peer",
            "/ip4/127.0.0.1/tcp/2",
            "--no-mdns",
        ])
        .expect("parses");
        assert!(matches!(
            cli.command,
            Command::Node { ref listen, ref peer, no_mdns: true, .. } if listen.len() == 1 && peer.len() == 2
        ));
        assert!(parse(&["node", "--peer", "localhost:4919"]).is_err());
        assert!(matches!(
            parse(&["node", "--bootstrap", "/ip4/203.0.113.10/tcp/4919/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"])
                .expect("parses")
                .command,
            Command::Node { ref bootstrap, relay: false, .. } if bootstrap.len() == 1
        ));
        assert!(matches!(
            parse(&["node", "--relay"]).expect("parses").command,
            Command::Node { relay: true, .. }
        ));
        assert!(
            parse(&["node", "--relay", "--redis", "127.0.0.1:6379"]).is_err(),
            "a relay holds no replica to serve"
        );
        assert!(matches!(
            parse(&["init", "--join", "weft1abc"])
                .expect("parses")
                .command,
            Command::Init { join: Some(_), .. }
        ));
        assert!(parse(&["sync", "--timeout", "soon"]).is_err());
        assert!(matches!(
            parse(&["node", "--cache-size", "64"])
                .expect("parses")
                .command,
            Command::Node {
                cache_size: Some(64),
                ..
            }
        ));
        assert!(parse(&["node", "--cache-size", "0"]).is_err());
        assert!(parse(&["node", "--relay", "--cache-size", "64"]).is_err());
    }

    #[test]
    fn bench_defaults_to_every_workload() {
        let cli = parse(&["bench"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Bench {
                workload: Workload::All,
                puts: 100_000,
                runs: 3,
                cache_size: None,
            }
        ));
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
