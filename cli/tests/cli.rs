//! The `weft` binary end to end: happy paths, exit codes, and bad input that must be refused
//! with a clear message and no change on disk.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

use serde_json::Value;

use crate::common::{Dir, NodeProcess, redis_port, until_output};

#[test]
fn every_data_command_before_init_says_to_run_init() {
    let dir = Dir::new();
    for args in [
        &["get", "k"][..],
        &["put", "k", "v"],
        &["ls"],
        &["info"],
        &["verify"],
        &["export"],
    ] {
        dir.weft(args).fails(2, "run `weft init` first");
    }
    assert!(
        !dir.data.exists(),
        "a read-only mistake must not create the data dir"
    );
}

#[test]
fn init_prints_the_namespace_and_refuses_to_run_twice() {
    let dir = Dir::new();
    let ns = dir.weft(["init"]).ok().text();
    assert_eq!(ns.trim().len(), 64, "{ns}");
    assert!(ns.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    dir.weft(["init"]).fails(2, "already exists");
    let info = &dir.weft(["--json", "info"]).ok().json_lines()[0];
    assert_eq!(
        info["namespaces"][0]["id"].as_str(),
        Some(ns.trim()),
        "the second init changed nothing"
    );
}

#[test]
fn put_get_del_with_exit_codes() {
    let dir = Dir::initialized();
    dir.weft(["put", "greeting", "hello"]).ok();
    assert_eq!(dir.weft(["get", "greeting"]).ok().stdout, b"hello");
    dir.weft(["put", "greeting", "-"]).ok();
    assert_eq!(
        dir.weft(["get", "greeting"]).ok().stdout,
        b"",
        "an empty stdin is an empty value"
    );
    dir.weft_stdin(["put", "greeting", "-"], b"from\nstdin\0")
        .ok();
    assert_eq!(dir.weft(["get", "greeting"]).ok().stdout, b"from\nstdin\0");
    let file = dir.tmp.path().join("value.bin");
    std::fs::write(&file, [0u8, 159, 146, 150]).expect("write");
    dir.weft([
        OsStr::new("put"),
        OsStr::new("bin"),
        OsStr::new("--file"),
        file.as_os_str(),
    ])
    .ok();
    assert_eq!(dir.weft(["get", "bin"]).ok().stdout, [0u8, 159, 146, 150]);

    dir.weft(["get", "missing"])
        .fails(1, "key not found: missing");
    dir.weft(["del", "greeting"]).ok();
    dir.weft(["get", "greeting"]).fails(1, "key not found");
    dir.weft(["del", "greeting"]).fails(1, "key not found");
    let history = dir.weft(["history", "greeting"]).ok().text();
    let states: Vec<&str> = history
        .lines()
        .map(|l| l.split(' ').nth(3).expect("state column"))
        .collect();
    assert_eq!(
        states,
        ["superseded", "superseded", "superseded", "live"],
        "{history}"
    );
    assert!(
        history
            .lines()
            .last()
            .expect("lines")
            .ends_with("(deleted)")
    );
}

#[test]
fn get_all_lists_live_versions_with_author_and_time() {
    let dir = Dir::initialized();
    dir.weft(["put", "k", "v1"]).ok();
    dir.weft(["put", "k", "v2"]).ok();
    let all = dir.weft(["get", "--all", "k"]).ok().text();
    let fields: Vec<&str> = all.trim_end().split(' ').collect();
    assert_eq!(fields.len(), 3, "{all}");
    assert_eq!(fields[0].len(), 64);
    assert!(
        fields[1].ends_with('Z') && fields[1].starts_with("20"),
        "{all}"
    );
    assert_eq!(fields[2], "v2");
    let json = dir.weft(["--json", "get", "--all", "k"]).ok().json_lines();
    assert_eq!(json.len(), 1);
    assert_eq!(json[0]["value"], "v2");
    assert_eq!(json[0]["deleted"], false);
}

#[test]
fn ls_sorts_bytewise_and_escapes_binary_keys() {
    let dir = Dir::initialized();
    for key in ["b", "a/2", "a/1", "a/10", "c"] {
        dir.weft(["put", key, &format!("v{key}")]).ok();
    }
    dir.weft([
        OsStr::from_bytes(b"put"),
        OsStr::from_bytes(b"a/\xff\x01"),
        OsStr::from_bytes(b"bin"),
    ])
    .ok();
    assert_eq!(
        dir.weft(["ls"]).ok().text(),
        "a/1\na/10\na/2\na/\\xff\\u{1}\nb\nc\n"
    );
    assert_eq!(
        dir.weft(["ls", "a/", "--limit", "2"]).ok().text(),
        "a/1\na/10\n"
    );
    assert_eq!(dir.weft(["ls", "b", "--values"]).ok().text(), "b\tvb\n");
    let json = dir.weft(["--json", "ls", "a/"]).ok().json_lines();
    assert_eq!(
        json[3]["key_b64"], "YS//AQ==",
        "non-UTF-8 keys are base64 in JSON"
    );
}

#[test]
fn import_and_export_round_trip_binary_data() {
    let dir = Dir::initialized();
    let mut lines = String::new();
    for i in 0..2500 {
        lines.push_str(&format!(
            "{{\"key\":\"k{i:05}\",\"value\":\"value {i}\"}}\n"
        ));
    }
    lines.push_str("\n{\"key_b64\":\"/w==\",\"value_b64\":\"/wA=\"}\n");
    let run = dir.weft_stdin(["import", "-"], lines.as_bytes()).ok();
    assert_eq!(run.text(), "imported 2501 records\n");
    assert_eq!(dir.feed_length(), 2501);
    assert_eq!(dir.weft(["get", "k01234"]).ok().stdout, b"value 1234");
    let exported = dir.weft(["export"]).ok().text();
    assert_eq!(exported.lines().count(), 2501);
    assert_eq!(
        exported.lines().last(),
        Some(r#"{"key_b64":"/w==","value_b64":"/wA="}"#)
    );

    let other = Dir::initialized();
    let file = other.tmp.path().join("dump.jsonl");
    std::fs::write(&file, &exported).expect("write");
    other.weft([OsStr::new("import"), file.as_os_str()]).ok();
    assert_eq!(other.weft(["export"]).ok().text(), exported);
    assert_eq!(
        dir.weft(["export", "k0249"]).ok().text().lines().count(),
        10
    );
}

#[test]
fn a_bad_import_line_changes_nothing() {
    let dir = Dir::initialized();
    dir.weft(["put", "keep", "me"]).ok();
    let mut lines = String::new();
    for i in 0..1500 {
        lines.push_str(&format!("{{\"key\":\"k{i}\",\"value\":\"v\"}}\n"));
    }
    let with = |bad: &str| format!("{lines}{bad}\n");
    dir.weft_stdin(["import"], with(r#"{"key":"x"}"#).as_bytes())
        .fails(2, "line 1501: missing \"value\"");
    dir.weft_stdin(["import"], with("not json").as_bytes())
        .fails(2, "line 1501");
    let huge = format!(r#"{{"key":"x","value":"{}"}}"#, "v".repeat((1 << 20) + 1));
    dir.weft_stdin(["import"], with(&huge).as_bytes())
        .fails(2, "value is 1048577 bytes, over the limit of 1048576");
    assert_eq!(
        dir.feed_length(),
        1,
        "nothing of a refused import was written"
    );
    assert_eq!(dir.weft(["ls"]).ok().text(), "keep\n");
}

#[test]
fn oversize_keys_and_values_are_refused_with_nothing_written() {
    let dir = Dir::initialized();
    let key = "k".repeat(4097);
    dir.weft(["put", &key, "v"])
        .fails(2, "key is 4097 bytes, over the limit of 4096");
    let big = dir.tmp.path().join("big");
    std::fs::write(&big, vec![1u8; (1 << 20) + 1]).expect("write");
    dir.weft([
        OsStr::new("put"),
        OsStr::new("k"),
        OsStr::new("--file"),
        big.as_os_str(),
    ])
    .fails(2, "over the limit");
    assert_eq!(dir.feed_length(), 0);
}

#[test]
fn usage_errors_exit_2() {
    let dir = Dir::initialized();
    dir.weft(["get", "k", "--frobnicate"])
        .fails(2, "unexpected argument '--frobnicate'");
    dir.weft(["get"]).fails(2, "required");
    dir.weft(["put", "k"]).fails(2, "required");
    dir.weft(["ls", "--limit", "x"]).fails(2, "invalid value");
    dir.weft(["nonsense"]).fails(2, "unrecognized subcommand");
    assert!(dir.weft(["--help"]).ok().text().contains("Usage: weft"));
}

#[test]
fn a_foreign_data_dir_is_refused_untouched() {
    let dir = Dir::new();
    std::fs::create_dir(&dir.data).expect("mkdir");
    std::fs::write(dir.data.join("thesis.tex"), "mine").expect("write");
    dir.weft(["get", "k"]).fails(2, "no weft replica");
    dir.weft(["init"]).fails(2, "no weft replica");
    let names: Vec<_> = std::fs::read_dir(&dir.data)
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["thesis.tex"]);
}

#[test]
fn a_corrupt_database_file_is_an_error_not_a_panic() {
    for damage in ["garbage", "truncated"] {
        let dir = Dir::initialized();
        dir.weft(["put", "k", "v"]).ok();
        let db = dir.data.join("weft.redb");
        let bytes = std::fs::read(&db).expect("read db");
        let damaged = match damage {
            "garbage" => vec![0x5a; bytes.len()],
            _ => bytes[..bytes.len() / 3].to_vec(),
        };
        std::fs::write(&db, &damaged).expect("damage db");
        let run = dir.weft(["get", "k"]);
        assert_eq!(run.code, 2, "{damage}: {}", run.stderr);
        assert!(run.stderr.contains("weft.redb"), "{damage}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{damage}: {}", run.stderr);
        assert!(
            std::fs::read(&db).expect("read db") == damaged,
            "{damage}: the file was changed"
        );
    }
}

#[test]
fn verify_names_a_tampered_entry_and_changes_nothing() {
    let dir = Dir::initialized();
    for i in 0..4 {
        dir.weft(["put", &format!("k{i}"), "v"]).ok();
    }
    assert!(
        dir.weft(["verify"])
            .ok()
            .text()
            .starts_with("ok: 1 feeds, 4 entries")
    );
    {
        let store =
            weft_storage::Store::open(&dir.data, weft_storage::Options::default()).expect("open");
        store
            .tamper_entry(&store.default_namespace(), &store.author(), 2, 40)
            .expect("tamper");
    }
    let keys = dir.weft(["ls"]).ok().text();
    let run = dir
        .weft(["verify"])
        .fails(2, "entry 2: entry bytes do not match their stored hash");
    assert!(
        run.stderr.contains("verify found 1 problem"),
        "{}",
        run.stderr
    );
    assert_eq!(
        dir.weft(["ls"]).ok().text(),
        keys,
        "verify changed the data"
    );
    assert_eq!(dir.feed_length(), 4);
    // Reading the damaged entry is an error that says what to do, never a panic or a wrong value.
    dir.weft(["get", "k2"]).fails(2, "run `weft verify`");
}

#[test]
fn the_data_dir_comes_from_the_environment_too() {
    let dir = Dir::new();
    let run = Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("init")
        .env("WEFT_DATA_DIR", &dir.data)
        .output()
        .expect("run");
    assert!(run.status.success());
    assert!(dir.data.join("weft.redb").exists());
    assert_eq!(
        std::fs::metadata(dir.data.join("keys/author.key"))
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .expect("key"),
        0o600
    );
}

#[test]
fn json_output_is_one_object_per_line() {
    let dir = Dir::new();
    let init = &dir.weft(["--json", "init"]).ok().json_lines()[0];
    assert_eq!(init["namespace"].as_str().map(str::len), Some(64));
    let put = &dir.weft(["--json", "put", "k", "v"]).ok().json_lines()[0];
    assert_eq!(put["seq"], 0);
    assert_eq!(
        dir.weft(["--json", "get", "k"]).ok().json_lines()[0]["value"],
        "v"
    );
    assert_eq!(
        dir.weft(["--json", "verify"]).ok().json_lines()[0]["problems"],
        Value::Array(vec![])
    );
    assert_eq!(
        dir.weft(["--json", "history", "k"]).ok().json_lines()[0]["live"],
        true
    );
}

/// The outputs of every read command, to compare with and without a node.
fn read_outputs(dir: &Dir) -> Vec<(String, i32, Vec<u8>)> {
    let commands: [&[&str]; 9] = [
        &["get", "k1"],
        &["get", "--all", "k1"],
        &["get", "missing"],
        &["ls", "--values"],
        &["ls", "k", "--limit", "2"],
        &["history", "k1"],
        &["--json", "info"],
        &["export"],
        &["verify"],
    ];
    commands
        .iter()
        .map(|args| {
            let run = dir.weft(*args);
            (args.join(" "), run.code, run.stdout)
        })
        .collect()
}

#[test]
fn the_cli_works_through_a_running_node_with_identical_output() {
    let dir = Dir::initialized();
    dir.weft(["put", "k1", "one"]).ok();
    dir.weft(["put", "k1", "two"]).ok();
    dir.weft(["put", "k2", "x"]).ok();
    dir.weft(["del", "k2"]).ok();
    let direct = read_outputs(&dir);

    let mut node = NodeProcess::start(&dir);
    assert_eq!(
        read_outputs(&dir),
        direct,
        "output through the node differs"
    );
    // Writes go through the node too, and the node holds the lock meanwhile.
    dir.weft(["put", "k3", "three"]).ok();
    dir.weft_stdin(["import"], b"{\"key\":\"i1\",\"value\":\"v\"}\n")
        .ok();
    dir.weft(["del", "missing"]).fails(1, "key not found");
    dir.weft(["put", "", "v"])
        .fails(2, "keys must not be empty");
    let status = dir.weft(["status"]).ok().text();
    for line in [
        "peer id:",
        "listening: /ip4/127.0.0.1/tcp/",
        "peers:     0",
        "sync:      ",
    ] {
        assert!(status.contains(line), "{line:?} missing from: {status}");
    }
    let through_node = read_outputs(&dir);

    // SIGTERM: a clean stop, every acknowledged write kept.
    assert!(node.signal("-TERM").success());
    assert!(!dir.data.join("node.sock").exists(), "socket removed");
    // The file's size on disk changes when redb closes it; everything else must not.
    let without_size = |outputs: Vec<(String, i32, Vec<u8>)>| {
        outputs
            .into_iter()
            .filter(|(command, ..)| !command.contains("info"))
            .collect::<Vec<_>>()
    };
    assert_eq!(without_size(read_outputs(&dir)), without_size(through_node));
    assert_eq!(dir.weft(["get", "i1"]).ok().stdout, b"v");
    let status = dir.weft(["status"]).ok().text();
    assert!(status.contains("node:      not running"), "{status}");
    assert!(status.contains("access:    closed"), "{status}");
}

#[test]
fn two_nodes_replicate_a_put_and_a_killed_node_leaves_no_confusion() {
    let a = Dir::initialized();
    let a_node = NodeProcess::start(&a);
    let ticket = a.weft(["ticket"]).ok().text();
    assert!(ticket.starts_with("weft3"), "{ticket}");
    let b = Dir::new();
    b.weft(["init", "--join", ticket.trim()]).ok();
    b.weft(["init", "--join", ticket.trim()])
        .fails(2, "already exists");
    Dir::new()
        .weft(["init", "--join", "nonsense"])
        .fails(2, "not a weft ticket");
    let mut b_node = NodeProcess::start(&b);

    // Once B is connected, `weft sync` returns only when B holds what A held when it ran.
    until_output(&b, &["peers"], "B to connect to A", |p| {
        p.lines().count() == 1
    });
    a.weft(["put", "hello", "world"]).ok();
    b.weft(["sync", "--timeout", "30"]).ok();
    assert_eq!(b.weft(["get", "hello"]).ok().stdout, b"world");
    let peers = b.weft(["peers"]).ok().text();
    assert_eq!(peers.lines().count(), 1, "{peers}");
    // A read ticket of a closed namespace: B replicates but may not write.
    b.weft(["put", "mine", "x"]).fails(2, "weft grant");
    a.weft(["grant", "not-an-id"]).fails(2, "invalid id");
    b.weft(["grant", &a.author()])
        .fails(2, "only the namespace owner");

    // A node killed outright leaves its socket behind; the CLI opens the store directly.
    b_node.signal("-KILL");
    assert!(b.data.join("node.sock").exists());
    assert_eq!(b.weft(["get", "hello"]).ok().stdout, b"world");
    b.weft(["peers"]).fails(2, "no node is running");
    // And a new node replaces the stale socket.
    drop(NodeProcess::start(&b));
    drop(a_node);
}

#[test]
fn a_sparse_replica_refuses_keys_outside_its_interest_and_lists_it() {
    let a = Dir::new();
    a.weft(["init", "--open"]).ok();
    // An open namespace: a write ticket carries no key, as anyone may write.
    let ticket = a.weft(["ticket", "--write"]).ok().text();
    assert_eq!(ticket, a.weft(["ticket"]).ok().text());
    let b = Dir::new();
    b.weft([
        "init",
        "--join",
        ticket.trim(),
        "--prefix",
        "config/",
        "--prefix",
        "notes/2026/",
    ])
    .ok();
    assert_eq!(
        b.weft(["interest", "ls"]).ok().text(),
        "config/\nnotes/2026/\n"
    );
    b.weft(["get", "photos/1"])
        .fails(2, "not replicated here; add an interest or use --remote");
    b.weft(["put", "photos/1", "x"])
        .fails(2, "not replicated here");
    b.weft(["put", "config/region", "eu"]).ok();
    assert_eq!(b.weft(["get", "config/region"]).ok().stdout, b"eu");
    b.weft(["get", "--remote", "photos/1"])
        .fails(2, "start `weft node` first");
    b.weft(["interest", "add", "photos/"]).ok();
    b.weft(["interest", "rm", "notes/2026/"]).ok();
    assert_eq!(b.weft(["interest", "ls"]).ok().text(), "config/\nphotos/\n");
    b.weft(["interest", "rm", "nope/"])
        .fails(2, "not one of this replica's prefixes");
    b.weft(["init", "--prefix", "x/"]).fails(2, "--join");
    // A full replica has nothing to list, and says so on stderr.
    let listed = a.weft(["interest", "ls"]).ok();
    assert!(listed.stdout.is_empty() && listed.stderr.contains("full"));
}

#[test]
fn prune_reports_what_it_freed_and_keeps_the_live_value() {
    let dir = Dir::initialized();
    for value in ["one", "two", "three"] {
        dir.weft(["put", "k", value]).ok();
    }
    let pruned = dir.weft(["prune", "--json"]).ok().json_lines();
    assert_eq!(pruned[0]["versions"], 2);
    assert!(pruned[0]["bytes"].as_u64().expect("bytes") > 0);
    assert_eq!(dir.weft(["get", "k"]).ok().stdout, b"three");
    dir.weft(["verify"]).ok();
}

/// The README's Redis walkthrough, with a real Redis client library: a SET through one
/// node's Redis port is a GET on another node's.
#[test]
fn a_redis_client_sets_on_one_node_and_gets_on_another() {
    let a = Dir::initialized();
    // Port 0: the node binds a free port and prints it, so no other process can take it first.
    let a_node = NodeProcess::start_with(&a, &["--redis", "127.0.0.1:0"]);
    let a_port = redis_port(&a_node);
    let ticket = a.weft(["ticket", "--write"]).ok().text();
    let b = Dir::new();
    b.weft(["init", "--join", ticket.trim()]).ok();
    let b_node = NodeProcess::start_with(&b, &["--redis", "127.0.0.1:0"]);
    let b_port = redis_port(&b_node);
    let connect = |port: u16| {
        redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .and_then(|client| client.get_connection())
            .unwrap_or_else(|e| panic!("redis client on port {port}: {e}"))
    };
    let (mut on_a, mut on_b) = (connect(a_port), connect(b_port));
    redis::cmd("SET")
        .arg("a")
        .arg("1")
        .exec(&mut on_a)
        .expect("SET on a");
    let started = std::time::Instant::now();
    loop {
        let value: Option<String> = redis::cmd("GET").arg("a").query(&mut on_b).expect("GET");
        if let Some(value) = value {
            assert_eq!(value, "1");
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the SET on a did not reach b within 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // And it is an ordinary weft write: the CLI reads it on b.
    assert_eq!(b.weft(["get", "a"]).ok().stdout, b"1");
    let siblings: redis::Value = redis::cmd("WEFT.SIBLINGS")
        .arg("a")
        .query(&mut on_b)
        .expect("WEFT.SIBLINGS");
    assert!(
        matches!(&siblings, redis::Value::Array(versions) if versions.len() == 1),
        "{siblings:?}"
    );
}

#[test]
fn get_at_a_past_time_with_and_without_a_node() {
    let dir = Dir::initialized();
    dir.weft(["put", "k", "one"]).ok();
    dir.weft(["put", "k", "two"]).ok();
    dir.weft(["del", "k"]).ok();
    let history = dir.weft(["--json", "history", "k"]).ok().json_lines();
    let times: Vec<String> = history
        .iter()
        .map(|v| v["timestamp"].as_str().expect("timestamp").to_string())
        .collect();
    let first_hlc = history[0]["hlc"].as_u64().expect("hlc").to_string();
    let reads = |dir: &Dir| {
        vec![
            dir.weft(["get", "k", "--at", &times[0]]).ok().stdout,
            dir.weft(["get", "k", "--at", &first_hlc]).ok().stdout,
            dir.weft(["get", "k", "--at", &times[1]]).ok().stdout,
        ]
    };
    let direct = reads(&dir);
    assert_eq!(direct, [b"one".to_vec(), b"one".to_vec(), b"two".to_vec()]);
    dir.weft(["get", "k", "--at", &times[2]])
        .fails(1, "not found");
    dir.weft(["get", "k", "--at", "last tuesday"])
        .fails(2, "not an RFC 3339 time");
    dir.weft(["get", "k", "--all", "--at", &times[0]])
        .fails(2, "cannot be used with");
    let _node = NodeProcess::start(&dir);
    assert_eq!(reads(&dir), direct, "through the node");
    dir.weft(["get", "k", "--at", &times[2]])
        .fails(1, "not found");
}

#[test]
fn watch_follows_local_and_synced_changes_and_resumes_after_a_restart() {
    use std::io::BufRead;
    use std::time::Duration;

    let a = Dir::initialized();
    let _a_node = NodeProcess::start(&a);
    let ticket = a.weft(["ticket", "--write"]).ok().text();
    let b = Dir::new();
    b.weft(["init", "--join", ticket.trim()]).ok();
    b.weft(["watch"]).fails(2, "no node is running");
    let b_node = NodeProcess::start(&b);

    // From change 1: the first this fresh replica will make, so nothing is missed.
    let mut watcher = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("--data-dir")
        .arg(&b.data)
        .args(["--json", "watch", "--from", "1"])
        .env_remove("WEFT_DATA_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn weft watch");
    let stdout = watcher.stdout.take().expect("stdout");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let _ = lines.send(line);
        }
    });

    a.weft(["put", "hello", "world"]).ok();
    // B's grant comes from A: a write before the first exchange may find it not yet held.
    b.weft(["sync", "--timeout", "30"]).ok();
    b.weft(["put", "mine", "x"]).ok();
    a.weft(["del", "hello"]).ok();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let line = received
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("weft watch printed only {seen:?} within 30 s"));
        seen.push(serde_json::from_str::<serde_json::Value>(&line).expect("a JSON line"));
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    let seqs: Vec<u64> = seen
        .iter()
        .map(|c| c["seq"].as_u64().expect("seq"))
        .collect();
    // Change 1 is A's grant of B (an entry, but no key's change); the key changes follow it
    // with no gap.
    assert_eq!(
        seqs,
        [2, 3, 4],
        "every change from 1 on, and no other: {seen:?}"
    );
    let of = |key: &str| -> Vec<(Option<&str>, bool, &str)> {
        seen.iter()
            .filter(|c| c["key"] == key)
            .map(|c| {
                (
                    c["value"].as_str(),
                    c["deleted"].as_bool().expect("deleted"),
                    c["author"].as_str().expect("author"),
                )
            })
            .collect()
    };
    let (author_a, author_b) = (a.author(), b.author());
    assert_eq!(
        of("hello"),
        [
            (Some("world"), false, &author_a[..]),
            (None, true, &author_a[..])
        ],
        "{seen:?}"
    );
    assert_eq!(of("mine"), [(Some("x"), false, &author_b[..])], "{seen:?}");

    // Numbers survive a restart: resuming after the last one seen gives exactly what came
    // after, here printed without a node from the changes kept.
    let resume = seqs[2] + 1;
    drop(b_node);
    let b_node = NodeProcess::start(&b);
    b.weft(["put", "after", "restart"]).ok();
    drop(b_node);
    let rest = b
        .weft(["--json", "watch", "--from", &resume.to_string()])
        .ok();
    let rest = rest.json_lines();
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!(
        (&rest[0]["key"], &rest[0]["value"]),
        (&"after".into(), &"restart".into())
    );
    assert!(rest[0]["seq"].as_u64() >= Some(resume));
    b.weft(["watch", "--from", "999999"])
        .fails(2, "has not happened on this replica");
}

/// `weft bench` on a small count prints, per workload, one JSON line with every figure
/// measured: a rate of zero or a missing field would mean the workload did not run.
#[test]
fn bench_prints_every_figure_of_a_workload() {
    let dir = Dir::new();
    let figures: [(&str, &[&str]); 3] = [
        (
            "W1",
            &[
                "a_puts_per_s",
                "a_raw_redb_commits_per_s",
                "b_puts_per_s",
                "b_raw_puts_per_s",
            ],
        ),
        (
            "W2",
            &[
                "gets_per_s",
                "raw_redb_gets_per_s",
                "snapshot_gets_per_s",
                "node_api_gets_per_s",
            ],
        ),
        // The receiver runs as a `weft node` of its own: its memory is read from its process.
        (
            "W3",
            &[
                "entries_per_s",
                "wire_bytes_per_entry",
                "receiver_peak_rss_mib",
                "receiver_disk_bytes_per_entry",
            ],
        ),
    ];
    for (workload, fields) in figures {
        let lines = dir
            .weft([
                "--json",
                "bench",
                &workload.to_lowercase(),
                "--puts",
                "2000",
                "--runs",
                "1",
            ])
            .ok()
            .json_lines();
        let [line] = &lines[..] else {
            panic!("{workload}: one JSON line expected, got {lines:?}");
        };
        assert_eq!(line["workload"], workload, "{line}");
        assert_eq!(line["entries"], 2000, "{line}");
        for field in fields {
            let rate = line[field].as_f64().unwrap_or(0.0);
            assert!(rate > 0.0, "{workload}: {field} is {}", line[field]);
        }
    }
}
