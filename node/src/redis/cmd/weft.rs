//! weft's own commands: `WEFT.SIBLINGS key`, every live version of a key.

use crate::redis::batch::Batch;
use crate::redis::resp::Reply;

pub(super) fn siblings(batch: &Batch<'_>, key: &[u8]) -> weft_storage::Result<Reply> {
    Ok(Reply::Array(
        batch
            .store
            .get_all(&batch.ns, key)?
            .into_iter()
            .map(|version| {
                Reply::Map(vec![
                    (
                        Reply::text("author"),
                        Reply::text(version.id.author.to_string()),
                    ),
                    (Reply::text("seq"), Reply::Integer(version.id.seq as i64)),
                    (
                        Reply::text("timestamp"),
                        Reply::text(weft_storage::format_timestamp(version.timestamp)),
                    ),
                    (
                        Reply::text("value"),
                        version.value.map_or(Reply::Null, Reply::Bulk),
                    ),
                ])
            })
            .collect(),
    ))
}
