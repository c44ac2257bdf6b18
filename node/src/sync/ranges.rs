//! Heads reconciliation by ranges of author order, after range-based set reconciliation
//! (Negentropy): two replicas whose digests of a namespace differ find the feeds that differ
//! by comparing digests of ranges of feeds, splitting each range that differs, down to ranges
//! small enough to send whole. An exchange costs about the number of feeds that differ times
//! the log of the number of feeds, where sending every head costs the number of feeds.
//!
//! The server splits its own feeds of a range into parts of equal count and digests each
//! ([`answer_range`]); the asker digests its feeds over the same bounds and asks again about
//! the parts that differ ([`differing`]).

use weft_storage::HeldFeed;

use crate::wire::{AuthorRange, LEAF_HEADS, RANGE_PARTS, RangeAnswer, RangePart, WireHead};

/// What the digests of a range and of a whole namespace take of one feed: its head and how
/// much of it is held, so that a replica holding less of a feed sees it differ.
pub(super) fn digest_feed(hasher: &mut blake3::Hasher, feed: &HeldFeed) {
    hasher.update(feed.head.author.as_bytes());
    hasher.update(&feed.head.length.to_le_bytes());
    hasher.update(&feed.head.root);
    hasher.update(&feed.held.to_le_bytes());
}

/// The digest of `feeds`, consecutive in author order: one part of a split range. Sixteen
/// bytes: a collision only hides a difference from the replica that made it up.
pub(super) fn range_digest(feeds: &[HeldFeed]) -> [u8; 16] {
    let mut hasher = blake3::Hasher::new_derive_key("weft 2026 heads range v1");
    hasher.update(&(feeds.len() as u64).to_le_bytes());
    for feed in feeds {
        digest_feed(&mut hasher, feed);
    }
    let mut digest = [0; 16];
    digest.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    digest
}

/// The feeds of `sorted` (in author order) that lie in `range`.
pub(super) fn within<'a>(sorted: &'a [HeldFeed], range: &AuthorRange) -> &'a [HeldFeed] {
    let end_of = |bound: Option<_>, none: usize| {
        bound.map_or(none, |author| {
            sorted.partition_point(|feed| feed.head.author <= author)
        })
    };
    let start = end_of(range.after, 0);
    let end = end_of(range.until, sorted.len());
    &sorted[start..end.max(start)]
}

/// What a server holding `sorted` (in author order) answers about `range`: its heads when
/// they are few, else the range cut into parts of equal count, each with its digest.
pub(super) fn answer_range(sorted: &[HeldFeed], range: &AuthorRange) -> RangeAnswer {
    let feeds = within(sorted, range);
    if feeds.len() <= LEAF_HEADS {
        return RangeAnswer::Heads(
            feeds
                .iter()
                .map(|feed| WireHead::from_head(&feed.head))
                .collect(),
        );
    }
    // More than LEAF_HEADS feeds make at least two parts, and at most RANGE_PARTS.
    let chunks: Vec<&[HeldFeed]> = feeds.chunks(feeds.len().div_ceil(RANGE_PARTS)).collect();
    let last = chunks.len() - 1;
    RangeAnswer::Split(
        chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| RangePart {
                until: if i == last {
                    range.until
                } else {
                    chunk.last().map(|feed| feed.head.author)
                },
                digest: range_digest(chunk),
            })
            .collect(),
    )
}

/// Whether `answer` is one an honest server could give about `range`: heads few, in order
/// and inside it, or 2 to [`RANGE_PARTS`] parts that end in order inside it, the last where
/// the range ends.
pub(super) fn well_formed(range: &AuthorRange, answer: &RangeAnswer) -> bool {
    match answer {
        RangeAnswer::Heads(heads) => {
            heads.len() <= LEAF_HEADS
                && heads.windows(2).all(|pair| pair[0].author < pair[1].author)
                && heads.iter().all(|head| range.contains(&head.author))
        }
        RangeAnswer::Split(parts) => {
            let Some((last, inner)) = parts.split_last() else {
                return false;
            };
            // An open end sorts after every author.
            let ends: Vec<_> = parts
                .iter()
                .map(|part| (part.until.is_none(), part.until))
                .collect();
            (2..=RANGE_PARTS).contains(&parts.len())
                && last.until == range.until
                && inner
                    .iter()
                    .all(|part| part.until.is_some_and(|until| range.contains(&until)))
                && ends.windows(2).all(|pair| pair[0] < pair[1])
        }
    }
}

/// The parts of `range`, as a server split it into `parts`, where this replica's `sorted`
/// feeds (in author order) differ from the server's.
pub(super) fn differing(
    sorted: &[HeldFeed],
    range: &AuthorRange,
    parts: &[RangePart],
) -> Vec<AuthorRange> {
    let mut after = range.after;
    let mut differ = Vec::new();
    for part in parts {
        let sub = AuthorRange {
            after,
            until: part.until,
        };
        if range_digest(within(sorted, &sub)) != part.digest {
            differ.push(sub);
        }
        after = part.until;
    }
    differ
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use weft_storage::{NamespaceId, SignedHead};

    use super::*;

    fn feeds(count: u8, length: u64) -> Vec<HeldFeed> {
        let mut feeds: Vec<HeldFeed> = (0..count)
            .map(|i| HeldFeed {
                head: SignedHead::sign(
                    &SigningKey::from_bytes(&[i; 32]),
                    NamespaceId([1; 32]),
                    length,
                    [i; 32],
                ),
                held: length,
            })
            .collect();
        feeds.sort_by_key(|feed| feed.head.author);
        feeds
    }

    /// Follows the splits of a server holding `server` from the whole namespace down to the
    /// heads the asker holding `asker` gets: those heads and the ranges asked on the way.
    fn reconcile(server: &[HeldFeed], asker: &[HeldFeed]) -> (Vec<WireHead>, usize) {
        let (mut heads, mut asked) = (Vec::new(), 0);
        let mut ranges = vec![AuthorRange::default()];
        while let Some(range) = ranges.pop() {
            asked += 1;
            let answer = answer_range(server, &range);
            assert!(well_formed(&range, &answer), "{answer:?} about {range:?}");
            match answer {
                RangeAnswer::Heads(more) => heads.extend(more),
                RangeAnswer::Split(parts) => ranges.extend(differing(asker, &range, &parts)),
            }
        }
        (heads, asked)
    }

    #[test]
    fn one_changed_feed_of_many_is_found_in_few_steps() {
        let server = feeds(250, 3);
        let mut asker = server.clone();
        let changed = asker[117].head.author;
        asker[117].held = 2;
        let (heads, asked) = reconcile(&server, &asker);
        assert!(
            heads.iter().any(|head| head.author == changed),
            "the changed feed's head is sent"
        );
        assert!(heads.len() <= LEAF_HEADS, "{} heads sent", heads.len());
        assert!(asked <= 3, "{asked} ranges asked about");
    }

    #[test]
    fn a_feed_only_the_server_holds_is_found() {
        let server = feeds(100, 1);
        let mut asker = server.clone();
        let missing = asker.remove(40).head.author;
        let (heads, _) = reconcile(&server, &asker);
        assert!(heads.iter().any(|head| head.author == missing));
    }

    #[test]
    fn replicas_that_hold_the_same_ask_about_nothing_past_the_first_split() {
        let server = feeds(100, 1);
        let (heads, asked) = reconcile(&server, &server);
        assert!(heads.is_empty());
        assert_eq!(asked, 1);
    }

    #[test]
    fn answers_no_honest_server_gives_are_told_apart() {
        let server = feeds(40, 1);
        let whole = AuthorRange::default();
        let RangeAnswer::Split(parts) = answer_range(&server, &whole) else {
            panic!("40 feeds are split");
        };
        let mut reversed = parts.clone();
        reversed.swap(0, 1);
        let one = vec![parts[0]];
        let short = parts[..parts.len() - 1].to_vec();
        for bad in [reversed, one, short] {
            assert!(!well_formed(&whole, &RangeAnswer::Split(bad)));
        }
        let narrow = AuthorRange {
            after: Some(server[10].head.author),
            until: Some(server[20].head.author),
        };
        let outside = vec![WireHead::from_head(&server[5].head)];
        assert!(!well_formed(&narrow, &RangeAnswer::Heads(outside)));
        assert!(well_formed(&narrow, &answer_range(&server, &narrow)));
    }
}
