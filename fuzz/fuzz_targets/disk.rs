//! Bytes read back from disk: entries, entry rows and membership records. A damaged file must
//! give an error, never a panic, and whatever decodes re-encodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_storage::{Entry, Membership, tables};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(entry) = Entry::decode(bytes) {
        let again = entry.encode();
        assert_eq!(Entry::decode(&again), Ok(entry));
        assert!(again.len() <= bytes.len(), "re-encoding grew an entry");
    }
    if let Ok(membership) = Membership::decode(bytes) {
        assert_eq!(Membership::decode(&membership.encode()), Ok(membership));
    }
    if let Some((seq, row)) = bytes.split_first_chunk::<8>() {
        if let Some(split) = tables::split_row(u64::from_le_bytes(*seq), row) {
            let _ = Entry::decode(split.entry);
        }
    }
});
