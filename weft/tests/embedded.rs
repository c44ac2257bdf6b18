//! The embedded API end to end: two replicas in one process syncing over real libp2p on
//! 127.0.0.1, the change feed resumed across a reopen, networking stopped and restarted, and
//! bad input refused.

use std::time::Duration;

use weft::{ChangeValue, Error, Network, Weft};

const PATIENCE: Duration = Duration::from_secs(30);

/// Waits until `replica` reads `value` under `key`.
async fn until_value(replica: &Weft, key: &str, value: Option<&[u8]>, what: &str) {
    let started = tokio::time::Instant::now();
    while replica.get(key).await.expect("get").as_deref() != value {
        assert!(started.elapsed() < PATIENCE, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sync_watch_and_keep_concurrent_values() {
    let dirs = tempfile::tempdir().expect("temp dir");
    let mut laptop = Weft::open(dirs.path().join("laptop")).expect("open");
    assert!(laptop.addresses().is_empty(), "no addresses before start");
    laptop.start(Network::loopback()).await.expect("start");
    assert!(
        !laptop.addresses().is_empty()
            && laptop
                .addresses()
                .iter()
                .all(|a| a.to_string().starts_with("/ip4/127.0.0.1/tcp/")),
        "{:?}",
        laptop.addresses()
    );
    let read_ticket = laptop.ticket(false).await.expect("read ticket");
    let ticket = laptop.ticket(true).await.expect("write ticket");
    assert_ne!(read_ticket, ticket);

    let mut phone = Weft::join(dirs.path().join("phone"), &ticket).expect("join");
    assert_eq!(phone.namespace(), laptop.namespace());
    assert_ne!(phone.author(), laptop.author());
    phone.start(Network::loopback()).await.expect("start");
    let mut watched = phone.watch("notes/", Some(0));

    laptop.put("notes/1", "from the laptop").await.expect("put");
    laptop.put("other", "not watched").await.expect("put");
    let change = tokio::time::timeout(PATIENCE, watched.next())
        .await
        .expect("the laptop's put reached the phone's watch within 30 s")
        .expect("change");
    assert_eq!(change.key, b"notes/1");
    assert_eq!(change.value, ChangeValue::Put(b"from the laptop".to_vec()));
    assert_eq!(change.version.map(|v| v.author), Some(laptop.author()));

    phone.put("notes/2", "from the phone").await.expect("put");
    until_value(
        &laptop,
        "notes/2",
        Some(b"from the phone"),
        "phone to laptop",
    )
    .await;
    laptop.delete("notes/2").await.expect("delete");
    // Exactly the phone's own put, then the laptop's delete: nothing outside `notes/` (the
    // laptop's `other` came between), nothing skipped.
    let mut next = async || {
        tokio::time::timeout(PATIENCE, watched.next())
            .await
            .expect("a change within 30 s")
            .expect("change")
    };
    let put = next().await;
    assert_eq!(
        (&put.key[..], &put.value, put.version.map(|v| v.author)),
        (
            &b"notes/2"[..],
            &ChangeValue::Put(b"from the phone".to_vec()),
            Some(phone.author())
        )
    );
    let deleted = next().await;
    assert_eq!(
        (&deleted.key[..], &deleted.value),
        (&b"notes/2"[..], &ChangeValue::Deleted)
    );
    assert!(change.seq < put.seq && put.seq < deleted.seq);

    // Offline, both write one key: once reconnected, both keep both values, one winner.
    laptop.stop().await.expect("stops cleanly");
    phone.stop().await.expect("stops cleanly");
    laptop.put("shared", "laptop's").await.expect("offline put");
    phone.put("shared", "phone's").await.expect("offline put");
    laptop.start(Network::loopback()).await.expect("restart");
    phone.start(Network::loopback()).await.expect("restart");
    for addr in laptop.addresses() {
        phone.dial(addr).await.expect("dial");
    }
    let started = tokio::time::Instant::now();
    loop {
        let (on_laptop, on_phone) = (
            laptop.get_all("shared").await.expect("get_all"),
            phone.get_all("shared").await.expect("get_all"),
        );
        if on_laptop.len() == 2 && on_laptop == on_phone {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "concurrent values did not converge in 30 s: {on_laptop:?} vs {on_phone:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        laptop.get("shared").await.expect("get"),
        phone.get("shared").await.expect("get")
    );
    assert_eq!(
        laptop.scan("").await.expect("scan"),
        phone.scan("").await.expect("scan")
    );
    drop(watched);
    phone.close().await.expect("closes cleanly");
    laptop.close().await.expect("closes cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_feed_resumes_after_a_reopen_and_bad_input_is_refused() {
    let dirs = tempfile::tempdir().expect("temp dir");
    let path = dirs.path().join("db");
    let db = Weft::open(&path).expect("open");
    for i in 0..5 {
        db.put(format!("k{i}"), format!("v{i}")).await.expect("put");
    }
    let mut watcher = db.watch("", Some(0));
    let mut last = 0;
    for _ in 0..3 {
        last = watcher.next().await.expect("change").seq;
    }
    assert_eq!(watcher.position(), Some(last + 1));
    // A second open of a dir in use is refused, not a second writer.
    assert!(matches!(Weft::open(&path), Err(Error::Store(_))));
    drop(watcher);
    db.close().await.expect("closes cleanly");

    let db = Weft::open(&path).expect("reopen");
    db.put("k5", "v5").await.expect("put");
    let mut resumed = db.watch("", Some(last + 1));
    let mut keys = Vec::new();
    while keys.len() < 3 {
        let change = tokio::time::timeout(PATIENCE, resumed.next())
            .await
            .expect("kept changes come at once")
            .expect("change");
        keys.push(String::from_utf8(change.key).expect("utf-8"));
    }
    assert_eq!(keys, ["k3", "k4", "k5"], "resumed with a gap or a repeat");
    assert!(matches!(
        db.watch("", Some(1_000)).next().await,
        Err(weft::WatchError::Store(weft_storage_error)) if weft_storage_error.to_string().contains("has not happened")
    ));

    assert!(matches!(
        db.put("", "empty key").await,
        Err(Error::Store(_))
    ));
    assert!(matches!(
        db.put(vec![b'k'; 5000], "long key").await,
        Err(Error::Store(_))
    ));
    assert_eq!(
        db.get("k5").await.expect("get").as_deref(),
        Some(&b"v5"[..])
    );
    assert!(matches!(
        Weft::join(dirs.path().join("other"), "weft2nonsense"),
        Err(Error::Ticket(_))
    ));
    assert!(
        !dirs.path().join("other").exists(),
        "a bad ticket made a data dir"
    );
    assert!(matches!(
        db.dial("/ip4/127.0.0.1/tcp/1".parse().expect("addr")).await,
        Err(Error::Node(_))
    ));
    drop(resumed);
    db.close().await.expect("closes cleanly");
}

/// A watch of only new changes starts where the change feed stood when `watch` was called,
/// not at its first read: a write between the two is seen, one before is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_of_new_changes_starts_when_it_is_made() {
    let dirs = tempfile::tempdir().expect("temp dir");
    let db = Weft::open(dirs.path().join("db")).expect("open");
    db.put("before", "1").await.expect("put");
    let mut watcher = db.watch("", None);
    db.put("between", "2").await.expect("put");
    let change = tokio::time::timeout(Duration::from_secs(10), watcher.next())
        .await
        .expect("the write made after watch() is seen")
        .expect("a change");
    assert_eq!(change.key, b"between");
    drop(watcher);
    db.close().await.expect("closes cleanly");
}

#[path = "../examples/two_replicas.rs"]
mod two_replicas;

/// The example the README points to runs to its end: each write reaches the other replica.
#[test]
fn the_two_replicas_example_runs() {
    two_replicas::main().expect("the example runs");
}
