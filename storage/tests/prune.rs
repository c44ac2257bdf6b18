//! Pruning: superseded values go, live versions and every proof stay.

use crate::common::options;
use weft_storage::{Access, Ingested, Store};

#[test]
fn prune_frees_superseded_values_and_keeps_live_ones_and_proofs() {
    let root = tempfile::tempdir().expect("temp dir");
    let a = Store::init(&root.path().join("a"), options(), Access::Open).expect("init");
    let ns = a.default_namespace();
    let charter = a.charter(&ns).expect("known").expect("a charter");
    let b = Store::init_joined(&root.path().join("b"), options(), &charter, None).expect("join");
    for round in 0..5u8 {
        a.put(&ns, b"k", &[round; 1000]).expect("put");
        a.put(&ns, format!("k{round}").as_bytes(), &[round; 10])
            .expect("put");
    }
    a.delete(&ns, b"k1").expect("delete");
    // A concurrent sibling from b: both versions of `s` stay live, so neither is pruned.
    a.put(&ns, b"s", b"from a").expect("put");
    b.put(&ns, b"s", b"from b").expect("put");
    while let Some(run) = b
        .read_run(&ns, &b.author(), 0, 100, usize::MAX)
        .expect("read_run")
    {
        if !matches!(a.ingest(&run).expect("ingest"), Ingested::Appended { .. }) {
            break;
        }
    }
    let keys: Vec<&[u8]> = vec![b"k", b"k0", b"k1", b"k4", b"s"];
    let before: Vec<_> = keys
        .iter()
        .map(|k| a.get_all(&ns, k).expect("get_all"))
        .collect();
    assert_eq!(before[4].len(), 2, "two live siblings");

    let report = a.prune().expect("prune");
    assert_eq!(
        report.versions, 5,
        "four superseded puts of k, and k1's put"
    );
    assert!(report.bytes >= 4 * 1000, "{report:?}");
    let after: Vec<_> = keys
        .iter()
        .map(|k| a.get_all(&ns, k).expect("get_all"))
        .collect();
    assert_eq!(after, before, "live versions are untouched");
    let verify = a.verify().expect("verify");
    assert!(verify.is_clean(), "{:?}", verify.problems);
    assert_eq!(
        a.history(&ns, b"k").expect("history").len(),
        1,
        "pruned values are gone"
    );
    assert_eq!(
        a.prune().expect("prune again"),
        Default::default(),
        "nothing left to prune"
    );

    // The view rebuilt from the pruned feeds is the same view.
    a.reindex().expect("reindex");
    let rebuilt: Vec<_> = keys
        .iter()
        .map(|k| a.get_all(&ns, k).expect("get_all"))
        .collect();
    assert_eq!(rebuilt, before);
    assert!(a.verify().expect("verify").is_clean());

    // A pruned feed is served up to its first pruned entry only: never a stub as an entry.
    let run = a
        .read_run(&ns, &a.author(), 0, 100, usize::MAX)
        .expect("read_run");
    assert!(run.is_none(), "entry 0 is a pruned put of k");
}
