//! Connection and server commands, answered without the store: `AUTH`, `HELLO`, `CLIENT`,
//! `INFO` (the rest of the family is one line each in the command table).

use super::is;
use crate::redis::connection::Connection;
use crate::redis::resp::Reply;

impl Connection {
    pub(super) fn auth(&mut self, user: Option<&[u8]>, password: &[u8]) -> Reply {
        let Some(expected) = &self.config.password else {
            return Reply::err(
                "AUTH <password> called without any password configured for the default user. \
                 Are you sure your configuration is correct?",
            );
        };
        let user_ok = user.is_none_or(|u| u == b"default");
        // Compare as hashes so the time taken does not depend on how much of it is right.
        if user_ok && blake3::hash(password) == blake3::hash(expected.as_bytes()) {
            self.authenticated = true;
            Reply::Status("OK")
        } else {
            Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
        }
    }

    pub(super) fn hello(&mut self, args: Vec<Vec<u8>>) -> Reply {
        let mut args = args.into_iter();
        let mut proto = self.proto;
        if let Some(version) = args.next() {
            match std::str::from_utf8(&version)
                .ok()
                .and_then(|v| v.parse().ok())
            {
                Some(v @ (2 | 3)) => proto = v,
                Some(_) => return Reply::Error("NOPROTO unsupported protocol version".into()),
                None => return Reply::err("Protocol version is not an integer or out of range"),
            }
        }
        while let Some(option) = args.next() {
            if is(&option, "AUTH") {
                let (Some(user), Some(password)) = (args.next(), args.next()) else {
                    return Reply::err("Syntax error in HELLO option 'auth'");
                };
                if let Reply::Error(e) = self.auth(Some(&user), &password) {
                    return Reply::Error(e);
                }
            } else if is(&option, "SETNAME") {
                let Some(name) = args.next() else {
                    return Reply::err("Syntax error in HELLO option 'setname'");
                };
                self.name = Some(name);
            } else {
                return Reply::err(format!(
                    "Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&option)
                ));
            }
        }
        if !self.authenticated {
            return Reply::Error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into());
        }
        self.proto = proto;
        Reply::Map(vec![
            (Reply::text("server"), Reply::text("weft")),
            (
                Reply::text("version"),
                Reply::text(env!("CARGO_PKG_VERSION")),
            ),
            (Reply::text("proto"), Reply::Integer(i64::from(proto))),
            (Reply::text("id"), Reply::Integer(self.id as i64)),
            (Reply::text("mode"), Reply::text("standalone")),
            (Reply::text("role"), Reply::text("master")),
            (Reply::text("modules"), Reply::Array(Vec::new())),
        ])
    }

    pub(super) fn client(&mut self, args: Vec<Vec<u8>>) -> Reply {
        match &args[..] {
            [sub, name] if is(sub, "SETNAME") => {
                if name.iter().any(|b| *b <= b' ' || *b > b'~') {
                    return Reply::err(
                        "Client names cannot contain spaces, newlines or special characters.",
                    );
                }
                self.name = (!name.is_empty()).then(|| name.clone());
                Reply::Status("OK")
            }
            [sub] if is(sub, "GETNAME") => self.name.clone().map_or(Reply::Null, Reply::Bulk),
            [sub] if is(sub, "ID") => Reply::Integer(self.id as i64),
            [sub, ..] => Reply::err(format!(
                "unknown subcommand '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(sub)
            )),
            [] => Reply::err("wrong number of arguments for 'client' command"),
        }
    }

    pub(super) async fn info(&self) -> Reply {
        let mut text = format!(
            "# Server\r\nredis_version:7.0.0\r\nweft_version:{}\r\nredis_mode:standalone\r\n\r\n# Replication\r\nrole:master\r\n",
            env!("CARGO_PKG_VERSION")
        );
        if let Ok(status) = self.node.status().await {
            text.push_str(&format!(
                "weft_peer_id:{}\r\nconnected_peers:{}\r\n",
                status.peer_id,
                status.peers.len()
            ));
            for (i, peer) in status.peers.iter().enumerate() {
                text.push_str(&format!("peer{i}:{}\r\n", peer.id));
            }
            let authors: Vec<_> = status
                .feeds
                .iter()
                .filter(|f| f.namespace == self.ns)
                .collect();
            text.push_str(&format!("authors:{}\r\n", authors.len()));
            for (i, feed) in authors.iter().enumerate() {
                text.push_str(&format!(
                    "author{i}:id={},held={},best_remote={}\r\n",
                    feed.author, feed.held, feed.best_remote
                ));
            }
        }
        Reply::Bulk(text.into_bytes())
    }
}
