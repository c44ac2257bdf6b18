//! weft-node's integration tests, in one binary so the suite links once.

mod common;

mod config;

mod fork;
mod ranges;
mod redis;
mod sim;
