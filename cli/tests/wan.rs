//! Devices on different home networks, each behind its own NAT router, syncing through a
//! relay and bootstrap node on a public segment: `weft node` processes in network namespaces
//! (`netns/mod.rs`). Each case prints its time, and the W10 figures as a JSON line.
//!
//! (a) cone NATs: a put is readable across within seconds of the nodes starting, hole punching
//!     makes the connection direct, and the relay carries under 5% of a 100,000-entry
//!     catch-up; (b) a symmetric NAT: the same sync through the relay; (c) three devices from
//!     one ticket, the first goes offline, a write on the second reaches the third; (d) a
//!     device restarts on another home network and is found again with no new ticket; (e) 2%
//!     loss and a 20 Mbit/s cap: a 100,000-entry catch-up completes and verifies.
//!
//! Without root or `ip netns` each case prints "skipped: needs root and ip netns".

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{WEFT, status, weft, weft_ok};
use crate::netns::{Bed, Home, Host, Nat, ONE_AT_A_TIME, Wan, bed, report, wait_for};
use serde_json::{Value, json};

/// Entries in the catch-ups measured.
const CATCH_UP: u64 = 100_000;

/// Merges `fields` into the config file of `dir`.
fn configure(dir: &Path, fields: Value) {
    let path = dir.join("config.json");
    let mut config: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_else(|| json!({}));
    for (key, value) in fields.as_object().expect("an object") {
        config[key] = value.clone();
    }
    std::fs::write(path, config.to_string()).expect("write config");
}

/// A relay on the public segment; returns its host, process and TCP bootstrap address
/// (`start_relay_on` for QUIC's).
fn start_relay(bed: &mut Bed, root: &Path) -> (Host, usize, String) {
    start_relay_on(bed, root, "tcp")
}

fn start_relay_on(bed: &mut Bed, root: &Path, transport: &str) -> (Host, usize, String) {
    let host = bed.public_host("relay");
    let dir = root.join("relay");
    std::fs::create_dir_all(&dir).expect("relay dir");
    configure(&dir, json!({"nat_probe_private": true}));
    let process = bed.spawn(
        &host,
        "relay",
        Path::new(WEFT),
        &[
            "--data-dir",
            dir.to_str().expect("utf-8"),
            "node",
            "--relay",
        ],
    );
    let protocol = if transport == "quic" { "udp" } else { "tcp" };
    let prefix = format!("bootstrap address /ip4/{}/{protocol}/", host.ip);
    let addr = wait_for(Duration::from_secs(30), || {
        bed.process(process).stdout().lines().find_map(|l| {
            l.starts_with(&prefix)
                .then(|| l["bootstrap address ".len()..].to_owned())
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "the relay did not start: {}",
            bed.process(process).stderr_tail()
        )
    });
    (host, process, addr)
}

/// Starts `weft node` on `dir` inside `host` and waits for its local API.
fn start_node(bed: &mut Bed, host: &Host, dir: &Path, name: &str) -> usize {
    let process = bed.spawn(
        host,
        name,
        Path::new(WEFT),
        &[
            "--data-dir",
            dir.to_str().expect("utf-8"),
            "node",
            "--no-mdns",
        ],
    );
    if wait_for(Duration::from_secs(30), || status(dir)).is_none() {
        panic!(
            "{name} did not start: {}",
            bed.process(process).stderr_tail()
        );
    }
    process
}

/// The first device: a new namespace, its node started with the relay as bootstrap; returns
/// its process once its reservation is accepted.
fn first_device(bed: &mut Bed, home: &Home, dir: &Path, bootstrap: &str) -> usize {
    weft_ok(dir, &["init"]);
    configure(
        dir,
        json!({"nat_probe_private": true, "bootstrap": [bootstrap]}),
    );
    let process = start_node(bed, &home.device, dir, "a");
    let reserved = wait_for(Duration::from_secs(60), || {
        status(dir)?["reservations"]
            .as_array()?
            .iter()
            .any(|r| r["address"].is_string())
            .then_some(())
    });
    assert!(
        reserved.is_some(),
        "no reservation on the relay: {}",
        bed.process(process).stderr_tail()
    );
    process
}

/// A device that joins from `ticket`.
fn join(bed: &mut Bed, host: &Host, dir: &Path, ticket: &str, name: &str) -> usize {
    weft_ok(dir, &["init", "--join", ticket]);
    configure(dir, json!({"nat_probe_private": true}));
    start_node(bed, host, dir, name)
}

/// Polls `get key` on `dir` until it prints `value`; the time it took.
fn read_within(dir: &Path, key: &str, value: &str, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    wait_for(limit, || {
        let out = weft(dir, &["get", key]);
        (out.status.success() && out.stdout == value.as_bytes()).then(|| started.elapsed())
    })
}

/// The connection `dir`'s node has to `peer`: (address, relayed).
fn connection(dir: &Path, peer: &str) -> Option<(String, bool)> {
    let status = status(dir)?;
    let peer = status["peers"]
        .as_array()?
        .iter()
        .find(|p| p["id"] == peer)?
        .clone();
    Some((
        peer["address"].as_str()?.to_owned(),
        peer["relayed"].as_bool()?,
    ))
}

fn peer_id(dir: &Path) -> String {
    status(dir).expect("node running")["peer_id"]
        .as_str()
        .expect("a peer id")
        .to_owned()
}

fn wire_bytes(dir: &Path) -> u64 {
    let status = status(dir).expect("node running");
    status["wire_sent"].as_u64().unwrap_or(0) + status["wire_received"].as_u64().unwrap_or(0)
}

/// Entries `dir` holds of every feed.
fn held(dir: &Path) -> u64 {
    let info: Value = serde_json::from_str(&weft_ok(dir, &["--json", "info"])).expect("info json");
    info["namespaces"][0]["feeds"]
        .as_array()
        .map(|feeds| feeds.iter().filter_map(|f| f["length"].as_u64()).sum())
        .unwrap_or(0)
}

/// Writes `count` entries on `dir` in batches of 1,000 (W1(b)'s shape): keys `k` + index.
fn write_many(dir: &Path, root: &Path, count: u64) {
    let file = root.join("records.jsonl");
    let mut text = String::with_capacity(count as usize * 140);
    for i in 0..count {
        let value: String = (0..100)
            .map(|j| char::from(b'a' + ((i + j) % 26) as u8))
            .collect();
        text.push_str(&format!("{{\"key\":\"k{i:015}\",\"value\":\"{value}\"}}\n"));
    }
    std::fs::write(&file, text).expect("records");
    weft_ok(dir, &["import", file.to_str().expect("utf-8")]);
}

/// CPU seconds process `pid` has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime are 14th and 15th.
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

/// The `weft node` process inside a namespace is a child of `ip netns exec`, which execs it:
/// the same pid.
fn relay_cpu(bed: &Bed, relay: usize) -> f64 {
    cpu_seconds(bed.process(relay).pid())
}

struct Pair {
    root: tempfile::TempDir,
    relay: (Host, usize, String),
    a_dir: PathBuf,
    b_dir: PathBuf,
    b_host: Host,
    a: usize,
    b: usize,
    started: Instant,
}

/// A relay, devices A (behind a cone NAT) and B (behind `nat_b`), B joined from A's write
/// ticket.
fn pair(bed: &mut Bed, root: tempfile::TempDir, nat_b: Nat, wan: Option<Wan>) -> Pair {
    pair_on(bed, root, nat_b, wan, "tcp")
}

/// As [`pair`], the bootstrap node reached over `transport` (`tcp` or `quic`).
fn pair_on(
    bed: &mut Bed,
    root: tempfile::TempDir,
    nat_b: Nat,
    wan: Option<Wan>,
    transport: &str,
) -> Pair {
    let relay = start_relay_on(bed, root.path(), transport);
    let home_a = bed.home("ha", Nat::Cone, wan);
    let home_b = bed.home("hb", nat_b, wan);
    let a_dir = root.path().join("a");
    let b_dir = root.path().join("b");
    let a = first_device(bed, &home_a, &a_dir, &relay.2);
    let ticket = weft_ok(&a_dir, &["ticket", "--write"]);
    let started = Instant::now();
    let b = join(bed, &home_b.device, &b_dir, ticket.trim(), "b");
    Pair {
        root,
        relay,
        a_dir,
        b_dir,
        b_host: home_b.device,
        a,
        b,
        started,
    }
}

/// W3 across the NATs: B stops, A writes `CATCH_UP` entries in batches of 1,000, B starts
/// again where it was; returns (seconds from B's start until it holds them all, B's wire
/// bytes, the relay's link bytes, the relay's CPU seconds) spent on the catch-up.
fn catch_up(bed: &mut Bed, pair: &mut Pair, host: &Host) -> (f64, u64, u64, f64) {
    let before = held(&pair.b_dir);
    bed.stop(pair.b);
    write_many(&pair.a_dir, pair.root.path(), CATCH_UP);
    let (link, cpu) = (bed.link_bytes(&pair.relay.0), relay_cpu(bed, pair.relay.1));
    let started = Instant::now();
    pair.b = start_node(bed, host, &pair.b_dir, "b-again");
    let done = wait_for(Duration::from_secs(300), || {
        (held(&pair.b_dir) >= before + CATCH_UP).then_some(())
    });
    assert!(
        done.is_some(),
        "B caught up {} of {CATCH_UP}: {}",
        held(&pair.b_dir) - before,
        bed.process(pair.b).stderr_tail()
    );
    (
        started.elapsed().as_secs_f64(),
        wire_bytes(&pair.b_dir),
        bed.link_bytes(&pair.relay.0) - link,
        relay_cpu(bed, pair.relay.1) - cpu,
    )
}

/// Prints `line` and appends it to `target/tmp/wan.txt`, which `.ci/run` shows: the test
/// harness keeps a passing test's output to itself.
#[test]
fn a_cone_nat_pair_syncs_relayed_then_direct() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some((mut bed, root)) = bed() else { return };
    let case = Instant::now();
    let mut pair = pair(&mut bed, root, Nat::Cone, None);
    weft_ok(&pair.a_dir, &["put", "hello", "world"]);
    let first = read_within(&pair.b_dir, "hello", "world", Duration::from_secs(60))
        .map(|_| pair.started.elapsed())
        .unwrap_or_else(|| {
            panic!(
                "B never read A's put: {}",
                bed.process(pair.b).stderr_tail()
            )
        });
    let a_peer = peer_id(&pair.a_dir);
    let direct = wait_for(Duration::from_secs(60), || {
        connection(&pair.b_dir, &a_peer).filter(|(_, relayed)| !relayed)
    })
    .map(|_| pair.started.elapsed());
    let Some(direct) = direct else {
        panic!(
            "the connection stayed relayed: {:?}\nA: {}\nB: {}",
            connection(&pair.b_dir, &a_peer),
            bed.process(pair.a).stderr_tail(),
            bed.process(pair.b).stderr_tail()
        );
    };
    let (seconds, wire, relayed, cpu) = {
        let host = pair.b_host.clone();
        catch_up(&mut bed, &mut pair, &host)
    };
    report(&format!(
        "{}",
        json!({"workload": "W10", "case": "cone", "first_put_s": first.as_secs_f64(),
               "direct_after_s": direct.as_secs_f64(), "hole_punched": true,
               "catch_up_entries": CATCH_UP, "catch_up_s": seconds,
               "entries_per_s": CATCH_UP as f64 / seconds,
               "wire_bytes_per_entry": wire as f64 / CATCH_UP as f64,
               "relay_bytes": relayed, "relay_fraction": relayed as f64 / wire as f64,
               "relay_cpu_s": cpu, "case_s": case.elapsed().as_secs_f64()})
    ));
    assert!(
        (relayed as f64) < 0.05 * wire as f64,
        "the relay carried {relayed} of {wire} bytes"
    );
}

#[test]
fn a_cone_nat_pair_punches_a_hole_over_quic() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some((mut bed, root)) = bed() else { return };
    let case = Instant::now();
    let pair = pair_on(&mut bed, root, Nat::Cone, None, "quic");
    weft_ok(&pair.a_dir, &["put", "hello", "world"]);
    let first = read_within(&pair.b_dir, "hello", "world", Duration::from_secs(60))
        .map(|_| pair.started.elapsed())
        .unwrap_or_else(|| {
            panic!(
                "B never read A's put: {}",
                bed.process(pair.b).stderr_tail()
            )
        });
    let a_peer = peer_id(&pair.a_dir);
    let direct = wait_for(Duration::from_secs(60), || {
        connection(&pair.b_dir, &a_peer)
            .filter(|(address, relayed)| !relayed && address.contains("/quic-v1"))
    });
    report(&format!(
        "{}",
        json!({"workload": "W10", "case": "cone, QUIC", "first_put_s": first.as_secs_f64(),
               "direct": direct.clone().map(|(address, _)| address),
               "case_s": case.elapsed().as_secs_f64()})
    ));
    assert!(
        direct.is_some(),
        "no direct QUIC connection: {:?}\nB: {}",
        connection(&pair.b_dir, &a_peer),
        bed.process(pair.b).stderr_tail()
    );
}

#[test]
fn a_symmetric_nat_syncs_through_the_relay() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some((mut bed, root)) = bed() else { return };
    let case = Instant::now();
    let mut pair = pair(&mut bed, root, Nat::Symmetric, None);
    weft_ok(&pair.a_dir, &["put", "hello", "world"]);
    let first = read_within(&pair.b_dir, "hello", "world", Duration::from_secs(60))
        .map(|_| pair.started.elapsed())
        .unwrap_or_else(|| {
            panic!(
                "B never read A's put: {}",
                bed.process(pair.b).stderr_tail()
            )
        });
    let a_peer = peer_id(&pair.a_dir);
    let (_, relayed) = connection(&pair.b_dir, &a_peer).expect("connected");
    let (seconds, wire, relay_bytes, cpu) = {
        let host = pair.b_host.clone();
        catch_up(&mut bed, &mut pair, &host)
    };
    let verified = weft(&pair.b_dir, &["verify"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    report(&format!(
        "{}",
        json!({"workload": "W10", "case": "symmetric", "first_put_s": first.as_secs_f64(),
               "relayed": relayed, "catch_up_entries": CATCH_UP, "catch_up_s": seconds,
               "entries_per_s": CATCH_UP as f64 / seconds,
               "wire_bytes_per_entry": wire as f64 / CATCH_UP as f64,
               "relay_bytes": relay_bytes, "relay_cpu_s": cpu,
               "case_s": case.elapsed().as_secs_f64()})
    ));
    assert!(
        relayed,
        "a symmetric NAT cannot be punched, yet the connection is direct"
    );
    assert!(
        relay_bytes as f64 > 0.5 * wire as f64,
        "the catch-up did not go through the relay: {relay_bytes} of {wire}"
    );
}

#[test]
fn three_devices_keep_syncing_when_the_first_goes_offline() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some((mut bed, root)) = bed() else { return };
    let case = Instant::now();
    let relay = start_relay(&mut bed, root.path());
    let homes: Vec<Home> = ["ha", "hb", "hc"]
        .iter()
        .map(|role| bed.home(role, Nat::Cone, None))
        .collect();
    let dirs: Vec<PathBuf> = ["a", "b", "c"]
        .iter()
        .map(|d| root.path().join(d))
        .collect();
    let a = first_device(&mut bed, &homes[0], &dirs[0], &relay.2);
    let b_ticket = weft_ok(&dirs[0], &["ticket", "--write"]);
    let c_ticket = weft_ok(&dirs[0], &["ticket", "--write"]);
    join(&mut bed, &homes[1].device, &dirs[1], b_ticket.trim(), "b");
    join(&mut bed, &homes[2].device, &dirs[2], c_ticket.trim(), "c");
    weft_ok(&dirs[0], &["put", "from-a", "1"]);
    for dir in &dirs[1..] {
        assert!(
            read_within(dir, "from-a", "1", Duration::from_secs(60)).is_some(),
            "{} never read A's put",
            dir.display()
        );
    }
    bed.stop(a);
    // B writes once it holds its grant, which came with A's feed.
    let wrote = wait_for(Duration::from_secs(30), || {
        weft(&dirs[1], &["put", "from-b", "2"])
            .status
            .success()
            .then_some(())
    });
    assert!(wrote.is_some(), "B could not write");
    let reached = read_within(&dirs[2], "from-b", "2", Duration::from_secs(90));
    report(&format!(
        "{}",
        json!({"workload": "W10", "case": "first offline",
               "b_to_c_s": reached.map(|d| d.as_secs_f64()),
               "case_s": case.elapsed().as_secs_f64()})
    ));
    assert!(reached.is_some(), "C never read B's put with A offline");
}

#[test]
fn a_device_that_moved_networks_is_found_again() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some((mut bed, root)) = bed() else { return };
    let case = Instant::now();
    let pair = pair(&mut bed, root, Nat::Cone, None);
    weft_ok(&pair.a_dir, &["put", "before", "1"]);
    assert!(read_within(&pair.b_dir, "before", "1", Duration::from_secs(60)).is_some());
    bed.stop(pair.b);
    let elsewhere = bed.home("hc", Nat::Cone, None);
    let moved = Instant::now();
    start_node(&mut bed, &elsewhere.device, &pair.b_dir, "b-moved");
    weft_ok(&pair.a_dir, &["put", "after", "2"]);
    let found =
        read_within(&pair.b_dir, "after", "2", Duration::from_secs(90)).map(|_| moved.elapsed());
    report(&format!(
        "{}",
        json!({"workload": "W10", "case": "moved", "found_after_s": found.map(|d| d.as_secs_f64()),
               "case_s": case.elapsed().as_secs_f64()})
    ));
    assert!(found.is_some(), "B, moved, never read A's new put");
    let wrote = wait_for(Duration::from_secs(30), || {
        weft(&pair.b_dir, &["put", "back", "3"])
            .status
            .success()
            .then_some(())
    });
    assert!(wrote.is_some(), "B could not write after moving");
    assert!(
        read_within(&pair.a_dir, "back", "3", Duration::from_secs(60)).is_some(),
        "A never read the moved B's put"
    );
}

#[test]
fn a_catch_up_over_a_lossy_capped_link_completes_and_verifies() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some((mut bed, root)) = bed() else { return };
    let case = Instant::now();
    let wan = Wan {
        mbit: 20,
        loss: 0.02,
    };
    let mut pair = pair(&mut bed, root, Nat::Cone, Some(wan));
    weft_ok(&pair.a_dir, &["put", "hello", "world"]);
    assert!(
        read_within(&pair.b_dir, "hello", "world", Duration::from_secs(90)).is_some(),
        "B never read A's put: {}",
        bed.process(pair.b).stderr_tail()
    );
    let (seconds, wire, relay_bytes, _) = {
        let host = pair.b_host.clone();
        catch_up(&mut bed, &mut pair, &host)
    };
    let verified = weft(&pair.b_dir, &["verify"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    report(&format!(
        "{}",
        json!({"workload": "W10", "case": "2% loss, 20 Mbit/s", "catch_up_entries": CATCH_UP,
               "catch_up_s": seconds, "entries_per_s": CATCH_UP as f64 / seconds,
               "wire_bytes_per_entry": wire as f64 / CATCH_UP as f64,
               "relay_bytes": relay_bytes, "case_s": case.elapsed().as_secs_f64()})
    ));
}
