//! A writer for the crash tests: appends batches of 1,000 durable puts to the replica in the
//! directory given as its argument until it is killed, printing each batch's number on stdout
//! once its commit has returned (the acknowledgement the test holds it to). Batches are
//! numbered on from what the feed already holds, so every run writes keys no run wrote before:
//! a lost batch cannot hide behind an earlier copy of it.

use std::io::Write;
use std::path::PathBuf;

use weft_storage::{Op, Options, Store};

fn main() {
    let dir = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .expect("usage: weft-crash-writer DIR"),
    );
    let store = Store::open(&dir, Options::default()).expect("open the replica");
    let ns = store.default_namespace();
    let held = store
        .head(&ns, &store.author())
        .expect("read the own head")
        .map_or(0, |head| head.length);
    let mut stdout = std::io::stdout();
    for batch in held / 1000.. {
        let ops = (0..1000u32)
            .map(|i| {
                (
                    format!("b{batch:06}/k{i:04}").into_bytes(),
                    Op::Put(vec![(i % 251) as u8; 100]),
                )
            })
            .collect();
        store.write(&ns, ops).expect("write a batch");
        writeln!(stdout, "{batch}")
            .and_then(|()| stdout.flush())
            .expect("acknowledge");
    }
}
