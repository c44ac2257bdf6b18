//! The local API: every data operation as one request ([`ApiRequest`]) and one response,
//! carried out in one place ([`execute`]), served on a Unix socket in the data dir by a
//! running node ([`serve`], [`answer`]) and called by the CLI ([`Client`]).
//!
//! Over the socket each frame is a u32 little-endian length then a postcard [`ApiRequest`]
//! or [`ApiResponse`]; a connection carries any number of request/response pairs in turn.
//! The socket is mode 0600: only the data dir's owner can use it.

mod client;
mod execute;
mod messages;
mod server;

pub use client::{Client, ClientError};
pub use execute::execute;
pub use messages::{
    ApiError, ApiRequest, ApiResponse, ErrorKind, MAX_FRAME, MAX_WAIT_MS, PAGE_BYTES, PAGE_KEYS,
};
pub use server::{answer, serve};
