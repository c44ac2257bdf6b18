//! Signed statements a peer can hand us: heads, charters and fork proofs. Verification of
//! arbitrary values must refuse without panicking, and the fuzzer must never find a value
//! that verifies (it holds no key), which would mean a check is missing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_node::wire::{self, WireHead};
use weft_storage::{Charter, ForkProof, NamespaceId, SignedHead};

fuzz_target!(|bytes: &[u8]| {
    let Some((&kind, body)) = bytes.split_first() else {
        return;
    };
    match kind % 4 {
        0 => {
            if let Ok(head) = postcard::from_bytes::<SignedHead>(body) {
                assert!(head.verify().is_err(), "forged head verified: {head:?}");
            }
        }
        1 => {
            if let Ok(charter) = postcard::from_bytes::<Charter>(body) {
                assert!(charter.verify().is_err(), "forged charter verified");
            }
        }
        2 => {
            if let Ok(proof) = postcard::from_bytes::<ForkProof>(body) {
                assert!(proof.verify().is_err(), "forged fork proof verified");
            }
        }
        _ => {
            if let Ok(head) = wire::decode::<WireHead>(body, 1024) {
                let head = head.into_head(NamespaceId([5; 32]));
                assert!(head.verify().is_err(), "forged wire head verified");
            }
        }
    }
});
