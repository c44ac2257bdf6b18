//! Output of who may write a namespace and what does not count: `weft members` and the trust
//! half of `weft status`.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use weft_storage::{Grant, Membership, Mode, TrustReport, format_timestamp, timestamp_after};

use crate::output::escape;

/// The grant `weft grant` and `weft ticket --write` make: `prefixes` (none: every key),
/// expiring `expires` from now.
pub fn grant_of(prefixes: &[OsString], expires: Option<Duration>) -> Grant {
    Grant {
        prefixes: prefixes.iter().map(|p| p.as_bytes().to_vec()).collect(),
        expires: expires.map(timestamp_after),
    }
}

fn describe_grant(grant: &Grant) -> String {
    let keys = if grant.prefixes.is_empty() {
        "every key".to_string()
    } else {
        let prefixes: Vec<String> = grant.prefixes.iter().map(|p| escape(p)).collect();
        format!("keys under {}", prefixes.join(", "))
    };
    match grant.expires {
        Some(expires) => format!("{keys}, until {}", format_timestamp(expires)),
        None => keys,
    }
}

fn describe(membership: &Membership) -> String {
    match membership {
        Membership::Granted(grant) => format!("may write {}", describe_grant(grant)),
        Membership::Revoked { grant, until } => match grant {
            Some(grant) => format!(
                "revoked: entries before {until} count ({})",
                describe_grant(grant)
            ),
            None => format!("revoked at {until}"),
        },
    }
}

/// `weft members`.
pub fn members(out: &mut impl Write, report: &TrustReport, json: bool) -> std::io::Result<()> {
    if json {
        return writeln!(
            out,
            "{}",
            serde_json::to_string(report).map_err(std::io::Error::other)?
        );
    }
    write_access(out, report)?;
    for (author, membership) in &report.members {
        writeln!(out, "  {author}: {}", describe(membership))?;
    }
    Ok(())
}

fn write_access(out: &mut impl Write, report: &TrustReport) -> std::io::Result<()> {
    match report.charter.as_ref().map(|c| c.mode) {
        None | Some(Mode::Open) => {
            writeln!(out, "access:    open: anyone holding a ticket may write")
        }
        Some(Mode::Closed { owner }) => {
            writeln!(out, "access:    closed; owner {owner}")
        }
    }
}

/// The trust half of `weft status`: access, entries that do not count, and forks.
pub fn status(out: &mut impl Write, report: &TrustReport) -> std::io::Result<()> {
    write_access(out, report)?;
    if report.excluded.is_empty() {
        writeln!(out, "excluded:  none")?;
    }
    for excluded in &report.excluded {
        writeln!(
            out,
            "excluded:  {} entries of {} from {}: {}",
            excluded.entries, excluded.author, excluded.first, excluded.reason
        )?;
    }
    for fork in &report.forks {
        let mut lengths = fork
            .proof
            .branches
            .each_ref()
            .map(|branch| branch.head.length);
        lengths.sort_unstable();
        writeln!(
            out,
            "FORK:      {} signed two histories (lengths {} and {}) that part at entry {}: its entries from there on do not count",
            fork.proof.author(),
            lengths[0],
            lengths[1],
            fork.frozen_at
        )?;
    }
    Ok(())
}
