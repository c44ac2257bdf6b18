//! Reading the change feed back, for tests that check it against the view.

use std::collections::BTreeMap;

use weft_storage::{Change, ChangeValue, NamespaceId, Store};

/// Key → value, as a last-writer-wins read gives it.
pub type Values = BTreeMap<Vec<u8>, Vec<u8>>;

/// Reads every change of `ns` under `prefix` from `from` on, in pages of 7 so paging is
/// exercised. Returns the changes and where the feed continues.
pub fn read_changes(
    store: &Store,
    ns: &NamespaceId,
    prefix: &[u8],
    from: u64,
) -> (Vec<Change>, u64) {
    let (mut changes, mut next) = (Vec::new(), from);
    loop {
        let page = store
            .changes(ns, prefix, Some(next), 7)
            .expect("change page");
        if page.next == next {
            return (changes, next);
        }
        assert!(page.next > next, "the feed went backwards");
        changes.extend(page.changes);
        next = page.next;
    }
}

/// Applies `changes` to `values`, as a consumer mirroring the replica does.
pub fn apply(values: &mut Values, changes: &[Change]) {
    for change in changes {
        match &change.value {
            ChangeValue::Put(value) => {
                values.insert(change.key.clone(), value.clone());
            }
            ChangeValue::Deleted => {
                values.remove(&change.key);
            }
            ChangeValue::Pruned => panic!("change {} reads as pruned", change.seq),
        }
    }
}

/// The view of `ns` under `prefix` as `scan` gives it.
pub fn view(store: &Store, ns: &NamespaceId, prefix: &[u8]) -> Values {
    store
        .scan(ns, prefix, true)
        .expect("scan")
        .map(|row| {
            let (key, value) = row.expect("row");
            (key, value.expect("scan with values"))
        })
        .collect()
}

/// Replays the whole feed of `ns` kept from seq 1 into an empty map.
pub fn replayed(store: &Store, ns: &NamespaceId) -> Values {
    let mut values = Values::new();
    apply(&mut values, &read_changes(store, ns, b"", 1).0);
    values
}
