//! `weft import`: JSON lines into the replica, checked in full before the first write.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};
use weft_storage::{NamespaceId, Op};

use weft_node::api::ApiRequest;

use crate::backend::{Backend, answer};

use crate::output::get_bytes;

/// Records per commit (and per signature).
const BATCH: usize = 1000;

/// Key and value bytes past which a batch is committed early, so that one batch stays well
/// inside the local API's frame limit whatever the record sizes.
const BATCH_BYTES: usize = 16 << 20;

/// Imports the JSON lines of `file` (stdin for `None` or `-`) in batches of [`BATCH`]. Every
/// line is parsed and checked against the limits before anything is written, so a bad line
/// changes nothing. Returns the number of records imported.
pub fn import(store: &Backend, ns: &NamespaceId, file: Option<PathBuf>) -> anyhow::Result<u64> {
    // Stdin can be read once only, and the file is read twice: spool it next to the database
    // (same disk, same permissions), where it is removed when dropped.
    let spooled;
    let path = match file {
        Some(path) if path.as_os_str() != "-" => path,
        _ => {
            let mut spool = tempfile::NamedTempFile::new_in(store.dir())
                .context("creating a spool file for stdin")?;
            io::copy(&mut io::stdin().lock(), &mut spool).context("reading stdin")?;
            spooled = spool.into_temp_path();
            spooled.to_path_buf()
        }
    };

    let mut total = 0u64;
    for_each_record(&path, |line, key, value| {
        store
            .validate(&key, &Op::Put(value))
            .with_context(|| format!("line {line}"))?;
        total += 1;
        Ok(())
    })?;

    let progress = if io::stderr().is_terminal() {
        ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} records, {per_sec}, eta {eta}")
                .expect("the template is valid"),
        )
    } else {
        ProgressBar::hidden()
    };
    let mut batch = Vec::with_capacity(BATCH);
    let mut bytes = 0;
    for_each_record(&path, |_, key, value| {
        bytes += key.len() + value.len();
        batch.push((key, Op::Put(value)));
        if batch.len() == BATCH || bytes > BATCH_BYTES {
            progress.inc(batch.len() as u64);
            write(store, ns, std::mem::take(&mut batch))?;
            bytes = 0;
        }
        Ok(())
    })?;
    progress.inc(batch.len() as u64);
    write(store, ns, batch)?;
    progress.finish_and_clear();
    Ok(total)
}

fn write(
    store: &Backend,
    ns: &NamespaceId,
    ops: Vec<(Vec<u8>, Op<Vec<u8>>)>,
) -> anyhow::Result<()> {
    if !ops.is_empty() {
        answer!(store.call(ApiRequest::Write { ns: *ns, ops })?, Written)?;
    }
    Ok(())
}

/// Calls `each` with the line number, key and value of every record; blank lines are skipped.
fn for_each_record(
    path: &Path,
    mut each: impl FnMut(usize, Vec<u8>, Vec<u8>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let number = index + 1;
        let line = line.with_context(|| format!("reading line {number}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let (key, value) = parse_record(&line).with_context(|| format!("line {number}"))?;
        each(number, key, value)?;
    }
    Ok(())
}

/// One `{"key": …, "value": …}` line (or `key_b64` / `value_b64`).
fn parse_record(line: &str) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let object: Map<String, Value> = serde_json::from_str(line).context("not a JSON object")?;
    if let Some(unknown) = object
        .keys()
        .find(|k| !["key", "key_b64", "value", "value_b64"].contains(&k.as_str()))
    {
        bail!("unknown field {unknown:?} (expected key or key_b64, and value or value_b64)");
    }
    let field = |name| get_bytes(&object, name).map_err(anyhow::Error::msg);
    let key = field("key")?.context("missing \"key\" (or \"key_b64\")")?;
    let value = field("value")?.context("missing \"value\" (or \"value_b64\")")?;
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_and_base64_records() {
        assert_eq!(
            parse_record(r#"{"key":"a","value":"b"}"#).expect("parses"),
            (b"a".to_vec(), b"b".to_vec())
        );
        assert_eq!(
            parse_record(r#"{"key_b64":"/w==","value_b64":"AA=="}"#).expect("parses"),
            (vec![0xff], vec![0])
        );
    }

    #[test]
    fn refuses_what_it_cannot_read_exactly() {
        for bad in [
            r#"{"key":"a"}"#,
            r#"{"value":"b"}"#,
            r#"{"key":"a","value":"b","ttl":3}"#,
            "[1,2]",
            "{",
            r#"{"key":"a","value":5}"#,
        ] {
            assert!(parse_record(bad).is_err(), "{bad} parsed");
        }
    }
}
