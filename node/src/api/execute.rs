//! Answering an [`ApiRequest`] from a store: the one place each data operation is carried
//! out, whether the request came over the socket, from the CLI with no node running, or from
//! a program embedding weft.

use weft_storage::{Mode, Store};

use super::messages::{ApiRequest, ApiResponse, PAGE_BYTES, PAGE_KEYS};
use crate::node::NodeError;
use crate::watch::PAGE_CHANGES;

/// Carries out `request` on `store`, on the calling thread. A node answers the requests that
/// need it (status, remote reads, waiting for changes, gossiping writes) itself and hands
/// the rest here ([`super::answer`]).
///
/// # Errors
/// [`NodeError::Store`] as the store operation fails; [`NodeError::NotRunning`] for
/// [`ApiRequest::Status`], [`ApiRequest::GetRemote`] and [`ApiRequest::SyncNow`], which only
/// a node answers.
pub fn execute(store: &Store, request: ApiRequest) -> Result<ApiResponse, NodeError> {
    Ok(match request {
        ApiRequest::Facts => ApiResponse::Facts {
            author: store.author(),
            default_namespace: store.default_namespace(),
        },
        ApiRequest::Write { ns, ops } => ApiResponse::Written(store.write(&ns, ops)?),
        ApiRequest::Get { ns, key } => ApiResponse::Value(store.get(&ns, &key)?),
        ApiRequest::GetAt { ns, key, at } => ApiResponse::Value(store.get_at(&ns, &key, at)?),
        ApiRequest::GetAll { ns, key } => ApiResponse::Versions(store.get_all(&ns, &key)?),
        ApiRequest::History { ns, key } => ApiResponse::History(store.history(&ns, &key)?),
        ApiRequest::Scan {
            ns,
            prefix,
            after,
            values,
            limit,
        } => {
            let mut page = Vec::new();
            let mut bytes = 0;
            for row in store.scan_after(&ns, &prefix, after.as_deref(), values)? {
                let (key, value) = row?;
                bytes += key.len() + value.as_ref().map_or(0, Vec::len);
                page.push((key, value));
                if page.len() >= limit.clamp(1, PAGE_KEYS) as usize || bytes > PAGE_BYTES {
                    break;
                }
            }
            ApiResponse::Page(page)
        }
        ApiRequest::Info => ApiResponse::Info(store.info()?),
        ApiRequest::Verify => ApiResponse::Verify(store.verify()?),
        ApiRequest::Reindex => ApiResponse::Reindexed(store.reindex()?),
        ApiRequest::SetInterest { ns, interest } => {
            store.set_interest(&ns, interest)?;
            ApiResponse::Done
        }
        ApiRequest::Prune => ApiResponse::Pruned(store.prune()?),
        ApiRequest::Grant { ns, author, grant } => {
            ApiResponse::Written(vec![store.grant(&ns, &author, grant)?])
        }
        ApiRequest::Revoke { ns, author } => ApiResponse::Revoked(store.revoke(&ns, &author)?),
        ApiRequest::Invite { ns, grant } => ApiResponse::Invited(store.invite(&ns, grant)?),
        ApiRequest::Trust { ns } => ApiResponse::Trust(store.trust(&ns)?),
        ApiRequest::Changes {
            ns, prefix, from, ..
        } => ApiResponse::Changes(store.changes(&ns, &prefix, from, PAGE_CHANGES)?),
        ApiRequest::Share { ns, write } => {
            let charter = store.charter(&ns)?.ok_or_else(|| {
                weft_storage::Error::NotOwner(
                    "this namespace was made before tickets carried charters; re-create it to share it"
                        .into(),
                )
            })?;
            let author_key = match (write, charter.mode) {
                (Some(grant), Mode::Closed { .. }) => Some(store.invite(&ns, grant)?),
                // Anyone holding an open namespace's ticket may write already.
                (_, Mode::Open) | (None, _) => None,
            };
            ApiResponse::Share {
                charter,
                author_key,
            }
        }
        ApiRequest::Status | ApiRequest::GetRemote { .. } | ApiRequest::SyncNow => {
            return Err(NodeError::NotRunning);
        }
    })
}
