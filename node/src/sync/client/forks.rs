//! The client's side of a fork search: a head or entries a peer sent do not fit what is held
//! here, so the two walk the peer's tree to where their copies part
//! ([`weft_storage::ForkSearch`]), and the proof made there freezes the feed on every replica
//! at the same point. A peer is charged only if what it sent did not fit and its own copy
//! then shows no fork, or if its answers to the search are false.

use tracing::{debug, warn};
use weft_storage::{ForkProof, ForkSearch, IngestError, SearchStep};

use super::Client;
use crate::sync::FeedId;
use crate::sync::Peer;
use crate::sync::actions::{Action, Blame, Fault, ForkStep, Pending};
use crate::sync::jobs::{Job, JobKind};
use crate::wire::{ForkAnswer, ForkProbe, Gossip, Refusal, Request, Response, Topic};

impl<P: Peer, G> Client<P, G> {
    /// Asks `peer` for the hashes `search` wants of its copy of `feed`; `blame` is what it is
    /// charged if its copy shows no fork.
    pub(super) fn search_fork(&self, peer: P, search: ForkSearch, blame: Blame) -> Action<P, G> {
        let feed = (search.namespace, search.author);
        let nodes = search
            .asked
            .iter()
            .map(|node| (node.depth, node.offset))
            .collect();
        self.ask_fork(
            peer,
            feed,
            ForkProbe::Nodes(nodes),
            blame,
            ForkStep::Nodes(search),
        )
    }

    fn ask_fork(
        &self,
        peer: P,
        feed: FeedId,
        probe: ForkProbe,
        blame: Blame,
        step: ForkStep,
    ) -> Action<P, G> {
        Action::Send {
            request: Request::Fork {
                topic: Topic::of(&feed.0),
                cap: self.cap(&feed.0, &peer),
                author: feed.1,
                probe,
            },
            peer,
            pending: Pending::Fork { feed, blame, step },
        }
    }

    /// `peer` answered a step of a search of `feed`.
    pub(super) fn on_fork_answer(
        &mut self,
        peer: P,
        (feed, blame, step): (FeedId, Blame, ForkStep),
        response: Response,
    ) -> Vec<Action<P, G>> {
        match (step, response) {
            (ForkStep::Nodes(search), Response::Fork(ForkAnswer::Nodes(hashes))) => {
                vec![Action::Store(Job(JobKind::SearchFork {
                    peer,
                    feed,
                    search,
                    hashes,
                    blame,
                }))]
            }
            (ForkStep::Branch(at), Response::Fork(ForkAnswer::Branch(branch))) => {
                vec![Action::Store(Job(JobKind::ProveFork {
                    peer,
                    feed,
                    at,
                    branch,
                }))]
            }
            // A peer that does not hold its copy in full cannot show a fork: a sparse relay is
            // excused, one that answered a run with entries that do not fit is not. A busy
            // one is searched again when it next sends what does not fit.
            (_, Response::Fork(ForkAnswer::NotHeld) | Response::Refused(Refusal::NotShared)) => {
                match blame {
                    Blame::Sent(fault) => vec![self.penalize(peer, fault)],
                    Blame::Relayed(_) | Blame::Nothing => {
                        debug!(?peer, "a fork search's peer does not hold the feed in full");
                        Vec::new()
                    }
                }
            }
            (_, Response::Refused(reason)) => {
                debug!(?peer, ?reason, "fork search refused");
                Vec::new()
            }
            _ => vec![self.penalize(peer, Fault::WrongAnswer)],
        }
    }

    /// A step of a search with `peer` was compared here.
    pub(super) fn on_fork_searched(
        &mut self,
        peer: P,
        feed: FeedId,
        blame: Blame,
        step: Result<SearchStep, IngestError>,
    ) -> Vec<Action<P, G>> {
        match step {
            Ok(SearchStep::Ask(next)) => vec![self.search_fork(peer, next, blame)],
            Ok(SearchStep::Found(at)) => vec![self.ask_fork(
                peer,
                feed,
                ForkProbe::Branch(at),
                blame,
                ForkStep::Branch(at),
            )],
            Ok(SearchStep::Parted) => {
                debug!(
                    ?peer,
                    "a copy parts from this sparse replica's; nobody blamed"
                );
                self.scheduler.parted(peer, feed);
                Vec::new()
            }
            Ok(SearchStep::Agree) => match blame {
                Blame::Sent(fault) | Blame::Relayed(fault) => vec![self.penalize(peer, fault)],
                Blame::Nothing => Vec::new(),
            },
            Err(IngestError::Invalid(invalid)) => {
                vec![self.penalize(peer, Fault::Invalid(invalid))]
            }
            Err(e) => {
                warn!(error = %e, "comparing a peer's tree for a fork");
                Vec::new()
            }
        }
    }

    /// A proof was made from `peer`'s branch of `feed`: `kept` when it froze the feed or
    /// moved its freeze earlier, so every peer hears of it.
    pub(super) fn on_fork_proven(
        &mut self,
        peer: P,
        feed: FeedId,
        result: Result<Option<(Box<ForkProof>, bool)>, IngestError>,
    ) -> Vec<Action<P, G>> {
        match result {
            Ok(Some((proof, kept))) => {
                // The peer holds another branch: it sent what it holds, honestly.
                self.freeze(feed, proof.agreed);
                if kept {
                    return vec![Action::Publish {
                        ns: feed.0,
                        message: Gossip::Fork(proof),
                    }];
                }
                Vec::new()
            }
            Ok(None) => Vec::new(),
            Err(IngestError::Invalid(invalid)) => {
                vec![self.penalize(peer, Fault::Invalid(invalid))]
            }
            Err(e) => {
                warn!(error = %e, "recording a fork");
                Vec::new()
            }
        }
    }
}
