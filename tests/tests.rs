//! weft's cross-crate integration tests, in one binary.

mod crash;
mod net;
