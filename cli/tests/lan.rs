//! mDNS on a LAN, built from network namespaces on one bridge so that no multicast leaves
//! the test: two replicas of a namespace that share no address find each other and sync, and
//! a node of another namespace on the same segment finds them too, learns nothing and is not
//! cut off for asking.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::{WEFT, status, weft, weft_ok};
use crate::netns::{Bed, Host, ONE_AT_A_TIME, bed, report, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

/// `weft node` on `dir` inside `host`, mDNS on (the default), listening on the host's address.
fn start(bed: &mut Bed, host: &Host, dir: &Path, name: &str) -> usize {
    let listen = format!("/ip4/{}/tcp/4919", host.ip);
    let data = dir.to_str().expect("utf-8");
    let process = bed.spawn(
        host,
        name,
        Path::new(WEFT),
        &["--data-dir", data, "node", "--listen", &listen],
    );
    if wait_for(Duration::from_secs(30), || status(dir)).is_none() {
        panic!(
            "{name} did not start: {}",
            bed.process(process).stderr_tail()
        );
    }
    process
}

fn peers(dir: &Path) -> Vec<String> {
    status(dir)
        .and_then(|s| s["peers"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p["id"].as_str().map(str::to_owned))
        .collect()
}

fn peer_id(dir: &Path) -> String {
    status(dir).expect("node running")["peer_id"]
        .as_str()
        .expect("a peer id")
        .to_owned()
}

#[test]
fn mdns_finds_replicas_on_the_lan_and_a_stranger_learns_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some((mut bed, root)) = bed() else {
        return;
    };
    let (a, b, stranger) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("stranger"),
    );
    weft_ok(&a, &["init", "--open"]);
    // Made with no node running, the ticket holds no address: B can find A only by mDNS.
    let ticket = weft_ok(&a, &["ticket"]);
    weft_ok(&b, &["init", "--join", ticket.trim()]);
    weft_ok(&stranger, &["init", "--open"]);
    let hosts: Vec<Host> = ["a", "b", "s"].iter().map(|r| bed.public_host(r)).collect();
    let processes = [
        start(&mut bed, &hosts[0], &a, "a"),
        start(&mut bed, &hosts[1], &b, "b"),
        start(&mut bed, &hosts[2], &stranger, "stranger"),
    ];
    weft_ok(&a, &["put", "found", "by mdns"]);
    let synced = wait_for(LIMIT, || {
        let out = weft(&b, &["get", "found"]);
        (out.status.success() && out.stdout == b"by mdns").then_some(())
    });
    assert!(
        synced.is_some(),
        "B never got A's write: {}",
        bed.process(processes[1]).stderr_tail()
    );

    let (a_id, b_id) = (peer_id(&a), peer_id(&b));
    let met = wait_for(LIMIT, || {
        let seen = peers(&stranger);
        (seen.contains(&a_id) && seen.contains(&b_id)).then_some(())
    });
    assert!(
        met.is_some(),
        "the stranger never found the replicas by mDNS, so it proved nothing: {:?}",
        peers(&stranger)
    );
    let namespace = weft_ok(&a, &["--json", "info"]);
    let namespace: Value = serde_json::from_str(namespace.trim()).expect("info json");
    let ns = namespace["namespaces"][0]["id"].as_str().expect("an id");
    let held = weft_ok(&stranger, &["--json", "info"]);
    assert!(
        !held.contains(ns),
        "the stranger holds the namespace: {held}"
    );
    for (name, dir) in [("A", &a), ("B", &b)] {
        let bans = status(dir).expect("running")["bans"].clone();
        assert_eq!(
            bans,
            Value::Array(Vec::new()),
            "{name} cut off a stranger: {bans}"
        );
    }
    for process in processes {
        bed.stop(process);
    }
    report(r#"{"case":"mdns","result":"ok"}"#);
}
