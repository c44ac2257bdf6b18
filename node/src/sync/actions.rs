//! What the sync client asks its runner to do ([`Action`]), what a request in flight asked
//! ([`Pending`]), and why a peer is cut off ([`Fault`]).

use std::fmt;

use weft_storage::tree::ProofError;
use weft_storage::{AuthorId, ForkSearch, Invalid, NamespaceId, VersionInfo};

use super::FeedId;
use super::jobs::Job;
use crate::wire::{AuthorRange, Gossip, Request};

/// What a request in flight asked, kept by the runner beside its own request id and handed
/// back with the answer ([`super::Client::on_response`]) or the failure ([`super::Client::on_failure`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Pending {
    /// A page of a namespace's heads.
    Heads {
        /// The namespace.
        ns: NamespaceId,
        /// The page starts after this author.
        after: Option<AuthorId>,
        /// Which page of the exchange it is, from 0.
        page: u32,
        /// The sync round the exchange belongs to ([`super::Client::round`]).
        round: u64,
    },
    /// The next step of a heads exchange: ranges of a namespace's feeds.
    Ranges {
        /// The namespace.
        ns: NamespaceId,
        /// The ranges asked about, in order.
        asked: Vec<AuthorRange>,
        /// Ranges still to ask about after these.
        rest: Vec<AuthorRange>,
        /// Which request of the exchange it is, counted with its pages.
        page: u32,
        /// The sync round the exchange belongs to.
        round: u64,
    },
    /// A run (or a sparse run) of a feed from `start`.
    Run {
        /// The feed.
        feed: FeedId,
        /// Where the run was asked to start.
        start: u64,
    },
    /// A remote read.
    Key {
        /// Its query number.
        query: u64,
    },
    /// A step of a search for where the peer's copy of `feed` parts from what is held here.
    Fork {
        /// The feed.
        feed: FeedId,
        /// What the peer is charged if its copy shows no fork.
        blame: Blame,
        /// What was asked.
        step: ForkStep,
    },
}

/// What the peer of a fork search is charged if it shows no fork.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Blame {
    /// Nothing: only a head it sent did not fit, which it may have relayed.
    Nothing,
    /// The fault of entries it sent in answer to a run asked of it: its copy must show the
    /// fork they come from.
    Sent(Fault),
    /// The fault of entries it relayed in gossip: charged if its copy agrees with this one,
    /// not if it cannot show its copy (a sparse replica verifies and relays pushes of feeds
    /// it does not hold in full).
    Relayed(Fault),
}

/// What a step of a fork search asked a peer for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ForkStep {
    /// The hashes of these nodes of its tree.
    Nodes(ForkSearch),
    /// Its branch from this index, where the histories part.
    Branch(u64),
}

/// What the runner must do.
#[derive(Debug)]
pub enum Action<P, G> {
    /// Send `request` to `peer`, and keep `pending` until it is answered.
    Send {
        /// Who to ask.
        peer: P,
        /// What to ask.
        request: Request,
        /// What was asked, for the answer.
        pending: Pending,
    },
    /// Run `job` on the store and hand its result to [`super::Client::on_done`], or, when the store
    /// is too busy to take it, the job itself to [`super::Client::on_dropped`].
    Store(Job<P, G>),
    /// Cut `peer` off for `fault`: it sent something provably wrong.
    Penalize {
        /// The peer.
        peer: P,
        /// What it did.
        fault: Fault,
    },
    /// Gossip `message` to the peers of `ns`.
    Publish {
        /// The namespace.
        ns: NamespaceId,
        /// What to gossip.
        message: Gossip,
    },
    /// Tell gossip what to do with gossip message `message` that `peer` sent.
    Validate {
        /// The peer it came from.
        peer: P,
        /// The message.
        message: G,
        /// Forward it, drop it and count it against the sender, or just drop it.
        verdict: Verdict,
    },
    /// A remote read is answered.
    Answer {
        /// Its query number ([`super::Client::remote_get`]).
        query: u64,
        /// The live versions every answering peer proved and this replica's gates admit,
        /// last writer first; `None` when the store was too busy to judge them.
        versions: Option<Vec<VersionInfo>>,
    },
}

/// What becomes of a gossip message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// Valid: forward it.
    Accept,
    /// Invalid: drop it and count it against the sender.
    Reject,
    /// Drop it without blame.
    Ignore,
}

/// Why a peer is cut off: each is something the peer itself sent.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Fault {
    /// A heads answer over [`crate::wire::HEADS_PER_RESPONSE`] heads or
    /// [`crate::wire::FORKS_PER_RESPONSE`] forks.
    TooManyHeads,
    /// A page of heads out of author order, not after the author asked from, or empty yet
    /// claiming more (paging it would not end); or an answer about ranges of feeds that no
    /// honest server gives (heads outside the range asked, parts out of order, one answer
    /// too few).
    BadPage,
    /// A head whose signature does not verify.
    BadHead {
        /// Whose head.
        author: AuthorId,
        /// What fails.
        error: ProofError,
    },
    /// A run that is not the one asked for.
    Unasked {
        /// Where the run asked for starts.
        asked: u64,
        /// Where the run sent starts.
        got: u64,
        /// How many entries it carries.
        entries: u64,
    },
    /// An answer of another kind than the request's.
    WrongAnswer,
    /// Entries, proofs or a fork proof that do not verify.
    Invalid(Invalid),
    /// A remote read answer that does not verify.
    RemoteRead(Invalid),
    /// A fork proof of a namespace other than the one it came for.
    ForeignFork,
    /// Bytes that are not a message of the protocol.
    Unreadable(String),
    /// Gossip on a namespace this node does not hold.
    ForeignGossip,
}

impl Fault {
    /// Its kind, as a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::TooManyHeads => "too_many_heads",
            Fault::BadPage => "bad_page",
            Fault::BadHead { .. } => "bad_head",
            Fault::Unasked { .. } => "unasked",
            Fault::WrongAnswer => "wrong_answer",
            Fault::Invalid(_) => "invalid",
            Fault::RemoteRead(_) => "remote_read",
            Fault::ForeignFork => "foreign_fork",
            Fault::Unreadable(_) => "unreadable",
            Fault::ForeignGossip => "foreign_gossip",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::TooManyHeads => f.write_str("more heads than a response may carry"),
            Fault::BadPage => f.write_str("a page of heads that does not move on"),
            Fault::BadHead { author, error } => write!(f, "head of {author}: {error}"),
            Fault::Unasked {
                asked,
                got,
                entries,
            } => write!(
                f,
                "sent a run it was not asked for (asked from {asked}, got {entries} from {got})"
            ),
            Fault::WrongAnswer => f.write_str("answered with the wrong kind of response"),
            Fault::Invalid(invalid) => write!(f, "{invalid}"),
            Fault::RemoteRead(invalid) => write!(f, "remote read: {invalid}"),
            Fault::ForeignFork => f.write_str("a fork proof of another namespace"),
            Fault::Unreadable(what) => write!(f, "unreadable: {what}"),
            Fault::ForeignGossip => f.write_str("gossip on a namespace this node does not hold"),
        }
    }
}
