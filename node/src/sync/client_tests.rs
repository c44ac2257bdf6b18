//! The sync client's unit tests.

use ed25519_dalek::SigningKey;
use weft_storage::{Access, Options, SignedHead, Store};

use super::*;
use crate::wire::WireHead;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct TestPeer(u8);

impl Peer for TestPeer {
    fn id_bytes(&self) -> Vec<u8> {
        vec![self.0]
    }
}

/// A store with nothing written, in a temporary directory, and a client starting from it.
fn fresh() -> (tempfile::TempDir, Store, Client<TestPeer, u64>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options {
        durable: false,
        ..Options::default()
    };
    let store = Store::init(dir.path(), options, Access::Open).expect("init");
    let client = Client::new(b"me".to_vec(), Holdings::of(&store).expect("holdings"));
    (dir, store, client)
}

/// A peer that claims more heads on every page, each page moving on as it must, is read
/// for [`MAX_HEAD_PAGES`] pages and no more (issue 15, finding 8).
#[test]
fn a_peer_that_pages_without_end_is_read_for_a_bounded_number_of_pages() {
    let (_dir, store, mut client) = fresh();
    let ns = store.default_namespace();
    let mut heads: Vec<SignedHead> = (0..MAX_HEAD_PAGES + 8)
        .map(|n| {
            let mut seed = [9u8; 32];
            seed[..4].copy_from_slice(&n.to_le_bytes());
            SignedHead::sign(&SigningKey::from_bytes(&seed), ns, 1, [1; 32])
        })
        .collect();
    heads.sort_by_key(|head| head.author);

    let mut actions = client.connected(&TestPeer(7));
    let mut pages = 0;
    while let Some(action) = actions.pop() {
        match action {
            Action::Send { pending, .. } => {
                let page = Response::Heads {
                    heads: vec![WireHead::from_head(&heads[pages])],
                    more: true,
                    forks: Vec::new(),
                };
                pages += 1;
                actions.extend(client.on_response(TestPeer(7), pending, page));
            }
            Action::Store(job) => actions.extend(client.on_done(job.run(&store))),
            Action::Penalize { fault, .. } => panic!("an honest-looking peer cut off: {fault}"),
            _ => {}
        }
    }
    assert_eq!(pages, MAX_HEAD_PAGES as usize);
    assert_eq!(client.head_exchanges(), 1, "the exchange ends");
}

/// Runs store jobs at once and returns the requests the actions send, with what each
/// asked.
fn drive(
    client: &mut Client<TestPeer, u64>,
    store: &Store,
    actions: Vec<Action<TestPeer, u64>>,
) -> Vec<(TestPeer, Pending)> {
    let mut sent = Vec::new();
    for action in actions {
        match action {
            Action::Send { peer, pending, .. } => sent.push((peer, pending)),
            Action::Store(job) => {
                let more = client.on_done(job.run(store));
                sent.extend(drive(client, store, more));
            }
            _ => {}
        }
    }
    sent
}

/// A round counts as exchanged with a peer only once the exchange that round started has
/// ended, not when an older one does: `weft sync` relies on it to return only after what
/// its peers held when it was called has been advertised.
#[test]
fn a_round_is_exchanged_only_when_its_own_exchange_ends() {
    let (_dir, store, mut client) = fresh();
    let (a, b) = (TestPeer(1), TestPeer(2));
    let empty = || Response::Heads {
        heads: Vec::new(),
        more: false,
        forks: Vec::new(),
    };

    let on_connect = client.connected(&a);
    let older = drive(&mut client, &store, on_connect);
    let ticked = client.tick([&a, &b]);
    let round = client.round();
    let mut newer = drive(&mut client, &store, ticked);
    assert_eq!(
        (older.len(), newer.len()),
        (1, 2),
        "one namespace, two peers"
    );
    assert_eq!(client.exchanged_round([&a, &b]), 0);

    // The exchange started on connect ends: it says nothing of what `a` holds now.
    let (peer, pending) = older[0].clone();
    let answered = client.on_response(peer, pending, empty());
    drive(&mut client, &store, answered);
    assert!(client.exchanged_round([&a]) < round);

    let (peer, pending) = newer.remove(newer.iter().position(|(p, _)| *p == a).expect("a"));
    let answered = client.on_response(peer, pending, empty());
    drive(&mut client, &store, answered);
    assert_eq!(client.exchanged_round([&a]), round);
    assert!(
        client.exchanged_round([&a, &b]) < round,
        "b has not answered"
    );

    // A failed exchange ends too (a later round tries again), so a wait cannot hang on it.
    let (peer, pending) = newer.remove(0);
    let failed = client.on_failure(peer, pending, None);
    drive(&mut client, &store, failed);
    assert_eq!(client.exchanged_round([&a, &b]), round);
    client.disconnected(&b);
    assert_eq!(
        client.exchanged_round([&a, &b]),
        0,
        "b's rounds are forgotten"
    );
}

/// The timer's rounds stretch apart while each finds a peer holding the same heads (1, 1, 2,
/// 4, 8, 16, 16 periods), and come back to every period once a peer's heads differ or gossip
/// arrives.
#[test]
fn timer_rounds_stretch_while_quiet_and_return_on_change() {
    let (_dir, store, mut client) = fresh();
    let ns = store.default_namespace();
    let peer = TestPeer(1);
    let other = SignedHead::sign(&SigningKey::from_bytes(&[3; 32]), ns, 1, [1; 32]);
    // Runs `periods` timer periods, answering each round's heads with other heads when
    // `differ`, else with the empty page of a peer holding the same; returns
    // the periods at which a round started.
    let run = |client: &mut Client<TestPeer, u64>, periods: u32, differ: bool| {
        let mut rounds = Vec::new();
        for period in 1..=periods {
            let actions = client.timer([&peer]);
            let sent = drive(client, &store, actions);
            if !sent.is_empty() {
                rounds.push(period);
            }
            for (peer, pending) in sent {
                let heads = if differ {
                    vec![WireHead::from_head(&other)]
                } else {
                    Vec::new()
                };
                let answer = Response::Heads {
                    heads,
                    more: false,
                    forks: Vec::new(),
                };
                let more = client.on_response(peer, pending, answer);
                drive(client, &store, more);
            }
        }
        rounds
    };
    assert_eq!(run(&mut client, 64, false), [1, 2, 4, 8, 16, 32, 48, 64]);
    // A peer whose heads differ: every period again.
    assert!(
        run(&mut client, 3, true).is_empty(),
        "the wait already begun runs out first"
    );
    let rounds = run(&mut client, 16, true);
    assert_eq!(rounds, [13, 14, 15, 16], "{rounds:?}");
    // Quiet again, then gossip: the next period starts a round.
    assert_eq!(run(&mut client, 7, false), [1, 2, 4]);
    let push = crate::wire::WireRun::from_run(weft_storage::Run {
        head: other.clone(),
        start: 0,
        entries: Vec::new(),
        extension: Vec::new(),
    });
    let gossiped = client.on_gossip(peer, 1, ns, Gossip::Push(push));
    drive(&mut client, &store, gossiped);
    assert_eq!(run(&mut client, 2, false), [1, 2]);
    // A peer that has just asked with the same digest makes the next due round needless;
    // the one after goes out.
    client.peer_matched(peer, ns);
    assert_eq!(run(&mut client, 6, false), [6]);
}
