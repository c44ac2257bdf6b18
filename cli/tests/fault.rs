//! The fault test: five `weft node` processes, each in its own network namespace on one
//! bridge, written to through the local API (the CLI) and the Redis front end while a seeded
//! nemesis partitions them (both ways, one way, a minority from the majority), drops packets
//! at random, kills nodes with SIGKILL (again in the middle of their catch-up) and runs one
//! node's clock ahead. Then it heals everything, waits (bounded) for the nodes to converge,
//! and checks what they hold against the history of writes it made.
//!
//! `WEFT_FAULT_SEED=N` replays a seed's schedule (its timing is real, so only the schedule);
//! `WEFT_FAULT_COUNT=N` runs N seeds (default 3); `WEFT_FAULT_STEPS=N` sets the nemesis steps
//! per seed (default 10).

use std::collections::BTreeMap;
use std::io::{Read, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::common::{WEFT, status, weft, weft_ok};
use crate::netns::{Bed, Host, ONE_AT_A_TIME, bed, report, wait_for};

const NODES: usize = 5;
/// Keys every node writes to, so that versions race; every other key is written once.
const SHARED_KEYS: u64 = 4;
const WRITES_PER_STEP: usize = 6;
/// How far ahead the fast node's clock runs: inside the 60 s a replica accepts, so its writes
/// count at once and win by timestamp wherever they were not seen before a later write.
const FAST_CLOCK_S: &str = "20";
/// How long the healed nodes get to converge; it typically takes one sync round (10 s).
const CONVERGE: Duration = Duration::from_secs(120);

/// A xorshift generator: every choice of a run comes from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }

    fn pick(&mut self, bound: usize) -> usize {
        self.below(bound as u64) as usize
    }
}

/// A write the test made: acknowledged, or failed (then it may or may not have committed).
#[derive(Debug)]
struct Write {
    /// Its place in the order the test issued writes.
    order: usize,
    node: usize,
    via: &'static str,
    key: String,
    value: String,
    acked: bool,
}

/// A version of a key as `weft history --json` prints it.
#[derive(Debug, PartialEq)]
struct Version {
    author: String,
    seq: u64,
    hlc: u64,
    live: bool,
    value: Option<String>,
}

struct Fleet {
    bed: Bed,
    root: PathBuf,
    hosts: Vec<Host>,
    dirs: Vec<PathBuf>,
    /// Each node's running process, if it runs.
    running: Vec<Option<usize>>,
    starts: Vec<usize>,
    fast: usize,
    /// Every nemesis action and write, printed when a check fails.
    log: Vec<String>,
    writes: Vec<Write>,
    kills: usize,
}

impl Fleet {
    fn new(mut bed: Bed, root: &Path, fast: usize) -> Fleet {
        let hosts: Vec<Host> = (0..NODES)
            .map(|n| bed.public_host(&format!("n{n}")))
            .collect();
        let dirs: Vec<PathBuf> = (0..NODES).map(|n| root.join(format!("n{n}"))).collect();
        weft_ok(&dirs[0], &["init", "--open"]);
        let ticket = weft_ok(&dirs[0], &["ticket", "--write"]);
        for dir in &dirs[1..] {
            weft_ok(dir, &["init", "--join", ticket.trim()]);
        }
        for (n, dir) in dirs.iter().enumerate() {
            let peers: Vec<String> = (0..NODES)
                .filter(|&m| m != n)
                .map(|m| format!("/ip4/{}/tcp/4919", hosts[m].ip))
                .collect();
            let config = json!({
                "listen": [format!("/ip4/{}/tcp/4919", hosts[n].ip)],
                "peers": peers,
                "mdns": false,
            });
            std::fs::write(dir.join("config.json"), config.to_string()).expect("config");
        }
        let mut fleet = Fleet {
            bed,
            root: root.to_owned(),
            hosts,
            dirs,
            running: vec![None; NODES],
            starts: vec![0; NODES],
            fast,
            log: Vec::new(),
            writes: Vec::new(),
            kills: 0,
        };
        for n in 0..NODES {
            fleet.start(n);
        }
        fleet
    }

    fn redis_socket(&self, n: usize) -> PathBuf {
        self.root.join(format!("n{n}.redis.sock"))
    }

    fn start(&mut self, n: usize) {
        let dir = self.dirs[n].to_str().expect("utf-8").to_owned();
        let redis = format!("unix:{}", self.redis_socket(n).display());
        let mut args = vec!["--data-dir", &dir, "node", "--redis", &redis];
        if n == self.fast {
            args.extend(["--test-clock-ahead", FAST_CLOCK_S]);
        }
        let name = format!("n{n}-run{}", self.starts[n]);
        self.starts[n] += 1;
        let process = self
            .bed
            .spawn(&self.hosts[n], &name, Path::new(WEFT), &args);
        if wait_for(Duration::from_secs(30), || status(&self.dirs[n])).is_none() {
            let tail = self.bed.process(process).stderr_tail();
            self.fail(&format!("node {n} did not start: {tail}"));
        }
        self.running[n] = Some(process);
        self.log.push(format!("start n{n}"));
    }

    fn kill(&mut self, n: usize) {
        if let Some(process) = self.running[n].take() {
            self.bed.kill(process);
            self.kills += 1;
            self.log.push(format!("SIGKILL n{n}"));
        }
    }

    fn iptables(&mut self, n: usize, rule: &[&str]) {
        let mut args = vec!["iptables"];
        args.extend_from_slice(rule);
        if let Err(e) = self.bed.exec(&self.hosts[n].ns, &args) {
            self.fail(&format!("iptables on n{n}: {e}"));
        }
    }

    /// `n` drops every packet from `from`.
    fn drop_from(&mut self, n: usize, from: usize) {
        let source = self.hosts[from].ip.clone();
        self.iptables(n, &["-A", "INPUT", "-s", &source, "-j", "DROP"]);
    }

    fn heal(&mut self) {
        for n in 0..NODES {
            self.iptables(n, &["-F", "INPUT"]);
        }
        self.log.push("heal".into());
    }

    /// Fails if a node the nemesis did not kill has exited.
    fn check_alive(&mut self) {
        for n in 0..NODES {
            if let Some(process) = self.running[n]
                && let Some(status) = self.bed.exited(process)
            {
                let tail = self.bed.process(process).stderr_tail();
                self.fail(&format!("n{n} exited by itself ({status}): {tail}"));
            }
        }
    }

    fn nemesis(&mut self, rng: &mut Rng) {
        match rng.below(6) {
            0 => {
                // A minority of one or two cut off from the majority, both ways.
                let mut minority = vec![rng.pick(NODES)];
                if rng.below(2) == 0 {
                    minority.push((minority[0] + 1 + rng.pick(NODES - 1)) % NODES);
                }
                for a in 0..NODES {
                    for b in 0..NODES {
                        if minority.contains(&a) != minority.contains(&b) {
                            self.drop_from(a, b);
                        }
                    }
                }
                self.log
                    .push(format!("partition {minority:?} from the rest"));
            }
            1 => {
                let a = rng.pick(NODES);
                let b = (a + 1 + rng.pick(NODES - 1)) % NODES;
                self.drop_from(a, b);
                self.log
                    .push(format!("one way: n{a} drops what n{b} sends"));
            }
            2 => {
                let n = rng.pick(NODES);
                let percent = 10 + rng.below(40);
                let probability = format!("0.{percent:02}");
                self.iptables(
                    n,
                    &[
                        "-A",
                        "INPUT",
                        "-m",
                        "statistic",
                        "--mode",
                        "random",
                        "--probability",
                        &probability,
                        "-j",
                        "DROP",
                    ],
                );
                self.log
                    .push(format!("loss: n{n} drops {percent}% of packets in"));
            }
            3 => {
                let n = rng.pick(NODES);
                self.kill(n);
            }
            4 => {
                let dead: Vec<usize> = (0..NODES).filter(|&n| self.running[n].is_none()).collect();
                if let Some(&n) = dead.get(rng.pick(dead.len().max(1))) {
                    self.start(n);
                    if rng.below(2) == 0 {
                        // Again, while it catches up on what it missed.
                        std::thread::sleep(Duration::from_millis(50 + rng.below(500)));
                        self.kill(n);
                        self.start(n);
                    }
                }
            }
            _ => self.heal(),
        }
    }

    fn write(&mut self, rng: &mut Rng, step: usize) {
        let order = self.writes.len();
        let node = rng.pick(NODES);
        let key = if rng.below(100) < 35 {
            format!("shared/{}", rng.below(SHARED_KEYS))
        } else {
            format!("own/{order}")
        };
        let value = format!("w{order}-n{node}-step{step}");
        let via = if self.running[node].is_some() && rng.below(2) == 0 {
            "redis"
        } else {
            "api"
        };
        let acked = match via {
            "redis" => redis_set(&self.redis_socket(node), &key, &value),
            // Through the node's local API when it runs, else straight to its store.
            _ => weft(&self.dirs[node], &["put", &key, &value])
                .status
                .success(),
        };
        self.log.push(format!(
            "write #{order} {key}={value} on n{node} via {via}: {}",
            if acked { "acknowledged" } else { "failed" }
        ));
        self.writes.push(Write {
            order,
            node,
            via,
            key,
            value,
            acked,
        });
    }

    /// Every node's winners, `weft export`'s lines as key → value.
    fn export(&self, n: usize) -> BTreeMap<String, String> {
        weft_ok(&self.dirs[n], &["--json", "export"])
            .lines()
            .map(|line| {
                let row: Value = serde_json::from_str(line).expect("an export line");
                let text = |field: &str| row[field].as_str().unwrap_or_default().to_owned();
                (text("key"), text("value"))
            })
            .collect()
    }

    fn history(&self, n: usize, key: &str) -> Vec<Version> {
        let out = weft(&self.dirs[n], &["--json", "history", key]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| {
                let row: Value = serde_json::from_str(line).expect("a history line");
                Version {
                    author: row["author"].as_str().unwrap_or_default().to_owned(),
                    seq: row["seq"].as_u64().unwrap_or_default(),
                    hlc: row["hlc"].as_u64().unwrap_or_default(),
                    live: row["live"].as_bool().unwrap_or_default(),
                    value: row["value"].as_str().map(str::to_owned),
                }
            })
            .collect()
    }

    fn shared_keys(&self) -> Vec<String> {
        (0..SHARED_KEYS).map(|k| format!("shared/{k}")).collect()
    }

    /// Whether every node holds the same winners and the same versions of the shared keys
    /// (whether they hold the right ones is for [`Fleet::check`]).
    fn converged(&self) -> bool {
        let first = self.export(0);
        (1..NODES).all(|n| self.export(n) == first)
            && self.shared_keys().iter().all(|key| {
                let versions = self.history(0, key);
                (1..NODES).all(|n| self.history(n, key) == versions)
            })
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\nfast clock: n{}\nhistory:\n  {}\nlogs in {}",
            self.fast,
            self.log.join("\n  "),
            self.root.display()
        );
    }

    /// The checks, once converged.
    fn check(&self) {
        let exported = self.export(0);
        let written: BTreeMap<&str, &Write> =
            self.writes.iter().map(|w| (w.value.as_str(), w)).collect();
        for n in 0..NODES {
            let out = weft_ok(&self.dirs[n], &["--json", "verify"]);
            let report: Value = serde_json::from_str(out.trim()).expect("verify json");
            if report["problems"].as_array().is_none_or(|p| !p.is_empty()) {
                self.fail(&format!("weft verify on n{n}: {report}"));
            }
        }
        // Nothing anyone did not write, and a key written once holds what was written.
        for (key, value) in &exported {
            match written.get(value.as_str()) {
                Some(write) if write.key == *key => {}
                _ => self.fail(&format!(
                    "{key} holds {value:?}, which no client wrote there"
                )),
            }
        }
        for write in self
            .writes
            .iter()
            .filter(|w| w.acked && w.key.starts_with("own/"))
        {
            if exported.get(&write.key) != Some(&write.value) {
                self.fail(&format!("acknowledged write lost: {write:?}"));
            }
        }
        for key in self.shared_keys() {
            let versions = self.history(0, &key);
            // Every acknowledged write is there, live or superseded.
            for write in self.writes.iter().filter(|w| w.acked && w.key == key) {
                if !versions
                    .iter()
                    .any(|v| v.value.as_deref() == Some(&write.value))
                {
                    self.fail(&format!(
                        "acknowledged write missing from history: {write:?}"
                    ));
                }
            }
            let order = |v: &Version| {
                v.value
                    .as_deref()
                    .and_then(|value| written.get(value))
                    .map(|w| w.order)
                    .unwrap_or_else(|| self.fail(&format!("{key}: unknown version {v:?}")))
            };
            // A superseded version was superseded by a write its writer made after it
            // existed: some version of the key issued later.
            for version in versions.iter().filter(|v| !v.live) {
                let issued = order(version);
                if !versions.iter().any(|v| order(v) > issued) {
                    self.fail(&format!("{key}: {version:?} superseded by nothing later"));
                }
            }
            // The register's rule: the winner is the live version with the greatest
            // (timestamp, author, seq).
            let winner = versions
                .iter()
                .filter(|v| v.live)
                .max_by(|a, b| (a.hlc, &a.author, a.seq).cmp(&(b.hlc, &b.author, b.seq)));
            let read = exported.get(&key);
            if winner.and_then(|v| v.value.as_ref()) != read {
                self.fail(&format!("{key}: reads {read:?}, the rule says {winner:?}"));
            }
        }
    }

    /// Stops every node and fails on an unclean exit or a panic in any run's log.
    fn stop(mut self) {
        for n in 0..NODES {
            if let Some(process) = self.running[n].take() {
                self.bed.stop(process);
            }
        }
        for n in 0..NODES {
            for run in 0..self.starts[n] {
                let log = self.root.join(format!("n{n}-run{run}.err"));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("panicked") {
                    self.fail(&format!("{} holds a panic", log.display()));
                }
            }
        }
    }
}

/// `SET key value` over the Redis front end's Unix socket: whether it answered `+OK`.
fn redis_set(socket: &Path, key: &str, value: &str) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
        key.len(),
        value.len()
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut reply = [0u8; 5];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+OK\r\n"
}

fn run_seed(seed: u64, steps: usize) -> Value {
    let Some((bed, root)) = bed() else {
        return Value::Null;
    };
    let started = Instant::now();
    let mut rng = Rng(seed | 1);
    let fast = rng.pick(NODES);
    let mut fleet = Fleet::new(bed, root.path(), fast);
    for step in 0..steps {
        fleet.check_alive();
        fleet.nemesis(&mut rng);
        for _ in 0..WRITES_PER_STEP {
            fleet.write(&mut rng, step);
        }
        std::thread::sleep(Duration::from_millis(200 + rng.below(600)));
    }
    // Whether the faults left the nodes apart when they ended: a run that never parts them
    // tests little, and the figures say how often that happens.
    let apart = (0..NODES).any(|n| fleet.running[n].is_none()) || !fleet.converged();
    fleet.heal();
    for n in 0..NODES {
        if fleet.running[n].is_none() {
            fleet.start(n);
        }
    }
    fleet.check_alive();
    let healed = Instant::now();
    if wait_for(CONVERGE, || fleet.converged().then_some(())).is_none() {
        fleet.fail(&format!("seed {seed}: no convergence within {CONVERGE:?}"));
    }
    let converged = healed.elapsed();
    fleet.check();
    let (writes, acked, kills) = (
        fleet.writes.len(),
        fleet.writes.iter().filter(|w| w.acked).count(),
        fleet.kills,
    );
    let via_redis = fleet
        .writes
        .iter()
        .filter(|w| w.acked && w.via == "redis")
        .count();
    let nodes_written = fleet
        .writes
        .iter()
        .map(|w| w.node)
        .collect::<std::collections::BTreeSet<_>>();
    fleet.stop();
    assert!(
        acked * 2 > writes && via_redis > 0 && nodes_written.len() == NODES,
        "seed {seed}: too few writes landed to test anything ({acked} of {writes} acknowledged, \
         {via_redis} through Redis, nodes {nodes_written:?})"
    );
    json!({
        "case": "fault", "seed": seed, "steps": steps, "writes": writes, "acknowledged": acked,
        "through_redis": via_redis, "kills": kills, "apart_at_heal": apart,
        "converged_s": converged.as_secs_f64(),
        "seconds": started.elapsed().as_secs_f64(),
    })
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

#[test]
fn five_nodes_under_partitions_loss_kills_and_a_fast_clock_converge_on_every_write() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let steps = env_number("WEFT_FAULT_STEPS").unwrap_or(10) as usize;
    let seeds: Vec<u64> = match env_number("WEFT_FAULT_SEED") {
        Some(seed) => vec![seed],
        None => {
            let base = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64;
            (0..env_number("WEFT_FAULT_COUNT").unwrap_or(3))
                .map(|i| base.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
                .collect()
        }
    };
    for seed in seeds {
        eprintln!("fault test seed {seed} (WEFT_FAULT_SEED replays it)");
        let result = run_seed(seed, steps);
        if result.is_null() {
            return;
        }
        report(&result.to_string());
    }
}
