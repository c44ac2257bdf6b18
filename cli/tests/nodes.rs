//! The CLI against running nodes: capabilities spreading between them, remote reads, the
//! Redis front end's durability and password, signals, QUIC, and a forked author.

use crate::common::{Dir, NodeProcess, redis_port, until_ok, until_output};

/// The capability commands end to end between real nodes: a grant limited to a prefix and a
/// time, `members`, a write ticket limited to a prefix, and a revocation that spreads to the
/// revoked node and keeps out what it wrote past the cut, which `status` then lists.
#[test]
fn grants_tickets_and_revocations_work_from_the_cli_and_spread_between_nodes() {
    let a = Dir::initialized();
    let a_node = NodeProcess::start(&a);
    let ticket = a.weft(["ticket"]).ok().text();
    let b = Dir::new();
    b.weft(["init", "--join", ticket.trim()]).ok();
    let b_author = b.author();
    let b_node = NodeProcess::start(&b);
    b.weft(["put", "shared/x", "1"]).fails(2, "no grant");

    a.weft(["grant", &b_author, "--prefix", "shared/", "--expires", "1h"])
        .ok();
    let members = a.weft(["members"]).ok().text();
    assert!(
        members.contains(&format!("{b_author}: may write keys under shared/, until ")),
        "{members}"
    );
    // Once B holds the grant, it writes under the prefix and only there.
    until_ok(&b, &["put", "shared/x", "from b"], "B to hold its grant");
    b.weft(["put", "other/x", "1"])
        .fails(2, "outside its grant");
    until_output(&a, &["get", "shared/x"], "B's write to reach A", |v| {
        v == "from b"
    });

    // A write ticket limited to a prefix: C's key is granted for p/ alone, once C has
    // fetched the grant from A.
    let write_ticket = a
        .weft(["ticket", "--write", "--prefix", "p/", "--expires", "1h"])
        .ok()
        .text();
    let c = Dir::new();
    c.weft(["init", "--join", write_ticket.trim()]).ok();
    let c_node = NodeProcess::start(&c);
    until_ok(&c, &["put", "p/1", "from c"], "C to hold its grant");
    c.weft(["put", "q/1", "from c"])
        .fails(2, "outside its grant");
    until_output(&a, &["get", "p/1"], "C's write to reach A", |v| {
        v == "from c"
    });
    drop(c_node);

    // B goes offline and writes; meanwhile A revokes it. What B wrote past the cut does not
    // count anywhere once the revocation meets it.
    drop(b_node);
    b.weft(["put", "shared/late", "after the cut"]).ok();
    a.weft(["revoke", &b_author]).ok();
    assert!(
        a.weft(["members"]).ok().text().contains("revoked"),
        "A lists the revocation"
    );
    let b_node = NodeProcess::start(&b);
    until_output(&b, &["members"], "the revocation to reach B", |m| {
        m.contains(&format!("{b_author}: revoked"))
    });
    b.weft(["put", "shared/y", "2"]).fails(2, "revoked");
    // B keeps its late entry but it no longer counts there, and `status` says why; A, which
    // fetches a revoked author's entries only up to the cut, never takes it.
    let status = b.weft(["status"]).ok().text();
    assert!(
        status.contains(&format!(
            "excluded:  1 entries of {b_author} from 1: revoked"
        )),
        "{status}"
    );
    b.weft(["get", "shared/late"]).fails(1, "not found");
    a.weft(["get", "shared/late"]).fails(1, "not found");
    assert_eq!(a.weft(["get", "shared/x"]).ok().stdout, b"from b");
    drop(b_node);
    drop(a_node);
}

/// SIGINT (Ctrl-C) stops a node as cleanly as SIGTERM: exit 0, socket removed, writes kept.
#[test]
fn ctrl_c_stops_a_node_cleanly() {
    let dir = Dir::initialized();
    let mut node = NodeProcess::start(&dir);
    dir.weft(["put", "k", "kept"]).ok();
    let status = node.signal("-INT");
    assert!(status.success(), "{status}: {}", node.log_text());
    assert!(!dir.data.join("node.sock").exists(), "socket removed");
    assert_eq!(dir.weft(["get", "k"]).ok().stdout, b"kept");
}

/// One RESP command on a fresh connection to 127.0.0.1:`port`: the reply's first line.
fn redis_command(port: u16, parts: &[&[&str]]) -> Vec<String> {
    use std::io::{BufRead, Write};
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to redis");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = std::io::BufReader::new(stream);
    let mut replies = Vec::new();
    for command in parts {
        let mut request = format!("*{}\r\n", command.len());
        for part in *command {
            request.push_str(&format!("${}\r\n{part}\r\n", part.len()));
        }
        writer.write_all(request.as_bytes()).expect("send");
        let mut line = String::new();
        reader.read_line(&mut line).expect("a reply");
        replies.push(line.trim_end().to_string());
    }
    replies
}

/// A Redis `+OK` means committed: a node killed with SIGKILL right after the reply still has
/// the write when it comes back, every time.
#[test]
fn a_redis_ok_survives_a_sigkill_right_after_it() {
    let dir = Dir::initialized();
    for round in 0..10 {
        let mut node = NodeProcess::start_with(&dir, &["--redis", "127.0.0.1:0"]);
        let port = redis_port(&node);
        let key = format!("k{round}");
        let reply = redis_command(port, &[&["SET", &key, "durable"]]);
        node.signal("-KILL");
        assert_eq!(reply, ["+OK"]);
        assert_eq!(
            dir.weft(["get", &key]).ok().stdout,
            b"durable",
            "round {round}: an acknowledged SET was lost"
        );
    }
}

/// `WEFT_REDIS_PASSWORD` sets the password as `--redis-password` does: nothing is served
/// before `AUTH`, a wrong password is refused, the right one lets the client in.
#[test]
fn the_redis_password_can_come_from_the_environment() {
    let dir = Dir::initialized();
    let node = NodeProcess::start_with_env(
        &dir,
        &["--redis", "127.0.0.1:0"],
        &[("WEFT_REDIS_PASSWORD", "s3cret")],
    );
    let port = redis_port(&node);
    let replies = redis_command(
        port,
        &[
            &["SET", "k", "v"],
            &["AUTH", "wrong"],
            &["AUTH", "s3cret"],
            &["SET", "k", "v"],
        ],
    );
    assert!(replies[0].starts_with("-NOAUTH"), "{replies:?}");
    assert!(replies[1].starts_with("-WRONGPASS"), "{replies:?}");
    assert_eq!(replies[2..], ["+OK", "+OK"], "{replies:?}");
    assert_eq!(dir.weft(["get", "k"]).ok().stdout, b"v");
}

/// `get --remote` through a node: a sparse replica reads a key outside its interest from a
/// peer, checked against its proofs, and stores nothing of it.
#[test]
fn a_sparse_replica_reads_outside_its_interest_with_remote_get() {
    let a = Dir::initialized();
    a.weft(["put", "photos/1", "a photo"]).ok();
    let a_node = NodeProcess::start(&a);
    let ticket = a.weft(["ticket"]).ok().text();
    let b = Dir::new();
    b.weft(["init", "--join", ticket.trim(), "--prefix", "config/"])
        .ok();
    b.weft(["interest", "add", "notes/", "--author", &a.author()])
        .ok();
    assert_eq!(
        b.weft(["interest", "ls"]).ok().text(),
        format!("config/\nnotes/\nauthor {}\n", a.author())
    );
    let b_node = NodeProcess::start(&b);
    let read = until_ok(&b, &["get", "--remote", "photos/1"], "a remote read");
    assert_eq!(read.stdout, b"a photo");
    b.weft(["get", "photos/1"]).fails(2, "not replicated here");
    drop(b_node);
    drop(a_node);
}

/// Copies a data dir as a backup would, but for the node's own identity (`keys/node.key`), so
/// the copy runs as another peer holding the same author key: a device cloned.
fn clone_device(from: &Dir) -> Dir {
    let to = Dir::new();
    weft_storage::copy_data_dir(&from.data, &to.data).expect("copy the data dir");
    let _ = std::fs::remove_file(to.data.join("keys/node.key"));
    to
}

/// An author that signs two histories (a device cloned, both copies writing) is caught across
/// real nodes: a third replica that hears both proves where they part, hands the proof on in
/// head exchanges and gossip, and every node freezes the feed there: each counts the entry
/// before the clone and neither branch's, `status` lists the fork, and the forked author's
/// writes are refused rather than lost.
#[test]
fn a_forked_author_is_proven_frozen_and_listed_on_every_node() {
    let a = Dir::new();
    a.weft(["init", "--open"]).ok();
    a.weft(["put", "k", "before the clone"]).ok();
    let twin = clone_device(&a);
    a.weft(["put", "k", "from the original"]).ok();
    twin.weft(["put", "k", "from the twin"]).ok();
    let author = a.author();
    assert_eq!(twin.author(), author, "one author key, two histories");

    let ticket = a.weft(["ticket"]).ok().text();
    let c = Dir::new();
    c.weft(["init", "--join", ticket.trim()]).ok();
    let a_node = NodeProcess::start(&a);
    let twin_node = NodeProcess::start(&twin);
    let (a_addr, twin_addr) = (
        a_node.printed("listening on "),
        twin_node.printed("listening on "),
    );
    let c_node = NodeProcess::start_with(&c, &["--peer", &a_addr, "--peer", &twin_addr]);
    let fork_line =
        format!("FORK:      {author} signed two histories (lengths 2 and 2) that part at entry 1");
    for (name, dir) in [("C", &c), ("A", &a), ("the twin", &twin)] {
        until_output(dir, &["status"], &format!("{name} to list the fork"), |s| {
            s.contains(&fork_line)
        });
        assert_eq!(
            dir.weft(["get", "k"]).ok().text().trim(),
            "before the clone"
        );
    }
    a.weft(["put", "k2", "after the fork"])
        .fails(2, "signed two histories of its feed");
    c.weft(["verify"]).ok();
    drop(c_node);
    drop(twin_node);
    drop(a_node);
}

/// Two nodes that know each other only by a QUIC address connect over QUIC and replicate.
#[test]
fn two_nodes_replicate_over_quic() {
    let a = Dir::new();
    a.weft(["init", "--open"]).ok();
    // Made before A's node runs, the ticket carries no address: B knows only the QUIC one.
    let ticket = a.weft(["ticket"]).ok().text();
    let quic = ["--listen", "/ip4/127.0.0.1/udp/0/quic-v1"];
    let a_node = NodeProcess::start_with(&a, &quic);
    let a_quic = a_node.printed("listening on /ip4/127.0.0.1/udp/");
    let a_quic = format!("/ip4/127.0.0.1/udp/{a_quic}");
    let b = Dir::new();
    b.weft(["init", "--join", ticket.trim()]).ok();
    let b_node = NodeProcess::start_with(&b, &["--peer", &a_quic]);
    a.weft(["put", "over", "quic"]).ok();
    until_output(&b, &["get", "over"], "the put to reach B", |v| v == "quic");
    let peers = b.weft(["status"]).ok().text();
    assert!(peers.contains("/quic-v1"), "B reached A over QUIC: {peers}");
    drop(b_node);
    drop(a_node);
}

/// JSON lines for `weft import`: `count` keys `prefix0`.. with values of `size` bytes.
fn import_lines(prefix: &str, count: usize, size: usize) -> Vec<u8> {
    let value = "v".repeat(size);
    (0..count)
        .map(|i| format!("{{\"key\": \"{prefix}{i}\", \"value\": \"{value}\"}}\n"))
        .collect::<String>()
        .into_bytes()
}

/// A `watch` reader that stops reading (its output blocked) while the replica writes past
/// what the change feed keeps (`changes_kept` in `config.json`) is told so when it reads on:
/// it has printed every change it was given, with no gap, and then fails naming the oldest
/// change kept, from which `watch --from` resumes.
#[test]
fn a_watch_reader_that_falls_behind_is_told_where_the_feed_now_starts() {
    use std::io::BufRead;
    use std::time::Duration;

    let dir = Dir::initialized();
    std::fs::write(dir.data.join("config.json"), r#"{"changes_kept": 100}"#).expect("config");
    let node = NodeProcess::start(&dir);
    let mut watcher = std::process::Command::new(crate::common::WEFT)
        .arg("--data-dir")
        .arg(&dir.data)
        // From the first change this fresh replica makes.
        .args(["watch", "--from", "1"])
        .env_remove("WEFT_DATA_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn weft watch");
    let stdout = watcher.stdout.take().expect("stdout");
    // The reader takes one line, then nothing until `resume`: the pipe fills and `watch`
    // blocks mid-page, as behind a slow consumer.
    let (lines, received) = std::sync::mpsc::channel();
    let (resume, resumed) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        for (n, line) in std::io::BufReader::new(stdout).lines().enumerate() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
            if n == 0 && resumed.recv().is_err() {
                return;
            }
        }
    });
    // 70 changes of 4 KB, far more than a pipe holds, then 600 more in two commits.
    dir.weft_stdin(["import"], &import_lines("big/", 70, 4096))
        .ok();
    let first = received
        .recv_timeout(Duration::from_secs(30))
        .expect("watch printed the first change");
    assert!(first.starts_with("1\tbig/0\t"), "{first:.40}");
    dir.weft_stdin(["import"], &import_lines("a/", 300, 8)).ok();
    dir.weft_stdin(["import"], &import_lines("b/", 300, 8)).ok();

    resume.send(()).expect("the reader waits");
    let mut seqs = vec![1];
    while let Ok(line) = received.recv_timeout(Duration::from_secs(30)) {
        let seq: u64 = line
            .split('\t')
            .next()
            .and_then(|s| s.parse().ok())
            .expect("a seq");
        seqs.push(seq);
    }
    let started = std::time::Instant::now();
    while watcher.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(10) {
            let _ = watcher.kill();
            panic!(
                "watch went on past the changes dropped, to {:?}",
                seqs.last()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = watcher.wait_with_output().expect("watch exits");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(
        seqs,
        (1..=70).collect::<Vec<_>>(),
        "every change given, no gap"
    );
    assert!(
        stderr.contains("change 71 is no longer kept: the change feed starts at 371;"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`weft ls --values` re-reads them"),
        "{stderr}"
    );
    drop(node);

    // Offline, the same retention: the kept changes are the last commit's, and `--from` the
    // oldest prints them.
    let kept = dir.weft(["watch", "--from", "371"]).ok().text();
    assert_eq!(kept.lines().count(), 300);
    assert!(kept.starts_with("371\tb/0\t"), "{kept:.40}");
}

/// One HTTP GET of `path` from `addr` (HOST:PORT): the status line, headers and body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the metrics");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("a reply");
    let (head, body) = reply.split_once("\r\n\r\n").expect("a head and a body");
    (head.to_string(), body.to_string())
}

/// The samples of an OpenMetrics text body, checked line by line: every family declared
/// with `# TYPE` before its samples, every sample `name{labels} value`, and `# EOF` last.
fn samples(body: &str) -> std::collections::HashMap<String, f64> {
    let mut lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.pop(), Some("# EOF"), "the body ends with # EOF");
    let mut families = Vec::new();
    let mut samples = std::collections::HashMap::new();
    for line in lines {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let (family, kind) = declared.split_once(' ').expect("# TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "info", "unknown"].contains(&kind),
                "{line}"
            );
            families.push(family.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample: series value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {line}")),
        };
        let name = series.split('{').next().expect("a name");
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "a bad metric name: {line}"
        );
        assert!(
            families.iter().any(|f| name.starts_with(f.as_str())),
            "{name} has no # TYPE before it"
        );
        assert!(
            series.ends_with('}') == series.contains('{'),
            "bad labels: {line}"
        );
        samples.insert(series.to_string(), value);
    }
    samples
}

/// `weft node --metrics` serves the Prometheus (OpenMetrics) text format: weft's counters of
/// sync and writes, its gauges of peers and bytes, and libp2p's own, each moving with what
/// the node did; another path is not found.
#[test]
fn the_metrics_endpoint_serves_what_the_node_did_in_the_prometheus_format() {
    let a = Dir::initialized();
    let a_node = NodeProcess::start(&a);
    let a_addr = a_node.printed("listening on ");
    for i in 0..3 {
        a.weft(["put", &format!("k{i}"), "v"]).ok();
    }
    let ticket = a.weft(["ticket", "--write"]).ok().text();
    let b = Dir::new();
    b.weft(["init", "--join", ticket.trim()]).ok();
    let b_node = NodeProcess::start_with(&b, &["--peer", &a_addr, "--metrics", "127.0.0.1:0"]);
    let url = b_node.printed("metrics on http://");
    let addr = url.trim_end_matches("/metrics");
    b.weft(["sync", "--timeout", "60"]).ok();
    // The 3 puts and B's grant.
    let a_entries = a.feed_length();
    until_ok(&b, &["put", "mine", "x"], "B to hold its grant");

    let (head, body) = http_get(addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    let samples = samples(&body);
    let value = |series: &str| {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in:\n{body}"))
    };
    assert_eq!(value("weft_entries_ingested_total"), a_entries as f64);
    assert_eq!(value("weft_entries_written_total"), 1.0);
    assert_eq!(value("weft_write_seconds_count"), 1.0);
    assert!(value(r#"weft_sync_requests_sent_total{kind="heads"}"#) >= 1.0);
    assert!(value(r#"weft_sync_requests_sent_total{kind="run"}"#) >= 1.0);
    assert!(value(r#"weft_sync_responses_received_total{kind="run"}"#) >= 1.0);
    assert_eq!(value("weft_feeds"), 2.0, "A's feed and B's own");
    assert_eq!(value(r#"weft_peers{way="direct"}"#), 1.0);
    assert_eq!(value(r#"weft_peers{way="relayed"}"#), 0.0);
    assert!(value(r#"weft_wire_bytes_total{way="received"}"#) > 0.0);
    assert!(value("weft_resident_bytes") > 1e6);
    assert!(
        samples
            .keys()
            .any(|s| s.starts_with("libp2p_swarm_connections_established_total")),
        "libp2p's swarm metrics: {body}"
    );
    assert!(!body.contains("weft_bans_total{"), "no peer was cut off");

    let (head, _) = http_get(addr, "/other");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    drop(b_node);
    drop(a_node);
}
