//! String commands: `GET`, `SET`, `DEL`, `EXISTS`, `MGET`, `MSET`, `TYPE`.

use weft_storage::Op;

use super::is;
use crate::redis::batch::Batch;
use crate::redis::resp::Reply;

/// A string command.
pub(in crate::redis) enum Strings {
    Get(Vec<u8>),
    Set {
        key: Vec<u8>,
        value: Vec<u8>,
        when: Option<Condition>,
        get: bool,
    },
    Del(Vec<Vec<u8>>),
    Exists(Vec<Vec<u8>>),
    MGet(Vec<Vec<u8>>),
    MSet(Vec<(Vec<u8>, Vec<u8>)>),
    Type(Vec<u8>),
}

/// When a `SET` applies.
#[derive(Clone, Copy)]
pub(in crate::redis) enum Condition {
    /// Only if the key is absent.
    Nx,
    /// Only if it is present.
    Xx,
}

impl Strings {
    /// Whether the command may write.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Strings::Set { .. } | Strings::Del(_) | Strings::MSet(_)
        )
    }
}

/// `SET key value [NX|XX] [GET]`; the expiry options are refused, weft keys never expire.
pub(super) fn parse_set(mut args: impl Iterator<Item = Vec<u8>>) -> Result<Strings, Reply> {
    let (Some(key), Some(value)) = (args.next(), args.next()) else {
        return Err(Reply::err("wrong number of arguments for 'set' command"));
    };
    let (mut when, mut get) = (None, false);
    for option in args {
        if is(&option, "NX") && when.is_none() {
            when = Some(Condition::Nx);
        } else if is(&option, "XX") && when.is_none() {
            when = Some(Condition::Xx);
        } else if is(&option, "GET") {
            get = true;
        } else if ["EX", "PX", "EXAT", "PXAT", "KEEPTTL"]
            .iter()
            .any(|o| is(&option, o))
        {
            return Err(Reply::err(
                "EX, PX, EXAT, PXAT and KEEPTTL are not supported: weft keys do not expire",
            ));
        } else {
            return Err(Reply::err("syntax error"));
        }
    }
    Ok(Strings::Set {
        key,
        value,
        when,
        get,
    })
}

pub(super) fn run(batch: &mut Batch<'_>, command: Strings) -> weft_storage::Result<Reply> {
    Ok(match command {
        Strings::Get(key) => batch.value(&key)?.map_or(Reply::Null, Reply::Bulk),
        Strings::Type(key) => Reply::Status(if batch.value(&key)?.is_some() {
            "string"
        } else {
            "none"
        }),
        Strings::Set {
            key,
            value,
            when,
            get,
        } => {
            let old = batch.value(&key)?;
            let go = match when {
                None => true,
                Some(Condition::Nx) => old.is_none(),
                Some(Condition::Xx) => old.is_some(),
            };
            if go {
                batch.write(key, Op::Put(value))?;
            }
            match (get, go) {
                (true, _) => old.map_or(Reply::Null, Reply::Bulk),
                (false, true) => Reply::Status("OK"),
                (false, false) => Reply::Null,
            }
        }
        Strings::Del(keys) => {
            let mut deleted = 0;
            for key in keys {
                if batch.value(&key)?.is_some() {
                    batch.write(key, Op::Delete)?;
                    deleted += 1;
                }
            }
            Reply::Integer(deleted)
        }
        Strings::Exists(keys) => {
            let mut present = 0;
            for key in &keys {
                present += i64::from(batch.value(key)?.is_some());
            }
            Reply::Integer(present)
        }
        Strings::MGet(keys) => Reply::Array(
            keys.iter()
                .map(|key| Ok(batch.value(key)?.map_or(Reply::Null, Reply::Bulk)))
                .collect::<weft_storage::Result<_>>()?,
        ),
        Strings::MSet(pairs) => {
            for (key, value) in pairs {
                batch.write(key, Op::Put(value))?;
            }
            Reply::Status("OK")
        }
    })
}
