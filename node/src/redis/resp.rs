//! The Redis serialization protocol: reading commands out of a buffer and writing replies, in
//! RESP2 or, after `HELLO 3`, RESP3.

use std::ops::Range;

/// Why bytes are not a command. The text is what Redis answers before closing the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A `*` count that is not a number, or too large.
    #[error("Protocol error: invalid multibulk length")]
    MultibulkLength,
    /// A `$` length that is not a number, or over the limit.
    #[error("Protocol error: invalid bulk length")]
    BulkLength,
    /// An array element that is not a bulk string.
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedBulk(char),
    /// A bulk string not followed by CRLF.
    #[error("Protocol error: bulk string not terminated by CRLF")]
    Unterminated,
    /// More bytes of unfinished commands than a connection may buffer.
    #[error("Protocol error: query buffer over the limit")]
    QueryTooLarge,
    /// An inline command line longer than the limit without a newline.
    #[error("Protocol error: too big inline request")]
    InlineTooLong,
}

/// A command's arguments, and how many bytes of the buffer it took.
pub type Parsed = (Vec<Vec<u8>>, usize);

/// The longest inline command line, as Redis has it.
const MAX_INLINE: usize = 64 * 1024;
/// The most arguments one command may have.
const MAX_ARGS: usize = 1024 * 1024;

/// Reads the number after a type byte up to CRLF: the number and where the line ends.
fn line_number(buf: &[u8], from: usize) -> Option<(Option<i64>, usize)> {
    let end = buf[from..].windows(2).position(|w| w == b"\r\n")? + from;
    let number = std::str::from_utf8(&buf[from + 1..end])
        .ok()
        .and_then(|s| s.parse().ok());
    Some((number, end + 2))
}

/// Reads commands off the front of a connection's buffer (each one's arguments and how many
/// bytes it used, or `None` when more bytes are needed), resuming a command cut off by the
/// end of the buffer where it stopped: a large command that arrives over many reads costs its
/// length once, not once per read (which a client could make quadratic).
///
/// Between calls that return `Ok(None)`, the buffer may only grow at its end.
#[derive(Default, Debug)]
pub struct Reader {
    /// The argument count of the array in progress, once read.
    count: Option<usize>,
    /// Where its next argument starts.
    at: usize,
    /// Its arguments so far, as ranges of the buffer.
    args: Vec<Range<usize>>,
    /// How much of an inline line has been searched for its newline.
    scanned: usize,
}

impl Reader {
    /// Takes one command from the front of `buf`, continuing from the last call when that one
    /// needed more bytes. A bulk string longer than `max_bulk` is an error, so a connection
    /// never buffers more than one command of bounded size.
    ///
    /// # Errors
    /// [`ProtocolError`] when the bytes are not a command.
    pub fn next(&mut self, buf: &[u8], max_bulk: usize) -> Result<Option<Parsed>, ProtocolError> {
        let parsed = match buf.first() {
            None => Ok(None),
            Some(b'*') => self.array(buf, max_bulk),
            Some(_) => self.inline(buf),
        };
        if !matches!(parsed, Ok(None)) {
            *self = Reader::default();
        }
        parsed
    }

    fn array(&mut self, buf: &[u8], max_bulk: usize) -> Result<Option<Parsed>, ProtocolError> {
        let count = match self.count {
            Some(count) => count,
            None => {
                let Some((count, at)) = line_number(buf, 0) else {
                    return if buf.len() > MAX_INLINE {
                        Err(ProtocolError::MultibulkLength)
                    } else {
                        Ok(None)
                    };
                };
                let count = match count {
                    Some(n) if n <= 0 => return Ok(Some((Vec::new(), at))),
                    Some(n) if n as usize <= MAX_ARGS => n as usize,
                    _ => return Err(ProtocolError::MultibulkLength),
                };
                self.count = Some(count);
                self.at = at;
                count
            }
        };
        while self.args.len() < count {
            let at = self.at;
            match buf.get(at) {
                None => return Ok(None),
                Some(b'$') => {}
                Some(&other) => return Err(ProtocolError::ExpectedBulk(char::from(other))),
            }
            let Some((len, body)) = line_number(buf, at) else {
                return if buf.len() - at > 64 {
                    Err(ProtocolError::BulkLength)
                } else {
                    Ok(None)
                };
            };
            let len = match len {
                Some(n) if n >= 0 && n as usize <= max_bulk => n as usize,
                _ => return Err(ProtocolError::BulkLength),
            };
            let end = body + len;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError::Unterminated);
            }
            self.args.push(body..end);
            self.at = end + 2;
        }
        let args = self
            .args
            .iter()
            .map(|range| buf[range.clone()].to_vec())
            .collect();
        Ok(Some((args, self.at)))
    }

    /// A line of space-separated words, as typed into telnet.
    fn inline(&mut self, buf: &[u8]) -> Result<Option<Parsed>, ProtocolError> {
        let Some(newline) = buf[self.scanned..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|at| at + self.scanned)
        else {
            self.scanned = buf.len();
            return if buf.len() > MAX_INLINE {
                Err(ProtocolError::InlineTooLong)
            } else {
                Ok(None)
            };
        };
        let line = buf[..newline]
            .strip_suffix(b"\r")
            .unwrap_or(&buf[..newline]);
        let args = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|word| !word.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        Ok(Some((args, newline + 1)))
    }
}

/// A reply to one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK` and the like.
    Status(&'static str),
    /// `-ERR ...`: the text includes the error code.
    Error(String),
    /// `:n`.
    Integer(i64),
    /// `$n` and the bytes.
    Bulk(Vec<u8>),
    /// No value: `$-1` in RESP2, `_` in RESP3.
    Null,
    /// `*n` and the elements.
    Array(Vec<Reply>),
    /// A RESP3 map; a flat array of keys and values in RESP2.
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    /// `-ERR text`.
    pub fn err(text: impl std::fmt::Display) -> Reply {
        Reply::Error(format!("ERR {text}"))
    }

    /// A bulk string of text.
    pub fn text(text: impl Into<String>) -> Reply {
        Reply::Bulk(text.into().into_bytes())
    }

    /// Appends the reply's bytes in protocol version `proto` (2 or 3) to `out`.
    pub fn write(&self, proto: u8, out: &mut Vec<u8>) {
        match self {
            Reply::Status(text) => {
                out.push(b'+');
                out.extend_from_slice(text.as_bytes());
            }
            Reply::Error(text) => {
                out.push(b'-');
                // A newline would end the reply early and desynchronise the client.
                out.extend(
                    text.bytes()
                        .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
                );
            }
            Reply::Integer(n) => out.extend_from_slice(format!(":{n}").as_bytes()),
            Reply::Bulk(bytes) => {
                out.extend_from_slice(format!("${}\r\n", bytes.len()).as_bytes());
                out.extend_from_slice(bytes);
            }
            Reply::Null if proto >= 3 => out.push(b'_'),
            Reply::Null => out.extend_from_slice(b"$-1"),
            Reply::Array(items) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for item in items {
                    item.write(proto, out);
                }
                return;
            }
            Reply::Map(pairs) => {
                if proto >= 3 {
                    out.extend_from_slice(format!("%{}\r\n", pairs.len()).as_bytes());
                } else {
                    out.extend_from_slice(format!("*{}\r\n", pairs.len() * 2).as_bytes());
                }
                for (key, value) in pairs {
                    key.write(proto, out);
                    value.write(proto, out);
                }
                return;
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Whether `text` matches the Redis glob `pattern`: `*`, `?`, `[abc]`, `[^a]`, `[a-z]` and `\`
/// escapes.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative with one backtrack point for the last `*`, so no pattern is exponential.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => class(pattern, p, text[t]),
            Some(b'\\') if p + 1 < pattern.len() => (pattern[p + 1] == text[t]).then_some(p + 2),
            Some(&c) => (c == text[t]).then_some(p + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                t += 1;
            }
            (None, Some((star_p, star_t))) => {
                p = star_p + 1;
                t = star_t + 1;
                star = Some((star_p, star_t + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[open] == b'['`: where the pattern goes on
/// after it, or `None` when `c` is not in it.
fn class(pattern: &[u8], open: usize, c: u8) -> Option<usize> {
    let mut at = open + 1;
    let negate = pattern.get(at) == Some(&b'^');
    if negate {
        at += 1;
    }
    let mut matched = false;
    while at < pattern.len() && pattern[at] != b']' {
        if pattern[at] == b'\\' && at + 1 < pattern.len() {
            matched |= pattern[at + 1] == c;
            at += 2;
        } else if at + 2 < pattern.len() && pattern[at + 1] == b'-' && pattern[at + 2] != b']' {
            let (low, high) = (
                pattern[at].min(pattern[at + 2]),
                pattern[at].max(pattern[at + 2]),
            );
            matched |= (low..=high).contains(&c);
            at += 3;
        } else {
            matched |= pattern[at] == c;
            at += 1;
        }
    }
    // An unclosed class ends the pattern, as in Redis.
    (matched != negate).then_some((at + 1).min(pattern.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_command(buf: &[u8], max_bulk: usize) -> Result<Option<Parsed>, ProtocolError> {
        Reader::default().next(buf, max_bulk)
    }

    fn args(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn commands_parse_whole_or_wait_for_more() {
        let bytes = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$2\r\n10\r\n*1\r\n$4\r\nPING\r\n";
        let (first, used) = parse_command(bytes, 100).expect("valid").expect("whole");
        assert_eq!(first, args(&["SET", "a", "10"]));
        let (second, rest) = parse_command(&bytes[used..], 100)
            .expect("valid")
            .expect("whole");
        assert_eq!(second, args(&["PING"]));
        assert_eq!(used + rest, bytes.len());
        for cut in 1..used {
            assert_eq!(parse_command(&bytes[..cut], 100), Ok(None), "cut at {cut}");
        }
        assert_eq!(
            parse_command(b"get  a\r\n", 100),
            Ok(Some((args(&["get", "a"]), 8)))
        );
    }

    #[test]
    fn a_command_arriving_in_pieces_is_resumed_not_reparsed() {
        let mut bytes = b"*20000\r\n".to_vec();
        for i in 0..20_000 {
            let arg = i.to_string();
            bytes.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
        bytes.extend_from_slice(b"PING\r\n");
        let mut reader = Reader::default();
        let mut fed = 0;
        let mut seen_args = 0;
        let whole = loop {
            fed = (fed + 997).min(bytes.len());
            match reader.next(&bytes[..fed], 100).expect("valid") {
                Some(parsed) => break parsed,
                None => {
                    // Each piece adds to what the last one read, from where it stopped.
                    assert!(reader.args.len() >= seen_args, "started over");
                    seen_args = reader.args.len();
                    assert!(reader.at <= fed);
                }
            }
        };
        assert!(
            seen_args > 19_000,
            "the arguments were not kept between pieces"
        );
        assert_eq!(whole.0.len(), 20_000);
        assert_eq!(whole.0[12_345], b"12345");
        assert_eq!(
            whole,
            parse_command(&bytes, 100).expect("valid").expect("whole")
        );
        let rest = &bytes[whole.1..];
        let mut reader = Reader::default();
        assert_eq!(reader.next(&rest[..2], 100), Ok(None));
        assert_eq!(reader.scanned, 2);
        assert_eq!(reader.next(rest, 100), Ok(Some((args(&["PING"]), 6))));
    }

    #[test]
    fn malformed_commands_get_redis_protocol_errors() {
        let cases: [(&[u8], ProtocolError); 5] = [
            (b"*x\r\n", ProtocolError::MultibulkLength),
            (b"*1\r\n+PING\r\n", ProtocolError::ExpectedBulk('+')),
            (b"*1\r\n$-3\r\n", ProtocolError::BulkLength),
            (b"*1\r\n$11\r\n", ProtocolError::BulkLength),
            (b"*1\r\n$2\r\nabXY", ProtocolError::Unterminated),
        ];
        for (bytes, error) in cases {
            assert_eq!(parse_command(bytes, 10), Err(error), "{bytes:?}");
        }
        assert_eq!(
            parse_command(&[b'a'; MAX_INLINE + 1], 10),
            Err(ProtocolError::InlineTooLong)
        );
    }

    #[test]
    fn replies_in_both_protocols() {
        let reply = Reply::Map(vec![(Reply::text("a"), Reply::Null)]);
        let (mut two, mut three) = (Vec::new(), Vec::new());
        reply.write(2, &mut two);
        reply.write(3, &mut three);
        assert_eq!(two, b"*2\r\n$1\r\na\r\n$-1\r\n");
        assert_eq!(three, b"%1\r\n$1\r\na\r\n_\r\n");
        let mut error = Vec::new();
        Reply::err("bad\r\nthing").write(2, &mut error);
        assert_eq!(error, b"-ERR bad  thing\r\n");
    }

    #[test]
    fn globs_match_as_redis_does() {
        let cases: [(&str, &str, bool); 12] = [
            ("*", "", true),
            ("*", "anything", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("a\\*b", "a*b", true),
            ("*a*b*c*", "xxaxxbxxcxx", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                glob_match(pattern.as_bytes(), text.as_bytes()),
                expected,
                "{pattern} ~ {text}"
            );
        }
    }
}
