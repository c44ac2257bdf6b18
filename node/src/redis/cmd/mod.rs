//! The commands, a file per family: connection and server commands (`server.rs`), string
//! commands (`strings.rs`), key listing (`keys.rs`) and weft's own (`weft.rs`). Each family
//! parses its arguments into a command the store job runs ([`Data`]) or answers at once.

mod keys;
mod server;
mod strings;
mod weft;

pub(super) use keys::Keys;
pub(super) use strings::Strings;

use super::batch::Batch;
use super::connection::Connection;
use super::resp::Reply;

/// What a command needs to be answered.
pub(super) enum Slot {
    /// Its reply, already known.
    Ready(Reply),
    /// A store command.
    Data(Data),
}

/// A command that reads or writes the store.
pub(super) enum Data {
    Strings(Strings),
    Keys(Keys),
    /// `WEFT.SIBLINGS key`.
    Siblings(Vec<u8>),
}

impl Data {
    /// Whether the command may write.
    pub fn writes(&self) -> bool {
        matches!(self, Data::Strings(command) if command.writes())
    }

    /// Whether it reads many keys, so that the batch's pending writes must commit first.
    pub fn reads_many(&self) -> bool {
        matches!(self, Data::Keys(_) | Data::Siblings(_))
    }

    /// Runs the command in `batch`.
    pub fn run(self, batch: &mut Batch<'_>) -> weft_storage::Result<Out> {
        match self {
            Data::Strings(command) => strings::run(batch, command).map(Out::Reply),
            Data::Keys(command) => keys::run(batch, command),
            Data::Siblings(key) => weft::siblings(batch, &key).map(Out::Reply),
        }
    }
}

/// Keys, and the key to go on after when there are more.
pub(super) type Page = (Vec<Vec<u8>>, Option<Vec<u8>>);

/// A store job's answer to one [`Data`] command.
pub(super) enum Out {
    Reply(Reply),
    /// A `SCAN` page and the key to go on after, if any.
    Page(Vec<Vec<u8>>, Option<Vec<u8>>),
}

/// The commands this front end knows, for `COMMAND COUNT`.
pub(super) const COMMANDS: [&str; 20] = [
    "PING",
    "ECHO",
    "HELLO",
    "AUTH",
    "SELECT",
    "GET",
    "SET",
    "DEL",
    "EXISTS",
    "MGET",
    "MSET",
    "KEYS",
    "SCAN",
    "DBSIZE",
    "TYPE",
    "INFO",
    "COMMAND",
    "CLIENT",
    "QUIT",
    "WEFT.SIBLINGS",
];

/// Whether `arg` is `word`, ignoring case, as Redis reads command names and options.
pub(super) fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

impl Connection {
    /// Answers a connection command at once, or says which store command it is.
    pub(super) async fn classify(&mut self, args: Vec<Vec<u8>>) -> Slot {
        let typed = args[0].clone();
        let name = String::from_utf8_lossy(&typed).to_ascii_uppercase();
        if !self.authenticated && !matches!(name.as_str(), "AUTH" | "HELLO" | "QUIT") {
            return Slot::Ready(Reply::Error("NOAUTH Authentication required.".into()));
        }
        let arity = |ok: bool| {
            (!ok).then(|| {
                Reply::err(format!(
                    "wrong number of arguments for '{}' command",
                    name.to_ascii_lowercase()
                ))
            })
        };
        let n = args.len();
        let checked = match name.as_str() {
            "GET" | "TYPE" | "WEFT.SIBLINGS" => arity(n == 2),
            "SET" => arity(n >= 3),
            "DEL" | "EXISTS" | "MGET" => arity(n >= 2),
            "MSET" => arity(n >= 3 && n % 2 == 1),
            "KEYS" => arity(n == 2),
            "SCAN" => arity(n >= 2),
            "DBSIZE" => arity(n == 1),
            "ECHO" => arity(n == 2),
            "SELECT" => arity(n == 2),
            "AUTH" => arity(n == 2 || n == 3),
            _ => None,
        };
        if let Some(error) = checked {
            return Slot::Ready(error);
        }
        let mut args = args.into_iter();
        args.next();
        let data = Slot::Data;
        let ready = Slot::Ready;
        match name.as_str() {
            "GET" => data(Data::Strings(Strings::Get(args.next().unwrap_or_default()))),
            "TYPE" => data(Data::Strings(Strings::Type(
                args.next().unwrap_or_default(),
            ))),
            "WEFT.SIBLINGS" => data(Data::Siblings(args.next().unwrap_or_default())),
            "SET" => match strings::parse_set(args) {
                Ok(set) => data(Data::Strings(set)),
                Err(reply) => ready(reply),
            },
            "DEL" => data(Data::Strings(Strings::Del(args.collect()))),
            "EXISTS" => data(Data::Strings(Strings::Exists(args.collect()))),
            "MGET" => data(Data::Strings(Strings::MGet(args.collect()))),
            "MSET" => {
                let mut pairs = Vec::new();
                while let (Some(key), Some(value)) = (args.next(), args.next()) {
                    pairs.push((key, value));
                }
                data(Data::Strings(Strings::MSet(pairs)))
            }
            "KEYS" => data(Data::Keys(Keys::Matching(args.next().unwrap_or_default()))),
            "SCAN" => match self.parse_scan(args) {
                Ok(Some(scan)) => data(Data::Keys(scan)),
                Ok(None) => ready(self.scan_reply(Vec::new(), None)),
                Err(reply) => ready(reply),
            },
            "DBSIZE" => data(Data::Keys(Keys::DbSize)),
            "PING" => ready(match args.next() {
                Some(message) => Reply::Bulk(message),
                None => Reply::Status("PONG"),
            }),
            "ECHO" => ready(Reply::Bulk(args.next().unwrap_or_default())),
            "QUIT" => ready(Reply::Status("OK")),
            "SELECT" => ready(if args.next().as_deref() == Some(b"0") {
                Reply::Status("OK")
            } else {
                Reply::err("DB index is out of range")
            }),
            "AUTH" => {
                let args: Vec<Vec<u8>> = args.collect();
                let (user, password) = match &args[..] {
                    [password] => (None, password),
                    [user, password] => (Some(user), password),
                    _ => unreachable!("arity checked"),
                };
                ready(self.auth(user.map(Vec::as_slice), password))
            }
            "HELLO" => ready(self.hello(args.collect())),
            "CLIENT" => ready(self.client(args.collect())),
            "COMMAND" => ready(match args.next() {
                Some(sub) if is(&sub, "COUNT") => Reply::Integer(COMMANDS.len() as i64),
                // redis-cli asks for COMMAND DOCS to offer hints; none is fine.
                _ => Reply::Array(Vec::new()),
            }),
            "INFO" => ready(self.info().await),
            _ => {
                let mut text = format!(
                    "unknown command '{}', with args beginning with: ",
                    String::from_utf8_lossy(&typed)
                );
                for arg in args.take(16) {
                    text.push_str(&format!("'{}' ", String::from_utf8_lossy(&arg)));
                }
                ready(Reply::err(text))
            }
        }
    }
}
