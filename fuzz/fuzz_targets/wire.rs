//! Every message a peer can send: sync requests and responses, and sealed gossip. Decoding
//! must refuse or accept without panicking, and whatever it accepts must encode back to a
//! message that decodes to itself. The local API's frames are here too: a local process is
//! less trusted than the code reading them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_node::access;
use weft_node::api::{ApiRequest, MAX_FRAME};
use weft_node::wire::{self, Gossip, MAX_MESSAGE, MAX_PUSH, Request, Response};
use weft_storage::NamespaceId;

fn round_trip<T>(bytes: &[u8], max: usize)
where
    T: serde::Serialize + for<'de> serde::Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    if let Ok(message) = wire::decode::<T>(bytes, max) {
        let again: T = wire::decode(&wire::encode(&message), max).expect("re-encoded message");
        assert_eq!(again, message);
    }
}

fuzz_target!(|bytes: &[u8]| {
    round_trip::<Request>(bytes, MAX_MESSAGE);
    round_trip::<Response>(bytes, MAX_MESSAGE);
    round_trip::<Gossip>(bytes, MAX_PUSH);
    // A fixed namespace: the fuzzer cannot forge the MAC, so this mostly checks that
    // unsealing refuses every length and layout without panicking.
    if let Ok(opened) = access::unseal(&NamespaceId([3; 32]), bytes) {
        round_trip::<Gossip>(&opened, MAX_PUSH);
    }
    let _ = wire::decode::<ApiRequest>(bytes, MAX_FRAME);
});
