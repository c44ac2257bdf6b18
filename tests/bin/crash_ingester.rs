//! An ingester for the crash tests: copies the feed of the replica in its first argument into
//! the replica in its second, 10 entries a run, each run queued on the node's store thread as
//! a remote ingest, as sync queues them. Once every run has been ingested it prints the feed's
//! length there and waits to be killed: the test holds it to having made all of it durable.

use std::path::PathBuf;
use std::time::Duration;

use weft_node::StoreWorker;
use weft_storage::{AuthorId, Options, Store};

const RUN: usize = 10;

fn main() {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let (Some(source), Some(replica)) = (args.next(), args.next()) else {
        panic!("usage: weft-crash-ingester SOURCE REPLICA");
    };
    let source = Store::open(&source, Options::default()).expect("open the source");
    let ns = source.default_namespace();
    let author = source.author();
    let mut runs = Vec::new();
    let mut start = 0;
    while let Some(run) = source
        .read_run(&ns, &author, start, RUN, usize::MAX)
        .expect("read a run")
    {
        start += run.entries.len() as u64;
        runs.push(run);
    }
    let store = Store::open(&replica, Options::default()).expect("open the replica");
    let (worker, _thread) = StoreWorker::spawn(store);
    let mut ingested = Vec::new();
    for run in runs {
        let slot = loop {
            match worker.reserve() {
                Ok(slot) => break slot,
                Err(_) => std::thread::sleep(Duration::from_micros(100)),
            }
        };
        // Each run as if of another feed, so the store thread holds them all for one sync.
        let mut label = [0u8; 32];
        label[..8].copy_from_slice(&ingested.len().to_le_bytes());
        let feed = (ns, AuthorId(label));
        ingested.push(
            slot.run_remote(feed, move |store| store.ingest(&run).is_ok())
                .1,
        );
    }
    for done in ingested {
        assert!(done.blocking_recv().expect("the store thread answers"));
    }
    let held = worker
        .try_run(move |store| store.head(&ns, &author).map(|h| h.map_or(0, |h| h.length)))
        .expect("room for one more job")
        .blocking_recv()
        .expect("the store thread answers")
        .expect("read the head");
    println!("{held}");
    std::thread::sleep(Duration::from_secs(60));
}
