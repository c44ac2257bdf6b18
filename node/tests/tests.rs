//! weft-node's integration tests, in one binary so the suite links once.

mod common;

mod fork;
mod redis;
mod sim;
