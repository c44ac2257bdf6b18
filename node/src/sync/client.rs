//! The asking side of the sync protocol: what to ask whom, whether an answer is the one
//! asked for, what to do with it, and when a peer is at fault.
//!
//! [`Client`] does no I/O. The runner (the node, or a simulation) tells it what happened (a
//! peer connected, an answer came, a store job finished, gossip arrived) and carries out the
//! [`Action`]s it returns: send this request, run this job on the store, cut that peer off
//! for this [`Fault`], gossip this, tell gossip what to do with that message. Store work is
//! a [`Job`] the runner runs wherever its store lives ([`Job::run`]) and hands back as a
//! [`Done`] ([`Client::on_done`]).
//!
//! It is generic over the peer type `P` and the gossip message handle `G`, so that a
//! simulation drives it with plain numbers.

use std::collections::HashMap;
use std::marker::PhantomData;

use tracing::{debug, warn};
use weft_storage::{AuthorId, IngestError, Ingested, Interest, NamespaceId, Run};

use super::actions::{Action, Blame, Fault, Pending, Verdict};
use super::holdings::Holdings;
use super::jobs::{Done, DoneKind, Incoming, Job, JobKind, Source};
use super::remote::{self, RemoteReads};
use super::rounds::Rounds;
use super::scheduler::{FeedProgress, Scheduler};
use super::{FeedId, Peer};
use crate::access::Cap;
use crate::wire::{
    AuthorRange, Gossip, RUN_ENTRIES, Refusal, Request, Response, Topic, WireRun, WireSparse,
};

/// Requests one heads exchange makes of a peer, pages of heads and ranges of feeds together:
/// 262,144 authors at 4,096 a page. Past it the exchange ends (a peer can make up authors
/// without end), and the next round starts again from the first request.
pub const MAX_HEAD_PAGES: u32 = 64;

mod forks;
mod heads;

/// The asking side of the sync protocol for one replica.
pub struct Client<P, G> {
    /// This node's peer id bytes, which every capability it presents binds.
    me: Vec<u8>,
    author: AuthorId,
    namespaces: Vec<NamespaceId>,
    interests: HashMap<NamespaceId, Interest>,
    scheduler: Scheduler<P>,
    remote: RemoteReads,
    head_exchanges: u64,
    refusals: u64,
    rounds: Rounds<P>,
    run_entries: u32,
    gossip: PhantomData<fn() -> G>,
}

impl<P: Peer, G> Client<P, G> {
    /// The client of node `me` (its peer id bytes) for a replica holding `holdings`.
    pub fn new(me: Vec<u8>, holdings: Holdings) -> Self {
        let mut scheduler = Scheduler::default();
        for (feed, held) in holdings.feeds {
            scheduler.set_held(feed, held);
        }
        Client {
            me,
            author: holdings.author,
            namespaces: holdings.namespaces,
            interests: holdings.interests,
            scheduler,
            remote: RemoteReads::default(),
            head_exchanges: 0,
            refusals: 0,
            rounds: Rounds::new(),
            run_entries: RUN_ENTRIES,
            gossip: PhantomData,
        }
    }

    /// Asks for runs of at most `entries` entries (at most [`RUN_ENTRIES`]), rather than the
    /// most a server sends: smaller answers on a slow link, and many runs per feed in tests.
    pub fn with_run_entries(mut self, entries: u32) -> Self {
        self.run_entries = entries.clamp(1, RUN_ENTRIES);
        self
    }

    fn cap(&self, ns: &NamespaceId, peer: &P) -> Cap {
        Cap::new(ns, &self.me, &peer.id_bytes())
    }

    /// A peer connected: exchange heads.
    pub fn connected(&mut self, peer: &P) -> Vec<Action<P, G>> {
        self.rounds.stir();
        if self.namespaces.is_empty() {
            return Vec::new();
        }
        // With a digest, a peer that reconnects after a while apart costs what changed.
        vec![Action::Store(Job(JobKind::Digest {
            peers: vec![peer.clone()],
            round: self.rounds.current(),
            namespaces: self.namespaces.clone(),
            connect: true,
        }))]
    }

    /// A sync round: exchange heads with every connected peer again. The store first digests
    /// what this replica holds, so that a peer holding the same answers in one empty page.
    pub fn tick<'a>(&mut self, peers: impl IntoIterator<Item = &'a P>) -> Vec<Action<P, G>>
    where
        P: 'a,
    {
        let round = self.rounds.start();
        let peers: Vec<P> = peers.into_iter().cloned().collect();
        if peers.is_empty() || self.namespaces.is_empty() {
            return Vec::new();
        }
        vec![Action::Store(Job(JobKind::Digest {
            peers,
            round,
            namespaces: self.namespaces.clone(),
            connect: false,
        }))]
    }

    /// One period of the node's sync timer: a round ([`Client::tick`]) when it is due. While
    /// rounds find nothing new, each waits twice as many periods as the last, up to
    /// 2^[`MAX_QUIET_DOUBLINGS`](super::MAX_QUIET_DOUBLINGS); after any change the next
    /// period starts one. A due round is skipped when every peer has asked since with a
    /// digest of the same heads ([`Client::peer_matched`]).
    pub fn timer<'a>(&mut self, peers: impl IntoIterator<Item = &'a P>) -> Vec<Action<P, G>>
    where
        P: 'a,
    {
        if !self.rounds.due() {
            return Vec::new();
        }
        // Peers that all just asked with this replica's own digest: both sides know they
        // hold the same, and one side's rounds are enough while that lasts.
        let peers: Vec<P> = peers.into_iter().cloned().collect();
        if self.rounds.all_matched(&peers, &self.namespaces) {
            return Vec::new();
        }
        self.tick(&peers)
    }

    /// `peer`'s round found it holding the same heads of `ns` as this replica
    /// ([`super::answer_matching`]).
    pub fn peer_matched(&mut self, peer: P, ns: NamespaceId) {
        self.rounds.matched(peer, ns);
    }

    /// A peer went away: what it advertised and what was asked of it are forgotten.
    pub fn disconnected(&mut self, peer: &P) {
        self.scheduler.peer_gone(peer);
        self.rounds.forget(peer);
    }

    /// The current sync round; the next [`Client::tick`] starts a new one.
    pub fn round(&self) -> u64 {
        self.rounds.current()
    }

    /// The latest round whose head exchanges have all ended with every one of `peers` in
    /// every namespace: once it reaches a round, what those peers held when it started has
    /// been advertised here. Zero with no peers.
    pub fn exchanged_round<'a>(&self, peers: impl IntoIterator<Item = &'a P>) -> u64
    where
        P: 'a,
    {
        self.rounds.exchanged(peers, &self.namespaces)
    }

    /// Syncs `feed` only up to `at`, where the histories of a fork part; a sparse replica
    /// takes nothing more of it.
    fn freeze(&mut self, feed: FeedId, at: u64) {
        let at = if self.interests.contains_key(&feed.0) {
            0
        } else {
            at
        };
        self.scheduler.freeze(feed, at);
    }

    /// Cuts `peer` off for `fault`, which the runner found itself (bytes that do not decode,
    /// gossip for a namespace not held): what was asked of it is forgotten.
    pub fn blame(&mut self, peer: P, fault: Fault) -> Action<P, G> {
        self.penalize(peer, fault)
    }

    fn penalize(&mut self, peer: P, fault: Fault) -> Action<P, G> {
        self.scheduler.peer_gone(&peer);
        Action::Penalize { peer, fault }
    }

    /// An ingest of `feed` committed and waits for the disk with others: the run it took is
    /// on the store's pages, so it no longer counts against what catch-up may hold.
    pub fn committed(&mut self, feed: FeedId) {
        self.scheduler.committed(feed);
    }

    /// The runs to ask for now: call after every event.
    pub fn wants(&mut self) -> Vec<Action<P, G>> {
        let mut actions = Vec::new();
        for want in self.scheduler.wants() {
            let (ns, author) = want.feed;
            let cap = self.cap(&ns, &want.peer);
            // A replica holds all of its own feed, so it fetches it back whole.
            let interest = self.interests.get(&ns).filter(|_| author != self.author);
            let request = match interest {
                Some(interest) => Request::Sparse {
                    topic: Topic::of(&ns),
                    cap,
                    author,
                    start: want.start,
                    prefixes: interest.wire_prefixes(),
                    max_entries: self.run_entries,
                },
                None => Request::Run {
                    topic: Topic::of(&ns),
                    cap,
                    author,
                    start: want.start,
                    max_entries: want.limit.map_or(self.run_entries, |limit| {
                        limit.min(u64::from(self.run_entries)) as u32
                    }),
                },
            };
            actions.push(Action::Send {
                peer: want.peer,
                request,
                pending: Pending::Run {
                    feed: want.feed,
                    start: want.start,
                },
            });
        }
        actions
    }

    /// `peer` answered the request that `pending` describes.
    pub fn on_response(
        &mut self,
        peer: P,
        pending: Pending,
        response: Response,
    ) -> Vec<Action<P, G>> {
        if matches!(response, Response::Refused(_)) {
            self.refusals += 1;
        }
        match (pending, response) {
            (
                Pending::Heads {
                    ns,
                    after,
                    page,
                    round,
                },
                Response::Heads { heads, more, forks },
            ) => self.on_heads_page(peer, (ns, after, page, round), (heads, more, forks)),
            (
                Pending::Heads {
                    ns,
                    after: None,
                    page,
                    round,
                },
                Response::Ranges { answers, forks },
            ) => {
                let whole = vec![AuthorRange::default()];
                self.on_ranges(peer, (ns, whole, Vec::new(), page, round), (answers, forks))
            }
            (
                Pending::Ranges {
                    ns,
                    asked,
                    rest,
                    page,
                    round,
                },
                Response::Ranges { answers, forks },
            ) => self.on_ranges(peer, (ns, asked, rest, page, round), (answers, forks)),
            (Pending::Run { feed, start }, Response::Run(run)) => {
                let Some(run) = run else {
                    self.scheduler.received(&peer, feed, start, 0);
                    return Vec::new();
                };
                let entries = run.entries.len() as u64;
                let fits = run.start == start
                    && run.head.author == feed.1
                    && entries <= u64::from(RUN_ENTRIES);
                if !fits || !self.scheduler.received(&peer, feed, start, entries) {
                    self.scheduler.failed(&peer, feed);
                    let got = run.start;
                    return vec![self.penalize(
                        peer,
                        Fault::Unasked {
                            asked: start,
                            got,
                            entries,
                        },
                    )];
                }
                vec![ingest(
                    feed,
                    Incoming::Run(run.into_run(feed.0)),
                    Source::Sync(peer),
                )]
            }
            (Pending::Run { feed, start }, Response::Sparse(run)) => {
                let Some(run) = run else {
                    self.scheduler.received(&peer, feed, start, 0);
                    return Vec::new();
                };
                let fits = self.interests.contains_key(&feed.0)
                    && run.start == start
                    && run.head.author == feed.1
                    && run.entries.len() <= RUN_ENTRIES as usize;
                if !fits || !self.scheduler.received_to(&peer, feed, start, run.end) {
                    self.scheduler.failed(&peer, feed);
                    let fault = Fault::Unasked {
                        asked: start,
                        got: run.start,
                        entries: run.entries.len() as u64,
                    };
                    return vec![self.penalize(peer, fault)];
                }
                vec![ingest(
                    feed,
                    Incoming::Sparse(run.into_run(feed.0)),
                    Source::Sync(peer),
                )]
            }
            (Pending::Key { query }, Response::Key(runs)) => {
                self.remote_answered(peer, query, runs)
            }
            (Pending::Key { query }, Response::Refused(reason)) => {
                debug!(?peer, ?reason, "remote read refused");
                self.remote_done(query)
            }
            (Pending::Run { feed, start }, Response::Refused(reason)) => {
                debug!(?peer, ?reason, "run refused");
                if reason == Refusal::NotShared {
                    // A sparse peer that does not hold what was asked: asking again at once
                    // would loop, so stop asking it until it advertises the feed again.
                    self.scheduler.received(&peer, feed, start, 0);
                } else {
                    self.scheduler.failed(&peer, feed);
                }
                Vec::new()
            }
            (
                Pending::Heads { ns, round, .. } | Pending::Ranges { ns, round, .. },
                Response::Refused(reason),
            ) => {
                debug!(?peer, ?reason, "heads refused");
                self.rounds.ended(peer, ns, round);
                Vec::new()
            }
            (Pending::Fork { feed, blame, step }, response) => {
                self.on_fork_answer(peer, (feed, blame, step), response)
            }
            (pending, _) => {
                let mut actions = match pending {
                    Pending::Run { feed, .. } => {
                        self.scheduler.failed(&peer, feed);
                        Vec::new()
                    }
                    Pending::Key { query } => self.remote_done(query),
                    Pending::Heads { .. } | Pending::Ranges { .. } | Pending::Fork { .. } => {
                        Vec::new()
                    }
                };
                actions.push(self.penalize(peer, Fault::WrongAnswer));
                actions
            }
        }
    }

    /// The request `pending` describes got no answer from `peer`; `fault` says whether the
    /// peer is to blame (an answer that does not decode).
    pub fn on_failure(
        &mut self,
        peer: P,
        pending: Pending,
        fault: Option<Fault>,
    ) -> Vec<Action<P, G>> {
        let mut actions = match pending {
            Pending::Run { feed, .. } => {
                self.scheduler.failed(&peer, feed);
                Vec::new()
            }
            Pending::Key { query } => self.remote_done(query),
            Pending::Heads { ns, round, .. } | Pending::Ranges { ns, round, .. } => {
                self.rounds.ended(peer.clone(), ns, round);
                Vec::new()
            }
            Pending::Fork { .. } => Vec::new(),
        };
        if let Some(fault) = fault {
            actions.push(self.penalize(peer, fault));
        }
        actions
    }

    /// A job finished on the store.
    pub fn on_done(&mut self, done: Done<P, G>) -> Vec<Action<P, G>> {
        let mut actions = Vec::new();
        match done.0 {
            DoneKind::HeadsChecked {
                peer,
                ns,
                live,
                new_forks,
                suspects,
                bad,
                next,
                round,
            } => {
                if let Some(fault) = bad {
                    return vec![self.penalize(peer, fault)];
                }
                for search in suspects {
                    actions.push(self.search_fork(peer.clone(), search, Blame::Nothing));
                }
                for proof in new_forks {
                    self.freeze((ns, proof.author()), proof.agreed);
                    actions.push(Action::Publish {
                        ns,
                        message: Gossip::Fork(Box::new(proof)),
                    });
                }
                for (author, length) in live {
                    self.scheduler
                        .advertised(peer.clone(), (ns, author), length);
                }
                actions.extend(self.continue_heads(peer, ns, next, round));
            }
            DoneKind::ForkRecorded {
                peer,
                message,
                feed,
                agreed,
                result,
            } => match result {
                Ok(true) => {
                    self.freeze(feed, agreed);
                    actions.push(Action::Validate {
                        peer,
                        message,
                        verdict: Verdict::Accept,
                    });
                }
                // Known already, or of a feed not held and so not checked: not forwarded,
                // since the next node would blame whoever forwarded a proof that fails.
                Ok(false) => actions.push(Action::Validate {
                    peer,
                    message,
                    verdict: Verdict::Ignore,
                }),
                Err(IngestError::Invalid(invalid)) => {
                    actions.push(Action::Validate {
                        peer: peer.clone(),
                        message,
                        verdict: Verdict::Reject,
                    });
                    actions.push(self.penalize(peer, Fault::Invalid(invalid)));
                }
                Err(e) => {
                    warn!(error = %e, "recording a fork");
                    actions.push(Action::Validate {
                        peer,
                        message,
                        verdict: Verdict::Ignore,
                    });
                }
            },
            DoneKind::RemoteMerged { query, versions } => actions.push(Action::Answer {
                query,
                versions: Some(versions),
            }),
            DoneKind::Digested {
                peers,
                digests,
                round,
            } => actions.extend(self.start_exchanges(&peers, &digests, round)),
            DoneKind::ForkSearched {
                peer,
                feed,
                blame,
                step,
            } => actions.extend(self.on_fork_searched(peer, feed, blame, step)),
            DoneKind::ForkProven { peer, feed, result } => {
                actions.extend(self.on_fork_proven(peer, feed, result));
            }
            DoneKind::Ingested {
                feed,
                source,
                result,
                held,
                suspect,
                branch,
            } => {
                if let Some(search) = suspect {
                    actions.push(self.search_fork(source.peer().clone(), *search, Blame::Nothing));
                }
                if let Ok(Ingested::Frozen { at, .. }) = result {
                    self.freeze(feed, at);
                }
                let ok = matches!(
                    result,
                    Ok(Ingested::Appended { .. }
                        | Ingested::AlreadyHeld { .. }
                        | Ingested::Frozen { .. }
                        | Ingested::NotMember { .. })
                );
                if let Source::Sync(_) = source {
                    self.scheduler.ingested(feed, held, ok);
                } else {
                    self.scheduler.set_held(feed, held);
                }
                let not_member = matches!(result, Ok(Ingested::NotMember { .. }));
                if not_member {
                    // Nothing of it is kept, so neither is any state about it.
                    self.scheduler.forget(feed);
                }
                match (result, source) {
                    (Err(IngestError::Invalid(invalid)), source) => {
                        let peer = source.peer().clone();
                        let fault = Fault::Invalid(invalid);
                        let blame = if let Source::Gossip { message, .. } = source {
                            // Not forwarded either way; blamed only once proven bad.
                            let verdict = match branch {
                                Some(_) => Verdict::Ignore,
                                None => Verdict::Reject,
                            };
                            actions.push(Action::Validate {
                                peer: peer.clone(),
                                message,
                                verdict,
                            });
                            Blame::Relayed(fault.clone())
                        } else {
                            Blame::Sent(fault.clone())
                        };
                        actions.push(match branch {
                            Some(search) => self.search_fork(peer, *search, blame),
                            None => self.penalize(peer, fault),
                        });
                    }
                    (Err(e), source) => {
                        warn!(error = %e, "ingest failed");
                        if let Source::Gossip { peer, message, .. } = source {
                            actions.push(Action::Validate {
                                peer,
                                message,
                                verdict: Verdict::Ignore,
                            });
                        }
                    }
                    (
                        Ok(outcome),
                        Source::Gossip {
                            peer,
                            message,
                            head_length,
                        },
                    ) => {
                        // The head verified (by ingest, or before a gap was believed): the
                        // peer holds that much, and a gap is fetched by catch-up. Only a push
                        // whose every entry was verified here is forwarded: one with a gap,
                        // one already held (its entries were not checked against this copy)
                        // or one of a frozen feed could carry bad entries, and the next node
                        // would rightly blame whoever forwarded them.
                        if !not_member {
                            self.scheduler.advertised(peer.clone(), feed, head_length);
                        }
                        let verdict = match outcome {
                            Ingested::Appended { .. } => Verdict::Accept,
                            _ => Verdict::Ignore,
                        };
                        actions.push(Action::Validate {
                            peer,
                            message,
                            verdict,
                        });
                    }
                    (Ok(Ingested::Appended { added, held }), Source::Sync(peer)) => {
                        debug!(?peer, added, held, "caught up a run");
                    }
                    (Ok(_), Source::Sync(_)) => {}
                }
            }
        }
        actions
    }

    /// The store was too busy to take `job`: a run is asked for again, gossip is dropped
    /// without blame, heads are exchanged again next round.
    pub fn on_dropped(&mut self, job: Job<P, G>) -> Vec<Action<P, G>> {
        match job.0 {
            JobKind::Ingest {
                feed,
                source: Source::Sync(_),
                ..
            } => {
                debug!("store busy; dropping a run to ask for it again");
                self.scheduler.ingested(feed, 0, false);
                Vec::new()
            }
            JobKind::Ingest {
                source: Source::Gossip { peer, message, .. },
                ..
            }
            | JobKind::RecordFork { peer, message, .. } => vec![Action::Validate {
                peer,
                message,
                verdict: Verdict::Ignore,
            }],
            JobKind::CheckHeads { .. } => {
                debug!("store busy; dropping a peer's heads");
                Vec::new()
            }
            JobKind::Digest {
                peers,
                namespaces,
                round,
                connect: true,
            } => {
                debug!("store busy; heads are exchanged with a new peer without a digest");
                let digests: Vec<_> = namespaces.into_iter().map(|ns| (ns, None)).collect();
                self.start_exchanges(&peers, &digests, round)
            }
            JobKind::Digest { .. } => {
                debug!("store busy; heads are exchanged again next round");
                Vec::new()
            }
            JobKind::SearchFork { .. } | JobKind::ProveFork { .. } => {
                debug!("store busy; dropping a fork search, to be started again");
                Vec::new()
            }
            JobKind::MergeRemote { query, .. } => vec![Action::Answer {
                query,
                versions: None,
            }],
        }
    }

    /// `peer` gossiped `gossip` on `ns`, unsealed and decoded.
    pub fn on_gossip(
        &mut self,
        peer: P,
        message: G,
        ns: NamespaceId,
        gossip: Gossip,
    ) -> Vec<Action<P, G>> {
        self.rounds.stir();
        match gossip {
            Gossip::Push(push) => {
                let run = push.into_run(ns);
                if run.head.author == self.author {
                    return vec![Action::Validate {
                        peer,
                        message,
                        verdict: Verdict::Ignore,
                    }];
                }
                let feed = (ns, run.head.author);
                let head_length = run.head.length;
                vec![ingest(
                    feed,
                    Incoming::Run(run),
                    Source::Gossip {
                        peer,
                        message,
                        head_length,
                    },
                )]
            }
            Gossip::Fork(proof) => {
                if proof.namespace() != ns {
                    return vec![
                        Action::Validate {
                            peer: peer.clone(),
                            message,
                            verdict: Verdict::Reject,
                        },
                        self.penalize(peer, Fault::ForeignFork),
                    ];
                }
                let feed = (ns, proof.author());
                vec![Action::Store(Job(JobKind::RecordFork {
                    peer,
                    message,
                    feed,
                    proof,
                }))]
            }
        }
    }

    /// This replica appended `run` to its own feed: gossip it.
    pub fn published(&mut self, run: Run) -> Vec<Action<P, G>> {
        self.rounds.stir();
        let ns = run.head.namespace;
        self.scheduler
            .set_held((ns, run.head.author), run.head.length);
        vec![Action::Publish {
            ns,
            message: Gossip::Push(WireRun::from_run(run)),
        }]
    }

    /// The interest of `ns` changed; its feeds now stand at `held`.
    pub fn set_interest(
        &mut self,
        ns: NamespaceId,
        interest: Interest,
        held: Vec<(AuthorId, u64)>,
    ) {
        self.interests.insert(ns, interest);
        for (author, held) in held {
            self.scheduler.restart((ns, author), held);
        }
    }

    /// Asks `peers` for the live versions of `key` in `ns`: the answer comes as an
    /// [`Action::Answer`] with the returned query number. `None` when there is no peer.
    pub fn remote_get(
        &mut self,
        ns: NamespaceId,
        key: Vec<u8>,
        peers: &[P],
    ) -> Option<(u64, Vec<Action<P, G>>)> {
        if peers.is_empty() {
            return None;
        }
        let query = self.remote.start(ns, key.clone(), peers.len());
        let actions = peers
            .iter()
            .map(|peer| Action::Send {
                peer: peer.clone(),
                request: Request::Key {
                    topic: Topic::of(&ns),
                    cap: self.cap(&ns, peer),
                    key: key.clone(),
                },
                pending: Pending::Key { query },
            })
            .collect();
        Some((query, actions))
    }

    fn remote_answered(&mut self, peer: P, query: u64, runs: Vec<WireSparse>) -> Vec<Action<P, G>> {
        let (fault, finished) = self.remote.answered(query, runs);
        let mut actions = Vec::new();
        if let Some(invalid) = fault {
            actions.push(self.penalize(peer, Fault::RemoteRead(invalid)));
        }
        actions.extend(finished.map(|finished| Self::merge_remote(query, finished)));
        actions
    }

    fn remote_done(&mut self, query: u64) -> Vec<Action<P, G>> {
        self.remote
            .done(query)
            .map(|finished| Self::merge_remote(query, finished))
            .into_iter()
            .collect()
    }

    fn merge_remote(query: u64, finished: remote::Finished) -> Action<P, G> {
        Action::Store(Job(JobKind::MergeRemote {
            query,
            ns: finished.ns,
            key: finished.key,
            runs: finished.runs,
        }))
    }

    /// Every feed's held and best-known remote length.
    pub fn progress(&self) -> impl Iterator<Item = (&FeedId, FeedProgress)> {
        self.scheduler.progress()
    }

    /// Whether any run is asked for or awaits ingest.
    pub fn busy(&self) -> bool {
        self.scheduler.busy()
    }

    /// Completed head exchanges (every page of a namespace's heads).
    pub fn head_exchanges(&self) -> u64 {
        self.head_exchanges
    }

    /// Requests a peer refused (busy, not shared, not held...).
    pub fn refusals(&self) -> u64 {
        self.refusals
    }
}

fn ingest<P, G>(feed: FeedId, run: Incoming, source: Source<P, G>) -> Action<P, G> {
    Action::Store(Job(JobKind::Ingest { feed, run, source }))
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
