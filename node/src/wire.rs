//! The bytes peers exchange: the catch-up protocol's requests and responses, the gossip push,
//! and the plain async functions that read and write them with a size cap.
//!
//! Every message is one postcard value. On a request-response stream the message is the whole
//! stream (the writer closes its side after it); gossip carries one message per publication.
//! The protocol version is in the protocol name ([`SYNC_PROTOCOL`]); a peer speaking another
//! version is simply not a sync peer. `docs/format.md` lists every field.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::{Deserialize, Serialize};
use weft_storage::tree::Hash;
use weft_storage::{AuthorId, Branch, ForkProof, NamespaceId, Run, SignedHead, SparseRun};

pub use crate::access::Cap;

/// The catch-up protocol's name and version.
pub const SYNC_PROTOCOL: &str = "/weft/sync/5";

/// The largest sync message read: a run's byte budget plus room for its framing and proof.
pub const MAX_MESSAGE: usize = RUN_BYTES + (1 << 20) + 64 * 1024;

/// The entry bytes a run may carry past its first entry. One entry always fits whatever its
/// size, since an entry is at most a 4 KiB key and a 1 MiB value plus a few bytes.
pub const RUN_BYTES: usize = 2 << 20;

/// The most entries a run request asks for.
pub const RUN_ENTRIES: u32 = 8192;

/// The most heads one response carries; a namespace with more authors is paged with `after`.
pub const HEADS_PER_RESPONSE: usize = 4096;

/// The most author ranges one [`Request::Ranges`] asks about.
pub const RANGES_PER_REQUEST: usize = 64;

/// A range of at most this many feeds is answered with its heads; a larger one is split. A
/// part of a split costs 49 bytes on the wire where a head costs about 140, so ranges are
/// split down to a few feeds.
pub const LEAF_HEADS: usize = 4;

/// The most parts a range is split into ([`RangeAnswer::Split`]).
pub const RANGE_PARTS: usize = 16;

/// The most fork proofs one heads response carries. Forks are rare, a replica keeps them only
/// for feeds it holds, and a peer that missed one learns it from gossip or the next exchange.
pub const FORKS_PER_RESPONSE: usize = 64;

/// The entry bytes a gossip push carries; past that it carries the head alone and receivers
/// fetch the entries by catch-up.
pub const PUSH_BYTES: usize = 64 * 1024;

/// The largest gossip message: a push at its cap plus framing and the seal
/// ([`crate::access::seal`]).
pub const MAX_PUSH: usize = PUSH_BYTES + 4096 + crate::access::SEAL_OVERHEAD;

/// A namespace as named on the wire: `blake3("weft/topic/v1" ‖ namespace id)`. Peers that do
/// not hold a namespace learn nothing of its id from the traffic about it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct Topic(pub [u8; 32]);

impl Topic {
    /// The topic of `ns`.
    pub fn of(ns: &NamespaceId) -> Topic {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"weft/topic/v1");
        hasher.update(ns.as_bytes());
        Topic(*hasher.finalize().as_bytes())
    }

    /// The gossipsub topic string: the hash's first 16 bytes in hex. Every copy of every
    /// message carries it, and 128 bits keep one namespace's topic from being another's.
    pub fn gossip_name(&self) -> String {
        weft_storage::ids::to_hex(&self.0[..16])
    }
}

/// A signed head without its namespace, which the topic already names. The signature covers
/// the namespace, so a head moved to another topic does not verify.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct WireHead {
    /// The feed's author.
    pub author: AuthorId,
    /// Entries in the feed.
    pub length: u64,
    /// The feed's merkle root.
    pub root: Hash,
    /// The author's signature.
    #[serde(with = "signature")]
    pub signature: [u8; 64],
}

impl WireHead {
    /// The head as sent.
    pub fn from_head(head: &SignedHead) -> WireHead {
        WireHead {
            author: head.author,
            length: head.length,
            root: head.root,
            signature: head.signature,
        }
    }

    /// The head in `ns` (unverified).
    pub fn into_head(self, ns: NamespaceId) -> SignedHead {
        SignedHead {
            namespace: ns,
            author: self.author,
            length: self.length,
            root: self.root,
            signature: self.signature,
        }
    }
}

/// A run of a feed on the wire.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct WireRun {
    /// The head it is proven against.
    pub head: WireHead,
    /// Its first entry's index.
    pub start: u64,
    /// The encoded entries.
    pub entries: Vec<Vec<u8>>,
    /// The extension nodes from the run's end to the head.
    pub extension: Vec<Hash>,
}

impl WireRun {
    /// The run as sent.
    pub fn from_run(run: Run) -> WireRun {
        WireRun {
            head: WireHead::from_head(&run.head),
            start: run.start,
            entries: run.entries,
            extension: run.extension,
        }
    }

    /// The run in `ns` (unverified).
    pub fn into_run(self, ns: NamespaceId) -> Run {
        Run {
            head: self.head.into_head(ns),
            start: self.start,
            entries: self.entries,
            extension: self.extension,
        }
    }
}

/// Some entries of a feed with their proof, for a sparse replica ([`weft_storage::SparseRun`]).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct WireSparse {
    /// The head they are proven against.
    pub head: WireHead,
    /// Where the asker's checked prefix ends.
    pub start: u64,
    /// Every wanted entry before this index is in the run or was held before it.
    pub end: u64,
    /// The entries, by index, increasing.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// The proof nodes, in [`weft_storage::tree::SparseShape::proof_nodes`] order.
    pub nodes: Vec<Hash>,
}

impl WireSparse {
    /// The run as sent.
    pub fn from_run(run: SparseRun) -> WireSparse {
        WireSparse {
            head: WireHead::from_head(&run.head),
            start: run.start,
            end: run.end,
            entries: run.entries,
            nodes: run.nodes,
        }
    }

    /// The run in `ns` (unverified).
    pub fn into_run(self, ns: NamespaceId) -> SparseRun {
        SparseRun {
            head: self.head.into_head(ns),
            start: self.start,
            end: self.end,
            entries: self.entries,
            nodes: self.nodes,
        }
    }
}

/// A catch-up request.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Request {
    /// Every feed head the peer holds in a namespace, by author order after `after`.
    Heads {
        /// The namespace.
        topic: Topic,
        /// Proof that the asker knows the namespace ([`Cap`]).
        cap: Cap,
        /// Page after this author.
        after: Option<AuthorId>,
        /// On a first page: the asker's [`crate::sync::heads_digest`] of the namespace. A
        /// server whose own is the same answers an empty page: nothing changed.
        digest: Option<[u8; 32]>,
    },
    /// Entries of a feed from `start`, at most `max_entries` (and [`RUN_BYTES`]).
    Run {
        /// The namespace.
        topic: Topic,
        /// Proof that the asker knows the namespace ([`Cap`]).
        cap: Cap,
        /// The feed's author.
        author: AuthorId,
        /// The first entry wanted.
        start: u64,
        /// At most this many.
        max_entries: u32,
    },
    /// The entries of a feed from `start` whose key lies under one of `prefixes`, every held
    /// version of each such key, at most `max_entries` (and [`RUN_BYTES`]).
    Sparse {
        /// The namespace.
        topic: Topic,
        /// Proof that the asker knows the namespace ([`Cap`]).
        cap: Cap,
        /// The feed's author.
        author: AuthorId,
        /// Where the asker's checked prefix ends.
        start: u64,
        /// The key prefixes wanted.
        prefixes: Vec<Vec<u8>>,
        /// At most this many entries.
        max_entries: u32,
    },
    /// The live versions of one key, each proven against its author's head.
    Key {
        /// The namespace.
        topic: Topic,
        /// Proof that the asker knows the namespace ([`Cap`]).
        cap: Cap,
        /// The key.
        key: Vec<u8>,
    },
    /// A step of the asker's search for where the server's copy of a feed parts from its own
    /// ([`weft_storage::ForkSearch`]): a head or entries the server sent did not fit what the
    /// asker holds, and the two may hold two branches of one author's feed.
    Fork {
        /// The namespace.
        topic: Topic,
        /// Proof that the asker knows the namespace ([`Cap`]).
        cap: Cap,
        /// The feed's author.
        author: AuthorId,
        /// What the asker wants of the server's copy.
        probe: ForkProbe,
    },
    /// The heads, or digests of parts, of each of `ranges` of a namespace's feeds: the next
    /// step of a heads exchange after [`Response::Ranges`] showed where two replicas differ.
    Ranges {
        /// The namespace.
        topic: Topic,
        /// Proof that the asker knows the namespace ([`Cap`]).
        cap: Cap,
        /// At most [`RANGES_PER_REQUEST`].
        ranges: Vec<AuthorRange>,
    },
}

/// What a [`Request::Fork`] asks of the server's copy of a feed.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum ForkProbe {
    /// The hashes of these nodes of its tree, each `(depth, offset)`; at most
    /// [`weft_storage::SEARCH_NODES`].
    Nodes(Vec<(u32, u64)>),
    /// Its history from this index on, where the asker found the two part.
    Branch(u64),
}

/// The answer to a [`Request::Fork`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum ForkAnswer {
    /// The hashes of the nodes asked for, in order.
    Nodes(Vec<Hash>),
    /// The server's history from the index asked for.
    Branch(Box<Branch>),
    /// The server does not hold what was asked in full: the feed, or that much of it.
    NotHeld,
}

impl Request {
    /// Its kind, as a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Heads { .. } => "heads",
            Request::Ranges { .. } => "ranges",
            Request::Run { .. } => "run",
            Request::Sparse { .. } => "sparse",
            Request::Key { .. } => "key",
            Request::Fork { .. } => "fork",
        }
    }

    /// The namespace the request is about.
    pub fn topic(&self) -> Topic {
        self.credentials().0
    }

    /// The namespace asked about and the capability presented for it.
    pub fn credentials(&self) -> (Topic, Cap) {
        match self {
            Request::Heads { topic, cap, .. }
            | Request::Ranges { topic, cap, .. }
            | Request::Run { topic, cap, .. }
            | Request::Sparse { topic, cap, .. }
            | Request::Key { topic, cap, .. }
            | Request::Fork { topic, cap, .. } => (*topic, *cap),
        }
    }
}

/// A catch-up response.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Response {
    /// Heads of a namespace; `more` when another page follows.
    Heads {
        /// Up to [`HEADS_PER_RESPONSE`] heads, in author order.
        heads: Vec<WireHead>,
        /// Whether there are more after the last.
        more: bool,
        /// Forks the server knows in the namespace (at most [`FORKS_PER_RESPONSE`]), so a
        /// peer that missed the gossip freezes the feed too.
        forks: Vec<ForkProof>,
    },
    /// A run, or `None` when nothing from the start asked for is held.
    Run(Option<WireRun>),
    /// The request was not served.
    Refused(Refusal),
    /// A sparse run, or `None` when nothing wanted from the start asked for is held.
    Sparse(Option<WireSparse>),
    /// The live versions of the key asked for, one run per author.
    Key(Vec<WireSparse>),
    /// What a fork search asked of the server's copy of a feed.
    Fork(ForkAnswer),
    /// One answer per range asked ([`Request::Ranges`]), or, to a [`Request::Heads`] whose
    /// digest differs from the server's, one answer for every feed.
    Ranges {
        /// In the order of the ranges asked.
        answers: Vec<RangeAnswer>,
        /// As in [`Response::Heads`], in answer to a [`Request::Heads`] only.
        forks: Vec<ForkProof>,
    },
}

/// Feeds of a namespace by author order: those after `after` (from the first when `None`) up
/// to and including `until` (to the last when `None`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct AuthorRange {
    /// The range starts after this author.
    pub after: Option<AuthorId>,
    /// The range ends with this author.
    pub until: Option<AuthorId>,
}

impl AuthorRange {
    /// Whether `author` lies in the range.
    pub fn contains(&self, author: &AuthorId) -> bool {
        self.after.is_none_or(|after| *author > after)
            && self.until.is_none_or(|until| *author <= until)
    }
}

/// What a server holds in one [`AuthorRange`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum RangeAnswer {
    /// Every head in the range, in author order: at most [`LEAF_HEADS`].
    Heads(Vec<WireHead>),
    /// The range cut into 2 to [`RANGE_PARTS`] consecutive parts, each named by its last
    /// author (the last part by the range's own end) with the digest of the feeds in it.
    Split(Vec<RangePart>),
}

/// One part of a split range ([`RangeAnswer::Split`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RangePart {
    /// The part ends with this author, or with the range.
    pub until: Option<AuthorId>,
    /// The digest of the server's feeds in the part (the range digest of `docs/format.md`).
    pub digest: [u8; 16],
}

impl Response {
    /// Its kind, as a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Response::Heads { .. } => "heads",
            Response::Run(_) => "run",
            Response::Refused(_) => "refused",
            Response::Sparse(_) => "sparse",
            Response::Key(_) => "key",
            Response::Fork(_) => "fork",
            Response::Ranges { .. } => "ranges",
        }
    }
}

/// Why a request was not served: what a peer learns, rather than our error text.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Refusal {
    /// This node does not hold the namespace, or does not replicate what was asked.
    NotShared,
    /// This node is too busy; ask again later.
    Busy,
    /// This node failed to read its store.
    Internal,
}

/// A gossip publication, sealed for the namespace ([`crate::access::seal`]) before it is
/// published.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Gossip {
    /// A feed's new head and, when they fit [`PUSH_BYTES`], the entries from `start` up to it.
    Push(WireRun),
    /// A fork just found, so every peer freezes the feed.
    Fork(Box<ForkProof>),
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// More bytes than the cap.
    #[error("message over {max} bytes")]
    TooLarge {
        /// The cap.
        max: usize,
    },
    /// Bytes that are not a message.
    #[error("malformed message: {0}")]
    Malformed(#[from] postcard::Error),
    /// The stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<WireError> for std::io::Error {
    fn from(error: WireError) -> Self {
        match error {
            WireError::Io(e) => e,
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other),
        }
    }
}

/// Decodes one message from `bytes`, which must hold nothing else.
///
/// # Errors
/// [`WireError::TooLarge`] past `max`, [`WireError::Malformed`] when the bytes are not one `T`.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], max: usize) -> Result<T, WireError> {
    if bytes.len() > max {
        return Err(WireError::TooLarge { max });
    }
    let (value, rest) = postcard::take_from_bytes(bytes)?;
    if !rest.is_empty() {
        return Err(WireError::Malformed(
            postcard::Error::DeserializeBadEncoding,
        ));
    }
    Ok(value)
}

/// Encodes one message.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    postcard::to_allocvec(message).expect("wire messages always encode")
}

/// Reads a whole stream as one message of at most `max` bytes, never buffering more than
/// `max + 1`.
///
/// Cancel safety: not cancel safe; a cancelled read loses the bytes read so far.
///
/// # Errors
/// As [`decode`], and stream failures; a stream that closes before any byte is
/// [`WireError::Io`] of kind `UnexpectedEof` (no answer, not a malformed one).
pub async fn read_message<T, R>(io: &mut R, max: usize) -> Result<T, WireError>
where
    T: for<'de> Deserialize<'de>,
    R: AsyncRead + Unpin,
{
    let mut bytes = Vec::new();
    io.take(max as u64 + 1).read_to_end(&mut bytes).await?;
    if bytes.is_empty() {
        // No message at all is no answer, not a bad one: what an honest peer sends when it
        // drops a request it cannot serve (shutting down, say), so it must not be blamed.
        return Err(WireError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the stream closed before a message",
        )));
    }
    decode(&bytes, max)
}

/// Writes one message and closes the writing side.
///
/// Cancel safety: not cancel safe; a cancelled write leaves a truncated message.
///
/// # Errors
/// Stream failures.
pub async fn write_message<T, W>(io: &mut W, message: &T) -> Result<(), WireError>
where
    T: Serialize,
    W: AsyncWrite + Unpin,
{
    io.write_all(&encode(message)).await?;
    io.close().await?;
    Ok(())
}

mod signature {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 64], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 64], D::Error> {
        let bytes: &[u8] = Deserialize::deserialize(deserializer)?;
        bytes
            .try_into()
            .map_err(|_| serde::de::Error::invalid_length(bytes.len(), &"64 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> WireRun {
        WireRun {
            head: WireHead {
                author: AuthorId([1; 32]),
                length: 5,
                root: [2; 32],
                signature: [3; 64],
            },
            start: 2,
            entries: vec![vec![4; 130], vec![5; 130], vec![6; 130]],
            extension: vec![[7; 32]],
        }
    }

    #[test]
    fn messages_round_trip_through_a_stream() {
        let messages = [
            Response::Run(Some(run())),
            Response::Heads {
                heads: vec![run().head],
                more: true,
                forks: Vec::new(),
            },
            Response::Refused(Refusal::Busy),
            Response::Run(None),
            Response::Sparse(Some(WireSparse {
                head: run().head,
                start: 3,
                end: 9,
                entries: vec![(4, vec![1; 40]), (7, vec![2; 40])],
                nodes: vec![[8; 32]; 3],
            })),
            Response::Key(Vec::new()),
        ];
        for message in messages {
            let mut sent = Vec::new();
            futures::executor::block_on(write_message(&mut sent, &message)).expect("write");
            let mut stream = futures::io::Cursor::new(sent);
            let read: Response =
                futures::executor::block_on(read_message(&mut stream, MAX_MESSAGE)).expect("read");
            assert_eq!(read, message);
        }
    }

    #[test]
    fn entries_cost_a_length_byte_or_two_on_the_wire() {
        let message = Response::Run(Some(run()));
        let bytes = encode(&message);
        let payload = 3 * 130 + 32 + 32 + 32 + 64;
        assert!(
            bytes.len() <= payload + 16,
            "{} bytes for {payload} of payload",
            bytes.len()
        );
    }

    #[test]
    fn garbage_truncation_trailing_bytes_and_oversize_are_refused() {
        let good = encode(&Response::Run(Some(run())));
        assert!(matches!(
            decode::<Response>(&[0xff, 0x13, 0x00], MAX_MESSAGE),
            Err(WireError::Malformed(_))
        ));
        for cut in 0..good.len() {
            assert!(
                decode::<Response>(&good[..cut], MAX_MESSAGE).is_err(),
                "cut {cut}"
            );
        }
        let mut long = good.clone();
        long.push(0);
        assert!(decode::<Response>(&long, MAX_MESSAGE).is_err());
        assert!(matches!(
            decode::<Response>(&good, 10),
            Err(WireError::TooLarge { max: 10 })
        ));
        let huge = vec![0u8; 100];
        let mut stream = futures::io::Cursor::new(huge);
        let read = futures::executor::block_on(read_message::<Response, _>(&mut stream, 50));
        assert!(matches!(read, Err(WireError::TooLarge { max: 50 })));
    }

    #[test]
    fn topics_hide_the_namespace_id() {
        let ns = NamespaceId([9; 32]);
        let topic = Topic::of(&ns);
        assert_ne!(topic.0, ns.0);
        assert_eq!(topic, Topic::of(&ns));
        assert_ne!(topic, Topic::of(&NamespaceId([8; 32])));
        assert!(!topic.gossip_name().contains(&ns.to_string()));
    }
}
