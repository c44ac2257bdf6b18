//! Who may write, at the store level: closed namespaces with grants, prefixes, expiry and
//! revocation; entries that do not count stay in the log and are reported; clocks that run
//! ahead cannot pin a key; forks are proven, recorded and freeze the feed.

use crate::common::{held, options, replay};
use std::time::Duration;

use weft_storage::tree::{self, Frontier};
use weft_storage::{
    Access, Charter, Error, Exclusion, ForkProof, Grant, IngestError, Ingested, Invalid,
    Membership, NamespaceId, Options, Run, SearchStep, SignedHead, Store, Timestamp,
};

fn init(access: Access) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::init(&dir.path().join("data"), options(), access).expect("init");
    (dir, store)
}

fn join_with(origin: &Store, opts: Options, key: Option<[u8; 32]>) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let charter: Charter = origin
        .charter(&origin.default_namespace())
        .expect("known")
        .expect("a charter");
    let store = Store::init_joined(&dir.path().join("data"), opts, &charter, key).expect("join");
    (dir, store)
}

fn join(origin: &Store) -> (tempfile::TempDir, Store) {
    join_with(origin, options(), None)
}

/// Sends every entry `from` holds and `to` lacks, feed by feed, as catch-up does.
fn pull(from: &Store, to: &Store) {
    let ns = from.default_namespace();
    for feed in from.feeds(&ns).expect("feeds") {
        if feed.head.author != to.author() {
            pull_feed(from, to, feed.head.author);
        }
    }
}

/// Sends the entries of `author`'s feed that `from` holds and `to` lacks.
fn pull_feed(from: &Store, to: &Store, author: weft_storage::AuthorId) {
    let ns = from.default_namespace();
    if let Some(run) = from
        .read_run(&ns, &author, held(to, &author), usize::MAX, usize::MAX)
        .expect("read run")
    {
        to.ingest(&run).expect("a run from an honest store ingests");
    }
}

/// Up to `count` of `author`'s entries from `start`, as `from` holds them.
fn run(from: &Store, author: &weft_storage::AuthorId, start: u64, count: usize) -> Run {
    from.read_run(&from.default_namespace(), author, start, count, usize::MAX)
        .expect("read")
        .expect("a run")
}

fn get(store: &Store, key: &[u8]) -> Option<Vec<u8>> {
    store.get(&store.default_namespace(), key).expect("get")
}

fn excluded(store: &Store) -> Vec<(Exclusion, u64)> {
    store
        .excluded(&store.default_namespace())
        .expect("excluded")
        .into_iter()
        .map(|e| (e.reason, e.entries))
        .collect()
}

fn next_change(store: &Store) -> u64 {
    store
        .changes(&store.default_namespace(), b"", None, 1)
        .expect("change feed")
        .next
}

fn assert_clean(store: &Store) {
    let report = store.verify().expect("verify");
    assert!(report.is_clean(), "verify: {:?}", report.problems);
}

#[test]
fn a_closed_namespace_counts_only_granted_writes() {
    let (_a, owner) = init(Access::Closed);
    let ns = owner.default_namespace();
    let (_b, member) = join(&owner);
    let (_c, reader) = join(&owner);

    // No grant yet: refused at the writer, naming the author the owner must grant (the CLI
    // turns that into the `weft grant` to run: cli/tests/cli.rs).
    let refused = member.put(&ns, b"b/1", b"x").expect_err("no grant");
    assert!(
        matches!(
            refused,
            Error::NotAllowed {
                reason: Exclusion::NoGrant,
                author,
                ..
            } if author == member.author()
        ),
        "{refused}"
    );
    assert!(
        refused.to_string().contains(&member.author().to_string()),
        "{refused}"
    );
    assert_eq!(
        member.feeds(&ns).expect("feeds").len(),
        0,
        "a refused write left a feed"
    );

    owner
        .grant(
            &ns,
            &member.author(),
            Grant {
                prefixes: vec![b"b/".to_vec()],
                expires: None,
            },
        )
        .expect("grant");
    pull(&owner, &member);
    member
        .put(&ns, b"b/1", b"from member")
        .expect("granted put");
    let outside = member.put(&ns, b"other", b"x").expect_err("outside grant");
    assert!(matches!(
        outside,
        Error::NotAllowed {
            reason: Exclusion::OutsideGrant,
            ..
        }
    ));

    // The reader is offered the member's feed before the owner's grant: nothing is stored,
    // so a writer nobody granted cannot fill a replica of a closed namespace.
    let ungranted = run(&member, &member.author(), 0, usize::MAX);
    assert_eq!(
        reader.ingest(&ungranted).expect("ingest"),
        Ingested::NotMember { held: 0 }
    );
    assert_eq!(get(&reader, b"b/1"), None);
    assert!(
        reader
            .feeds(&ns)
            .expect("feeds")
            .iter()
            .all(|f| f.head.author != member.author()),
        "a non-member's feed was stored"
    );
    assert_eq!(excluded(&reader), vec![]);
    assert_clean(&reader);
    // The grant arrives, then the member's entries are fetched and counted; the change feed
    // says so.
    let before_grant = next_change(&reader);
    pull(&owner, &reader);
    assert_eq!(get(&reader, b"b/1"), None);
    pull_feed(&member, &reader, member.author());
    assert_eq!(get(&reader, b"b/1").as_deref(), Some(&b"from member"[..]));
    let keys: Vec<Vec<u8>> = replay::read_changes(&reader, &ns, b"", before_grant)
        .0
        .into_iter()
        .map(|c| c.key)
        .collect();
    assert_eq!(
        keys,
        [b"b/1".to_vec()],
        "membership rows are not user changes"
    );
    assert_eq!(
        replay::replayed(&reader, &ns),
        replay::view(&reader, &ns, b"")
    );
    assert_eq!(excluded(&reader), vec![]);
    assert_clean(&reader);

    // Only the owner grants; grants are not user keys.
    assert!(matches!(
        member.grant(
            &ns,
            &reader.author(),
            Grant {
                prefixes: vec![],
                expires: None
            }
        ),
        Err(Error::NotOwner(_))
    ));
    assert!(matches!(
        owner.put(&ns, b"\xffweft/member/x", b"x"),
        Err(Error::ReservedKey)
    ));
    assert!(matches!(
        owner.get(&ns, b"\xffweft/x"),
        Err(Error::ReservedKey)
    ));
    let listed: Vec<Vec<u8>> = owner
        .scan(&ns, b"", false)
        .expect("scan")
        .map(|item| item.expect("item").0)
        .collect();
    assert!(
        listed.is_empty(),
        "membership rows leak into ls: {listed:?}"
    );
    assert_eq!(
        reader.members(&ns).expect("members"),
        vec![(
            member.author(),
            Membership::Granted(Grant {
                prefixes: vec![b"b/".to_vec()],
                expires: None
            })
        )]
    );
}

#[test]
fn an_invited_author_writes_once_it_holds_the_grant() {
    let (_a, owner) = init(Access::Closed);
    let ns = owner.default_namespace();
    let grant = Grant {
        prefixes: vec![b"shared/".to_vec()],
        expires: None,
    };
    let key = owner.invite(&ns, grant.clone()).expect("invite");
    let (_b, device) = join_with(&owner, options(), Some(key));
    assert_eq!(
        owner.membership(&ns, &device.author()).expect("membership"),
        Some(Membership::Granted(grant))
    );
    assert!(matches!(
        device.put(&ns, b"shared/a", b"x"),
        Err(Error::NotAllowed {
            reason: Exclusion::NoGrant,
            ..
        })
    ));
    pull(&owner, &device);
    device.put(&ns, b"shared/a", b"x").expect("granted");
    pull(&device, &owner);
    assert_eq!(get(&owner, b"shared/a").as_deref(), Some(&b"x"[..]));
    // An open namespace has nothing to grant.
    let (_o, open) = init(Access::Open);
    assert!(matches!(
        open.invite(
            &open.default_namespace(),
            Grant {
                prefixes: vec![],
                expires: None
            }
        ),
        Err(Error::NotOwner(_))
    ));
}

#[test]
fn a_revocation_cuts_by_feed_length_whatever_the_timestamps() {
    let (_a, owner) = init(Access::Closed);
    let ns = owner.default_namespace();
    let (_b, member) = join(&owner);
    let all = Grant {
        prefixes: vec![],
        expires: None,
    };
    owner.grant(&ns, &member.author(), all).expect("grant");
    pull(&owner, &member);
    member.put(&ns, b"k1", b"before").expect("put");
    pull(&member, &owner);
    assert_eq!(owner.revoke(&ns, &member.author()).expect("revoke"), 1);

    // The member has not heard yet and writes on; the owner keeps the entry out.
    member.put(&ns, b"k2", b"after").expect("put");
    member.put(&ns, b"k1", b"overwrite").expect("put");
    pull(&member, &owner);
    assert_eq!(get(&owner, b"k1").as_deref(), Some(&b"before"[..]));
    assert_eq!(get(&owner, b"k2"), None);
    assert_eq!(excluded(&owner), vec![(Exclusion::Revoked, 2)]);
    assert_clean(&owner);
    // reindex agrees with what ingest decided.
    owner.reindex().expect("reindex");
    assert_eq!(excluded(&owner), vec![(Exclusion::Revoked, 2)]);
    assert_eq!(get(&owner, b"k1").as_deref(), Some(&b"before"[..]));

    // Once it hears, the member's own replica refuses further writes, and its change feed
    // tells a consumer that k2 is gone and k1 is back to the value before.
    let before_revocation = next_change(&member);
    pull(&owner, &member);
    let mut mirror = replay::Values::from([
        (b"k1".to_vec(), b"overwrite".to_vec()),
        (b"k2".to_vec(), b"after".to_vec()),
    ]);
    replay::apply(
        &mut mirror,
        &replay::read_changes(&member, &ns, b"", before_revocation).0,
    );
    assert_eq!(mirror, replay::view(&member, &ns, b""));
    assert_eq!(get(&member, b"k2"), None);
    assert_eq!(replay::replayed(&member, &ns), mirror);
    assert!(matches!(
        member.put(&ns, b"k3", b"x"),
        Err(Error::NotAllowed {
            reason: Exclusion::Revoked,
            ..
        })
    ));
    // A third replica that sees everything agrees with the owner.
    let (_c, reader) = join(&owner);
    pull(&member, &reader);
    pull(&owner, &reader);
    assert_eq!(get(&reader, b"k1").as_deref(), Some(&b"before"[..]));
    assert_eq!(excluded(&reader), vec![(Exclusion::Revoked, 2)]);
}

#[test]
fn an_expired_grant_stops_counting_new_entries() {
    let (_a, owner) = init(Access::Closed);
    let ns = owner.default_namespace();
    let (_b, member) = join(&owner);
    owner.put(&ns, b"clock", b"x").expect("put");
    let stamp = owner.history(&ns, b"clock").expect("history")[0]
        .version
        .timestamp;
    // Time is driven, not waited for: the grant runs out a minute on, and the member's clock
    // is then moved two minutes ahead.
    let soon = Timestamp(stamp.0 + 60 * (1u64 << 32));
    owner
        .grant(
            &ns,
            &member.author(),
            Grant {
                prefixes: vec![],
                expires: Some(soon),
            },
        )
        .expect("grant");
    pull(&owner, &member);
    member.put(&ns, b"early", b"x").expect("put before expiry");
    member.set_clock_ahead(Duration::from_secs(120));
    assert!(matches!(
        member.put(&ns, b"late", b"x"),
        Err(Error::NotAllowed {
            reason: Exclusion::Expired,
            ..
        })
    ));
    pull(&member, &owner);
    assert_eq!(get(&owner, b"early").as_deref(), Some(&b"x"[..]));
}

#[test]
fn a_clock_an_hour_ahead_cannot_pin_a_key() {
    let (_a, honest) = init(Access::Open);
    let ns = honest.default_namespace();
    let (_b, fast) = join(&honest);
    fast.set_clock_ahead(Duration::from_secs(3600));
    fast.put(&ns, b"k", b"pinned").expect("put");
    honest.put(&ns, b"k", b"honest").expect("put");

    let (_c, reader) = join(&honest);
    pull(&fast, &reader);
    pull(&honest, &reader);
    assert_eq!(get(&reader, b"k").as_deref(), Some(&b"honest"[..]));
    assert_eq!(excluded(&reader), vec![(Exclusion::Future, 1)]);
    assert_eq!(reader.admit_due().expect("admit"), 0, "an hour is not due");
    assert_clean(&reader);
    // A later honest write still wins after the hour, because it supersedes explicitly.
    // Control: a replica that allows two hours of skew lets the fast clock win, so the
    // assertion above is about the bound, not about arrival order.
    let (_d, lenient) = join_with(
        &honest,
        Options {
            max_future: Duration::from_secs(7200),
            ..options()
        },
        None,
    );
    pull(&fast, &lenient);
    pull(&honest, &lenient);
    assert_eq!(get(&lenient, b"k").as_deref(), Some(&b"pinned"[..]));
}

#[test]
fn an_entry_ahead_of_the_clock_counts_once_time_catches_up() {
    let (_a, origin) = init(Access::Open);
    let ns = origin.default_namespace();
    let (_b, fast) = join(&origin);
    // Time is driven, not waited for: the entry is an hour ahead, then the reader's clock is
    // moved an hour and a second on.
    fast.set_clock_ahead(Duration::from_secs(3600));
    fast.put(&ns, b"k", b"soon").expect("put");
    let (_c, reader) = join_with(
        &origin,
        Options {
            max_future: Duration::from_secs(60),
            ..options()
        },
        None,
    );
    pull(&fast, &reader);
    assert_eq!(get(&reader, b"k"), None);
    assert!(
        replay::replayed(&reader, &ns).is_empty(),
        "an entry kept out is no change"
    );
    assert_eq!(reader.admit_due().expect("admit"), 0, "not due yet");
    reader.set_clock_ahead(Duration::from_secs(3601));
    assert_eq!(reader.admit_due().expect("admit"), 1, "due now");
    assert_eq!(get(&reader, b"k").as_deref(), Some(&b"soon"[..]));
    assert_eq!(
        replay::replayed(&reader, &ns),
        replay::view(&reader, &ns, b"")
    );
    assert_eq!(excluded(&reader), vec![]);
    assert_clean(&reader);
}

/// Two replicas writing as one author: what a write ticket used on two devices does.
fn twins(origin: &Store) -> ((tempfile::TempDir, Store), (tempfile::TempDir, Store)) {
    let key = [42; 32];
    (
        join_with(origin, options(), Some(key)),
        join_with(origin, options(), Some(key)),
    )
}

/// What two nodes' sync does when one holds a head that does not fit the other's tree: walks
/// the holder's tree to where the histories part and puts the proof together there.
fn find_fork(asker: &Store, holder: &Store, head: &weft_storage::SignedHead) -> Option<ForkProof> {
    let mut search = asker.suspect_fork(head).expect("suspect")?;
    let at = loop {
        let theirs = holder
            .node_hashes(&search.namespace, &search.author, &search.asked)
            .expect("nodes")
            .expect("the holder holds them");
        match asker.fork_search_step(search, &theirs).expect("step") {
            SearchStep::Ask(next) => search = next,
            SearchStep::Found(at) => break at,
            SearchStep::Agree | SearchStep::Parted => return None,
        }
    };
    let branch = holder
        .branch_at(&head.namespace, &head.author, at)
        .expect("branch")
        .expect("held");
    asker
        .prove_fork(&head.namespace, &head.author, at, branch)
        .expect("a fork")
}

#[test]
fn forks_freeze_every_replica_where_the_histories_part() {
    let (_a, origin) = init(Access::Open);
    let ns: NamespaceId = origin.default_namespace();
    let ((_x, left), (_y, right)) = twins(&origin);
    let author = left.author();
    assert_eq!(author, right.author());
    for i in 0..5u8 {
        left.put(&ns, &[b'k', i], b"x").expect("put");
    }
    // A third device with the same key that has seen only the first two entries.
    let (_z, third) = join_with(&origin, options(), Some([42; 32]));
    let first_two = run(&left, &author, 0, 2);
    third.ingest(&first_two).expect("ingest");
    pull_feed(&left, &right, author);
    for i in 5..8u8 {
        left.put(&ns, &[b'l', i], b"x").expect("put");
    }
    for i in 5..7u8 {
        right.put(&ns, &[b'r', i], b"x").expect("put");
    }
    third.put(&ns, b"t2", b"x").expect("put");
    let head = |store: &Store| store.head(&ns, &author).expect("head").expect("held");
    let (left_head, right_head, third_head) = (head(&left), head(&right), head(&third));

    let (_r, reader) = join(&origin);
    pull(&left, &reader);
    assert_eq!(held(&reader, &author), 8);
    assert_eq!(find_fork(&reader, &left, &left_head), None, "one history");
    let proof = find_fork(&reader, &right, &right_head).expect("a shorter head off the tree");
    assert_eq!(proof.agreed, 5, "the first entry the histories differ in");
    assert_eq!(proof.verify(), Ok(()));

    assert!(reader.record_fork(&proof).expect("record"));
    assert!(
        !reader.record_fork(&proof).expect("record"),
        "recorded twice"
    );
    assert_eq!(reader.forks(&ns).expect("forks")[0].frozen_at, 5);
    assert_eq!(get(&reader, b"k\x04").as_deref(), Some(&b"x"[..]));
    assert_eq!(get(&reader, b"l\x05"), None, "past the fork nothing counts");
    assert_eq!(excluded(&reader), vec![(Exclusion::Forked, 3)]);
    assert_clean(&reader);
    assert_eq!(
        reader.suspect_fork(&right_head).expect("suspect"),
        None,
        "a frozen feed is searched no more"
    );
    left.put(&ns, b"l8", b"x").expect("put");
    let past_the_fork = run(&left, &author, 8, usize::MAX);
    assert_eq!(
        reader.ingest(&past_the_fork).expect("ingest"),
        Ingested::Frozen { held: 8, at: 5 }
    );

    // The replica on the other branch counts the same entries once it holds the proof, and
    // its author can no longer write to the feed.
    assert!(right.record_fork(&proof).expect("record"));
    assert_eq!(get(&right, b"r\x05"), None);
    assert_eq!(get(&right, b"k\x04").as_deref(), Some(&b"x"[..]));
    assert_eq!(
        replay::view(&right, &ns, b""),
        replay::view(&reader, &ns, b"")
    );
    assert!(matches!(
        right.put(&ns, b"more", b"x"),
        Err(Error::OwnFeedForked { frozen_at: 5, .. })
    ));

    // A replica that held less than both histories share when the proof came catches up to
    // where they part, from either branch, and takes nothing past it.
    let (_l, late) = join(&origin);
    let first_three = run(&left, &author, 0, 3);
    late.ingest(&first_three).expect("ingest");
    assert!(late.record_fork(&proof).expect("record"));
    let past_the_fork = run(&right, &author, 3, usize::MAX);
    assert_eq!(
        late.ingest(&past_the_fork).expect("ingest"),
        Ingested::Frozen { held: 3, at: 5 }
    );
    let to_the_fork = run(&right, &author, 3, 2);
    assert!(matches!(
        late.ingest(&to_the_fork).expect("ingest"),
        Ingested::Appended { held: 5, .. }
    ));
    assert_eq!(
        replay::view(&late, &ns, b""),
        replay::view(&reader, &ns, b"")
    );
    assert_clean(&late);

    // A third history that parts earlier moves every replica back to where it parts.
    let earlier = find_fork(&left, &third, &third_head).expect("a fork at 2");
    assert_eq!(earlier.agreed, 2);
    assert!(reader.record_fork(&earlier).expect("record"));
    assert!(
        !reader.record_fork(&proof).expect("record"),
        "the lowest point wins"
    );
    assert_eq!(reader.forks(&ns).expect("forks")[0].frozen_at, 2);
    assert_eq!(get(&reader, b"k\x01").as_deref(), Some(&b"x"[..]));
    assert_eq!(get(&reader, b"k\x02"), None);
    assert_clean(&reader);

    // A replica that holds nothing of the feed keeps no proof of it (or anyone could fill it
    // with proofs about fresh keys).
    let (_o, other) = join(&origin);
    assert!(!other.record_fork(&proof).expect("record"));
    assert!(other.forks(&ns).expect("forks").is_empty());

    // A proof of one history twice is refused as its sender's fault; so are answers to a
    // search that do not fit what was asked.
    pull_feed(&left, &other, author);
    let mut bogus = proof.clone();
    bogus.branches[1] = bogus.branches[0].clone();
    assert!(matches!(
        other.record_fork(&bogus),
        Err(IngestError::Invalid(Invalid::Fork(_)))
    ));
    let search = other
        .suspect_fork(&right_head)
        .expect("suspect")
        .expect("a search");
    assert!(matches!(
        other.fork_search_step(search, &[]),
        Err(IngestError::Invalid(Invalid::Fork(_)))
    ));
    let mut forged = right
        .branch_at(&ns, &author, 5)
        .expect("branch")
        .expect("held");
    forged.leaf[0] ^= 1;
    assert!(matches!(
        other.prove_fork(&ns, &author, 5, forged),
        Err(IngestError::Invalid(Invalid::Fork(_)))
    ));
    assert!(other.forks(&ns).expect("forks").is_empty());
}

/// A remote read passes the gates catch-up does: a version this replica would keep out of its
/// view (written after a revocation, or stamped far ahead of the clock) does not win a remote
/// read either, though its proof is sound; and a key's answer stays within its byte budget.
#[test]
fn remote_reads_pass_the_same_gates_as_catch_up() {
    let (_a, owner) = init(Access::Closed);
    let ns = owner.default_namespace();
    let (_b, member) = join(&owner);
    let (_c, ahead) = join(&owner);
    let all = Grant {
        prefixes: vec![],
        expires: None,
    };
    owner
        .grant(&ns, &member.author(), all.clone())
        .expect("grant");
    owner.grant(&ns, &ahead.author(), all).expect("grant");
    pull(&owner, &member);
    pull(&owner, &ahead);
    owner.put(&ns, b"k", b"owner's").expect("put");
    pull(&owner, &member);
    pull(&owner, &ahead);
    owner.revoke(&ns, &member.author()).expect("revoke");

    // The member has not heard of its revocation; a year-fast clock stamps ahead's write.
    member.put(&ns, b"k", b"after revocation").expect("put");
    ahead.set_clock_ahead(Duration::from_secs(365 * 24 * 3600));
    ahead.put(&ns, b"k", b"from the future").expect("put");

    for (writer, value) in [(&member, "after revocation"), (&ahead, "from the future")] {
        // What a peer holding the writer's feed sends: a proof that checks.
        let runs = writer.read_key(&ns, b"k", usize::MAX).expect("read_key");
        let proven = weft_storage::verify_remote_key(&ns, b"k", &runs).expect("verifies");
        assert_eq!(
            proven[0].value.as_deref(),
            Some(value.as_bytes()),
            "the proof alone makes it win"
        );
        let judged = owner.merge_remote_key(&ns, b"k", &runs).expect("merge");
        assert!(
            judged
                .iter()
                .all(|v| v.value.as_deref() != Some(value.as_bytes())),
            "{value:?} passed the owner's gates: {judged:?}"
        );
    }
    // The owner's own version, sent by anyone, is judged as itself.
    let runs = owner.read_key(&ns, b"k", usize::MAX).expect("read_key");
    let judged = member.merge_remote_key(&ns, b"k", &runs).expect("merge");
    assert_eq!(judged[0].value.as_deref(), Some(&b"owner's"[..]));

    // Concurrent versions of one key from several authors: the answer keeps the last
    // writer's and stops at the budget.
    let (_d, open) = init(Access::Open);
    let ons = open.default_namespace();
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (dir, writer) = join(&open);
        writer.put(&ons, b"big", &vec![7u8; 10_000]).expect("put");
        writers.push((dir, writer));
    }
    for (_, writer) in &writers {
        pull(writer, &open);
    }
    assert_eq!(open.get_all(&ons, b"big").expect("get_all").len(), 4);
    let all = open.read_key(&ons, b"big", usize::MAX).expect("read_key");
    assert_eq!(all.len(), 4);
    let some = open.read_key(&ons, b"big", 25_000).expect("read_key");
    assert_eq!(
        some.len(),
        2,
        "the budget of 25,000 bytes holds two 10,000-byte versions"
    );
    let winner = open.get_all(&ons, b"big").expect("get_all")[0].id;
    assert_eq!(
        weft_storage::verify_remote_key(&ons, b"big", &some).expect("verifies")[0].id,
        winner,
        "the winner is always sent"
    );
    let one = open.read_key(&ons, b"big", 1).expect("read_key");
    assert_eq!(one.len(), 1, "at least the winner, whatever the budget");
}

/// A time bomb defused: an entry stamped far ahead is held but does not count; a local write
/// made after it was held supersedes it, so when it comes due it does not win over that write,
/// here or on a replica that gets both; and one whose author was revoked before it came due
/// never counts.
#[test]
fn a_write_supersedes_what_it_saw_before_it_counts() {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    let (_a, owner) = init(Access::Closed);
    let ns = owner.default_namespace();
    let (_b, member) = join(&owner);
    let (_c, revoked) = join(&owner);
    let all = Grant {
        prefixes: vec![],
        expires: None,
    };
    owner
        .grant(&ns, &member.author(), all.clone())
        .expect("grant");
    owner.grant(&ns, &revoked.author(), all).expect("grant");
    pull(&owner, &member);
    pull(&owner, &revoked);
    // Year-fast clocks: their writes are held but do not count yet.
    member.set_clock_ahead(YEAR);
    member.put(&ns, b"k", b"bomb").expect("put");
    revoked.set_clock_ahead(YEAR);
    revoked.put(&ns, b"j", b"bomb").expect("put");
    pull(&member, &owner);
    pull(&revoked, &owner);
    assert_eq!(
        excluded(&owner),
        vec![(Exclusion::Future, 1), (Exclusion::Future, 1)],
        "one entry of each feed"
    );
    assert_eq!(get(&owner, b"k"), None);
    owner.revoke(&ns, &revoked.author()).expect("revoke");
    owner.put(&ns, b"k", b"mine").expect("put");
    assert_eq!(get(&owner, b"k").as_deref(), Some(&b"mine"[..]));

    // A year and a day pass; the member's entry comes due and counts, but the owner's write,
    // made after it was held, wins; the revoked author's never counts.
    owner.set_clock_ahead(YEAR + Duration::from_secs(24 * 3600));
    assert_eq!(owner.admit_due().expect("admit"), 1);
    assert_eq!(get(&owner, b"k").as_deref(), Some(&b"mine"[..]));
    assert_eq!(get(&owner, b"j"), None);
    assert_eq!(excluded(&owner), vec![(Exclusion::Revoked, 1)]);
    assert_clean(&owner);
    owner.reindex().expect("reindex");
    assert_eq!(get(&owner, b"k").as_deref(), Some(&b"mine"[..]));
    assert_eq!(excluded(&owner), vec![(Exclusion::Revoked, 1)]);

    // A replica whose clock is past the bombs already, getting everything afterwards.
    let (_d, late) = join(&owner);
    late.set_clock_ahead(YEAR + Duration::from_secs(24 * 3600));
    pull(&owner, &late);
    pull_feed(&member, &late, member.author());
    pull_feed(&revoked, &late, revoked.author());
    assert_eq!(get(&late, b"k").as_deref(), Some(&b"mine"[..]));
    assert_eq!(get(&late, b"j"), None);
    assert_eq!(excluded(&late), vec![(Exclusion::Revoked, 1)]);
    assert_clean(&late);
}

/// A closed namespace's owner, and the key of a member it granted `notes/`, which signs runs
/// by hand.
fn owner_and_notes_member() -> (tempfile::TempDir, Store, ed25519_dalek::SigningKey) {
    let (dir, owner) = init(Access::Closed);
    let grant = Grant {
        prefixes: vec![b"notes/".to_vec()],
        expires: None,
    };
    let secret = owner
        .invite(&owner.default_namespace(), grant)
        .expect("invite");
    (dir, owner, ed25519_dalek::SigningKey::from_bytes(&secret))
}

/// `entries` as the start of `author`'s feed in `ns`, signed by it.
fn signed_run(author: &ed25519_dalek::SigningKey, ns: NamespaceId, entries: Vec<Vec<u8>>) -> Run {
    let mut frontier = Frontier::default();
    for entry in &entries {
        frontier.push(tree::leaf_hash(entry), |_, _| {});
    }
    Run {
        head: SignedHead::sign(author, ns, entries.len() as u64, frontier.root()),
        start: 0,
        entries,
        extension: Vec::new(),
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// A member granted a prefix writes a key under it with links to the owner's next entries,
/// which do not exist yet: guessed hashes in one entry, and links without hashes (the format
/// before hashes) in another. The owner's later write of the key must still count and win:
/// a link replaces only a version its writer held.
#[test]
fn a_member_cannot_supersede_the_owners_future_writes() {
    use weft_storage::entry::ENTRY_FORMAT_UNHASHED;
    use weft_storage::{Entry, Link, Op, VersionHash, VersionId};

    let (_a, owner, member) = owner_and_notes_member();
    let ns = owner.default_namespace();
    let owner_next = owner
        .head(&ns, &owner.author())
        .expect("head")
        .map_or(0, |h| h.length);
    let future = |hash| -> Vec<Link> {
        (owner_next..owner_next + 100)
            .map(|seq| Link {
                id: VersionId {
                    author: owner.author(),
                    seq,
                },
                hash,
            })
            .collect()
    };
    let now = unix_seconds();
    let entries: Vec<Vec<u8>> = [Some(VersionHash([0; 32])), None]
        .into_iter()
        .map(|hash| {
            Entry {
                timestamp: Timestamp(now << 32),
                key: b"notes/x",
                op: Op::Put(b"theirs"),
                supersedes: future(hash),
            }
            .encode()
        })
        .collect();
    assert_eq!(entries[1][0], ENTRY_FORMAT_UNHASHED);
    let run = signed_run(&member, ns, entries);
    assert!(matches!(
        owner.ingest(&run).expect("a member's run ingests"),
        Ingested::Appended { added: 2, .. }
    ));
    assert_eq!(get(&owner, b"notes/x").as_deref(), Some(&b"theirs"[..]));

    owner.put(&ns, b"notes/x", b"mine").expect("put");
    assert_eq!(
        get(&owner, b"notes/x").as_deref(),
        Some(&b"mine"[..]),
        "the owner's acknowledged write was killed in advance"
    );
    // The same on a replica that gets the owner's write before the member's links.
    let (_c, other) = join(&owner);
    pull_feed(&owner, &other, owner.author());
    other.ingest(&run).expect("ingests");
    assert_eq!(get(&other, b"notes/x").as_deref(), Some(&b"mine"[..]));
    assert_clean(&owner);
}

/// A link of the entry format before hashes names no hash, so it replaces the version it
/// names only if that version is stamped before the link's writer, and the same whether the
/// version arrives before the link or after it.
#[test]
fn an_unhashed_link_replaces_only_what_is_stamped_before_it() {
    use weft_storage::{Entry, Link, Op, VersionId};

    let (_a, owner, member) = owner_and_notes_member();
    let ns = owner.default_namespace();
    let granted = held(&owner, &owner.author());
    owner.put(&ns, b"notes/x", b"owner x").expect("put");
    owner.put(&ns, b"notes/y", b"owner y").expect("put");
    let now = unix_seconds();
    // notes/x is linked by a later write, notes/y by an earlier one.
    let entries: Vec<Vec<u8>> = [
        (b"notes/x", now + 30, granted),
        (b"notes/y", now - 30, granted + 1),
    ]
    .into_iter()
    .map(|(key, secs, seq)| {
        Entry {
            timestamp: Timestamp(secs << 32),
            key,
            op: Op::Put(b"member"),
            supersedes: vec![Link {
                id: VersionId {
                    author: owner.author(),
                    seq,
                },
                hash: None,
            }],
        }
        .encode()
    })
    .collect();
    let links = signed_run(&member, ns, entries);
    let versions = |store: &Store, key: &[u8]| store.get_all(&ns, key).expect("get_all").len();

    // The owner's versions first, then the links.
    owner.ingest(&links).expect("a member's run ingests");
    // The links first: the grant, the member's run, then the owner's writes.
    let (_b, other) = join(&owner);
    other
        .ingest(&run(&owner, &owner.author(), 0, granted as usize))
        .expect("the grant ingests");
    other.ingest(&links).expect("a member's run ingests");
    pull_feed(&owner, &other, owner.author());
    for store in [&owner, &other] {
        assert_eq!(get(store, b"notes/x").as_deref(), Some(&b"member"[..]));
        assert_eq!(
            versions(store, b"notes/x"),
            1,
            "an earlier version outlived the link"
        );
        assert_eq!(
            versions(store, b"notes/y"),
            2,
            "a later version was replaced"
        );
    }
    assert_clean(&owner);
}
