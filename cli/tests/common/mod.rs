//! What the `weft` binary's tests share: a data dir to run `weft` against, and a `weft node`
//! child process.
// Each test binary uses a different part.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

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

/// A `weft node` child process on loopback, stopped (SIGTERM) when dropped.
pub struct NodeProcess {
    pub child: std::process::Child,
}

impl NodeProcess {
    pub fn start(dir: &Dir) -> NodeProcess {
        NodeProcess::start_with(dir, &[])
    }

    /// As [`NodeProcess::start`], with more `weft node` flags.
    pub fn start_with(dir: &Dir, flags: &[&str]) -> NodeProcess {
        let socket = dir.data.join("node.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_weft"))
            .arg("--data-dir")
            .arg(&dir.data)
            .args(["node", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"])
            .args(flags)
            .env_remove("WEFT_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn weft node");
        let started = std::time::Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "weft node did not open its socket within 30 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        NodeProcess { child }
    }

    pub fn signal(&mut self, signal: &str) -> std::process::ExitStatus {
        Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        self.child.wait().expect("node exits")
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal("-TERM");
        }
    }
}

/// A loopback port free a moment ago, for a listener given its address up front.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
