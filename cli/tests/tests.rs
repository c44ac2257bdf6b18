//! The `weft` binary's integration tests, in one binary so the suite links once.

mod common;
mod netns;

mod cli;
mod crash;
mod fault;
mod lan;
mod nodes;
mod prune;
mod wan;
