//! Catch-up scheduling: which runs to ask which peer for.
//!
//! The client ([`super::Client`]) feeds it what it learns (the held length of each local feed, the heads peers
//! advertise, runs received and how their ingest went) and asks it for the next requests.
//! Per feed it keeps one request in flight and at most [`MAX_QUEUED_PER_FEED`] runs received
//! but not yet ingested, so fetching the next run overlaps ingesting the last; across feeds it
//! caps requests plus queued runs at [`MAX_OUTSTANDING`]. That bounds the memory catch-up can
//! take to about `MAX_OUTSTANDING` runs, whatever the feed sizes.
//!
//! It is generic over the peer type so that tests and simulations can use plain numbers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::ops::Bound;

use super::FeedId;

/// Runs requested or awaiting ingest, across all feeds.
pub const MAX_OUTSTANDING: usize = 16;

/// Runs of one feed received but not yet ingested.
pub const MAX_QUEUED_PER_FEED: usize = 2;

/// Requests in flight to one peer, across feeds: a peer that advertises many feeds and then
/// answers slowly, or not at all, holds no more than this many of [`MAX_OUTSTANDING`].
pub const MAX_PER_PEER: usize = 8;

/// A run to ask for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Want<P> {
    /// Who to ask.
    pub peer: P,
    /// Which feed.
    pub feed: FeedId,
    /// From which entry.
    pub start: u64,
    /// At most how many entries, when fewer than a run carries: a feed frozen by a fork is
    /// fetched only up to where its histories part.
    pub limit: Option<u64>,
}

#[derive(Debug)]
struct FeedState<P> {
    /// Entries stored locally.
    held: u64,
    /// Where the next request starts: past `held` by the runs received and queued.
    next: u64,
    /// Runs received and not yet ingested.
    queued: usize,
    /// Runs ingested whose results wait for the disk ([`Scheduler::committed`]).
    committing: usize,
    /// The peer asked and the start asked for, when a request is in flight.
    asked: Option<(P, u64)>,
    /// The length each peer last advertised.
    remote: HashMap<P, u64>,
    /// Requests to each peer that failed since it last answered: the peer with fewest is
    /// asked first, so one that never answers stops being chosen over one that does.
    failures: HashMap<P, u32>,
    /// Peers that advertised a length (kept here) and then sent nothing from where this
    /// replica stands, as a replica does past an entry it pruned, or one that holds a head
    /// ahead of its entries: reported until they send something, so a feed held short is
    /// never called caught up.
    unserved: HashMap<P, u64>,
    /// Where a fork froze the feed: nothing past it is asked for or counted as missing.
    frozen: Option<u64>,
    /// Peers whose copy parts from this replica's where it cannot tell which is wrong (a
    /// sparse replica cannot find a fork): what they advertise is not fetched again while
    /// they stay connected.
    parted: HashSet<P>,
}

impl<P> FeedState<P> {
    fn new(held: u64) -> Self {
        FeedState {
            held,
            next: held,
            queued: 0,
            committing: 0,
            asked: None,
            remote: HashMap::new(),
            failures: HashMap::new(),
            unserved: HashMap::new(),
            frozen: None,
            parted: HashSet::new(),
        }
    }

    fn best(&self) -> u64 {
        self.remote.values().copied().max().unwrap_or(0)
    }

    fn unserved(&self) -> u64 {
        let longest = self.unserved.values().copied().max().unwrap_or(0);
        if longest > self.held { longest } else { 0 }
    }
}

/// The catch-up state of every feed of every namespace the node holds.
#[derive(Debug)]
pub struct Scheduler<P> {
    feeds: BTreeMap<FeedId, FeedState<P>>,
    outstanding: usize,
    /// Runs ingested whose results wait for the disk, across feeds: not in memory here, so
    /// not in `outstanding`.
    committing: usize,
    /// Requests in flight to each peer.
    per_peer: HashMap<P, usize>,
    /// The feed asked for last: the next round starts after it, so feeds that sort first
    /// cannot take every request.
    cursor: Option<FeedId>,
    /// Turns through peers equally good for a request, so a feed's runs come from all of
    /// them rather than from one.
    turn: usize,
}

impl<P> Default for Scheduler<P> {
    fn default() -> Self {
        Scheduler {
            feeds: BTreeMap::new(),
            outstanding: 0,
            committing: 0,
            per_peer: HashMap::new(),
            cursor: None,
            turn: 0,
        }
    }
}

/// How a feed stands, for status displays.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FeedProgress {
    /// Entries stored locally.
    pub held: u64,
    /// The longest length any connected peer advertised and may still send.
    pub best_remote: u64,
    /// The longest length a connected peer advertised past `held` and then did not send (it
    /// pruned what comes next, or has not fetched it yet); 0 when none.
    pub unserved: u64,
}

impl<P: Clone + Eq + Hash> Scheduler<P> {
    /// Records how many entries of a feed are stored, as the store reports after an ingest or
    /// a local write.
    pub fn set_held(&mut self, feed: FeedId, held: u64) {
        let state = self
            .feeds
            .entry(feed)
            .or_insert_with(|| FeedState::new(held));
        state.held = state.held.max(held);
        state.next = state.next.max(state.held);
    }

    /// Starts a feed over from `held`, which may be less than before: a sparse replica whose
    /// interest grew scans its feeds again from the start.
    pub fn restart(&mut self, feed: FeedId, held: u64) {
        let state = self
            .feeds
            .entry(feed)
            .or_insert_with(|| FeedState::new(held));
        state.held = held;
        state.next = held;
        state.unserved.clear();
    }

    /// Records that `peer` holds `length` entries of `feed`.
    pub fn advertised(&mut self, peer: P, feed: FeedId, length: u64) {
        let state = self.feeds.entry(feed).or_insert_with(|| FeedState::new(0));
        if state.parted.contains(&peer) {
            return;
        }
        let length = length.min(state.frozen.unwrap_or(u64::MAX));
        // A peer that sent nothing is asked again at its next advertisement: it may have
        // been catching up itself (a head held ahead of its entries). What it would not send
        // stays reported until it sends something.
        let known = state.remote.entry(peer).or_insert(0);
        *known = (*known).max(length);
    }

    /// Syncs `feed` only up to `at` from now on: a fork froze it there (0: not at all).
    pub fn freeze(&mut self, feed: FeedId, at: u64) {
        let state = self.feeds.entry(feed).or_insert_with(|| FeedState::new(0));
        let at = state.frozen.map_or(at, |known| known.min(at));
        state.frozen = Some(at);
        for length in state.remote.values_mut() {
            *length = (*length).min(at);
        }
        state.unserved.clear();
    }

    /// Fetches `feed` from `peer` no more while it stays connected: its copy parts from this
    /// replica's, and neither can be shown wrong here.
    pub fn parted(&mut self, peer: P, feed: FeedId) {
        if let Some(state) = self.feeds.get_mut(&feed) {
            state.remote.remove(&peer);
            state.unserved.remove(&peer);
            state.parted.insert(peer);
        }
    }

    /// Forgets what `peer` advertised and any request to it, as when it disconnects.
    pub fn peer_gone(&mut self, peer: &P) {
        for state in self.feeds.values_mut() {
            state.remote.remove(peer);
            state.failures.remove(peer);
            state.unserved.remove(peer);
            state.parted.remove(peer);
            if state.asked.as_ref().is_some_and(|(asked, _)| asked == peer) {
                state.asked = None;
                self.outstanding -= 1;
            }
        }
        self.per_peer.remove(peer);
    }

    /// Drops every state kept about `feed` (a request in flight for it is no longer
    /// counted): a feed this replica will not hold costs nothing here.
    pub fn forget(&mut self, feed: FeedId) {
        if let Some(state) = self.feeds.remove(&feed) {
            // Runs queued for ingest come back to no state, and count for nothing then.
            self.outstanding -= state.queued;
            self.committing -= state.committing;
            if let Some((peer, _)) = state.asked {
                self.outstanding -= 1;
                self.settled(&peer);
            }
        }
        if self.cursor == Some(feed) {
            self.cursor = None;
        }
    }

    /// The requests to send now. Each is in flight until [`Scheduler::received`] or
    /// [`Scheduler::failed`] is called for it.
    pub fn wants(&mut self) -> Vec<Want<P>> {
        let mut out = Vec::new();
        // Called after every event: with every request slot taken, as through most of a
        // catch-up, it must cost nothing per feed.
        if self.outstanding >= MAX_OUTSTANDING {
            return out;
        }
        let Scheduler {
            feeds,
            outstanding,
            per_peer,
            cursor,
            turn,
            ..
        } = self;
        let after = *cursor;
        // Asks for `feed` if it wants a run; false once every request slot is taken.
        let mut consider = |feed: FeedId, state: &mut FeedState<P>| -> bool {
            if *outstanding >= MAX_OUTSTANDING {
                return false;
            }
            if state.asked.is_some() || state.queued >= MAX_QUEUED_PER_FEED {
                return true;
            }
            // Ask the peer that failed least, and of those the one that has most; between
            // peers alike, each in turn.
            let rank = |(peer, length): (&P, &u64)| {
                let failures = state.failures.get(peer).copied().unwrap_or(0);
                (failures, std::cmp::Reverse(*length))
            };
            let candidates: Vec<(&P, &u64)> = state
                .remote
                .iter()
                .filter(|(peer, length)| {
                    **length > state.next
                        && per_peer.get(*peer).copied().unwrap_or(0) < MAX_PER_PEER
                })
                .collect();
            let Some(best) = candidates.iter().map(|c| rank(*c)).min() else {
                return true;
            };
            let tied: Vec<&P> = candidates
                .into_iter()
                .filter(|c| rank(*c) == best)
                .map(|(peer, _)| peer)
                .collect();
            let peer = tied[*turn % tied.len()].clone();
            *turn = turn.wrapping_add(1);
            state.asked = Some((peer.clone(), state.next));
            *outstanding += 1;
            *per_peer.entry(peer.clone()).or_insert(0) += 1;
            *cursor = Some(feed);
            out.push(Want {
                peer,
                feed,
                start: state.next,
                limit: state.frozen.map(|at| at.saturating_sub(state.next)),
            });
            true
        };
        // Round robin: from the feed after the one asked for last, around to it.
        let mut room = true;
        if let Some(last) = after {
            for (feed, state) in feeds.range_mut((Bound::Excluded(last), Bound::Unbounded)) {
                room = consider(*feed, state);
                if !room {
                    break;
                }
            }
        }
        if room {
            let upto = after.map_or(Bound::Unbounded, Bound::Included);
            for (feed, state) in feeds.range_mut((Bound::Unbounded, upto)) {
                if !consider(*feed, state) {
                    break;
                }
            }
        }
        out
    }

    /// One fewer request in flight to `peer`.
    fn settled(&mut self, peer: &P) {
        if let Some(count) = self.per_peer.get_mut(peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_peer.remove(peer);
            }
        }
    }

    /// A run of `entries` entries from `start` arrived for the request to `peer`; it is queued
    /// for ingest, which must report through [`Scheduler::ingested`]. Returns false, changing
    /// nothing, when no such request is in flight: the peer sent a run it was never asked for.
    pub fn received(&mut self, peer: &P, feed: FeedId, start: u64, entries: u64) -> bool {
        self.received_to(peer, feed, start, start.saturating_add(entries))
    }

    /// As [`Scheduler::received`], for a run that covers the feed from `start` to `end`: a sparse
    /// run covers more than the entries it carries.
    pub fn received_to(&mut self, peer: &P, feed: FeedId, start: u64, end: u64) -> bool {
        let Some(state) = self.feeds.get_mut(&feed) else {
            return false;
        };
        // Compared with what was asked, not with `next`: gossip may have moved `held` (and so
        // `next`) on while the request was in flight, and the answer is still the one asked for.
        if state.asked.as_ref() != Some(&(peer.clone(), start)) {
            return false;
        }
        state.asked = None;
        state.failures.remove(peer);
        if end > start {
            state.unserved.remove(peer);
        }
        if end <= start {
            // The peer cannot send what it said it holds (pruned there, not held there yet, or
            // it lies): stop asking it until it advertises again, and keep counting what it
            // would not send.
            if let Some(advertised) = state.remote.remove(peer) {
                state.unserved.insert(peer.clone(), advertised);
            }
            self.outstanding -= 1;
            self.settled(peer);
            return true;
        }
        state.next = state.next.max(end);
        state.queued += 1;
        self.settled(peer);
        true
    }

    /// The request to `peer` for `feed` failed or was refused; it may be asked again.
    pub fn failed(&mut self, peer: &P, feed: FeedId) {
        if let Some(state) = self.feeds.get_mut(&feed)
            && state.asked.as_ref().is_some_and(|(asked, _)| asked == peer)
        {
            state.asked = None;
            *state.failures.entry(peer.clone()).or_insert(0) += 1;
            self.outstanding -= 1;
            self.settled(peer);
        }
    }

    /// A queued run of `feed` was ingested, leaving `held` entries stored; `ok` is false when
    /// it was refused or the store failed, so later queued runs will not fit and the next
    /// request restarts from `held`.
    pub fn ingested(&mut self, feed: FeedId, held: u64, ok: bool) {
        let Some(state) = self.feeds.get_mut(&feed) else {
            return;
        };
        if state.committing > 0 {
            state.committing -= 1;
            self.committing -= 1;
        } else if state.queued > 0 {
            state.queued -= 1;
            self.outstanding -= 1;
        }
        state.held = state.held.max(held);
        if !ok || state.next < state.held {
            state.next = state.held;
        }
    }

    /// A queued run of `feed` was ingested and committed, and its result waits for later
    /// ingests' sync: it holds no memory here any more, so its share of [`MAX_OUTSTANDING`]
    /// is free for the next request, while the feed still counts it as queued until
    /// [`Scheduler::ingested`] reports it.
    pub fn committed(&mut self, feed: FeedId) {
        if let Some(state) = self.feeds.get_mut(&feed)
            && state.queued > 0
        {
            state.queued -= 1;
            state.committing += 1;
            self.outstanding -= 1;
            self.committing += 1;
        }
    }

    /// Every feed's held and best-known remote length.
    pub fn progress(&self) -> impl Iterator<Item = (&FeedId, FeedProgress)> {
        self.feeds.iter().map(|(feed, state)| {
            (
                feed,
                FeedProgress {
                    held: state.held,
                    best_remote: state.best(),
                    unserved: state.unserved(),
                },
            )
        })
    }

    /// Whether any request is in flight or run awaits ingest.
    pub fn busy(&self) -> bool {
        self.outstanding > 0 || self.committing > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_storage::{AuthorId, NamespaceId};

    fn feed(n: u8) -> FeedId {
        (NamespaceId([1; 32]), AuthorId([n; 32]))
    }

    #[test]
    fn a_frozen_feed_is_fetched_up_to_where_its_histories_part() {
        let mut scheduler = Scheduler::default();
        scheduler.set_held(feed(1), 10);
        scheduler.advertised(7u32, feed(1), 100);
        scheduler.freeze(feed(1), 12);
        scheduler.freeze(feed(1), 30);
        let wants = scheduler.wants();
        assert_eq!(wants.len(), 1);
        assert_eq!(
            (wants[0].start, wants[0].limit),
            (10, Some(2)),
            "the lowest point wins"
        );
        assert!(scheduler.received(&7, feed(1), 10, 2));
        scheduler.ingested(feed(1), 12, true);
        scheduler.advertised(7u32, feed(1), 200);
        assert!(scheduler.wants().is_empty(), "nothing past the fork");
        let best: Vec<u64> = scheduler.progress().map(|(_, p)| p.best_remote).collect();
        assert_eq!(best, [12]);
    }

    #[test]
    fn asks_the_peer_ahead_and_pipelines_one_run_past_ingest() {
        let mut scheduler = Scheduler::default();
        scheduler.set_held(feed(1), 10);
        scheduler.advertised(7u32, feed(1), 5);
        assert!(scheduler.wants().is_empty(), "the peer is behind");
        scheduler.advertised(8u32, feed(1), 100);
        let wants = scheduler.wants();
        assert_eq!(
            wants,
            vec![Want {
                peer: 8,
                feed: feed(1),
                start: 10,
                limit: None,
            }]
        );
        assert!(
            scheduler.wants().is_empty(),
            "one request per feed at a time"
        );

        assert!(scheduler.received(&8, feed(1), 10, 30));
        // The next request goes out before the first run is ingested.
        assert_eq!(scheduler.wants()[0].start, 40);
        assert!(scheduler.received(&8, feed(1), 40, 30));
        assert!(
            scheduler.wants().is_empty(),
            "no more than {MAX_QUEUED_PER_FEED} runs wait for ingest"
        );
        scheduler.ingested(feed(1), 40, true);
        assert_eq!(scheduler.wants()[0].start, 70);
        scheduler.ingested(feed(1), 70, true);
        assert!(scheduler.received(&8, feed(1), 70, 30));
        scheduler.ingested(feed(1), 100, true);
        assert!(scheduler.wants().is_empty());
        assert!(!scheduler.busy());
        let progress: Vec<_> = scheduler.progress().map(|(_, p)| p).collect();
        assert_eq!(
            progress,
            vec![FeedProgress {
                held: 100,
                best_remote: 100,
                unserved: 0
            }]
        );
    }

    #[test]
    fn unasked_runs_are_refused_and_failed_ingest_restarts_from_held() {
        let mut scheduler = Scheduler::default();
        scheduler.advertised(1u32, feed(1), 50);
        assert!(!scheduler.received(&1, feed(1), 0, 10), "nothing was asked");
        let want = scheduler.wants().remove(0);
        assert!(
            !scheduler.received(&2, feed(1), 0, 10),
            "asked someone else"
        );
        assert!(
            !scheduler.received(&1, feed(1), 5, 10),
            "not the range asked"
        );
        assert!(scheduler.received(&want.peer, feed(1), 0, 10));
        assert_eq!(scheduler.wants()[0].start, 10);
        assert!(scheduler.received(&1, feed(1), 10, 10));
        scheduler.ingested(feed(1), 0, false);
        scheduler.ingested(feed(1), 0, false);
        assert_eq!(scheduler.wants()[0].start, 0);
    }

    #[test]
    fn a_run_asked_for_is_accepted_after_gossip_moved_the_feed_on() {
        let mut scheduler = Scheduler::default();
        scheduler.advertised(1u32, feed(1), 5);
        let want = scheduler.wants().remove(0);
        assert_eq!(want.start, 0);
        // Gossip delivers entries 0..3 while the request is in flight.
        scheduler.set_held(feed(1), 3);
        assert!(
            scheduler.received(&1, feed(1), 0, 5),
            "the run asked for is not a stray"
        );
        scheduler.ingested(feed(1), 5, true);
        assert!(scheduler.wants().is_empty());
        assert!(!scheduler.busy());
    }

    #[test]
    fn a_gone_peer_frees_its_request_and_another_is_asked() {
        let mut scheduler = Scheduler::default();
        scheduler.advertised(1u32, feed(1), 50);
        scheduler.advertised(2u32, feed(1), 40);
        assert_eq!(scheduler.wants()[0].peer, 1);
        scheduler.peer_gone(&1);
        let wants = scheduler.wants();
        assert_eq!(wants[0].peer, 2);
        scheduler.failed(&2, feed(1));
        assert_eq!(scheduler.wants()[0].peer, 2);
        // A peer answering with nothing is not asked again until it advertises again.
        assert!(scheduler.received(&2, feed(1), 0, 0));
        assert!(scheduler.wants().is_empty());
        assert!(!scheduler.busy());
        scheduler.advertised(2u32, feed(1), 40);
        assert_eq!(
            scheduler.wants()[0].start,
            0,
            "asked again once it advertises"
        );
    }

    /// Peers alike (no failures, the same length) take turns serving one feed's runs.
    #[test]
    fn runs_of_one_feed_are_spread_over_peers_alike() {
        let mut scheduler = Scheduler::default();
        for peer in [1u32, 2, 3] {
            scheduler.advertised(peer, feed(1), 100);
        }
        let mut asked = Vec::new();
        for start in (0..60).step_by(10) {
            let want = scheduler.wants().remove(0);
            assert_eq!(want.start, start);
            asked.push(want.peer);
            assert!(scheduler.received(&want.peer, feed(1), start, 10));
            scheduler.ingested(feed(1), start + 10, true);
        }
        for peer in [1, 2, 3] {
            assert_eq!(asked.iter().filter(|p| **p == peer).count(), 2, "{asked:?}");
        }
    }

    /// A peer that advertises entries and then sends none of them (it pruned the next one)
    /// leaves the feed reported short, not caught up, until another peer sends them.
    #[test]
    fn entries_a_peer_will_not_send_are_reported_until_another_sends_them() {
        let mut scheduler = Scheduler::default();
        scheduler.advertised(1u32, feed(1), 30);
        assert_eq!(scheduler.wants()[0].start, 0);
        assert!(scheduler.received(&1, feed(1), 0, 10));
        scheduler.ingested(feed(1), 10, true);
        assert_eq!(scheduler.wants()[0].start, 10);
        assert!(
            scheduler.received(&1, feed(1), 10, 0),
            "entry 10 is pruned there"
        );
        let progress = |s: &Scheduler<u32>| s.progress().map(|(_, p)| p).collect::<Vec<_>>();
        assert_eq!(
            progress(&scheduler),
            vec![FeedProgress {
                held: 10,
                best_remote: 0,
                unserved: 30
            }]
        );
        // Asked again at its next advertisement, it still sends nothing: still reported.
        scheduler.advertised(1u32, feed(1), 30);
        let want = scheduler.wants().remove(0);
        assert_eq!((want.peer, want.start), (1, 10));
        assert!(scheduler.received(&1, feed(1), 10, 0));
        assert_eq!(progress(&scheduler)[0].unserved, 30);

        scheduler.advertised(2u32, feed(1), 30);
        let want = scheduler.wants().remove(0);
        assert_eq!((want.peer, want.start), (2, 10));
        assert!(scheduler.received(&2, feed(1), 10, 20));
        scheduler.ingested(feed(1), 30, true);
        assert_eq!(
            progress(&scheduler),
            vec![FeedProgress {
                held: 30,
                best_remote: 30,
                unserved: 0
            }]
        );
        scheduler.peer_gone(&1);
        scheduler.advertised(1u32, feed(1), 30);
        assert!(scheduler.wants().is_empty());
    }

    /// A peer that holds a head ahead of its entries (it is catching up itself) sends nothing
    /// at first; asked again when it advertises next, it sends what it has fetched since.
    #[test]
    fn a_peer_still_catching_up_is_asked_again_and_then_serves() {
        let mut scheduler = Scheduler::default();
        scheduler.advertised(1u32, feed(1), 50);
        let want = scheduler.wants().remove(0);
        assert!(scheduler.received(&want.peer, feed(1), 0, 0));
        assert!(scheduler.wants().is_empty());
        scheduler.advertised(1u32, feed(1), 50);
        let want = scheduler.wants().remove(0);
        assert!(scheduler.received(&want.peer, feed(1), 0, 50));
        scheduler.ingested(feed(1), 50, true);
        let progress: Vec<_> = scheduler.progress().map(|(_, p)| p).collect();
        assert_eq!(
            progress,
            vec![FeedProgress {
                held: 50,
                best_remote: 50,
                unserved: 0
            }]
        );
    }

    /// A scheduler whose 40 feeds, each `length` long at one of 4 peers, filled every request
    /// slot with a run of 10 entries now queued for ingest; and the requests it made.
    fn every_slot_queued(length: u64) -> (Scheduler<u32>, Vec<Want<u32>>) {
        let mut scheduler = Scheduler::default();
        for n in 0..40 {
            scheduler.advertised(u32::from(n % 4), feed(n), length);
        }
        let first = scheduler.wants();
        assert_eq!(first.len(), MAX_OUTSTANDING);
        for want in &first {
            assert!(scheduler.received(&want.peer, want.feed, want.start, 10));
        }
        (scheduler, first)
    }

    #[test]
    fn outstanding_runs_are_capped_across_feeds_and_per_peer() {
        let (mut scheduler, first) = every_slot_queued(1000);
        assert!(
            scheduler.wants().is_empty(),
            "queued runs count against the cap"
        );
        scheduler.ingested(first[0].feed, 10, true);
        assert_eq!(scheduler.wants().len(), 1);

        let mut alone = Scheduler::default();
        for n in 0..40 {
            alone.advertised(1u32, feed(n), 1000);
        }
        assert_eq!(
            alone.wants().len(),
            MAX_PER_PEER,
            "one peer holds at most its share"
        );
    }

    /// A run committed while its result waits for the disk frees its share of the cap, so
    /// catch-up keeps asking meanwhile; the feed still counts it until it is reported, and the
    /// scheduler stays busy until then.
    #[test]
    fn a_run_committed_and_waiting_for_the_disk_frees_its_share() {
        let (mut scheduler, first) = every_slot_queued(10);
        assert!(scheduler.wants().is_empty());
        for want in &first {
            scheduler.committed(want.feed);
        }
        let second = scheduler.wants();
        assert_eq!(
            second.len(),
            MAX_OUTSTANDING,
            "every committed run's share is free"
        );
        assert!(
            second
                .iter()
                .all(|want| !first.iter().any(|f| f.feed == want.feed)),
            "a committed run is not asked for again"
        );
        for want in &second {
            scheduler.failed(&want.peer, want.feed);
        }
        assert!(scheduler.busy(), "results still to come");
        for want in &first {
            scheduler.committed(want.feed);
            scheduler.ingested(want.feed, 10, true);
        }
        assert!(!scheduler.busy());
        let held: u64 = scheduler.progress().map(|(_, p)| p.held).sum();
        assert_eq!(held, 10 * MAX_OUTSTANDING as u64);
    }

    /// A peer that advertises many feeds that sort first and then never answers must not
    /// starve the feeds other peers serve (issue 15, finding 3).
    #[test]
    fn a_silent_peer_with_many_feeds_does_not_starve_the_others() {
        let mut scheduler = Scheduler::default();
        // The silent peer's fresh authors sort before the honest feed.
        for n in 0..20 {
            scheduler.advertised(9u32, feed(n), 1000);
        }
        scheduler.advertised(1u32, feed(200), 50);
        let wants = scheduler.wants();
        assert!(
            wants.iter().any(|w| w.feed == feed(200) && w.peer == 1),
            "the honest feed was not asked: {wants:?}"
        );
        assert!(wants.iter().filter(|w| w.peer == 9).count() <= MAX_PER_PEER);

        // The silent peer times out; asked again, a peer that failed loses to one that did not.
        let mut scheduler = Scheduler::default();
        scheduler.advertised(9u32, feed(1), 1000);
        scheduler.advertised(1u32, feed(1), 500);
        let first = scheduler.wants().remove(0);
        assert_eq!(first.peer, 9, "the longest is asked first");
        scheduler.failed(&9, feed(1));
        assert_eq!(
            scheduler.wants()[0].peer,
            1,
            "the peer that failed is passed over"
        );

        // Round robin: when not every feed can be asked at once, the next round goes on after
        // the feed asked for last.
        let mut scheduler = Scheduler::default();
        for n in 0..20 {
            scheduler.advertised(1u32, feed(n), 1000);
        }
        let first: Vec<FeedId> = scheduler.wants().into_iter().map(|w| w.feed).collect();
        for feed in &first {
            scheduler.failed(&1, *feed);
        }
        let second: Vec<FeedId> = scheduler.wants().into_iter().map(|w| w.feed).collect();
        assert_eq!(first.len(), MAX_PER_PEER);
        assert!(
            second.iter().all(|feed| !first.contains(feed)),
            "the same feeds asked again first: {first:?} then {second:?}"
        );
    }

    /// A feed found not to be a member's is forgotten whole: its request and queued runs stop
    /// counting, and nothing about it is listed (issue 15, finding 6).
    #[test]
    fn a_forgotten_feed_frees_its_share() {
        let mut scheduler = Scheduler::default();
        for n in 0..MAX_PER_PEER as u8 {
            scheduler.advertised(9u32, feed(n), 1000);
        }
        scheduler.advertised(9u32, feed(100), 1000);
        let wants = scheduler.wants();
        assert_eq!(wants.len(), MAX_PER_PEER);
        assert!(scheduler.received(&9, wants[0].feed, 0, 10));
        scheduler.forget(wants[0].feed);
        scheduler.forget(wants[1].feed);
        assert_eq!(scheduler.progress().count(), MAX_PER_PEER - 1);
        let next = scheduler.wants();
        assert_eq!(
            next.len(),
            1,
            "the share freed by a forgotten request is used"
        );
        assert_eq!(next[0].feed, feed(100));
        for want in wants[2..].iter().chain(&next) {
            scheduler.failed(&9, want.feed);
        }
        assert!(
            !scheduler.busy(),
            "a forgotten feed still counts as outstanding"
        );
    }
}
