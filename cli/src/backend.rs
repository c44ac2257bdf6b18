//! Where data commands go: through the running node's socket when there is one (it holds the
//! database), else straight to the store. Both return the same values, so output is identical.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use anyhow::bail;
use weft_node::Status;
use weft_node::api::{ApiRequest, ApiResponse, Client, PAGE_KEYS};
use weft_node::watch::PAGE_CHANGES;
use weft_storage::{
    AuthorId, ChangePage, Grant, HistoryItem, Info, Interest, NamespaceId, Op, Options,
    PruneReport, Store, Timestamp, TrustReport, VerifyReport, VersionId, VersionInfo,
};

/// The replica a command works on.
pub enum Backend {
    /// No node runs: the store, opened here.
    Local(Box<Store>),
    /// A node runs and holds the store.
    Node {
        client: RefCell<Client>,
        dir: PathBuf,
        default_namespace: NamespaceId,
    },
}

/// A key and, when asked for, its value.
pub type Row = (Vec<u8>, Option<Vec<u8>>);

macro_rules! expect_response {
    ($response:expr, $variant:ident) => {
        match $response {
            ApiResponse::$variant(value) => anyhow::Ok(value),
            other => bail!(
                "the node answered {other:?} to a {} request",
                stringify!($variant)
            ),
        }
    };
}

impl Backend {
    /// The node on `dir` if one runs, else the store in `dir`.
    ///
    /// # Errors
    /// When neither can be reached.
    pub fn open(dir: &Path) -> anyhow::Result<Backend> {
        if let Some(mut client) = Client::connect(dir)? {
            let ApiResponse::Facts {
                default_namespace, ..
            } = client.call(&ApiRequest::Facts)?
            else {
                bail!(
                    "the node on {} answered a facts request oddly",
                    dir.display()
                );
            };
            return Ok(Backend::Node {
                client: RefCell::new(client),
                dir: dir.to_owned(),
                default_namespace,
            });
        }
        Ok(Backend::Local(Box::new(Store::open(
            dir,
            Options::default(),
        )?)))
    }

    fn call(&self, request: ApiRequest) -> anyhow::Result<ApiResponse> {
        match self {
            Backend::Node { client, .. } => Ok(client.borrow_mut().call(&request)?),
            Backend::Local(_) => unreachable!("only called on a node backend"),
        }
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        match self {
            Backend::Local(store) => store.dir(),
            Backend::Node { dir, .. } => dir,
        }
    }

    /// The default namespace.
    pub fn default_namespace(&self) -> NamespaceId {
        match self {
            Backend::Local(store) => store.default_namespace(),
            Backend::Node {
                default_namespace, ..
            } => *default_namespace,
        }
    }

    /// Checks a write against the limits, as [`Store::validate`].
    pub fn validate(&self, key: &[u8], op: &Op<Vec<u8>>) -> anyhow::Result<()> {
        match self {
            Backend::Local(store) => Ok(store.validate(key, op)?),
            // The node uses the default limits too; checking here keeps an import all-or-nothing.
            Backend::Node { .. } => Ok(Options::default().validate(key, op)?),
        }
    }

    pub fn write(
        &self,
        ns: &NamespaceId,
        ops: Vec<(Vec<u8>, Op<Vec<u8>>)>,
    ) -> anyhow::Result<Vec<VersionId>> {
        match self {
            Backend::Local(store) => Ok(store.write(ns, ops)?),
            Backend::Node { .. } => {
                expect_response!(self.call(ApiRequest::Write { ns: *ns, ops })?, Written)
            }
        }
    }

    /// [`Store::grant`].
    pub fn grant(&self, ns: &NamespaceId, author: AuthorId, grant: Grant) -> anyhow::Result<()> {
        match self {
            Backend::Local(store) => {
                store.grant(ns, &author, grant)?;
            }
            Backend::Node { .. } => {
                let request = ApiRequest::Grant {
                    ns: *ns,
                    author,
                    grant,
                };
                expect_response!(self.call(request)?, Written)?;
            }
        }
        Ok(())
    }

    /// [`Store::revoke`].
    pub fn revoke(&self, ns: &NamespaceId, author: AuthorId) -> anyhow::Result<u64> {
        match self {
            Backend::Local(store) => Ok(store.revoke(ns, &author)?),
            Backend::Node { .. } => {
                expect_response!(self.call(ApiRequest::Revoke { ns: *ns, author })?, Revoked)
            }
        }
    }

    /// [`Store::invite`].
    pub fn invite(&self, ns: &NamespaceId, grant: Grant) -> anyhow::Result<[u8; 32]> {
        match self {
            Backend::Local(store) => Ok(store.invite(ns, grant)?),
            Backend::Node { .. } => {
                expect_response!(self.call(ApiRequest::Invite { ns: *ns, grant })?, Invited)
            }
        }
    }

    /// [`Store::trust`].
    pub fn trust(&self, ns: &NamespaceId) -> anyhow::Result<TrustReport> {
        match self {
            Backend::Local(store) => Ok(store.trust(ns)?),
            Backend::Node { .. } => {
                expect_response!(self.call(ApiRequest::Trust { ns: *ns })?, Trust)
            }
        }
    }

    pub fn get(&self, ns: &NamespaceId, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        match self {
            Backend::Local(store) => Ok(store.get(ns, key)?),
            Backend::Node { .. } => expect_response!(
                self.call(ApiRequest::Get {
                    ns: *ns,
                    key: key.to_vec()
                })?,
                Value
            ),
        }
    }

    /// The live versions of `key` as the node's connected peers prove them.
    pub fn get_remote(&self, ns: &NamespaceId, key: &[u8]) -> anyhow::Result<Vec<VersionInfo>> {
        match self {
            Backend::Local(_) => {
                bail!("--remote asks connected peers through the node: start `weft node` first")
            }
            Backend::Node { .. } => expect_response!(
                self.call(ApiRequest::GetRemote {
                    ns: *ns,
                    key: key.to_vec()
                })?,
                Versions
            ),
        }
    }

    pub fn prune(&self) -> anyhow::Result<PruneReport> {
        match self {
            Backend::Local(store) => Ok(store.prune()?),
            Backend::Node { .. } => expect_response!(self.call(ApiRequest::Prune)?, Pruned),
        }
    }

    pub fn set_interest(&self, ns: &NamespaceId, interest: Interest) -> anyhow::Result<()> {
        match self {
            Backend::Local(store) => Ok(store.set_interest(ns, interest)?),
            Backend::Node { .. } => {
                match self.call(ApiRequest::SetInterest { ns: *ns, interest })? {
                    ApiResponse::Done => Ok(()),
                    other => bail!("the node answered {other:?} to an interest change"),
                }
            }
        }
    }

    pub fn get_at(
        &self,
        ns: &NamespaceId,
        key: &[u8],
        at: Timestamp,
    ) -> anyhow::Result<Option<Vec<u8>>> {
        match self {
            Backend::Local(store) => Ok(store.get_at(ns, key, at)?),
            Backend::Node { .. } => expect_response!(
                self.call(ApiRequest::GetAt {
                    ns: *ns,
                    key: key.to_vec(),
                    at,
                })?,
                Value
            ),
        }
    }

    pub fn get_all(&self, ns: &NamespaceId, key: &[u8]) -> anyhow::Result<Vec<VersionInfo>> {
        match self {
            Backend::Local(store) => Ok(store.get_all(ns, key)?),
            Backend::Node { .. } => expect_response!(
                self.call(ApiRequest::GetAll {
                    ns: *ns,
                    key: key.to_vec()
                })?,
                Versions
            ),
        }
    }

    pub fn history(&self, ns: &NamespaceId, key: &[u8]) -> anyhow::Result<Vec<HistoryItem>> {
        match self {
            Backend::Local(store) => Ok(store.history(ns, key)?),
            Backend::Node { .. } => expect_response!(
                self.call(ApiRequest::History {
                    ns: *ns,
                    key: key.to_vec()
                })?,
                History
            ),
        }
    }

    /// A page of the change feed, as [`Store::changes`]; through a node, waiting up to `wait`
    /// for a change when there is none yet.
    pub fn changes(
        &self,
        ns: &NamespaceId,
        prefix: &[u8],
        from: Option<u64>,
        wait: std::time::Duration,
    ) -> anyhow::Result<ChangePage> {
        match self {
            Backend::Local(store) => Ok(store.changes(ns, prefix, from, PAGE_CHANGES)?),
            Backend::Node { .. } => expect_response!(
                self.call(ApiRequest::Changes {
                    ns: *ns,
                    prefix: prefix.to_vec(),
                    from,
                    wait_ms: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
                })?,
                Changes
            ),
        }
    }

    /// Whether a running node holds the replica (and so changes can be followed live).
    pub fn is_node(&self) -> bool {
        matches!(self, Backend::Node { .. })
    }

    /// The keys under `prefix` in order, as [`Store::scan`]; through a node, a page at a time.
    pub fn scan<'a>(
        &'a self,
        ns: &NamespaceId,
        prefix: &[u8],
        values: bool,
    ) -> anyhow::Result<Box<dyn Iterator<Item = anyhow::Result<Row>> + 'a>> {
        match self {
            Backend::Local(store) => Ok(Box::new(
                store
                    .scan(ns, prefix, values)?
                    .map(|row| row.map_err(anyhow::Error::from)),
            )),
            Backend::Node { .. } => Ok(Box::new(Pages {
                backend: self,
                ns: *ns,
                prefix: prefix.to_vec(),
                values,
                after: None,
                page: Vec::new().into_iter(),
                done: false,
            })),
        }
    }

    pub fn info(&self) -> anyhow::Result<Info> {
        match self {
            Backend::Local(store) => Ok(store.info()?),
            Backend::Node { .. } => expect_response!(self.call(ApiRequest::Info)?, Info),
        }
    }

    pub fn verify(&self) -> anyhow::Result<VerifyReport> {
        match self {
            Backend::Local(store) => Ok(store.verify()?),
            Backend::Node { .. } => expect_response!(self.call(ApiRequest::Verify)?, Verify),
        }
    }

    pub fn reindex(&self) -> anyhow::Result<u64> {
        match self {
            Backend::Local(store) => Ok(store.reindex()?),
            Backend::Node { .. } => expect_response!(self.call(ApiRequest::Reindex)?, Reindexed),
        }
    }

    /// The running node's status, or `None` when no node runs.
    pub fn status(&self) -> anyhow::Result<Option<Status>> {
        match self {
            Backend::Local(_) => Ok(None),
            Backend::Node { .. } => Ok(Some(expect_response!(
                self.call(ApiRequest::Status)?,
                Status
            )?)),
        }
    }
}

/// A scan through the node, fetched a page at a time.
struct Pages<'a> {
    backend: &'a Backend,
    ns: NamespaceId,
    prefix: Vec<u8>,
    values: bool,
    after: Option<Vec<u8>>,
    page: std::vec::IntoIter<Row>,
    done: bool,
}

impl Iterator for Pages<'_> {
    type Item = anyhow::Result<Row>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.page.next() {
                self.after = Some(row.0.clone());
                return Some(Ok(row));
            }
            if self.done {
                return None;
            }
            let request = ApiRequest::Scan {
                ns: self.ns,
                prefix: self.prefix.clone(),
                after: self.after.clone(),
                values: self.values,
                limit: PAGE_KEYS,
            };
            let page: Vec<Row> = match self.backend.call(request) {
                Ok(ApiResponse::Page(page)) => page,
                Ok(other) => {
                    self.done = true;
                    return Some(Err(anyhow::anyhow!(
                        "the node answered {other:?} to a scan"
                    )));
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            self.done = page.is_empty();
            self.page = page.into_iter();
        }
    }
}
