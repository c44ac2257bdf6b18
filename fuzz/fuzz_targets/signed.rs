//! The `signed` checks of `weft_tests::fuzz` (see there for what they hold); `cargo test`
//! replays this target's corpus through the same function.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| weft_tests::fuzz::signed(bytes));
