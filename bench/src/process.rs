//! A benchmark node in a process of its own (`weft node`), so that the memory it is measured
//! at is its own, not the sender's or the generated data's.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weft_node::Multiaddr;
use weft_node::api::{ApiRequest, ApiResponse, Client};

use crate::BenchError;
use crate::net::LIMIT;

/// How long the node may take to exit once asked to.
const EXIT_LIMIT: Duration = Duration::from_secs(60);

/// A `weft node` child on loopback; dropped, it is killed.
pub(crate) struct NodeProcess {
    child: Child,
    dir: PathBuf,
    /// Where its stderr goes.
    log: PathBuf,
    client: Option<Client>,
}

impl NodeProcess {
    /// Runs `program node` on `dir`, dialing `peers`, with `cache_mib` of store cache when
    /// given (else what `weft node` takes by default); its stderr goes to `dir` + `.log`.
    pub(crate) fn start(
        program: &Path,
        dir: &Path,
        peers: &[Multiaddr],
        cache_mib: Option<usize>,
    ) -> Result<NodeProcess, BenchError> {
        let log = dir.with_extension("log");
        let mut command = Command::new(program);
        command
            .arg("--data-dir")
            .arg(dir)
            .args(["node", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"])
            .env_remove("WEFT_DATA_DIR")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        for peer in peers {
            command.arg("--peer").arg(peer.to_string());
        }
        if let Some(mib) = cache_mib {
            command.arg("--cache-size").arg(mib.to_string());
        }
        let child = command
            .spawn()
            .map_err(|e| BenchError::Node(format!("starting {} node: {e}", program.display())))?;
        Ok(NodeProcess {
            child,
            dir: dir.to_owned(),
            log,
            client: None,
        })
    }

    /// Entries the node holds; 0 until its local API answers.
    fn held(&mut self) -> Result<u64, BenchError> {
        if let Some(status) = self.child.try_wait()? {
            return Err(self.failed(&format!("exited early ({status})")));
        }
        if self.client.is_none() {
            self.client = Client::connect(&self.dir).map_err(crate::node_error)?;
        }
        let Some(client) = self.client.as_mut() else {
            return Ok(0);
        };
        match client
            .call(&ApiRequest::Status)
            .map_err(crate::node_error)?
        {
            ApiResponse::Status(status) => Ok(status.feeds.iter().map(|f| f.held).sum()),
            other => Err(BenchError::Node(format!(
                "weft node answered status with {other:?}"
            ))),
        }
    }

    /// Waits, at most [`LIMIT`], until the node holds `want` entries.
    pub(crate) fn wait_held(&mut self, want: u64, what: &str) -> Result<(), BenchError> {
        let started = Instant::now();
        while self.held()? < want {
            if started.elapsed() > LIMIT {
                return Err(BenchError::Node(format!("{what} did not finish in time")));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// The error for a node that `went` wrong, with what it logged.
    fn failed(&self, went: &str) -> BenchError {
        let logged = std::fs::read_to_string(&self.log).unwrap_or_default();
        BenchError::Node(format!("weft node {went}: {}", logged.trim()))
    }

    /// The node's peak resident size so far, in MiB (`VmHWM`); 0 where `/proc` does not say.
    pub(crate) fn peak_memory_mib(&self) -> f64 {
        crate::net::peak_memory_mib(&format!("/proc/{}/status", self.child.id()))
    }

    /// Stops the node as Ctrl-C would and waits, bounded, for it to exit cleanly.
    pub(crate) fn stop(mut self) -> Result<(), BenchError> {
        self.client = None;
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(self.failed(&format!("exited with {status}")))
                };
            }
            if started.elapsed() > EXIT_LIMIT {
                return Err(self.failed(&format!("did not exit within {EXIT_LIMIT:?}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
