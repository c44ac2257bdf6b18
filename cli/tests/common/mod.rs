//! What the `weft` binary's tests share: a data dir to run `weft` against, and a `weft node`
//! child process.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A data dir in a temporary directory, and a way to run `weft` against it.
pub struct Dir {
    pub tmp: tempfile::TempDir,
    pub data: PathBuf,
}

/// What a run of `weft` did.
pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn json_lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        self
    }

    #[track_caller]
    pub fn fails(self, code: i32, message: &str) -> Run {
        assert_eq!(
            self.code,
            code,
            "stdout: {} stderr: {}",
            self.text(),
            self.stderr
        );
        assert!(
            self.stderr.contains(message),
            "expected {message:?} in stderr: {}",
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }
}

impl Dir {
    pub fn new() -> Dir {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data = tmp.path().join("data");
        Dir { tmp, data }
    }

    pub fn initialized() -> Dir {
        let dir = Dir::new();
        dir.weft(["init"]).ok();
        dir
    }

    /// The replica's author id, as `weft info` prints it.
    pub fn author(&self) -> String {
        self.weft(["--json", "info"]).ok().json_lines()[0]["author"]
            .as_str()
            .expect("an author")
            .to_string()
    }

    pub fn weft<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> Run {
        self.weft_stdin(args, b"")
    }

    pub fn weft_stdin<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(
        &self,
        args: I,
        stdin: &[u8],
    ) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
            .arg("--data-dir")
            .arg(&self.data)
            .args(args)
            .env_remove("WEFT_DATA_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weft");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("write stdin");
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().expect("run weft");
        Run {
            code: status.code().expect("exited"),
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// The local feed's length, from `info --json`.
    pub fn feed_length(&self) -> u64 {
        let info = &self.weft(["--json", "info"]).ok().json_lines()[0];
        info["namespaces"][0]["feeds"]
            .as_array()
            .and_then(|f| f.first())
            .map_or(0, |f| f["length"].as_u64().expect("length"))
    }
}

/// A `weft node` child process on loopback. Dropped, it is stopped with SIGTERM and must exit
/// 0 without a panic in its log, unless a test signalled it itself (a SIGKILL, say): a node
/// that crashed or panicked fails the test that ran it.
pub struct NodeProcess {
    pub child: std::process::Child,
    /// Where its stderr goes, appended to across restarts of the same data dir.
    pub log: PathBuf,
    /// The lines it printed on stdout so far (its peer id, addresses, Redis port).
    printed: Arc<Mutex<Vec<String>>>,
    signalled: bool,
}

/// How long a node may take to exit after a signal.
const EXIT_LIMIT: Duration = Duration::from_secs(30);

impl NodeProcess {
    pub fn start(dir: &Dir) -> NodeProcess {
        NodeProcess::start_with(dir, &[])
    }

    /// As [`NodeProcess::start`], with more `weft node` flags.
    pub fn start_with(dir: &Dir, flags: &[&str]) -> NodeProcess {
        NodeProcess::start_with_env(dir, flags, &[])
    }

    /// As [`NodeProcess::start_with`], with environment variables set.
    pub fn start_with_env(dir: &Dir, flags: &[&str], env: &[(&str, &str)]) -> NodeProcess {
        let socket = dir.data.join("node.sock");
        let log = dir.tmp.path().join("node.log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open the node's log");
        let child = Command::new(env!("CARGO_BIN_EXE_weft"))
            .arg("--data-dir")
            .arg(&dir.data)
            .args(["node", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"])
            .args(flags)
            .env_remove("WEFT_DATA_DIR")
            .env_remove("WEFT_REDIS_PASSWORD")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn weft node");
        let mut node = NodeProcess {
            child,
            log,
            printed: Arc::default(),
            signalled: false,
        };
        let stdout = node.child.stdout.take().expect("piped stdout");
        let printed = Arc::clone(&node.printed);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                printed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
        });
        let started = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Ok(Some(status)) = node.child.try_wait() {
                node.signalled = true;
                panic!("weft node exited at start ({status}): {}", node.log_text());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "weft node did not open its socket within 30 s: {}",
                node.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }

    /// Sends `signal` (as `kill` spells it) and waits, bounded, for the node to exit.
    pub fn signal(&mut self, signal: &str) -> ExitStatus {
        self.signalled = true;
        Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the node") {
                return status;
            }
            if started.elapsed() > EXIT_LIMIT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "weft node did not exit within {EXIT_LIMIT:?} of {signal}: {}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The rest of the first line the node printed that starts with `prefix`, waiting for it
    /// (bounded): how a test learns a port the node chose itself.
    pub fn printed(&self, prefix: &str) -> String {
        let started = Instant::now();
        loop {
            let lines = self.printed.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(line) = lines.iter().find(|l| l.starts_with(prefix)) {
                return line[prefix.len()..].to_string();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "weft node did not print {prefix:?} within 30 s; it printed {lines:?}"
            );
            drop(lines);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the node wrote to stderr, over every run on this data dir.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if self.signalled {
            return;
        }
        let exited = self.child.try_wait().ok().flatten();
        let status = match exited {
            Some(status) => status,
            None => self.signal("-TERM"),
        };
        if std::thread::panicking() {
            return;
        }
        let log = self.log_text();
        assert!(
            exited.is_none(),
            "weft node exited by itself ({status}) while the test ran: {log}"
        );
        assert!(status.success(), "weft node exited with {status}: {log}");
        assert!(!log.contains("panicked"), "weft node panicked: {log}");
    }
}

/// The `weft` binary under test.
pub const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// Runs `weft` against data dir `dir` (which may be in use by a node in another network
/// namespace: the CLI reaches it through its socket).
pub fn weft(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(WEFT)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run weft")
}

pub fn weft_ok(dir: &Path, args: &[&str]) -> String {
    let out = weft(dir, args);
    assert!(
        out.status.success(),
        "weft {args:?} on {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The running node's status; `None` when no node answers. Never opens the store itself,
/// which would race a node starting on it: a socket left by a killed node does not count.
pub fn status(dir: &Path) -> Option<Value> {
    std::os::unix::net::UnixStream::connect(dir.join("node.sock")).ok()?;
    let out = weft(dir, &["--json", "status"]);
    if !out.status.success() {
        return None;
    }
    let value: Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(value["node"].clone()).filter(|node| !node.is_null())
}

/// The Redis port a `weft node --redis 127.0.0.1:0` bound, as it printed it.
pub fn redis_port(node: &NodeProcess) -> u16 {
    let addr = node.printed("redis on ");
    addr.parse::<std::net::SocketAddr>()
        .unwrap_or_else(|e| panic!("{addr:?}: {e}"))
        .port()
}

/// Polls `weft` on `dir` with `args` until it exits 0 (at most 30 s); its output.
pub fn until_ok(dir: &Dir, args: &[&str], what: &str) -> Run {
    let started = std::time::Instant::now();
    loop {
        let run = dir.weft(args);
        if run.code == 0 {
            return run;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{what}: not within 30 s; last: {}",
            run.stderr
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Polls until `check` holds on `dir`'s output of `args` (at most 30 s).
pub fn until_output(dir: &Dir, args: &[&str], what: &str, check: impl Fn(&str) -> bool) -> String {
    let started = std::time::Instant::now();
    loop {
        let run = dir.weft(args);
        if run.code == 0 && check(&run.text()) {
            return run.text();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{what}: not within 30 s; last: {} {}",
            run.text(),
            run.stderr
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
