//! One Redis client: its state, and the loop that reads commands, answers them and writes
//! the replies.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use weft_storage::NamespaceId;

use super::RedisConfig;
use super::batch::Submission;
use super::cmd::{Data, Out, Slot, is};
use super::resp::{self, Reply};
use crate::NodeHandle;
use crate::shutdown::Shutdown;

/// The most bytes one connection buffers for commands it has not yet completed.
const MAX_QUERY: usize = 64 << 20;

/// The most bytes a connection that has not given the password yet may buffer, and the
/// longest bulk string it may send: enough for `AUTH` or `HELLO`, so that a thousand
/// strangers cannot make the node hold 64 MiB each.
const MAX_UNAUTHENTICATED_QUERY: usize = 16 * 1024;

/// `SCAN` cursors a connection remembers; an older one starts over.
const CURSORS: usize = 64;

/// One client's state.
pub(super) struct Connection {
    pub(super) id: u64,
    pub(super) node: NodeHandle,
    pub(super) committer: mpsc::Sender<Submission>,
    pub(super) ns: NamespaceId,
    pub(super) config: Arc<RedisConfig>,
    pub(super) proto: u8,
    pub(super) authenticated: bool,
    pub(super) name: Option<Vec<u8>>,
    /// `SCAN` cursor number to the last key it returned.
    pub(super) cursors: HashMap<u64, Vec<u8>>,
    pub(super) next_cursor: u64,
}

impl Connection {
    /// Reads, answers and writes until the client hangs up, sends `QUIT` or stays idle past
    /// the configured timeout, or shutdown begins between two reads.
    pub(super) async fn run(
        mut self,
        mut stream: impl AsyncRead + AsyncWrite + Unpin,
        mut shutdown: Shutdown,
    ) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(16 * 1024);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut out = Vec::new();
        let mut reader = resp::Reader::default();
        loop {
            let idle = async {
                match self.config.idle_timeout {
                    Some(timeout) => tokio::time::sleep(timeout).await,
                    None => std::future::pending().await,
                }
            };
            let read = tokio::select! {
                () = shutdown.wait() => return Ok(()),
                () = idle => return Ok(()),
                read = stream.read(&mut chunk) => read?,
            };
            if read == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..read]);
            // Until the password is given, one command at a time: what follows `AUTH` is read
            // under the limits it lifts.
            loop {
                let (max_query, max_bulk) = if self.authenticated {
                    (MAX_QUERY, self.config.max_bulk)
                } else {
                    (MAX_UNAUTHENTICATED_QUERY, MAX_UNAUTHENTICATED_QUERY)
                };
                let mut commands = Vec::new();
                let mut used = 0;
                let mut broken = None;
                let mut stopped_early = false;
                loop {
                    match reader.next(&buf[used..], max_bulk) {
                        Ok(Some((args, len))) => {
                            used += len;
                            if !args.is_empty() {
                                commands.push(args);
                                if !self.authenticated {
                                    stopped_early = true;
                                    break;
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            broken = Some(e);
                            break;
                        }
                    }
                }
                buf.drain(..used);
                // Left after one command of a stranger, the rest is judged once that command
                // has run (it may be the `AUTH` that lifts the limit).
                if broken.is_none() && !stopped_early && buf.len() > max_query {
                    broken = Some(resp::ProtocolError::QueryTooLarge);
                }
                let quit = self.answer(commands, &mut out).await;
                if let Some(e) = &broken {
                    // What came before the bad bytes is answered; then, as Redis does, the
                    // error and the connection closes.
                    Reply::err(e).write(self.proto, &mut out);
                }
                stream.write_all(&out).await?;
                out.clear();
                if quit || broken.is_some() {
                    return Ok(());
                }
                if !stopped_early {
                    break;
                }
            }
        }
    }

    /// Runs a batch of commands and appends their replies to `out`. True after `QUIT`.
    async fn answer(&mut self, commands: Vec<Vec<Vec<u8>>>, out: &mut Vec<u8>) -> bool {
        // Each command's reply, or None for a store command's, and the protocol version to
        // write it in: the one in force after the command (HELLO 3 answers in RESP3).
        let mut replies = Vec::with_capacity(commands.len());
        let mut data = Vec::new();
        let mut quit = false;
        for args in commands {
            if quit {
                break;
            }
            quit = is(&args[0], "QUIT");
            let slot = self.classify(args).await;
            let proto = self.proto;
            match slot {
                Slot::Ready(reply) => replies.push((Some(reply), proto)),
                Slot::Data(command) => {
                    data.push(command);
                    replies.push((None, proto));
                }
            }
        }
        let mut outs = self.run_data(data).await.into_iter();
        for (reply, proto) in replies {
            let reply = match reply {
                Some(reply) => reply,
                None => match outs.next() {
                    Some(Out::Reply(reply)) => reply,
                    Some(Out::Page(keys, next)) => self.scan_reply(keys, next),
                    None => Reply::err("the node has shut down"),
                },
            };
            reply.write(proto, out);
        }
        quit
    }

    pub(super) fn scan_reply(&mut self, keys: Vec<Vec<u8>>, next: Option<Vec<u8>>) -> Reply {
        let cursor = match next {
            None => 0,
            Some(last) => {
                if self.cursors.len() >= CURSORS {
                    self.cursors.clear();
                }
                let cursor = self.next_cursor;
                self.next_cursor += 1;
                self.cursors.insert(cursor, last);
                cursor
            }
        };
        Reply::Array(vec![
            Reply::text(cursor.to_string()),
            Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
        ])
    }

    /// Runs the store commands of a batch, together with whatever other connections have
    /// waiting ([`commit_loop`]).
    async fn run_data(&self, data: Vec<Data>) -> Vec<Out> {
        if data.is_empty() {
            return Vec::new();
        }
        let (reply, outs) = oneshot::channel();
        if self.committer.send((data, reply)).await.is_err() {
            return Vec::new();
        }
        outs.await.unwrap_or_default()
    }
}
