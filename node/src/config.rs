//! What a node is told: listen addresses, peers, discovery; read from flags and the optional
//! config file in the data dir. Also the node's persistent libp2p identity.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libp2p::identity::{Keypair, ed25519};
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

/// The optional config file inside the data dir.
pub const CONFIG_FILE: &str = "config.json";

/// The node's libp2p secret key, inside the data dir's `keys/` (mode 0600).
pub const IDENTITY_FILE: &str = "node.key";

/// The local API socket inside the data dir (mode 0600).
pub const SOCKET_FILE: &str = "node.sock";

/// The port a node listens on unless told otherwise; when it is taken (a second node on the
/// same machine), the node falls back to a port the OS picks.
pub const DEFAULT_PORT: u16 = 4919;

/// The config file: every field optional.
///
/// ```json
/// {"peers": ["/ip4/192.168.1.7/tcp/4919/p2p/12D3Koo..."], "listen": ["/ip4/0.0.0.0/tcp/4919"], "mdns": true,
///  "bootstrap": ["/dns4/relay.example.org/tcp/4919/p2p/12D3Koo..."]}
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Peers to dial at start and whenever they are not connected.
    #[serde(default)]
    pub peers: Vec<Multiaddr>,
    /// Addresses to listen on, replacing the defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listen: Vec<Multiaddr>,
    /// Whether to find peers on the local network by mDNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdns: Option<bool>,
    /// Bootstrap nodes (`weft node --relay` somewhere reachable): relays to be reached
    /// through, and where the namespace's members find each other.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bootstrap: Vec<Multiaddr>,
    /// Let AutoNAT probe and answer private and documentation addresses, not only public
    /// ones: for a test bed, or a network of private routers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nat_probe_private: bool,
    /// The limits a relay (`weft node --relay`) serves within; unset fields keep their
    /// defaults ([`RelayLimits`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelayLimits>,
    /// MiB of the store's page cache, the bulk of a node's memory
    /// ([`weft_storage::Options::cache_size`]); `weft node --cache-size` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_mib: Option<u64>,
    /// Changes of the change feed kept, newest first ([`weft_storage::Options::changes_kept`],
    /// default 1,000,000): a `watch` reader further behind is told to re-read the keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes_kept: Option<u64>,
}

/// What a relay serves, per peer and in all. The defaults are sized so that a device can
/// catch up a whole namespace through one circuit, unlike libp2p's (128 KiB and 2 minutes per
/// circuit, which suit a public relay that only helps peers punch holes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayLimits {
    /// Reservations held at once, in all.
    pub max_reservations: usize,
    /// Reservations one peer may hold.
    pub max_reservations_per_peer: usize,
    /// How long a reservation lasts before the device renews it, in seconds.
    pub reservation_secs: u64,
    /// Circuits open at once, in all.
    pub max_circuits: usize,
    /// Circuits one peer may have open.
    pub max_circuits_per_peer: usize,
    /// How long one circuit may stay open, in seconds; the devices then reconnect.
    pub max_circuit_secs: u64,
    /// Bytes one circuit may carry, both directions together; the devices then reconnect.
    pub max_circuit_bytes: u64,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            max_reservations: 1024,
            max_reservations_per_peer: 4,
            reservation_secs: 3600,
            max_circuits: 256,
            max_circuits_per_peer: 8,
            max_circuit_secs: 3600,
            max_circuit_bytes: 1 << 30,
        }
    }
}

/// Why the config or identity could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file is not valid.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line and column.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl ConfigFile {
    /// Reads `dir`'s config file; a missing file is the empty config.
    ///
    /// # Errors
    /// [`ConfigError`] when the file cannot be read or is not a valid config.
    pub fn load(dir: &Path) -> Result<ConfigFile, ConfigError> {
        let path = dir.join(CONFIG_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
            Err(source) => return Err(ConfigError::Io { path, source }),
        };
        let config: ConfigFile = serde_json::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if config.changes_kept == Some(0) {
            return Err(ConfigError::Invalid {
                path,
                reason: "changes_kept must be at least 1: a watch reader needs one change kept"
                    .into(),
            });
        }
        Ok(config)
    }

    /// The store options this config sets, over the defaults.
    pub fn store_options(&self) -> weft_storage::Options {
        let defaults = weft_storage::Options::default();
        weft_storage::Options {
            cache_size: self.cache_mib.map_or(defaults.cache_size, mib_to_bytes),
            changes_kept: self.changes_kept.unwrap_or(defaults.changes_kept),
            ..defaults
        }
    }

    /// Writes the config file into `dir`, replacing any.
    ///
    /// # Errors
    /// [`ConfigError::Io`].
    pub fn save(&self, dir: &Path) -> Result<(), ConfigError> {
        let path = dir.join(CONFIG_FILE);
        let text = serde_json::to_string_pretty(self).expect("a config always serializes");
        fs::write(&path, text + "\n").map_err(|source| ConfigError::Io { path, source })
    }
}

/// How a node runs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to keep dialing.
    pub peers: Vec<Multiaddr>,
    /// Whether mDNS discovery is on.
    pub mdns: bool,
    /// How often connected peers exchange heads, besides on connect.
    pub sync_interval: Duration,
    /// Bootstrap nodes: relays this node reserves a slot on and rendezvous points where it
    /// registers and discovers the members of its namespaces. Each ends in `/p2p/<id>`.
    pub bootstrap: Vec<Multiaddr>,
    /// See [`ConfigFile::nat_probe_private`].
    pub nat_probe_private: bool,
}

impl NodeConfig {
    /// The default listen addresses: every interface, TCP and QUIC, on [`DEFAULT_PORT`].
    pub fn default_listen() -> Vec<Multiaddr> {
        vec![
            format!("/ip4/0.0.0.0/tcp/{DEFAULT_PORT}")
                .parse()
                .expect("a valid multiaddr"),
            format!("/ip4/0.0.0.0/udp/{DEFAULT_PORT}/quic-v1")
                .parse()
                .expect("a valid multiaddr"),
        ]
    }

    /// Flags over the config file over the defaults. Peers and bootstrap nodes from both are
    /// used.
    pub fn resolve(file: ConfigFile, network: &Network) -> NodeConfig {
        let (listen, peers, no_mdns) =
            (network.listen.clone(), network.peers.clone(), !network.mdns);
        let listen = if !listen.is_empty() {
            listen
        } else if !file.listen.is_empty() {
            file.listen
        } else {
            NodeConfig::default_listen()
        };
        NodeConfig {
            listen,
            peers: union(file.peers, peers),
            mdns: !no_mdns && file.mdns.unwrap_or(true),
            sync_interval: Duration::from_secs(10),
            bootstrap: union(file.bootstrap, network.bootstrap.clone()),
            nat_probe_private: file.nat_probe_private,
        }
    }
}

/// `mib` MiB in bytes, saturating on a 32-bit machine rather than wrapping.
pub fn mib_to_bytes(mib: u64) -> usize {
    usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
}

/// Where and how a node meets peers, as `weft node`'s flags or a program embedding weft give
/// it; the data dir's config file fills in what this leaves out ([`NodeConfig::load`]).
#[derive(Clone, Debug)]
pub struct Network {
    /// Addresses to listen on, e.g. `/ip4/0.0.0.0/tcp/4919`; port 0 picks a free port. Empty:
    /// the config file's, else every interface on [`DEFAULT_PORT`] (or any free port when it
    /// is taken).
    pub listen: Vec<Multiaddr>,
    /// Peers to dial now and whenever they are not connected, each ending in
    /// `/p2p/<peer id>`, besides the config file's (those of the ticket the replica joined).
    pub peers: Vec<Multiaddr>,
    /// Whether to find peers on the local network with mDNS; `true` leaves it to the config
    /// file, which defaults to on.
    pub mdns: bool,
    /// Bootstrap nodes, besides the config file's (those of the ticket the replica joined).
    pub bootstrap: Vec<Multiaddr>,
}

impl Default for Network {
    /// What `weft node` does with no flags.
    fn default() -> Self {
        Network {
            listen: Vec::new(),
            peers: Vec::new(),
            mdns: true,
            bootstrap: Vec::new(),
        }
    }
}

impl Network {
    /// A free TCP port on 127.0.0.1 and no mDNS: replicas on this machine only, as in tests,
    /// benchmarks and the examples.
    pub fn loopback() -> Self {
        Network {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("a valid multiaddr")],
            peers: Vec::new(),
            mdns: false,
            bootstrap: Vec::new(),
        }
    }
}

impl NodeConfig {
    /// How a node on the replica in `dir` runs, and as whom: the data dir's config file under
    /// `network`, and the node's identity (made on first use). What `weft node`, a program
    /// embedding weft and the benchmarks all start a node with.
    ///
    /// # Errors
    /// [`ConfigError`] when the config file or identity cannot be read.
    pub fn load(dir: &Path, network: &Network) -> Result<(NodeConfig, Keypair), ConfigError> {
        let config = NodeConfig::resolve(ConfigFile::load(dir)?, network);
        Ok((config, load_identity(dir)?))
    }
}

/// `first`, then what of `more` it lacks.
fn union(mut first: Vec<Multiaddr>, more: Vec<Multiaddr>) -> Vec<Multiaddr> {
    for addr in more {
        if !first.contains(&addr) {
            first.push(addr);
        }
    }
    first
}

/// Whether `addr` listens on every interface (`0.0.0.0`, `::`), which no peer can dial, so it
/// has no place in a ticket.
pub fn is_unspecified(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        libp2p::multiaddr::Protocol::Ip4(ip) => ip.is_unspecified(),
        libp2p::multiaddr::Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

/// The node's identity from `dir/keys/node.key`, created on first use.
///
/// # Errors
/// [`ConfigError`] when the key cannot be read or written, or is not a key.
pub fn load_identity(dir: &Path) -> Result<Keypair, ConfigError> {
    let path = dir.join(weft_storage::KEYS_DIR).join(IDENTITY_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let invalid = || ConfigError::Invalid {
                path: path.clone(),
                reason: "not a 64-hex-digit ed25519 secret key".into(),
            };
            let mut bytes = weft_storage::ids::from_hex(text.trim()).ok_or_else(invalid)?;
            let secret = ed25519::SecretKey::try_from_bytes(&mut bytes).map_err(|_| invalid())?;
            Ok(ed25519::Keypair::from(secret).into())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = ed25519::SecretKey::generate();
            let hex = weft_storage::ids::to_hex(secret.as_ref());
            let io = |source| ConfigError::Io {
                path: path.clone(),
                source,
            };
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io)?;
            writeln!(file, "{hex}").map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok(ed25519::Keypair::from(secret).into())
        }
        Err(source) => Err(ConfigError::Io { path, source }),
    }
}

/// The peer id of the node that runs on `dir`, creating its identity if needed.
///
/// # Errors
/// As [`load_identity`].
pub fn peer_id(dir: &Path) -> Result<PeerId, ConfigError> {
    Ok(load_identity(dir)?.public().to_peer_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_file_is_optional_strict_and_merged_under_flags() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(
            ConfigFile::load(dir.path()).expect("missing is empty"),
            ConfigFile::default()
        );
        fs::write(
            dir.path().join(CONFIG_FILE),
            r#"{"peers": ["/ip4/127.0.0.1/tcp/1"], "mdns": false}"#,
        )
        .expect("write");
        let file = ConfigFile::load(dir.path()).expect("valid");
        let flag_peer: Multiaddr = "/ip4/127.0.0.1/tcp/2".parse().expect("addr");
        let network = Network {
            peers: vec![flag_peer],
            ..Network::default()
        };
        let config = NodeConfig::resolve(file, &network);
        assert_eq!(config.peers.len(), 2);
        assert!(!config.mdns, "the file turned mdns off");
        assert_eq!(config.listen, NodeConfig::default_listen());

        fs::write(dir.path().join(CONFIG_FILE), r#"{"cache_mib": 32}"#).expect("write");
        let file = ConfigFile::load(dir.path()).expect("valid");
        assert_eq!(file.cache_mib.map(mib_to_bytes), Some(32 << 20));
        assert_eq!(file.store_options().cache_size, 32 << 20);
        assert_eq!(
            file.store_options().changes_kept,
            weft_storage::Options::default().changes_kept
        );
        fs::write(dir.path().join(CONFIG_FILE), r#"{"changes_kept": 10}"#).expect("write");
        let file = ConfigFile::load(dir.path()).expect("valid");
        assert_eq!(file.store_options().changes_kept, 10);
        fs::write(dir.path().join(CONFIG_FILE), r#"{"changes_kept": 0}"#).expect("write");
        let err = ConfigFile::load(dir.path()).expect_err("nothing kept");
        assert!(
            err.to_string().contains("changes_kept must be at least 1"),
            "{err}"
        );

        fs::write(dir.path().join(CONFIG_FILE), r#"{"peerz": []}"#).expect("write");
        let err = ConfigFile::load(dir.path()).expect_err("unknown field");
        assert!(err.to_string().contains("peerz"), "{err}");
        fs::write(
            dir.path().join(CONFIG_FILE),
            r#"{"peers": ["not an address"]}"#,
        )
        .expect("write");
        assert!(ConfigFile::load(dir.path()).is_err());
    }

    #[test]
    fn the_identity_persists_and_garbage_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir(dir.path().join(weft_storage::KEYS_DIR)).expect("mkdir");
        let first = peer_id(dir.path()).expect("created");
        assert_eq!(peer_id(dir.path()).expect("read"), first);
        let path = dir.path().join(weft_storage::KEYS_DIR).join(IDENTITY_FILE);
        fs::write(&path, "zz").expect("write");
        assert!(matches!(
            load_identity(dir.path()),
            Err(ConfigError::Invalid { .. })
        ));
    }
}
