//! Listing keys: `KEYS`, `SCAN` and `DBSIZE`.

use super::{Out, Page, is};
use crate::redis::batch::Batch;
use crate::redis::connection::Connection;
use crate::redis::resp::{self, Reply};

/// Keys a `SCAN` looks at when no `COUNT` is given, as Redis.
const SCAN_COUNT: usize = 10;

/// A key-listing command.
pub(in crate::redis) enum Keys {
    /// `KEYS pattern`.
    Matching(Vec<u8>),
    /// `SCAN`: keys after `after` matching `pattern`, looking at `count` keys.
    Scan {
        after: Option<Vec<u8>>,
        pattern: Option<Vec<u8>>,
        count: usize,
    },
    /// `DBSIZE`.
    DbSize,
}

impl Connection {
    /// The scan asked for, or `None` when no key can match (a `TYPE` other than string).
    pub(super) fn parse_scan(
        &self,
        mut args: impl Iterator<Item = Vec<u8>>,
    ) -> Result<Option<Keys>, Reply> {
        let cursor = args.next().unwrap_or_default();
        let cursor: u64 = std::str::from_utf8(&cursor)
            .ok()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| Reply::err("invalid cursor"))?;
        // An unknown cursor (forgotten, or from another connection) starts over: SCAN may
        // return a key twice, never miss one.
        let after = self.cursors.get(&cursor).cloned();
        let (mut pattern, mut count, mut strings_only) = (None, SCAN_COUNT, false);
        while let Some(option) = args.next() {
            let value = args.next().ok_or_else(|| Reply::err("syntax error"))?;
            if is(&option, "MATCH") {
                pattern = Some(value);
            } else if is(&option, "COUNT") {
                count = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|c| c.parse().ok())
                    .filter(|&c| c > 0)
                    .ok_or_else(|| Reply::err("syntax error"))?;
            } else if is(&option, "TYPE") {
                // Every weft value is a string: no key has another type.
                strings_only |= !is(&value, "string");
            } else {
                return Err(Reply::err("syntax error"));
            }
        }
        if strings_only {
            return Ok(None);
        }
        Ok(Some(Keys::Scan {
            after,
            pattern,
            count: count.min(100_000),
        }))
    }
}

pub(super) fn run(batch: &mut Batch<'_>, command: Keys) -> weft_storage::Result<Out> {
    let reply = match command {
        Keys::Matching(pattern) => Reply::Array(
            matching(batch, &pattern, None, usize::MAX)?
                .0
                .into_iter()
                .map(Reply::Bulk)
                .collect(),
        ),
        Keys::Scan {
            after,
            pattern,
            count,
        } => {
            let pattern = pattern.unwrap_or_else(|| b"*".to_vec());
            let (keys, next) = matching(batch, &pattern, after.as_deref(), count)?;
            return Ok(Out::Page(keys, next));
        }
        Keys::DbSize => {
            let mut count = 0;
            for row in batch.store.scan(&batch.ns, b"", false)? {
                row?;
                count += 1;
            }
            Reply::Integer(count)
        }
    };
    Ok(Out::Reply(reply))
}

/// Keys matching `pattern` after `after`, looking at no more than `examine` keys: the keys
/// and, when it stopped early, the last key looked at. weft's own records are never listed:
/// the store's scan leaves them out.
fn matching(
    batch: &Batch<'_>,
    pattern: &[u8],
    after: Option<&[u8]>,
    examine: usize,
) -> weft_storage::Result<Page> {
    // The pattern's literal start narrows the scan to a prefix.
    let literal = pattern
        .iter()
        .position(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
        .unwrap_or(pattern.len());
    let mut keys = Vec::new();
    let mut last: Option<Vec<u8>> = None;
    let rows = batch
        .store
        .scan_after(&batch.ns, &pattern[..literal], after, false)?;
    for (examined, row) in rows.enumerate() {
        let (key, _) = row?;
        if examined == examine {
            // There is more: go on after the last key looked at.
            return Ok((keys, last));
        }
        if resp::glob_match(pattern, &key) {
            keys.push(key.clone());
        }
        last = Some(key);
    }
    Ok((keys, None))
}
