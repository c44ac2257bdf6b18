//! weft's cross-crate integration tests, in one binary.

mod corpus;
mod crash;
mod net;
