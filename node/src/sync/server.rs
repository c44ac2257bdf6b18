//! Serving the sync protocol: which requests are answered at all ([`Server::admit`], on the
//! task that owns the connections), and the answer, read from the store ([`answer`], on the
//! store's thread).

use std::collections::HashMap;

use tracing::warn;
use weft_storage::{Interest, NamespaceId, Served, Store};

use crate::wire::{
    HEADS_PER_RESPONSE, RUN_BYTES, RUN_ENTRIES, Refusal, Request, Response, Topic, WireHead,
    WireRun, WireSparse,
};

/// Who this node is on the wire and which namespaces it serves.
#[derive(Clone, Debug)]
pub struct Server {
    /// This node's peer id bytes, which every capability presented to it binds.
    me: Vec<u8>,
    by_topic: HashMap<Topic, NamespaceId>,
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
        }
    }

    /// The namespace `request` from `asker` (its peer id bytes) is about, when this node
    /// holds it and the asker proved it knows its id. `None` is answered
    /// [`Refusal::NotShared`], the same answer a namespace not held gets: the asker learns
    /// nothing, not even that this node holds it.
    pub fn admit(&self, asker: &[u8], request: &Request) -> Option<NamespaceId> {
        let (topic, cap) = request.credentials();
        self.by_topic
            .get(&topic)
            .copied()
            .filter(|ns| cap.admits(ns, asker, &self.me))
    }
}

/// The answer to `request` about `ns`, which [`Server::admit`] let through, read from
/// `store`. A run is capped at what the request asks and at [`RUN_ENTRIES`] and
/// [`RUN_BYTES`]; heads are paged at [`HEADS_PER_RESPONSE`].
pub fn answer(store: &Store, ns: &NamespaceId, request: Request) -> Response {
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
                let forks = forks.into_iter().map(|fork| fork.proof).collect();
                Response::Heads { heads, more, forks }
            }
            Err(e) => {
                warn!(error = %e, "reading heads to serve");
                Response::Refused(Refusal::Internal)
            }
        },
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
            match store.read_key(ns, &key) {
                Ok(runs) => Response::Key(runs.into_iter().map(WireSparse::from_run).collect()),
                Err(e) => {
                    warn!(error = %e, "reading a key to serve");
                    Response::Refused(Refusal::Internal)
                }
            }
        }
    }
}
