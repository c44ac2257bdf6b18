//! Every seed in `fuzz/corpus/` replayed through its fuzz target's checks on stable Rust, so
//! `cargo test` (and CI) covers each one without the nightly fuzzer.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut seeds = 0;
    for file in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = file.expect("a corpus entry").path();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        check(&bytes);
        seeds += 1;
    }
    assert!(seeds > 0, "{} holds no seed", dir.display());
}

#[test]
fn the_wire_corpus_replays() {
    replay("wire", weft_tests::fuzz::wire);
}

#[test]
fn the_disk_corpus_replays() {
    replay("disk", weft_tests::fuzz::disk);
}

#[test]
fn the_signed_corpus_replays() {
    replay("signed", weft_tests::fuzz::signed);
}

#[test]
fn the_ticket_corpus_replays() {
    replay("ticket", weft_tests::fuzz::ticket);
}

#[test]
fn the_proofs_corpus_replays() {
    replay("proofs", weft_tests::fuzz::proofs);
}
