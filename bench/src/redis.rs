//! W7: `redis-benchmark` against `weft node --redis`, and in the same run against a real
//! `redis-server` on another loopback port, twice: as installed (snapshots, no fsync per
//! write) and with `appendfsync always`, which is what weft promises for every reply.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use weft_node::redis::{RedisConfig, RedisServer};
use weft_storage::{Access, Store};

use crate::net::{durable, runtime, start};
use crate::{BenchError, Settings, node_error};

const PIPELINE: &str = "16";

/// SET and GET requests per second as `redis-benchmark -q` reports them.
#[derive(Clone, Copy, Debug)]
struct Rates {
    set: f64,
    get: f64,
}

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The median of `runs` runs' rates, each rate on its own.
fn benchmark(port: u16, requests: u64, runs: u32) -> Result<Rates, BenchError> {
    let mut all = Vec::new();
    for _ in 0..runs.max(1) {
        all.push(benchmark_once(port, requests)?);
    }
    Ok(Rates {
        set: crate::median(all.iter().map(|r| r.set).collect()),
        get: crate::median(all.iter().map(|r| r.get).collect()),
    })
}

fn benchmark_once(port: u16, requests: u64) -> Result<Rates, BenchError> {
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "set,get"])
        .args(["-n", &requests.to_string(), "-P", PIPELINE, "-q"])
        .stderr(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // -q still draws progress with carriage returns; the last part of each line is the result.
    let rate = |name: &str| {
        text.split(['\r', '\n'])
            .filter_map(|part| part.trim().strip_prefix(name))
            .filter_map(|rest| rest.trim().split(' ').next()?.parse::<f64>().ok())
            .next_back()
    };
    match (rate("SET:"), rate("GET:")) {
        (Some(set), Some(get)) if output.status.success() => Ok(Rates { set, get }),
        _ => Err(BenchError::Node(format!(
            "redis-benchmark on port {port} printed no rates: {text}"
        ))),
    }
}

/// A `redis-server` in `dir` on a free loopback port, killed when dropped.
struct RedisProcess {
    child: Child,
    port: u16,
}

impl RedisProcess {
    fn start(dir: &Path, extra: &[&str]) -> Result<RedisProcess, BenchError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let process = RedisProcess { child, port };
        let started = Instant::now();
        while TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return Err(BenchError::Node(
                    "redis-server did not start in 10 s".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(process)
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn weft_rates(requests: u64, runs: u32) -> Result<Rates, BenchError> {
    let root = tempfile::tempdir()?;
    let dir = root.path().join("weft");
    let ns = Store::init(&dir, durable(), Access::Open)?.default_namespace();
    let runtime = runtime()?;
    let (node, port, stop) = runtime.block_on(async {
        let (node, _) = start(&dir, Vec::new()).await?;
        let server = RedisServer::bind(RedisConfig::new(SocketAddr::from(([127, 0, 0, 1], 0))))
            .await
            .map_err(node_error)?;
        let port = server.local_addr()?.tcp().map_or(0, |addr| addr.port());
        let (stop, shutdown) = weft_node::shutdown::channel();
        let serving = tokio::spawn(server.serve(node.handle(), ns, shutdown));
        Ok::<_, BenchError>((node, port, (stop, serving)))
    })?;
    // The node serves on the runtime's worker threads while this thread waits on the process.
    let rates = benchmark(port, requests, runs);
    runtime
        .block_on(async {
            stop.0.fire();
            let _ = stop.1.await;
            node.shutdown().await
        })
        .map_err(node_error)?;
    rates
}

/// W7.
pub(crate) fn w7(settings: &Settings) -> Result<(), BenchError> {
    if !installed("redis-benchmark") {
        println!(
            "W7     skipped: redis-benchmark is not installed (Debian/Ubuntu: apt install redis-tools redis-server)"
        );
        return Ok(());
    }
    let requests = settings.puts;
    let weft = weft_rates(requests, settings.runs)?;
    let mut baselines = Vec::new();
    if installed("redis-server") {
        let root = tempfile::tempdir()?;
        let plain = RedisProcess::start(root.path(), &["--save", "", "--appendonly", "no"])?;
        baselines.push((
            "redis-server (no persistence)",
            benchmark(plain.port, requests, settings.runs)?,
        ));
        drop(plain);
        let synced = RedisProcess::start(
            root.path(),
            &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],
        )?;
        baselines.push((
            "redis-server (appendfsync always)",
            benchmark(synced.port, requests, settings.runs)?,
        ));
    } else {
        println!("W7     redis-server is not installed: no baseline to compare with");
    }
    if !settings.json {
        println!(
            "W7     redis-benchmark -t set,get -n {requests} -P {PIPELINE}: requests per second, median of {} runs",
            settings.runs
        );
        println!(
            "       {:<36} {:>12.0} SET {:>12.0} GET   weft fsyncs each group commit",
            "weft node --redis", weft.set, weft.get
        );
        for (name, rates) in &baselines {
            println!(
                "       {name:<36} {:>12.0} SET {:>12.0} GET   weft/redis: SET {:.2} (target 0.50), GET {:.2} (target 0.70)",
                rates.set,
                rates.get,
                weft.set / rates.set,
                weft.get / rates.get
            );
        }
    }
    let baselines: Vec<_> = baselines
        .iter()
        .map(|(name, r)| json!({"server": name, "set_per_s": r.set, "get_per_s": r.get, "set_ratio": weft.set / r.set, "get_ratio": weft.get / r.get}))
        .collect();
    println!(
        "{}",
        json!({"workload": "W7", "requests": requests, "pipeline": 16, "weft": {"set_per_s": weft.set, "get_per_s": weft.get}, "redis": baselines, "durability": "weft: fsync per group commit"})
    );
    Ok(())
}
