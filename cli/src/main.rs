//! The `weft` binary: flags in `args`, work in `commands`; the logic lives in the library crates.

mod args;
mod backend;
mod commands;
mod import;
mod network;
mod output;
mod trust;

use std::process::ExitCode;

use clap::Parser;
use weft_node::api::{ApiError, ErrorKind};

fn main() -> ExitCode {
    // clap exits 2 on a usage error and 0 for --help and --version.
    let cli = args::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("weft: {err:#}{}", advice(&err).unwrap_or_default());
            ExitCode::from(2)
        }
    }
}

/// What to do about an error the replica or node reported, by its kind: libraries say what
/// went wrong, and the command line says which command mends it.
fn advice(err: &anyhow::Error) -> Option<String> {
    let kind = err.chain().find_map(|cause| {
        cause
            .downcast_ref::<ApiError>()
            .map(|e| e.kind)
            .or_else(|| {
                cause
                    .downcast_ref::<weft_storage::Error>()
                    .map(ErrorKind::of_store)
            })
    })?;
    Some(match kind {
        ErrorKind::NotInitialized => ": run `weft init` first".into(),
        ErrorKind::NotAWeftDir => {
            ": point --data-dir at a replica, or at an empty or new directory to create one".into()
        }
        ErrorKind::Locked => " (is `weft node` running?)".into(),
        ErrorKind::Damaged => "; run `weft verify` to find every damaged entry".into(),
        ErrorKind::NotReplicated => "; add an interest or use --remote".into(),
        ErrorKind::NotAllowed { author } => {
            format!("; the namespace owner can run `weft grant {author}`")
        }
        ErrorKind::AlreadyFull => {
            " (make a new one with `weft init --join TICKET --prefix P`)".into()
        }
        ErrorKind::AlreadySparse => " (make a new one with `weft init --join TICKET`)".into(),
        ErrorKind::ChangesDropped => "; `weft ls --values` re-reads them".into(),
        ErrorKind::Pruned => " (weft prune keeps only live values)".into(),
        ErrorKind::NeedsNode => ": start `weft node` first".into(),
        ErrorKind::OwnFeedBehind => "; write again once `weft sync` returns".into(),
        _ => return None,
    })
}

/// A reader that went away (`weft ls | head`) is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
