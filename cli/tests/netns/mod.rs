//! A test bed of hosts in Linux network namespaces: a "public" segment (an internet switch),
//! hosts on it, and home networks each behind its own NAT router, with `weft` processes
//! running inside them.
//!
//! Only documentation addresses are used: 203.0.113.0/24 for the public segment and quarters
//! of 192.0.2.0/24 for home networks. Every
//! namespace carries this run's prefix, so runs never collide; every link and rule lives inside
//! one of them, so deleting them (on drop, even after a failed assertion) removes everything.
//! Each wait is bounded by its caller.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The prefix of every namespace a bed makes: `wft` and the test process's id, so a later run
/// can tell a leftover of a dead process from one in use.
const PREFIX: &str = "wft";

/// The cases share the machine's two cores, and a bed's names are this process's: they run
/// one at a time.
pub static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// How a home router translates addresses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Nat {
    /// `MASQUERADE`: keeps a connection's source port when it can (endpoint-independent, a
    /// "cone" NAT), so hole punching can work.
    Cone,
    /// `MASQUERADE --random-fully`: a new random port per connection, as a symmetric NAT
    /// does, so hole punching fails and traffic must be relayed.
    Symmetric,
}

/// WAN conditions on a router's public link.
#[derive(Clone, Copy, Debug)]
pub struct Wan {
    /// Bandwidth cap each way, in Mbit/s.
    pub mbit: u32,
    /// Probability that a forwarded packet is dropped.
    pub loss: f64,
}

/// A host: a network namespace with an address.
#[derive(Clone, Debug)]
pub struct Host {
    pub ns: String,
    pub ip: String,
}

/// A home network: the device behind its router.
#[derive(Clone, Debug)]
pub struct Home {
    pub device: Host,
}

/// A running process inside a namespace, with its output kept in files.
pub struct Process {
    child: Child,
    pub out: PathBuf,
    pub err: PathBuf,
}

impl Process {
    /// What it printed so far on stdout.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// The last lines of its stderr, for a failure message.
    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.err).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A bed of namespaces, removed when dropped.
pub struct Bed {
    prefix: String,
    namespaces: Vec<String>,
    processes: Vec<Process>,
    logs: PathBuf,
    homes: usize,
    public_hosts: usize,
}

impl Bed {
    /// A new bed with its public segment, or `None` (after printing why) when this machine
    /// cannot make one: not root, or no `ip netns`.
    pub fn new(logs: &Path) -> Option<Bed> {
        let root = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .map(|l| l.split_whitespace().nth(1) == Some("0"))
            })
            .unwrap_or(false);
        let tools = ["ip", "iptables", "tc"].iter().all(|tool| {
            Command::new(tool)
                .arg("-V")
                .output()
                .is_ok_and(|o| o.status.success())
        });
        if !root || !tools {
            eprintln!("skipped: needs root and ip netns");
            return None;
        }
        remove_leftovers();
        let prefix = format!("{PREFIX}{}-", std::process::id());
        let mut bed = Bed {
            prefix,
            namespaces: Vec::new(),
            processes: Vec::new(),
            logs: logs.to_owned(),
            homes: 0,
            public_hosts: 0,
        };
        if bed.try_make_internet().is_err() {
            eprintln!("skipped: needs root and ip netns");
            return None;
        }
        Some(bed)
    }

    fn name(&self, role: &str) -> String {
        format!("{}{role}", self.prefix)
    }

    fn add_namespace(&mut self, role: &str) -> Result<String, String> {
        let ns = self.name(role);
        run(&["ip", "netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        self.exec(&ns, &["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn try_make_internet(&mut self) -> Result<(), String> {
        let inet = self.add_namespace("inet")?;
        self.exec(&inet, &["ip", "link", "add", "sw", "type", "bridge"])?;
        self.exec(&inet, &["ip", "link", "set", "sw", "up"])?;
        Ok(())
    }

    /// Runs `args` inside namespace `ns`.
    ///
    /// # Errors
    /// The command's stderr when it fails.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Result<Output, String> {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Plugs namespace `ns` into the public segment as `ip`/24 on its interface `pub`.
    fn plug(&self, ns: &str, ip: &str) -> Result<(), String> {
        let inet = self.name("inet");
        let port = format!("p{}", self.public_hosts + self.homes);
        run(&[
            "ip", "link", "add", "pub", "netns", ns, "type", "veth", "peer", "name", &port,
            "netns", &inet,
        ])?;
        self.exec(&inet, &["ip", "link", "set", &port, "master", "sw", "up"])?;
        self.exec(
            ns,
            &["ip", "addr", "add", &format!("{ip}/24"), "dev", "pub"],
        )?;
        self.exec(ns, &["ip", "link", "set", "pub", "up"])?;
        Ok(())
    }

    /// A host on the public segment, at 203.0.113.(10 + n).
    pub fn public_host(&mut self, role: &str) -> Host {
        let ip = format!("203.0.113.{}", 10 + self.public_hosts);
        let ns = self.add_namespace(role).expect("public host namespace");
        self.plug(&ns, &ip).expect("public host link");
        self.public_hosts += 1;
        Host { ns, ip }
    }

    /// A home network behind a NAT router at 203.0.113.(1 + n), with one device on it, in
    /// quarter n of 192.0.2.0/24 (or, with `moved`, in 198.51.100.0/24: a network another
    /// device was never on).
    pub fn home(&mut self, role: &str, nat: Nat, wan: Option<Wan>) -> Home {
        let n = self.homes;
        assert!(n < 4, "at most four homes");
        let router_ip = format!("203.0.113.{}", 1 + n);
        let router = self
            .add_namespace(&format!("{role}r"))
            .expect("router namespace");
        self.plug(&router, &router_ip).expect("router public link");
        self.homes += 1;
        let device = self
            .add_namespace(&format!("{role}d"))
            .expect("device namespace");
        let base = 64 * n;
        let (gateway, device_ip, mask) = (
            format!("192.0.2.{}", base + 1),
            format!("192.0.2.{}", base + 2),
            26,
        );
        self.lan(&router, &device, &gateway, &device_ip, mask)
            .expect("home link");
        self.nat(&router, nat, wan).expect("nat rules");
        Home {
            device: Host {
                ns: device,
                ip: device_ip,
            },
        }
    }

    fn lan(
        &self,
        router: &str,
        device: &str,
        gateway: &str,
        ip: &str,
        mask: u8,
    ) -> Result<(), String> {
        let link = "lan";
        run(&[
            "ip", "link", "add", link, "netns", router, "type", "veth", "peer", "name", "eth",
            "netns", device,
        ])?;
        self.exec(
            router,
            &[
                "ip",
                "addr",
                "add",
                &format!("{gateway}/{mask}"),
                "dev",
                link,
            ],
        )?;
        self.exec(router, &["ip", "link", "set", link, "up"])?;
        self.exec(
            device,
            &["ip", "addr", "add", &format!("{ip}/{mask}"), "dev", "eth"],
        )?;
        self.exec(device, &["ip", "link", "set", "eth", "up"])?;
        self.exec(device, &["ip", "route", "add", "default", "via", gateway])?;
        Ok(())
    }

    fn nat(&self, router: &str, nat: Nat, wan: Option<Wan>) -> Result<(), String> {
        self.exec(router, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        let mut masquerade = vec![
            "iptables",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            "pub",
            "-j",
            "MASQUERADE",
        ];
        if nat == Nat::Symmetric {
            masquerade.push("--random-fully");
        }
        self.exec(router, &masquerade)?;
        // As home routers do: what comes in unasked from outside is dropped, not answered with
        // a reset, so the first packet of a hole punch waits for the other side's instead of
        // killing the attempt.
        for chain in ["INPUT", "FORWARD"] {
            self.exec(
                router,
                &[
                    "iptables",
                    "-A",
                    chain,
                    "-i",
                    "pub",
                    "-m",
                    "conntrack",
                    "--ctstate",
                    "NEW",
                    "-j",
                    "DROP",
                ],
            )?;
        }
        if let Some(wan) = wan {
            let rate = format!("{}mbit", wan.mbit);
            for link in ["pub", "lan"] {
                self.exec(
                    router,
                    &[
                        "tc", "qdisc", "add", "dev", link, "root", "tbf", "rate", &rate, "burst",
                        "64kb", "latency", "100ms",
                    ],
                )?;
            }
            let p = format!("{}", wan.loss);
            self.exec(
                router,
                &[
                    "iptables",
                    "-A",
                    "FORWARD",
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &p,
                    "-j",
                    "DROP",
                ],
            )?;
        }
        Ok(())
    }

    /// Starts `weft` with `args` inside `host`, its output in files named `name`.
    pub fn spawn(&mut self, host: &Host, name: &str, weft: &Path, args: &[&str]) -> usize {
        let out = self.logs.join(format!("{name}.out"));
        let err = self.logs.join(format!("{name}.err"));
        let child = Command::new("ip")
            .args(["netns", "exec", &host.ns])
            .arg(weft)
            .args(args)
            .env("RUST_LOG", "info,weft_node=debug,libp2p_dcutr=debug")
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn weft in a namespace");
        self.processes.push(Process { child, out, err });
        self.processes.len() - 1
    }

    /// Process `index`.
    pub fn process(&self, index: usize) -> &Process {
        &self.processes[index]
    }

    /// Stops process `index` with SIGTERM and waits for it (at most 20 s, then SIGKILL), and
    /// fails the test unless it exited 0 with no panic in its log.
    pub fn stop(&mut self, index: usize) {
        let status = self.signal(index, "-TERM");
        let process = &self.processes[index];
        let log = std::fs::read_to_string(&process.err).unwrap_or_default();
        assert!(
            status.is_some_and(|s| s.success()) && !log.contains("panicked"),
            "{} did not stop cleanly ({status:?}): {}",
            process.err.display(),
            process.stderr_tail()
        );
    }

    /// Kills process `index` with SIGKILL, as a power cut would, and reaps it.
    pub fn kill(&mut self, index: usize) {
        self.signal(index, "-KILL");
    }

    /// Whether process `index` has exited, and how.
    pub fn exited(&mut self, index: usize) -> Option<ExitStatus> {
        self.processes[index].child.try_wait().ok().flatten()
    }

    /// Sends `signal` and waits for the exit, at most 20 s (then SIGKILL); `None` if it had to
    /// be killed.
    fn signal(&mut self, index: usize, signal: &str) -> Option<ExitStatus> {
        let process = &mut self.processes[index];
        let _ = Command::new("kill")
            .args([signal, &process.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = process.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = process.child.kill();
        let _ = process.child.wait();
        None
    }

    /// Bytes through `host`'s public link, both directions.
    pub fn link_bytes(&self, host: &Host) -> u64 {
        let out = self
            .exec(&host.ns, &["ip", "-s", "-j", "link", "show", "dev", "pub"])
            .expect("link stats");
        let value: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("ip -j prints JSON");
        let stats = &value[0]["stats64"];
        stats["rx"]["bytes"].as_u64().unwrap_or(0) + stats["tx"]["bytes"].as_u64().unwrap_or(0)
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for process in &mut self.processes {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

/// Runs a command, its stderr the error when it fails.
fn run(args: &[&str]) -> Result<Output, String> {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Removes the namespaces of earlier runs whose process is gone (killed before it could
/// clean up); those of runs still going are left alone.
fn remove_leftovers() {
    let Ok(listed) = run(&["ip", "netns", "list"]) else {
        return;
    };
    for line in String::from_utf8_lossy(&listed.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run(&["ip", "netns", "del", name]);
        }
    }
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `limit`.
pub fn wait_for<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Prints a result line of a network test and appends it to `target/tmp/network.txt`, which
/// CI shows after the run.
pub fn report(line: &str) {
    println!("{line}");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("network.txt");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        use std::io::Write as _;
        let _ = writeln!(file, "{line}");
    }
}

/// A bed, with the nodes' data dirs and logs in a temporary directory, or kept in
/// `WEFT_NETNS_LOGS` when set (to read after a failure).
pub fn bed() -> Option<(Bed, tempfile::TempDir)> {
    let root = match std::env::var_os("WEFT_NETNS_LOGS") {
        Some(dir) => {
            std::fs::create_dir_all(&dir).expect("logs dir");
            tempfile::Builder::new()
                .disable_cleanup(true)
                .tempdir_in(dir)
                .expect("temp dir")
        }
        None => tempfile::tempdir().expect("temp dir"),
    };
    let Some(bed) = Bed::new(root.path()) else {
        report("skipped: needs root and ip netns");
        return None;
    };
    Some((bed, root))
}
