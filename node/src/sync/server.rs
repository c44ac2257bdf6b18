//! Serving the sync protocol: which requests are answered at all ([`Server::admit`], on the
//! task that owns the connections), and the answer, read from the store ([`answer`], on the
//! store's thread).

use std::collections::HashMap;
use std::time::Instant;

use tracing::warn;
use weft_storage::tree::Node;
use weft_storage::{Fork, HeldFeed, Interest, NamespaceId, Served, Store};

use super::ranges;
use crate::wire::{
    AuthorRange, FORKS_PER_RESPONSE, ForkAnswer, ForkProbe, HEADS_PER_RESPONSE, LEAF_HEADS,
    RANGES_PER_REQUEST, RUN_BYTES, RUN_ENTRIES, Refusal, Request, Response, Topic, WireHead,
    WireRun, WireSparse,
};

/// Requests of one peer being answered at once. An honest client keeps at most
/// [`super::MAX_PER_PEER`] runs, a page of heads and a few key reads in flight.
pub const SERVING_PER_PEER: usize = 16;

/// Requests one peer may make per second, sustained.
pub const REQUESTS_PER_SECOND: u32 = 500;

/// Requests one peer may make in a burst above [`REQUESTS_PER_SECOND`].
pub const REQUEST_BURST: u32 = 1000;

/// Who this node is on the wire, which namespaces it serves, and what each peer is costing
/// it now.
#[derive(Clone, Debug)]
pub struct Server {
    /// This node's peer id bytes, which every capability presented to it binds.
    me: Vec<u8>,
    by_topic: HashMap<Topic, NamespaceId>,
    load: HashMap<Vec<u8>, Load>,
}

/// One peer's share of this server: answers in progress, and a token bucket of requests.
#[derive(Clone, Debug)]
struct Load {
    serving: usize,
    /// Disconnected: forgotten when its last answer is done.
    gone: bool,
    tokens: f64,
    refilled: Instant,
}

impl Server {
    /// The server of node `me` (its peer id bytes) holding `namespaces`.
    pub fn new(me: Vec<u8>, namespaces: impl IntoIterator<Item = NamespaceId>) -> Server {
        Server {
            me,
            by_topic: namespaces
                .into_iter()
                .map(|ns| (Topic::of(&ns), ns))
                .collect(),
            load: HashMap::new(),
        }
    }

    /// The namespace `request` from `asker` (its peer id bytes) is about, when this node
    /// holds it, the asker proved it knows its id, and the asker is within its share
    /// ([`SERVING_PER_PEER`], [`REQUESTS_PER_SECOND`]). A namespace not held or not proven is
    /// refused [`Refusal::NotShared`] (the asker learns nothing, not even that this node
    /// holds it); a peer over its share is refused [`Refusal::Busy`], as an overloaded store
    /// would be, which costs an honest client a retry and nothing more. Each admitted request
    /// must be ended with [`Server::answered`].
    pub fn admit(
        &mut self,
        asker: &[u8],
        request: &Request,
        now: Instant,
    ) -> Result<NamespaceId, Refusal> {
        let (topic, cap) = request.credentials();
        let ns = self
            .by_topic
            .get(&topic)
            .copied()
            .filter(|ns| cap.admits(ns, asker, &self.me))
            .ok_or(Refusal::NotShared)?;
        let load = self.load.entry(asker.to_vec()).or_insert(Load {
            serving: 0,
            gone: false,
            tokens: f64::from(REQUEST_BURST),
            refilled: now,
        });
        let elapsed = now.saturating_duration_since(load.refilled).as_secs_f64();
        load.tokens =
            (load.tokens + elapsed * f64::from(REQUESTS_PER_SECOND)).min(f64::from(REQUEST_BURST));
        load.refilled = now;
        if load.serving >= SERVING_PER_PEER || load.tokens < 1.0 {
            return Err(Refusal::Busy);
        }
        load.tokens -= 1.0;
        load.serving += 1;
        load.gone = false;
        Ok(ns)
    }

    /// An admitted request of `asker` has been answered, or dropped.
    pub fn answered(&mut self, asker: &[u8]) {
        if let Some(load) = self.load.get_mut(asker) {
            load.serving = load.serving.saturating_sub(1);
            if load.gone && load.serving == 0 {
                self.load.remove(asker);
            }
        }
    }

    /// `asker` has disconnected: its share is forgotten once nothing of it is being answered,
    /// so the map holds only peers with work in progress or a live connection.
    pub fn peer_gone(&mut self, asker: &[u8]) {
        match self.load.get_mut(asker) {
            Some(load) if load.serving == 0 => {
                self.load.remove(asker);
            }
            Some(load) => load.gone = true,
            None => {}
        }
    }
}

/// What a heads exchange about `ns` would carry, in 32 bytes: every feed held with its head
/// and held length, in author order, and the authors of known forks with where each froze its
/// feed. Two replicas with the same digest have nothing to tell each other's catch-up.
///
/// # Errors
/// Database failures.
pub fn heads_digest(store: &Store, ns: &NamespaceId) -> weft_storage::Result<[u8; 32]> {
    Ok(digest_of(&sorted_feeds(store, ns)?, &store.forks(ns)?))
}

/// Every feed held in `ns`, in author order, as ranges of them are cut.
pub(super) fn sorted_feeds(store: &Store, ns: &NamespaceId) -> weft_storage::Result<Vec<HeldFeed>> {
    let mut feeds = store.feeds(ns)?;
    feeds.sort_by_key(|feed| feed.head.author);
    Ok(feeds)
}

pub(super) fn digest_of(sorted: &[HeldFeed], forks: &[Fork]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key("weft 2026 heads digest v2");
    for feed in sorted {
        ranges::digest_feed(&mut hasher, feed);
    }
    let mut forks: Vec<_> = forks
        .iter()
        .map(|fork| (fork.proof.author(), fork.frozen_at))
        .collect();
    forks.sort();
    hasher.update(&(forks.len() as u64).to_le_bytes());
    for (author, frozen_at) in &forks {
        hasher.update(author.as_bytes());
        hasher.update(&frozen_at.to_le_bytes());
    }
    *hasher.finalize().as_bytes()
}

/// The answer to `request` about `ns`, which [`Server::admit`] let through, read from
/// `store`. A run is capped at what the request asks and at [`RUN_ENTRIES`] and
/// [`RUN_BYTES`]; heads are paged at [`HEADS_PER_RESPONSE`].
pub fn answer(store: &Store, ns: &NamespaceId, request: Request) -> Response {
    answer_matching(store, ns, request).0
}

/// As [`answer`], and whether the request was a round's digest of heads equal to this
/// replica's: the asker holds the same heads, as a round of this node's own would find.
pub fn answer_matching(store: &Store, ns: &NamespaceId, request: Request) -> (Response, bool) {
    // Caught-up peers exchange one digest per round, whatever the number of authors; peers
    // that differ go on by ranges of feeds (`ranges.rs`) once there are too many to send.
    if let Request::Heads {
        after: None,
        digest: Some(digest),
        ..
    } = &request
    {
        match sorted_feeds(store, ns).and_then(|feeds| Ok((feeds, store.forks(ns)?))) {
            Ok((feeds, forks)) if digest_of(&feeds, &forks) == *digest => {
                let same = Response::Heads {
                    heads: Vec::new(),
                    more: false,
                    forks: Vec::new(),
                };
                return (same, true);
            }
            Ok((feeds, forks)) if feeds.len() > LEAF_HEADS => {
                let split = Response::Ranges {
                    answers: vec![ranges::answer_range(&feeds, &AuthorRange::default())],
                    forks: forks
                        .into_iter()
                        .take(FORKS_PER_RESPONSE)
                        .map(|fork| fork.proof)
                        .collect(),
                };
                return (split, false);
            }
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "reading heads to serve");
                return (Response::Refused(Refusal::Internal), false);
            }
        }
    }
    (answer_in_full(store, ns, request), false)
}

fn answer_in_full(store: &Store, ns: &NamespaceId, request: Request) -> Response {
    match request {
        Request::Heads { after, .. } => match store.feeds(ns).and_then(|feeds| {
            let forks = if after.is_none() {
                store.forks(ns)?
            } else {
                Vec::new()
            };
            Ok((feeds, forks))
        }) {
            Ok((feeds, forks)) => {
                let mut heads: Vec<WireHead> = feeds
                    .iter()
                    .filter(|f| after.is_none_or(|after| f.head.author > after))
                    .map(|f| WireHead::from_head(&f.head))
                    .collect();
                let more = heads.len() > HEADS_PER_RESPONSE;
                heads.truncate(HEADS_PER_RESPONSE);
                let forks = forks
                    .into_iter()
                    .take(FORKS_PER_RESPONSE)
                    .map(|fork| fork.proof)
                    .collect();
                Response::Heads { heads, more, forks }
            }
            Err(e) => {
                warn!(error = %e, "reading heads to serve");
                Response::Refused(Refusal::Internal)
            }
        },
        Request::Ranges { ranges, .. } => {
            if ranges.len() > RANGES_PER_REQUEST {
                return Response::Refused(Refusal::NotShared);
            }
            match sorted_feeds(store, ns) {
                Ok(feeds) => Response::Ranges {
                    answers: ranges
                        .iter()
                        .map(|range| ranges::answer_range(&feeds, range))
                        .collect(),
                    forks: Vec::new(),
                },
                Err(e) => {
                    warn!(error = %e, "reading heads to serve");
                    Response::Refused(Refusal::Internal)
                }
            }
        }
        Request::Run {
            author,
            start,
            max_entries,
            ..
        } => {
            let max = max_entries.min(RUN_ENTRIES) as usize;
            match store.read_run(ns, &author, start, max, RUN_BYTES) {
                Ok(run) => Response::Run(run.map(WireRun::from_run)),
                Err(e) => {
                    warn!(error = %e, "reading a run to serve");
                    Response::Refused(Refusal::Internal)
                }
            }
        }
        Request::Sparse {
            author,
            start,
            prefixes,
            max_entries,
            ..
        } => {
            let max = max_entries.min(RUN_ENTRIES) as usize;
            let want = Interest::new(prefixes, Vec::new());
            match store.read_sparse(ns, &author, start, &want, max, RUN_BYTES) {
                Ok(Served::Run(run)) => Response::Sparse(Some(WireSparse::from_run(*run))),
                Ok(Served::Nothing) => Response::Sparse(None),
                Ok(Served::NotCovered) => Response::Refused(Refusal::NotShared),
                Err(e) => {
                    warn!(error = %e, "reading a sparse run to serve");
                    Response::Refused(Refusal::Internal)
                }
            }
        }
        Request::Key { key, .. } => {
            if !store.covers(ns, &key).unwrap_or(false) {
                return Response::Refused(Refusal::NotShared);
            }
            match store.read_key(ns, &key, RUN_BYTES) {
                Ok(runs) => Response::Key(runs.into_iter().map(WireSparse::from_run).collect()),
                Err(e) => {
                    warn!(error = %e, "reading a key to serve");
                    Response::Refused(Refusal::Internal)
                }
            }
        }
        // At most SEARCH_NODES tree reads, under the asker's share like any request.
        Request::Fork { author, probe, .. } => {
            let answer = match probe {
                ForkProbe::Nodes(nodes) => {
                    let nodes: Vec<Node> = nodes
                        .into_iter()
                        .map(|(depth, offset)| Node { depth, offset })
                        .collect();
                    store
                        .node_hashes(ns, &author, &nodes)
                        .map(|hashes| hashes.map_or(ForkAnswer::NotHeld, ForkAnswer::Nodes))
                }
                ForkProbe::Branch(at) => store.branch_at(ns, &author, at).map(|branch| {
                    branch.map_or(ForkAnswer::NotHeld, |branch| {
                        ForkAnswer::Branch(Box::new(branch))
                    })
                }),
            };
            match answer {
                Ok(answer) => Response::Fork(answer),
                Err(e) => {
                    warn!(error = %e, "reading a feed's tree for a fork search");
                    Response::Refused(Refusal::Internal)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::access::Cap;

    fn heads(ns: &NamespaceId, asker: &[u8], server: &[u8]) -> Request {
        Request::Heads {
            topic: Topic::of(ns),
            cap: Cap::new(ns, asker, server),
            after: None,
            digest: None,
        }
    }

    #[test]
    fn each_peer_gets_a_bounded_share_and_others_are_not_held_up() {
        let ns = NamespaceId([3; 32]);
        let (me, greedy, other) = (b"me".to_vec(), b"greedy".to_vec(), b"other".to_vec());
        let mut server = Server::new(me.clone(), [ns]);
        let t0 = Instant::now();
        let ask = heads(&ns, &greedy, &me);
        for _ in 0..SERVING_PER_PEER {
            assert_eq!(server.admit(&greedy, &ask, t0), Ok(ns));
        }
        assert_eq!(
            server.admit(&greedy, &ask, t0),
            Err(Refusal::Busy),
            "over its answers in progress"
        );
        assert_eq!(
            server.admit(&other, &heads(&ns, &other, &me), t0),
            Ok(ns),
            "another peer is served meanwhile"
        );
        server.answered(&greedy);
        assert_eq!(server.admit(&greedy, &ask, t0), Ok(ns));

        // Answered at once, the peer still runs out of requests per second.
        for _ in 0..SERVING_PER_PEER {
            server.answered(&greedy);
        }
        let mut admitted = 0;
        while server.admit(&greedy, &ask, t0).is_ok() {
            server.answered(&greedy);
            admitted += 1;
            assert!(admitted <= REQUEST_BURST as usize, "no limit per second");
        }
        assert_eq!(admitted, REQUEST_BURST as usize - SERVING_PER_PEER - 1);
        let later = t0 + Duration::from_secs(1);
        assert_eq!(server.admit(&greedy, &ask, later), Ok(ns), "refilled");

        // A wrong capability is no namespace at all, and costs no share.
        let forged = heads(&ns, &other, &me);
        assert_eq!(
            server.admit(&greedy, &forged, later),
            Err(Refusal::NotShared)
        );

        server.answered(&greedy);
        server.peer_gone(&greedy);
        assert!(
            !server.load.contains_key(&greedy),
            "a gone peer is forgotten"
        );
    }

    #[test]
    fn a_peer_with_the_same_digest_gets_an_empty_page() {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = weft_storage::Options {
            durable: false,
            ..weft_storage::Options::default()
        };
        let store =
            Store::init(&dir.path().join("s"), options, weft_storage::Access::Open).expect("init");
        let ns = store.default_namespace();
        store.put(&ns, b"k", b"v").expect("put");
        let asking = |digest| Request::Heads {
            topic: Topic::of(&ns),
            cap: Cap::new(&ns, b"asker", b"server"),
            after: None,
            digest,
        };
        let heads_in = |response: Response| match response {
            Response::Heads { heads, more, .. } => (heads.len(), more),
            other => panic!("not heads: {other:?}"),
        };
        let same = heads_digest(&store, &ns).expect("digest");
        assert_eq!(
            heads_in(answer(&store, &ns, asking(Some(same)))),
            (0, false)
        );
        assert_eq!(
            heads_in(answer(&store, &ns, asking(Some([0; 32])))),
            (1, false)
        );
        assert_eq!(heads_in(answer(&store, &ns, asking(None))), (1, false));
        store.put(&ns, b"k", b"w").expect("put");
        assert_ne!(
            heads_digest(&store, &ns).expect("digest"),
            same,
            "a new entry changes the digest"
        );
    }
}
