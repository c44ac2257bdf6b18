//! The sync client's store work: ingesting runs, checking heads and fork proofs. A [`Job`] is
//! run where the store lives ([`Job::run`]); its [`Done`] goes back to the client.

use std::collections::{HashMap, HashSet};

use tracing::warn;
use weft_storage::{
    AuthorId, ForkProof, IngestError, Ingested, Invalid, Membership, NamespaceId, Run, SignedHead,
    SparseRun, Store, VersionInfo, tree::ProofError,
};

use super::FeedId;
use super::actions::Fault;
use crate::wire::PUSH_BYTES;

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
    /// Check a peer's heads and fork proofs against the store for forks.
    CheckHeads {
        peer: P,
        ns: NamespaceId,
        heads: Vec<SignedHead>,
        forks: Vec<ForkProof>,
        /// The next page to ask, when more follow: after which author, and its number.
        next: Option<(AuthorId, u32)>,
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
    /// Check and record the fork proof a peer sent to explain a run that did not fit what is
    /// held here; `fault` is charged to it if the proof proves nothing.
    CheckFork {
        peer: P,
        feed: FeedId,
        proof: Box<ForkProof>,
        fault: Fault,
    },
    /// Digest what is held in each of `namespaces`, to exchange heads with `peers`.
    Digest {
        peers: Vec<P>,
        namespaces: Vec<NamespaceId>,
        round: u64,
    },
    /// Check and record a fork proof from gossip.
    RecordFork {
        peer: P,
        message: G,
        feed: FeedId,
        proof: ForkProof,
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
        /// A fork the run's head proved against what is held, just recorded.
        fork: Option<Box<ForkProof>>,
        /// When the entries did not rebuild the root of a validly signed head over what is
        /// held: the head held. The sender may hold another branch of a forked feed rather
        /// than have sent bad entries, so it is asked for the proof before it is blamed.
        branch: Option<Box<SignedHead>>,
    },
    Digested {
        peers: Vec<P>,
        /// `None` where the store could not say: that exchange goes page by page.
        digests: Vec<(NamespaceId, Option<[u8; 32]>)>,
        round: u64,
    },
    ForkChecked {
        peer: P,
        feed: FeedId,
        proof: Box<ForkProof>,
        fault: Fault,
        result: Result<bool, IngestError>,
    },
    HeadsChecked {
        peer: P,
        ns: NamespaceId,
        /// The heads of feeds that are not frozen, to sync.
        live: Vec<(AuthorId, u64)>,
        /// Forks found or learnt that were not known before.
        new_forks: Vec<ForkProof>,
        /// What the peer sent that does not hold: a bad signature, a fork proof that proves
        /// nothing.
        bad: Option<Fault>,
        /// The next page to ask, when more follow.
        next: Option<(AuthorId, u32)>,
        round: u64,
    },
    ForkRecorded {
        peer: P,
        message: G,
        feed: FeedId,
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
    /// Does the job's store work on the calling thread.
    pub fn run(self, store: &Store) -> Done<P, G> {
        Done(match self.0 {
            JobKind::Ingest { feed, run, source } => {
                let (result, head) = match &run {
                    Incoming::Run(run) => (store.ingest(run), &run.head),
                    Incoming::Sparse(run) => (store.ingest_sparse(run), &run.head),
                };
                let mut fork = None;
                let result = match result {
                    Ok(Ingested::Gap { .. } | Ingested::AlreadyHeld { .. }) => {
                        // Nothing was verified: check the head before believing or
                        // forwarding it.
                        match head.verify() {
                            Err(e) => Err(IngestError::Invalid(Invalid::Proof(e))),
                            Ok(()) => {
                                // A head at or below what is held must fit the held tree.
                                fork = record_new_fork(store, head).map(Box::new);
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
                        held_head(store, head)
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
                    fork,
                    branch,
                }
            }
            JobKind::Digest {
                peers,
                namespaces,
                round,
            } => DoneKind::Digested {
                peers,
                round,
                digests: namespaces
                    .into_iter()
                    .map(|ns| (ns, super::heads_digest(store, &ns).ok()))
                    .collect(),
            },
            JobKind::CheckFork {
                peer,
                feed,
                proof,
                fault,
            } => DoneKind::ForkChecked {
                result: store.record_fork(&proof),
                peer,
                feed,
                proof,
                fault,
            },
            JobKind::CheckHeads {
                peer,
                ns,
                heads,
                forks,
                next,
                round,
            } => check_heads(store, peer, ns, heads, forks, (next, round)),
            JobKind::RecordFork {
                peer,
                message,
                feed,
                proof,
            } => DoneKind::ForkRecorded {
                peer,
                message,
                feed,
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

fn check_heads<P, G>(
    store: &Store,
    peer: P,
    ns: NamespaceId,
    heads: Vec<SignedHead>,
    forks: Vec<ForkProof>,
    (next, round): (Option<(AuthorId, u32)>, u64),
) -> DoneKind<P, G> {
    let refused = |peer, bad| DoneKind::HeadsChecked {
        peer,
        ns,
        live: Vec::new(),
        new_forks: Vec::new(),
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
        if proof.longer.namespace != ns {
            return refused(peer, Fault::ForeignFork);
        }
        match store.record_fork(&proof) {
            Ok(true) => new_forks.push(proof),
            Ok(false) => {}
            Err(IngestError::Invalid(e)) => return refused(peer, Fault::Invalid(e)),
            Err(e) => warn!(error = %e, "recording a fork"),
        }
    }
    for head in &heads {
        new_forks.extend(record_new_fork(store, head));
        if let Err(e) = store.note_own_head(head) {
            warn!(error = %e, "checking a peer's head of the own feed");
        }
    }
    let frozen: HashSet<AuthorId> = store
        .forks(&ns)
        .unwrap_or_default()
        .into_iter()
        .map(|fork| fork.proof.longer.author)
        .collect();
    let live = heads
        .iter()
        .filter(|head| !frozen.contains(&head.author))
        .filter_map(|head| {
            let cap = match &members {
                None => u64::MAX,
                Some(members) => *members.get(&head.author)?,
            };
            Some((head.author, head.length.min(cap)))
        })
        .collect();
    DoneKind::HeadsChecked {
        peer,
        ns,
        live,
        new_forks,
        bad: None,
        next,
        round,
    }
}

/// The head held of `head`'s feed, when something of it is held: a run that does not fit
/// nothing cannot come from another branch.
fn held_head(store: &Store, head: &SignedHead) -> Option<Box<SignedHead>> {
    match store.head(&head.namespace, &head.author) {
        Ok(held) => held.filter(|held| held.length > 0).map(Box::new),
        Err(e) => {
            warn!(error = %e, "reading a held head");
            None
        }
    }
}

/// Checks `head` against the held tree; a fork it proves is recorded (freezing the feed) and
/// returned if it was not known before.
fn record_new_fork(store: &Store, head: &SignedHead) -> Option<ForkProof> {
    let proof = match store.check_head(head) {
        Ok(proof) => proof?,
        Err(e) => {
            warn!(error = %e, "checking a head for forks");
            return None;
        }
    };
    match store.record_fork(&proof) {
        Ok(true) => Some(proof),
        Ok(false) => None,
        Err(e) => {
            warn!(error = %e, "recording a fork");
            None
        }
    }
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
