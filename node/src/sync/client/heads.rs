//! The client's side of a heads exchange: the first request of a round carries the digest of
//! what is held; a peer holding the same answers one empty page. A peer holding little
//! answers every head, page by page; one holding many feeds answers digests of ranges of
//! them, and the exchange goes on about the ranges that differ (`ranges.rs`) down to their
//! heads. The heads learnt go to the store to be checked ([`JobKind::CheckHeads`]), which
//! also says what to ask next.

use weft_storage::{AuthorId, ForkProof, NamespaceId};

use super::{Client, MAX_HEAD_PAGES};
use crate::sync::Peer;
use crate::sync::actions::{Action, Fault, Pending};
use crate::sync::jobs::{Continue, Job, JobKind};
use crate::sync::ranges;
use crate::wire::{
    AuthorRange, FORKS_PER_RESPONSE, HEADS_PER_RESPONSE, RANGES_PER_REQUEST, RangeAnswer, Request,
    Topic, WireHead,
};

impl<P: Peer, G> Client<P, G> {
    fn ask_heads(
        &self,
        peer: P,
        ns: NamespaceId,
        after: Option<AuthorId>,
        (page, round): (u32, u64),
        digest: Option<[u8; 32]>,
    ) -> Action<P, G> {
        Action::Send {
            request: Request::Heads {
                topic: Topic::of(&ns),
                cap: self.cap(&ns, &peer),
                after,
                digest,
            },
            peer,
            pending: Pending::Heads {
                ns,
                after,
                page,
                round,
            },
        }
    }

    /// The first request of `round`'s exchange with each of `peers` in each namespace, with
    /// the digest of what is held there when there is one.
    pub(super) fn start_exchanges(
        &self,
        peers: &[P],
        digests: &[(NamespaceId, Option<[u8; 32]>)],
        round: u64,
    ) -> Vec<Action<P, G>> {
        peers
            .iter()
            .flat_map(|peer| {
                digests.iter().map(|(ns, digest)| {
                    self.ask_heads(peer.clone(), *ns, None, (0, round), *digest)
                })
            })
            .collect()
    }

    fn ask_ranges(
        &self,
        peer: P,
        ns: NamespaceId,
        mut asked: Vec<AuthorRange>,
        (page, round): (u32, u64),
    ) -> Action<P, G> {
        let rest = asked.split_off(asked.len().min(RANGES_PER_REQUEST));
        Action::Send {
            request: Request::Ranges {
                topic: Topic::of(&ns),
                cap: self.cap(&ns, &peer),
                ranges: asked.clone(),
            },
            peer,
            pending: Pending::Ranges {
                ns,
                asked,
                rest,
                page,
                round,
            },
        }
    }

    /// The step after request number `page` of the exchange of `ns` heads with `peer`, or its
    /// end.
    pub(super) fn continue_heads(
        &mut self,
        peer: P,
        ns: NamespaceId,
        next: Option<(Continue, u32)>,
        round: u64,
    ) -> Option<Action<P, G>> {
        match next {
            Some((Continue::Page(after), page)) => {
                Some(self.ask_heads(peer, ns, after, (page, round), None))
            }
            Some((Continue::Ranges(ranges), page)) => {
                Some(self.ask_ranges(peer, ns, ranges, (page, round)))
            }
            None => {
                self.head_exchanges += 1;
                self.rounds.ended(peer, ns, round);
                None
            }
        }
    }

    /// A page of heads after `after`, request number `page` of its exchange.
    pub(super) fn on_heads_page(
        &mut self,
        peer: P,
        (ns, after, page, round): (NamespaceId, Option<AuthorId>, u32, u64),
        (heads, more, forks): (Vec<WireHead>, bool, Vec<ForkProof>),
    ) -> Vec<Action<P, G>> {
        if heads.len() > HEADS_PER_RESPONSE || forks.len() > FORKS_PER_RESPONSE {
            return vec![self.penalize(peer, Fault::TooManyHeads)];
        }
        // Only a peer holding the same heads answers an empty page.
        if !heads.is_empty() || !forks.is_empty() {
            self.rounds.stir();
        }
        let in_order = heads.windows(2).all(|pair| pair[0].author < pair[1].author);
        let moves_on = heads
            .first()
            .is_none_or(|first| after.is_none_or(|after| first.author > after));
        if !in_order || !moves_on || (more && heads.is_empty()) {
            return vec![self.penalize(peer, Fault::BadPage)];
        }
        // Past MAX_HEAD_PAGES the exchange ends; the next round starts over.
        let next = heads
            .last()
            .map(|h| (Continue::Page(Some(h.author)), page + 1))
            .filter(|(_, next)| more && *next < MAX_HEAD_PAGES);
        vec![self.check_heads(peer, ns, heads, forks, Vec::new(), (next, round))]
    }

    /// Answers about the ranges `asked`, request number `page` of its exchange; `rest` are
    /// the ranges still to ask about.
    pub(super) fn on_ranges(
        &mut self,
        peer: P,
        (ns, asked, rest, page, round): (NamespaceId, Vec<AuthorRange>, Vec<AuthorRange>, u32, u64),
        (answers, forks): (Vec<RangeAnswer>, Vec<ForkProof>),
    ) -> Vec<Action<P, G>> {
        if forks.len() > FORKS_PER_RESPONSE {
            return vec![self.penalize(peer, Fault::TooManyHeads)];
        }
        let well_formed = answers.len() == asked.len()
            && asked
                .iter()
                .zip(&answers)
                .all(|(range, answer)| ranges::well_formed(range, answer));
        if !well_formed {
            return vec![self.penalize(peer, Fault::BadPage)];
        }
        // A peer answers about ranges only where its digest differs.
        self.rounds.stir();
        let mut heads = Vec::new();
        let mut splits = Vec::new();
        for (range, answer) in asked.into_iter().zip(answers) {
            match answer {
                RangeAnswer::Heads(more) => heads.extend(more),
                RangeAnswer::Split(parts) => splits.push((range, parts)),
            }
        }
        let next = (page + 1 < MAX_HEAD_PAGES).then_some((Continue::Ranges(rest), page + 1));
        vec![self.check_heads(peer, ns, heads, forks, splits, (next, round))]
    }

    fn check_heads(
        &self,
        peer: P,
        ns: NamespaceId,
        heads: Vec<WireHead>,
        forks: Vec<ForkProof>,
        splits: Vec<(AuthorRange, Vec<crate::wire::RangePart>)>,
        (next, round): (Option<(Continue, u32)>, u64),
    ) -> Action<P, G> {
        // Signatures are checked with the store job, off the task that owns the connections.
        // This replica's own head is kept: a peer holding more of the own feed means this
        // replica was restored from an older backup and must fetch it back.
        let heads = heads
            .into_iter()
            .map(|head| head.into_head(ns))
            .filter(|head| {
                head.author == self.author
                    || self
                        .interests
                        .get(&ns)
                        .is_none_or(|interest| interest.covers_author(&head.author))
            })
            .collect();
        Action::Store(Job(JobKind::CheckHeads {
            peer,
            ns,
            heads,
            forks,
            splits,
            next,
            round,
        }))
    }
}
