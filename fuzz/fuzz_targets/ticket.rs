//! What a user pastes: tickets and ids. Whatever parses prints back as itself; the seeds are
//! real tickets, so the fuzzer reaches the address parsing behind the charter check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_node::ticket::Ticket;
use weft_storage::{NamespaceId, ids};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(ticket) = text.parse::<Ticket>() {
        assert_eq!(ticket.to_string().parse::<Ticket>(), Ok(ticket));
    }
    if let Ok(ns) = text.parse::<NamespaceId>() {
        assert_eq!(ns.to_string().parse::<NamespaceId>(), Ok(ns));
    }
    if let Ok(author) = ids::parse_author(text) {
        assert_eq!(ids::parse_author(&author.to_string()), Ok(author));
    }
});
