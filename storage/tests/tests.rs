//! weft-storage's integration tests, in one binary so the suite links once.

mod common;

mod layering;
mod prune;
mod replicate;
mod sparse;
mod store;
mod trust;
