//! One function per subcommand, against the local replica.

use std::ffi::OsString;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};
use weft_storage::{
    Access, Change, ChangeValue, Interest, NamespaceId, Op, Options, Store, VersionId, VersionInfo,
    format_timestamp,
};

use crate::args::{Cli, Command, InterestAction, Workload};
use weft_node::api::ApiRequest;

use crate::backend::{Backend, answer};
use crate::output::{escape, put_bytes};

/// Exit code for "not found".
const NOT_FOUND: u8 = 1;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let json = cli.json;
    if let Command::Bench {
        workload,
        puts,
        runs,
        cache_size,
    } = cli.command
    {
        let workloads = match workload {
            Workload::W1 => vec![weft_bench::Workload::W1],
            Workload::W2 => vec![weft_bench::Workload::W2],
            Workload::W3 => vec![weft_bench::Workload::W3],
            Workload::W4 => vec![weft_bench::Workload::W4],
            Workload::W5 => vec![weft_bench::Workload::W5],
            Workload::W6 => vec![weft_bench::Workload::W6],
            Workload::W7 => vec![weft_bench::Workload::W7],
            Workload::W8 => vec![weft_bench::Workload::W8],
            Workload::W9 => vec![weft_bench::Workload::W9],
            Workload::All => vec![
                weft_bench::Workload::W1,
                weft_bench::Workload::W2,
                weft_bench::Workload::W3,
                weft_bench::Workload::W4,
                weft_bench::Workload::W5,
                weft_bench::Workload::W6,
                weft_bench::Workload::W7,
                weft_bench::Workload::W8,
                weft_bench::Workload::W9,
            ],
        };
        let settings = weft_bench::Settings {
            puts,
            runs,
            json,
            cache_size: cache_size.map(weft_node::config::mib_to_bytes),
            node_program: std::env::current_exe().context("finding the weft binary")?,
        };
        weft_bench::run(&workloads, &settings)?;
        return Ok(ExitCode::SUCCESS);
    }
    let dir = data_dir(cli.data_dir)?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if let Command::Init {
        join,
        prefix,
        author,
        open,
    } = &cli.command
    {
        let store = match join {
            None => {
                let access = if *open { Access::Open } else { Access::Closed };
                Store::init(&dir, Options::default(), access)?
            }
            Some(ticket) => {
                let interest = (!prefix.is_empty()).then(|| {
                    Interest::new(prefix.iter().map(|p| p.as_bytes().to_vec()), author.clone())
                });
                crate::network::join(&dir, ticket, interest)?
            }
        };
        let ns = store.default_namespace();
        if json {
            writeln!(
                out,
                "{}",
                json!({"namespace": ns.to_string(), "author": store.author().to_string(), "data_dir": dir})
            )?;
        } else {
            writeln!(out, "{ns}")?;
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    match cli.command {
        Command::Node {
            listen,
            relay: true,
            ..
        } => return crate::network::relay(&dir, listen),
        Command::Node {
            listen,
            peer,
            no_mdns,
            bootstrap,
            redis,
            redis_password,
            redis_timeout,
            relay: false,
            metrics,
            cache_size,
            test_clock_ahead,
        } => {
            let redis = redis.map(|addr| weft_node::redis::RedisConfig {
                password: redis_password,
                idle_timeout: redis_timeout.map(std::time::Duration::from_secs),
                ..weft_node::redis::RedisConfig::new(addr)
            });
            let network = weft_node::config::Network {
                listen,
                peers: peer,
                mdns: !no_mdns,
                bootstrap,
            };
            let store = crate::network::StoreSettings {
                cache_mib: cache_size,
                clock_ahead: std::time::Duration::from_secs(test_clock_ahead.unwrap_or(0)),
            };
            return crate::network::node(&dir, network, redis, metrics, store);
        }
        Command::Ticket {
            write,
            prefix,
            expires,
            read: _,
        } => {
            let grant = write.then(|| crate::trust::grant_of(&prefix, expires));
            return crate::network::ticket(&dir, &mut out, grant);
        }
        Command::Status => return crate::network::status(&dir, &mut out, json),
        Command::Peers => return crate::network::peers(&dir, &mut out, json),
        Command::Sync { timeout } => return crate::network::sync(&dir, timeout),
        _ => {}
    }
    let store = Backend::open(&dir)?;
    let ns = store.default_namespace();
    let code = match cli.command {
        Command::Init { .. }
        | Command::Bench { .. }
        | Command::Node { .. }
        | Command::Ticket { .. }
        | Command::Status
        | Command::Peers
        | Command::Sync { .. } => unreachable!("handled above"),
        Command::Put { key, value, file } => {
            let value = match (value, file) {
                (_, Some(path)) => {
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?
                }
                (Some(v), None) if v == "-" => {
                    let mut buf = Vec::new();
                    io::stdin()
                        .read_to_end(&mut buf)
                        .context("reading the value from stdin")?;
                    buf
                }
                (Some(v), None) => v.as_bytes().to_vec(),
                (None, None) => unreachable!("clap requires a value or --file"),
            };
            let ops = vec![(key.as_bytes().to_vec(), Op::Put(value))];
            let ids = answer!(store.call(ApiRequest::Write { ns, ops })?, Written)?;
            write_written(&mut out, &ids[0], json)?;
            ExitCode::SUCCESS
        }
        Command::Get {
            key,
            all,
            remote: true,
            ..
        } => {
            let key_bytes = key.as_bytes().to_vec();
            let request = ApiRequest::GetRemote { ns, key: key_bytes };
            let versions = answer!(store.call(request)?, Versions)?;
            print_versions(&mut out, &key, &versions, all, json)?
        }
        Command::Interest { action } => interest(&mut out, &store, &ns, action, json)?,
        Command::Grant {
            author,
            prefix,
            expires,
        } => {
            let grant = crate::trust::grant_of(&prefix, expires);
            answer!(
                store.call(ApiRequest::Grant { ns, author, grant })?,
                Written
            )?;
            if !json {
                writeln!(out, "granted {author}")?;
            }
            ExitCode::SUCCESS
        }
        Command::Revoke { author } => {
            let until = answer!(store.call(ApiRequest::Revoke { ns, author })?, Revoked)?;
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"revoked": author.to_string(), "until": until})
                )?;
            } else {
                writeln!(
                    out,
                    "revoked {author}: its entries from {until} on do not count"
                )?;
            }
            ExitCode::SUCCESS
        }
        Command::Members => {
            let trust = answer!(store.call(ApiRequest::Trust { ns })?, Trust)?;
            crate::trust::members(&mut out, &trust, json)?;
            ExitCode::SUCCESS
        }
        Command::Get {
            key,
            all: false,
            remote: false,
            at,
        } => match match at {
            Some(at) => answer!(
                store.call(ApiRequest::GetAt {
                    ns,
                    key: key.as_bytes().to_vec(),
                    at
                })?,
                Value
            )?,
            None => get(&store, &ns, key.as_bytes())?,
        } {
            Some(value) if json => {
                writeln!(
                    out,
                    "{}",
                    Value::Object(record(key.as_bytes(), Some(&value)))
                )?;
                ExitCode::SUCCESS
            }
            Some(value) => {
                out.write_all(&value)?;
                ExitCode::SUCCESS
            }
            None => not_found(&key),
        },
        Command::Get {
            key,
            all: true,
            remote: false,
            ..
        } => {
            let request = ApiRequest::GetAll {
                ns,
                key: key.as_bytes().to_vec(),
            };
            let versions = answer!(store.call(request)?, Versions)?;
            print_versions(&mut out, &key, &versions, true, json)?
        }
        Command::Del { key } => {
            if get(&store, &ns, key.as_bytes())?.is_none() {
                not_found(&key)
            } else {
                let ops = vec![(key.as_bytes().to_vec(), Op::Delete)];
                let ids = answer!(store.call(ApiRequest::Write { ns, ops })?, Written)?;
                write_written(&mut out, &ids[0], json)?;
                ExitCode::SUCCESS
            }
        }
        Command::Ls {
            prefix,
            limit,
            values,
        } => {
            let prefix = prefix.unwrap_or_default();
            for row in store
                .scan(&ns, prefix.as_bytes(), values)
                .take(limit.unwrap_or(usize::MAX))
            {
                let (key, value) = row?;
                if json {
                    writeln!(out, "{}", Value::Object(record(&key, value.as_deref())))?;
                } else if let Some(value) = value {
                    writeln!(out, "{}\t{}", escape(&key), escape(&value))?;
                } else {
                    writeln!(out, "{}", escape(&key))?;
                }
            }
            ExitCode::SUCCESS
        }
        Command::History { key } => {
            let request = ApiRequest::History {
                ns,
                key: key.as_bytes().to_vec(),
            };
            let history = answer!(store.call(request)?, History)?;
            if history.is_empty() {
                not_found(&key)
            } else {
                for item in &history {
                    write_version(&mut out, &item.version, Some(item.live), json)?;
                }
                ExitCode::SUCCESS
            }
        }
        Command::Watch { prefix, from } => {
            let prefix = prefix.unwrap_or_default();
            watch(&mut out, &store, &ns, prefix.as_bytes(), from, json)?;
            ExitCode::SUCCESS
        }
        Command::Info => {
            info(&mut out, &store, json)?;
            ExitCode::SUCCESS
        }
        Command::Verify => {
            let report = answer!(store.call(ApiRequest::Verify)?, Verify)?;
            if json {
                let problems: Vec<String> =
                    report.problems.iter().map(ToString::to_string).collect();
                writeln!(
                    out,
                    "{}",
                    json!({"feeds": report.feeds, "entries": report.entries, "problems": problems})
                )?;
            } else if report.is_clean() {
                writeln!(
                    out,
                    "ok: {} feeds, {} entries, every hash and signature checks out",
                    report.feeds, report.entries
                )?;
            }
            out.flush()?;
            if !report.is_clean() {
                for problem in &report.problems {
                    let advice = if problem.in_view {
                        "; run `weft reindex`"
                    } else {
                        ""
                    };
                    eprintln!("weft: {problem}{advice}");
                }
                bail!("verify found {} problem(s)", report.problems.len());
            }
            ExitCode::SUCCESS
        }
        Command::Prune => {
            let report = answer!(store.call(ApiRequest::Prune)?, Pruned)?;
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"versions": report.versions, "bytes": report.bytes})
                )?;
            } else {
                writeln!(
                    out,
                    "pruned {} superseded versions, {} bytes freed (the database file keeps its size; new writes reuse the space)",
                    report.versions, report.bytes
                )?;
            }
            ExitCode::SUCCESS
        }
        Command::Reindex => {
            let replayed = answer!(store.call(ApiRequest::Reindex)?, Reindexed)?;
            if json {
                writeln!(out, "{}", json!({"entries": replayed}))?;
            } else {
                writeln!(out, "reindexed {replayed} entries")?;
            }
            ExitCode::SUCCESS
        }
        Command::Import { file } => {
            let imported = crate::import::import(&store, &ns, file)?;
            if json {
                writeln!(out, "{}", json!({"imported": imported}))?;
            } else {
                writeln!(out, "imported {imported} records")?;
            }
            ExitCode::SUCCESS
        }
        Command::Export { prefix } => {
            let prefix = prefix.unwrap_or_default();
            for row in store.scan(&ns, prefix.as_bytes(), true) {
                let (key, value) = row?;
                writeln!(out, "{}", Value::Object(record(&key, value.as_deref())))?;
            }
            ExitCode::SUCCESS
        }
    };
    out.flush()?;
    Ok(code)
}

fn data_dir(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match flag.or_else(|| dirs::data_dir().map(|dir| dir.join("weft"))) {
        Some(dir) => Ok(dir),
        None => bail!(
            "cannot tell where the data dir is on this system: pass --data-dir DIR or set WEFT_DATA_DIR"
        ),
    }
}

/// Prints the last writer's value, or with `all` every live version; exits 1 when there is no
/// value.
fn print_versions(
    out: &mut impl Write,
    key: &OsString,
    versions: &[VersionInfo],
    all: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if all {
        if versions.is_empty() {
            return Ok(not_found(key));
        }
        for version in versions {
            write_version(out, version, None, json)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    match versions.first().and_then(|v| v.value.as_ref()) {
        Some(value) if json => {
            writeln!(
                out,
                "{}",
                Value::Object(record(key.as_bytes(), Some(value)))
            )?;
        }
        Some(value) => out.write_all(value)?,
        None => return Ok(not_found(key)),
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft interest add|rm|ls`.
fn interest(
    out: &mut impl Write,
    store: &Backend,
    ns: &NamespaceId,
    action: InterestAction,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let info = answer!(store.call(ApiRequest::Info)?, Info)?;
    let current = info
        .namespaces
        .iter()
        .find(|n| n.id == *ns)
        .and_then(|n| n.interest.clone());
    match action {
        InterestAction::Ls => {
            let Some(current) = current else {
                if json {
                    writeln!(
                        out,
                        "{}",
                        json!({"full": true, "prefixes": [], "authors": []})
                    )?;
                } else {
                    eprintln!("weft: this replica is full: it replicates every key");
                }
                return Ok(ExitCode::SUCCESS);
            };
            if json {
                let prefixes: Vec<String> = current.prefixes.iter().map(|p| escape(p)).collect();
                let authors: Vec<String> = current.authors.iter().map(|a| a.to_string()).collect();
                writeln!(
                    out,
                    "{}",
                    json!({"full": false, "prefixes": prefixes, "authors": authors})
                )?;
            } else {
                for prefix in &current.prefixes {
                    out.write_all(prefix)?;
                    out.write_all(b"\n")?;
                }
                for author in &current.authors {
                    writeln!(out, "author {author}")?;
                }
            }
        }
        InterestAction::Add { prefix, author } => {
            let current = current.unwrap_or_default();
            let mut authors = current.authors;
            authors.extend(author);
            let prefixes = current
                .prefixes
                .into_iter()
                .chain([prefix.as_bytes().to_vec()]);
            set_interest(store, ns, Interest::new(prefixes, authors))?;
        }
        InterestAction::Rm { prefix } => {
            let Some(current) = current else {
                bail!("this replica is full; it has no prefixes to remove");
            };
            if !current.prefixes.iter().any(|p| p == prefix.as_bytes()) {
                bail!(
                    "{} is not one of this replica's prefixes",
                    escape(prefix.as_bytes())
                );
            }
            let prefixes = current
                .prefixes
                .into_iter()
                .filter(|p| p != prefix.as_bytes());
            set_interest(store, ns, Interest::new(prefixes, current.authors))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The last writer's value of `key`.
fn get(store: &Backend, ns: &NamespaceId, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    let request = ApiRequest::Get {
        ns: *ns,
        key: key.to_vec(),
    };
    answer!(store.call(request)?, Value)
}

fn set_interest(store: &Backend, ns: &NamespaceId, interest: Interest) -> anyhow::Result<()> {
    match store.call(ApiRequest::SetInterest { ns: *ns, interest })? {
        weft_node::api::ApiResponse::Done => Ok(()),
        other => bail!("the node answered {other:?} to an interest change"),
    }
}

fn not_found(key: &OsString) -> ExitCode {
    eprintln!("weft: key not found: {}", escape(key.as_bytes()));
    ExitCode::from(NOT_FOUND)
}

/// A write's new version, for `--json` (plain output stays quiet, as for `cp`).
fn write_written(out: &mut impl Write, id: &VersionId, json: bool) -> io::Result<()> {
    if json {
        writeln!(
            out,
            "{}",
            json!({"author": id.author.to_string(), "seq": id.seq})
        )?;
    }
    Ok(())
}

/// `{"key": …, "value": …}`, the import/export line.
fn record(key: &[u8], value: Option<&[u8]>) -> Map<String, Value> {
    let mut object = Map::new();
    put_bytes(&mut object, "key", key);
    if let Some(value) = value {
        put_bytes(&mut object, "value", value);
    }
    object
}

/// `weft watch`: pages of changes, each flushed as it comes, until stopped; without a node,
/// only the changes kept.
fn watch(
    out: &mut impl Write,
    store: &Backend,
    ns: &NamespaceId,
    prefix: &[u8],
    mut from: Option<u64>,
    json: bool,
) -> anyhow::Result<()> {
    if !store.is_node() && from.is_none() {
        bail!(
            "no node is running on {}, so there are no changes to follow: start `weft node`, \
             or pass --from SEQ to print the changes kept",
            store.dir().display()
        );
    }
    // Long enough that an idle watch costs nothing; the node answers as soon as a change comes.
    let wait = std::time::Duration::from_secs(10);
    loop {
        let request = ApiRequest::Changes {
            ns: *ns,
            prefix: prefix.to_vec(),
            from,
            wait_ms: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
        };
        let page = answer!(store.call(request)?, Changes)?;
        for change in &page.changes {
            write_change(out, change, json)?;
        }
        out.flush()?;
        if !store.is_node() && Some(page.next) == from {
            return Ok(());
        }
        from = Some(page.next);
    }
}

fn write_change(out: &mut impl Write, change: &Change, json: bool) -> io::Result<()> {
    if json {
        let mut object = Map::new();
        object.insert("seq".into(), change.seq.into());
        put_bytes(&mut object, "key", &change.key);
        match &change.value {
            ChangeValue::Put(value) => {
                put_bytes(&mut object, "value", value);
                object.insert("deleted".into(), false.into());
            }
            ChangeValue::Deleted => {
                object.insert("deleted".into(), true.into());
            }
            ChangeValue::Pruned => {
                object.insert("deleted".into(), false.into());
                object.insert("pruned".into(), true.into());
            }
        }
        if let Some(id) = change.version {
            object.insert("author".into(), id.author.to_string().into());
            object.insert("author_seq".into(), id.seq.into());
        }
        if let Some(time) = change.timestamp {
            object.insert("timestamp".into(), format_timestamp(time).into());
            object.insert("hlc".into(), time.0.into());
        }
        return writeln!(out, "{}", Value::Object(object));
    }
    let value = match &change.value {
        ChangeValue::Put(value) => escape(value),
        ChangeValue::Deleted => "(deleted)".to_owned(),
        ChangeValue::Pruned => "(pruned)".to_owned(),
    };
    let by = match (change.version, change.timestamp) {
        (Some(id), Some(time)) => format!("{} {}", id.author, format_timestamp(time)),
        _ => "(no version left)".to_owned(),
    };
    writeln!(
        out,
        "{}\t{}\t{}\t{}",
        change.seq,
        escape(&change.key),
        value,
        by
    )
}

fn write_version(
    out: &mut impl Write,
    version: &VersionInfo,
    live: Option<bool>,
    json: bool,
) -> io::Result<()> {
    let time = format_timestamp(version.timestamp);
    if json {
        let mut object = Map::new();
        object.insert("author".into(), version.id.author.to_string().into());
        object.insert("seq".into(), version.id.seq.into());
        object.insert("timestamp".into(), time.into());
        object.insert("hlc".into(), version.timestamp.0.into());
        object.insert("deleted".into(), version.value.is_none().into());
        if let Some(value) = &version.value {
            put_bytes(&mut object, "value", value);
        }
        if let Some(live) = live {
            object.insert("live".into(), live.into());
        }
        return writeln!(out, "{}", Value::Object(object));
    }
    let value = version
        .value
        .as_deref()
        .map_or_else(|| "(deleted)".to_owned(), escape);
    match live {
        Some(live) => {
            let state = if live { "live" } else { "superseded" };
            writeln!(
                out,
                "{time} {} #{} {state} {value}",
                version.id.author, version.id.seq
            )
        }
        None => writeln!(out, "{} {time} {value}", version.id.author),
    }
}

fn info(out: &mut impl Write, store: &Backend, json: bool) -> anyhow::Result<()> {
    let info = answer!(store.call(ApiRequest::Info)?, Info)?;
    let default: NamespaceId = info.default_namespace;
    if json {
        let namespaces: Vec<Value> = info
            .namespaces
            .iter()
            .map(|ns| {
                let feeds: Vec<Value> = ns
                    .feeds
                    .iter()
                    .map(|f| json!({"author": f.author.to_string(), "length": f.length, "signed_length": f.signed_length, "scanned": f.scanned}))
                    .collect();
                let prefixes: Option<Vec<String>> = ns
                    .interest
                    .as_ref()
                    .map(|i| i.prefixes.iter().map(|p| escape(p)).collect());
                json!({"id": ns.id.to_string(), "default": ns.id == default, "keys": ns.keys, "prefixes": prefixes, "feeds": feeds})
            })
            .collect();
        writeln!(
            out,
            "{}",
            json!({"data_dir": store.dir(), "author": info.author.to_string(), "db_bytes": info.db_bytes, "namespaces": namespaces})
        )?;
        return Ok(());
    }
    writeln!(out, "data dir:  {}", store.dir().display())?;
    writeln!(out, "author:    {}", info.author)?;
    writeln!(out, "database:  {} bytes", info.db_bytes)?;
    for ns in &info.namespaces {
        let mark = if ns.id == default { " (default)" } else { "" };
        writeln!(out, "namespace: {}{mark}", ns.id)?;
        writeln!(out, "  keys:    {}", ns.keys)?;
        if let Some(interest) = &ns.interest {
            let prefixes: Vec<String> = interest.prefixes.iter().map(|p| escape(p)).collect();
            writeln!(out, "  sparse:  {}", prefixes.join(" "))?;
        }
        for feed in &ns.feeds {
            let mine = if feed.author == info.author {
                " (local)"
            } else {
                ""
            };
            match feed.scanned {
                Some(scanned) => writeln!(
                    out,
                    "  feed:    {} {} entries held, scanned {scanned} of {}{mine}",
                    feed.author, feed.length, feed.signed_length
                )?,
                None => writeln!(
                    out,
                    "  feed:    {} length {}{mine}",
                    feed.author, feed.length
                )?,
            }
        }
    }
    Ok(())
}
