//! `weft prune` from the command line: what a past read says after it, and how a full replica
//! that joins later catches up when the replica it reaches has pruned.

use crate::common::{Dir, NodeProcess, until_output};

/// The `hlc` of each version of `key` on `dir`, oldest first, as `history --json` prints it.
fn version_times(dir: &Dir, key: &str) -> Vec<String> {
    dir.weft(["--json", "history", key])
        .ok()
        .json_lines()
        .iter()
        .map(|v| v["hlc"].as_u64().expect("an hlc").to_string())
        .collect()
}

/// `get --at` reads a superseded value until `prune` drops it, and then says it was pruned
/// rather than answering with another value; the live value stays, and `history` leaves the
/// pruned version out.
#[test]
fn a_past_read_of_a_pruned_value_says_so() {
    let dir = Dir::initialized();
    dir.weft(["put", "k", "first"]).ok();
    dir.weft(["put", "k", "second"]).ok();
    let times = version_times(&dir, "k");
    assert_eq!(times.len(), 2);
    assert_eq!(
        dir.weft(["get", "k", "--at", &times[0]]).ok().stdout,
        b"first"
    );

    let report = dir.weft(["prune"]).ok().text();
    assert!(
        report.starts_with("pruned 1 superseded versions, "),
        "{report}"
    );
    dir.weft(["get", "k", "--at", &times[0]])
        .fails(2, "was pruned");
    assert_eq!(
        dir.weft(["get", "k", "--at", &times[1]]).ok().stdout,
        b"second"
    );
    assert_eq!(dir.weft(["get", "k"]).ok().stdout, b"second");
    let history = dir.weft(["history", "k"]).ok().text();
    assert!(history.contains("#1 live second"), "{history}");
    assert!(
        !history.contains("#0"),
        "the pruned version is left out: {history}"
    );
    dir.weft(["verify"]).ok();
}

/// A full replica that joins after its only peer pruned gets the entries before the first
/// pruned one and no further: `status` says a peer holds more that it will not send, and
/// `weft sync` fails saying why instead of reporting caught up. A peer that still holds the
/// pruned entries then brings it the rest. A sparse replica needs no such peer.
#[test]
fn a_full_replica_behind_a_pruned_one_is_told_and_catches_up_from_another() {
    let a = Dir::initialized();
    let a_node = NodeProcess::start(&a);
    let a_addr = a_node.printed("listening on ");
    a.weft(["put", "before", "kept"]).ok();
    a.weft(["put", "k", "old"]).ok();
    a.weft(["put", "k", "new"]).ok();
    a.weft(["put", "after", "live"]).ok();
    let ticket = a.weft(["ticket"]).ok().text();

    // C takes a full copy before A prunes, then goes offline.
    let c = Dir::new();
    c.weft(["init", "--join", ticket.trim()]).ok();
    let c_node = NodeProcess::start_with(&c, &["--peer", &a_addr]);
    c.weft(["sync", "--timeout", "60"]).ok();
    drop(c_node);
    assert_eq!(a.weft(["prune"]).ok().text().split(' ').nth(1), Some("1"));

    let b = Dir::new();
    b.weft(["init", "--join", ticket.trim()]).ok();
    let b_node = NodeProcess::start_with(&b, &["--peer", &a_addr]);
    let sync = b.weft(["sync", "--timeout", "60"]);
    let sync = sync.fails(2, "not caught up: 1 entries held; peers advertise 3 more in 1 feeds but sent none of them: they pruned them");
    assert!(sync.stderr.contains("pruned"), "{}", sync.stderr);
    assert_eq!(b.weft(["get", "before"]).ok().stdout, b"kept");
    b.weft(["get", "after"]).fails(1, "not found");
    let status = b.weft(["status"]).ok().text();
    assert!(
        status.contains(&format!(
            "feed {}: local 1 remote 0 (a peer advertises 4 but sent nothing past 1: pruned there, or not fetched there yet)",
            a.author()
        )),
        "{status}"
    );
    assert!(!status.contains("banned:"), "A is honest: {status}");

    // A sparse replica takes every live version from A alone, pruned or not.
    let d = Dir::new();
    d.weft([
        "init",
        "--join",
        ticket.trim(),
        "--prefix",
        "k",
        "--prefix",
        "after",
    ])
    .ok();
    let d_node = NodeProcess::start_with(&d, &["--peer", &a_addr]);
    d.weft(["sync", "--timeout", "60"]).ok();
    assert_eq!(d.weft(["get", "k"]).ok().stdout, b"new");
    assert_eq!(d.weft(["get", "after"]).ok().stdout, b"live");
    drop(d_node);

    // C, which has not pruned, comes back: B takes the rest from it.
    let c_node = NodeProcess::start_with(&c, &["--peer", &a_addr]);
    let c_addr = c_node.printed("listening on ");
    drop(b_node);
    let b_node = NodeProcess::start_with(&b, &["--peer", &a_addr, "--peer", &c_addr]);
    until_output(&b, &["get", "after"], "C to send B the rest", |v| {
        v == "live"
    });
    b.weft(["sync", "--timeout", "60"]).ok();
    assert_eq!(b.weft(["get", "k"]).ok().stdout, b"new");
    assert_eq!(b.feed_length(), 4);
    b.weft(["verify"]).ok();
    drop(b_node);
    drop(c_node);
    drop(a_node);
}
