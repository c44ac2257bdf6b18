//! The sync client's store work: ingesting runs, checking heads and fork proofs. A [`Job`] is
//! run where the store lives ([`Job::run`]); its [`Done`] goes back to the client.

use std::collections::HashMap;

use tracing::warn;
use weft_storage::{
    AuthorId, Branch, ForkProof, ForkSearch, IngestError, Ingested, Invalid, Membership,
    NamespaceId, Run, SearchStep, SignedHead, SparseRun, Store, VersionInfo, tree::Hash,
    tree::ProofError,
};

use super::actions::{Blame, Fault};
use super::{FeedId, ranges};
use crate::wire::{AuthorRange, PUSH_BYTES, RangePart};

/// A run to ingest: contiguous (catch-up of a full replica, or any gossip push) or sparse.
#[derive(Debug)]
pub(crate) enum Incoming {
    Run(Run),
    Sparse(SparseRun),
}

/// Where a run came from: a catch-up answer, or gossip that must be validated.
#[derive(Debug)]
pub(crate) enum Source<P, G> {
    Sync(P),
    Gossip {
        peer: P,
        message: G,
        head_length: u64,
    },
}

impl<P, G> Source<P, G> {
    pub(crate) fn peer(&self) -> &P {
        match self {
            Source::Sync(peer) | Source::Gossip { peer, .. } => peer,
        }
    }
}

/// The next step of a heads exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Continue {
    /// The page of heads after this author, or the first page.
    Page(Option<AuthorId>),
    /// These ranges of feeds, where the peer's and this replica's differ.
    Ranges(Vec<AuthorRange>),
}

/// Ranges an exchange keeps to ask about. Past that most feeds differ, and paging every head
/// costs less than splitting ranges further.
const RANGES_QUEUED: usize = 1024;

/// Store work for the runner: [`Job::run`] it where the store lives.
#[derive(Debug)]
pub struct Job<P, G>(pub(crate) JobKind<P, G>);

#[derive(Debug)]
pub(crate) enum JobKind<P, G> {
    Ingest {
        feed: FeedId,
        run: Incoming,
        source: Source<P, G>,
    },
    /// Check a peer's heads and fork proofs against the store for forks, and find the parts
    /// of the ranges it split where what is held here differs.
    CheckHeads {
        peer: P,
        ns: NamespaceId,
        heads: Vec<SignedHead>,
        forks: Vec<ForkProof>,
        splits: Vec<(AuthorRange, Vec<RangePart>)>,
        /// What to ask next and the number of that request in the exchange, unless the
        /// exchange ends here.
        next: Option<(Continue, u32)>,
        /// The exchange's sync round.
        round: u64,
    },
    /// Judge a finished remote read's verified runs by the store's gates and merge them.
    MergeRemote {
        query: u64,
        ns: NamespaceId,
        key: Vec<u8>,
        runs: Vec<SparseRun>,
    },
    /// Compare a peer's node hashes with this replica's, a step of a fork search; `blame`
    /// is what the peer is charged if its copy shows no fork.
    SearchFork {
        peer: P,
        feed: FeedId,
        search: ForkSearch,
        hashes: Vec<Hash>,
        blame: Blame,
    },
    /// Make and record the fork proof from a peer's branch where a search found the
    /// histories part.
    ProveFork {
        peer: P,
        feed: FeedId,
        at: u64,
        branch: Box<Branch>,
    },
    /// Digest what is held in each of `namespaces`, to exchange heads with `peers`.
    Digest {
        peers: Vec<P>,
        namespaces: Vec<NamespaceId>,
        round: u64,
        /// Whether `peers` is one that just connected, which is not to wait for a round when
        /// the store is too busy to digest.
        connect: bool,
    },
    /// Check and record a fork proof from gossip.
    RecordFork {
        peer: P,
        message: G,
        feed: FeedId,
        proof: Box<ForkProof>,
    },
}

/// A job's result, for [`super::Client::on_done`].
#[derive(Debug)]
pub struct Done<P, G>(pub(crate) DoneKind<P, G>);

#[derive(Debug)]
pub(crate) enum DoneKind<P, G> {
    Ingested {
        feed: FeedId,
        source: Source<P, G>,
        result: Result<Ingested, IngestError>,
        held: u64,
        /// When the run's head does not fit what is held: the search with its sender for
        /// where the two part.
        suspect: Option<Box<ForkSearch>>,
        /// When the entries did not rebuild the root of a validly signed head over what is
        /// held: the sender may hold another branch of a forked feed rather than have sent
        /// bad entries, so this search runs before it is blamed.
        branch: Option<Box<ForkSearch>>,
    },
    Digested {
        peers: Vec<P>,
        /// `None` where nothing is held or the store could not say: that exchange goes page
        /// by page.
        digests: Vec<(NamespaceId, Option<[u8; 32]>)>,
        round: u64,
    },
    ForkSearched {
        peer: P,
        feed: FeedId,
        blame: Blame,
        step: Result<SearchStep, IngestError>,
    },
    /// A proof made from a peer's branch, and whether it was kept (new, or parting earlier).
    ForkProven {
        peer: P,
        feed: FeedId,
        result: Result<Option<(Box<ForkProof>, bool)>, IngestError>,
    },
    HeadsChecked {
        peer: P,
        ns: NamespaceId,
        /// The heads of feeds that are not frozen, to sync.
        live: Vec<(AuthorId, u64)>,
        /// Forks learnt that were not known before.
        new_forks: Vec<ForkProof>,
        /// Heads that do not fit what is held: a search with the peer for each.
        suspects: Vec<ForkSearch>,
        /// What the peer sent that does not hold: a bad signature, a fork proof that proves
        /// nothing.
        bad: Option<Fault>,
        /// What to ask next, unless the exchange ends here.
        next: Option<(Continue, u32)>,
        round: u64,
    },
    ForkRecorded {
        peer: P,
        message: G,
        feed: FeedId,
        /// Where the proof freezes the feed.
        agreed: u64,
        result: Result<bool, IngestError>,
    },
    RemoteMerged {
        query: u64,
        versions: Vec<VersionInfo>,
    },
}

impl<P, G> Done<P, G> {
    /// Entries the job stored from a peer.
    pub fn entries_stored(&self) -> u64 {
        match &self.0 {
            DoneKind::Ingested {
                result: Ok(Ingested::Appended { added, .. }),
                ..
            } => *added,
            _ => 0,
        }
    }
}

impl<P, G> Job<P, G> {
    /// The feed the job ingests entries of, when that is all it does: a crash that takes it
    /// back costs a fetch again, so its commit may wait for the disk with the next
    /// ([`weft_storage::Store::defer_ingest_sync`]).
    pub fn ingested_feed(&self) -> Option<FeedId> {
        match &self.0 {
            JobKind::Ingest { feed, .. } => Some(*feed),
            _ => None,
        }
    }

    /// Whether it ingests a run catch-up asked for, which holds a share of the scheduler's
    /// runs until [`super::Client::committed`] or its result frees it (a gossip push holds
    /// none).
    pub fn fetched(&self) -> bool {
        matches!(
            &self.0,
            JobKind::Ingest {
                source: Source::Sync(_),
                ..
            }
        )
    }

    /// Does the job's store work on the calling thread.
    pub fn run(self, store: &Store) -> Done<P, G> {
        Done(match self.0 {
            JobKind::Ingest { feed, run, source } => {
                let (result, head) = match &run {
                    Incoming::Run(run) => (store.ingest(run), &run.head),
                    Incoming::Sparse(run) => (store.ingest_sparse(run), &run.head),
                };
                let mut suspect = None;
                let result = match result {
                    Ok(Ingested::Gap { .. } | Ingested::AlreadyHeld { .. }) => {
                        // Nothing was verified: check the head before believing or
                        // forwarding it.
                        match head.verify() {
                            Err(e) => Err(IngestError::Invalid(Invalid::Proof(e))),
                            Ok(()) => {
                                // A head at or below what is held must fit the held tree.
                                suspect = suspect_fork(store, head).map(Box::new);
                                result
                            }
                        }
                    }
                    other => other,
                };
                let branch = match &result {
                    Err(IngestError::Invalid(Invalid::Proof(ProofError::RootMismatch)))
                        if head.verify().is_ok() =>
                    {
                        store
                            .start_fork_search(&head.namespace, &head.author, head.length)
                            .unwrap_or_else(|e| {
                                warn!(error = %e, "starting a fork search");
                                None
                            })
                            .map(Box::new)
                    }
                    _ => None,
                };
                // A failed ingest changed nothing; the scheduler keeps the larger of what it
                // knew.
                let held = result.as_ref().map_or(0, Ingested::held);
                DoneKind::Ingested {
                    feed,
                    source,
                    result,
                    held,
                    suspect,
                    branch,
                }
            }
            JobKind::Digest {
                peers,
                namespaces,
                round,
                ..
            } => DoneKind::Digested {
                peers,
                round,
                digests: namespaces
                    .into_iter()
                    .map(|ns| (ns, round_digest(store, &ns)))
                    .collect(),
            },
            JobKind::SearchFork {
                peer,
                feed,
                search,
                hashes,
                blame,
            } => DoneKind::ForkSearched {
                step: store.fork_search_step(search, &hashes),
                peer,
                feed,
                blame,
            },
            JobKind::ProveFork {
                peer,
                feed,
                at,
                branch,
            } => DoneKind::ForkProven {
                result: store
                    .prove_fork(&feed.0, &feed.1, at, *branch)
                    .and_then(|proof| {
                        proof
                            .map(|proof| {
                                let kept = store.record_fork(&proof)?;
                                Ok((Box::new(proof), kept))
                            })
                            .transpose()
                    }),
                peer,
                feed,
            },
            JobKind::CheckHeads {
                peer,
                ns,
                heads,
                forks,
                splits,
                next,
                round,
            } => {
                let next = next.and_then(|(next, page)| {
                    Some((continue_with(store, &ns, next, &splits)?, page))
                });
                check_heads(store, peer, ns, heads, forks, (next, round))
            }
            JobKind::RecordFork {
                peer,
                message,
                feed,
                proof,
            } => DoneKind::ForkRecorded {
                peer,
                message,
                feed,
                agreed: proof.agreed,
                result: store.record_fork(&proof),
            },
            JobKind::MergeRemote {
                query,
                ns,
                key,
                runs,
            } => DoneKind::RemoteMerged {
                query,
                // Every run verified when it arrived, so only the gates can drop a version.
                versions: store.merge_remote_key(&ns, &key, &runs).unwrap_or_default(),
            },
        })
    }
}

/// What a round asks with: the digest of what is held in `ns`, or none when nothing is held
/// (every head is wanted, and a digest would only make the peer split its ranges).
fn round_digest(store: &Store, ns: &NamespaceId) -> Option<[u8; 32]> {
    let held = super::server::sorted_feeds(store, ns).ok()?;
    if held.is_empty() {
        return None;
    }
    Some(super::server::digest_of(&held, &store.forks(ns).ok()?))
}

/// The exchange's step after `next`, with the parts of `splits` where this replica differs
/// from the peer added to the ranges to ask about; `None` once nothing is left to ask.
fn continue_with(
    store: &Store,
    ns: &NamespaceId,
    next: Continue,
    splits: &[(AuthorRange, Vec<RangePart>)],
) -> Option<Continue> {
    let Continue::Ranges(mut ranges) = next else {
        return Some(next);
    };
    if !splits.is_empty() {
        let held = match super::server::sorted_feeds(store, ns) {
            Ok(held) => held,
            Err(e) => {
                warn!(error = %e, "reading heads to compare");
                return Some(Continue::Page(None));
            }
        };
        for (range, parts) in splits {
            let differ = ranges::differing(&held, range, parts);
            // Most of the namespace differs (a sparse replica, one far behind): every head
            // costs less than the splits down to each.
            let whole = *range == AuthorRange::default();
            if (whole && differ.len() * 2 > parts.len()) || ranges.len() > RANGES_QUEUED {
                return Some(Continue::Page(None));
            }
            ranges.extend(differ);
        }
    }
    (!ranges.is_empty()).then_some(Continue::Ranges(ranges))
}

fn check_heads<P, G>(
    store: &Store,
    peer: P,
    ns: NamespaceId,
    heads: Vec<SignedHead>,
    forks: Vec<ForkProof>,
    (next, round): (Option<(Continue, u32)>, u64),
) -> DoneKind<P, G> {
    let refused = |peer, bad| DoneKind::HeadsChecked {
        peer,
        ns,
        live: Vec::new(),
        new_forks: Vec::new(),
        suspects: Vec::new(),
        bad: Some(bad),
        next: None,
        round,
    };
    // In a closed namespace only members' feeds are fetched, and a revoked member's only up
    // to its revocation: what a peer advertises of anyone else costs nothing here.
    let members: Option<HashMap<AuthorId, u64>> = match store
        .charter(&ns)
        .ok()
        .flatten()
        .and_then(|charter| charter.owner())
    {
        None => None,
        Some(owner) => {
            let mut members: HashMap<AuthorId, u64> = store
                .members(&ns)
                .unwrap_or_default()
                .into_iter()
                .map(|(author, membership)| match membership {
                    Membership::Granted(_) => (author, u64::MAX),
                    Membership::Revoked { until, .. } => (author, until),
                })
                .collect();
            members.insert(owner, u64::MAX);
            Some(members)
        }
    };
    // A non-member's head is dropped before its signature costs anything.
    let heads: Vec<SignedHead> = heads
        .into_iter()
        .filter(|head| {
            members
                .as_ref()
                .is_none_or(|members| members.contains_key(&head.author))
        })
        .collect();
    for head in &heads {
        if let Err(error) = head.verify() {
            let author = head.author;
            return refused(peer, Fault::BadHead { author, error });
        }
    }
    let mut new_forks = Vec::new();
    for proof in forks {
        if proof.namespace() != ns {
            return refused(peer, Fault::ForeignFork);
        }
        match store.record_fork(&proof) {
            Ok(true) => new_forks.push(proof),
            Ok(false) => {}
            Err(IngestError::Invalid(e)) => return refused(peer, Fault::Invalid(e)),
            Err(e) => warn!(error = %e, "recording a fork"),
        }
    }
    let mut suspects = Vec::new();
    for head in &heads {
        suspects.extend(suspect_fork(store, head));
        if let Err(e) = store.note_own_head(head) {
            warn!(error = %e, "checking a peer's head of the own feed");
        }
    }
    // A frozen feed is fetched up to where its histories part, which both branches hold
    // alike; a sparse replica fetches nothing more of it.
    let sparse = store.interest(&ns).ok().flatten().is_some();
    let frozen: HashMap<AuthorId, u64> = store
        .forks(&ns)
        .unwrap_or_default()
        .into_iter()
        .map(|fork| (fork.proof.author(), if sparse { 0 } else { fork.frozen_at }))
        .collect();
    let live = heads
        .iter()
        .filter_map(|head| {
            let cap = match &members {
                None => u64::MAX,
                Some(members) => *members.get(&head.author)?,
            };
            let frozen_at = frozen.get(&head.author).copied().unwrap_or(u64::MAX);
            Some((head.author, head.length.min(cap).min(frozen_at)))
        })
        .collect();
    DoneKind::HeadsChecked {
        peer,
        ns,
        live,
        new_forks,
        suspects,
        bad: None,
        next,
        round,
    }
}

/// The search for where `head`, validly signed, parts from the held tree, when it does not fit
/// it.
fn suspect_fork(store: &Store, head: &SignedHead) -> Option<ForkSearch> {
    store.suspect_fork(head).unwrap_or_else(|e| {
        warn!(error = %e, "checking a head for forks");
        None
    })
}

/// How many entries this replica's own feed in `ns` holds.
pub fn local_length(store: &Store, ns: &NamespaceId) -> u64 {
    store
        .head(ns, &store.author())
        .ok()
        .flatten()
        .map_or(0, |h| h.length)
}

/// The gossip push announcing what this replica appended to its feed in `ns` past `before`
/// entries: the new entries when they fit [`PUSH_BYTES`], else the new head alone (peers
/// fetch the entries by catch-up). `None` when the feed is empty.
///
/// # Errors
/// Store failures.
pub fn read_push(
    store: &Store,
    ns: &NamespaceId,
    before: u64,
) -> Result<Option<Run>, weft_storage::Error> {
    let author = store.author();
    let Some(head) = store.head(ns, &author)? else {
        return Ok(None);
    };
    let run = store.read_run(ns, &author, before, usize::MAX, PUSH_BYTES)?;
    Ok(Some(match run {
        Some(run)
            if run.end() == head.length
                && run.entries.iter().map(Vec::len).sum::<usize>() <= PUSH_BYTES =>
        {
            run
        }
        _ => Run {
            start: head.length,
            head,
            entries: Vec::new(),
            extension: Vec::new(),
        },
    }))
}
