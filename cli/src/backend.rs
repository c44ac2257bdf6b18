//! Where data commands go: through the running node's socket when there is one (it holds the
//! database), else straight to the store. Either way a command is one [`ApiRequest`] carried
//! out by [`api::execute`], so the output is identical.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use weft_node::Status;
use weft_node::api::{
    self, ApiError, ApiRequest, ApiResponse, Client, ClientError, ErrorKind, PAGE_KEYS,
};
use weft_node::config::ConfigFile;
use weft_storage::{NamespaceId, Op, Options, Store};

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

/// The value an answer of the given variant carries, or an error naming the odd answer.
macro_rules! answer {
    ($response:expr, $variant:ident) => {
        match $response {
            weft_node::api::ApiResponse::$variant(value) => anyhow::Ok(value),
            other => anyhow::bail!(
                "the node answered {other:?} to a {} request",
                stringify!($variant)
            ),
        }
    };
}
pub(crate) use answer;

impl Backend {
    /// The node on `dir` if one runs, else the store in `dir`.
    ///
    /// # Errors
    /// When neither can be reached.
    pub fn open(dir: &Path) -> anyhow::Result<Backend> {
        if let Some(mut client) = Client::connect(dir)? {
            let default_namespace = match client.call(&ApiRequest::Facts) {
                Ok(ApiResponse::Facts {
                    default_namespace, ..
                }) => default_namespace,
                Ok(other) => anyhow::bail!(
                    "the node on {} answered {other:?} to a facts request",
                    dir.display()
                ),
                Err(ClientError::Node(error)) => return Err(error.into()),
                Err(other) => return Err(other.into()),
            };
            return Ok(Backend::Node {
                client: RefCell::new(client),
                dir: dir.to_owned(),
                default_namespace,
            });
        }
        // The config's retention holds offline too, or a write here would keep what the node
        // trims.
        let options = ConfigFile::load(dir)?.store_options();
        let store = Store::open(dir, options).map_err(ApiError::from)?;
        Ok(Backend::Local(Box::new(store)))
    }

    /// Carries out `request`. A refusal is an [`ApiError`], whichever way the request went.
    ///
    /// # Errors
    /// [`ApiError`] when the replica refused or failed; socket failures.
    pub fn call(&self, request: ApiRequest) -> anyhow::Result<ApiResponse> {
        match self {
            Backend::Local(store) => Ok(api::execute(store, request).map_err(ApiError::from)?),
            Backend::Node { client, .. } => match client.borrow_mut().call(&request) {
                Ok(response) => Ok(response),
                Err(ClientError::Node(error)) => Err(error.into()),
                Err(other) => Err(other.into()),
            },
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
            Backend::Local(store) => Ok(store.validate(key, op).map_err(ApiError::from)?),
            // The node uses the default limits too; checking here keeps an import all-or-nothing.
            Backend::Node { .. } => Ok(Options::default()
                .validate(key, op)
                .map_err(ApiError::from)?),
        }
    }

    /// Whether a running node holds the replica (and so changes can be followed live).
    pub fn is_node(&self) -> bool {
        matches!(self, Backend::Node { .. })
    }

    /// The running node's status, or `None` when no node runs.
    pub fn status(&self) -> anyhow::Result<Option<Status>> {
        match self.call(ApiRequest::Status) {
            Ok(response) => Ok(Some(answer!(response, Status)?)),
            Err(e)
                if e.downcast_ref::<ApiError>()
                    .is_some_and(|e| e.kind == ErrorKind::NeedsNode) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The keys under `prefix` in order, with their values when asked for, a page at a time.
    pub fn scan(&self, ns: &NamespaceId, prefix: &[u8], values: bool) -> Pages<'_> {
        Pages {
            backend: self,
            ns: *ns,
            prefix: prefix.to_vec(),
            values,
            after: None,
            page: Vec::new().into_iter(),
            done: false,
        }
    }
}

/// A scan, fetched a page at a time.
pub struct Pages<'a> {
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
            let page = match self.backend.call(request).and_then(|r| answer!(r, Page)) {
                Ok(page) => page,
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
