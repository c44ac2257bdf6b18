//! The sync protocol's bytes on a stream: one capped postcard message per direction, as
//! plain async functions over any `AsyncRead`/`AsyncWrite`, so they run on a libp2p stream,
//! an in-memory pipe or a simulated network alike.

use futures::{AsyncRead, AsyncWrite};

use crate::wire::{self, MAX_MESSAGE, Request, Response, WireError};

/// The largest sync request read: a sparse request's prefixes are at most
/// [`weft_storage::MAX_INTEREST_BYTES`], plus framing.
pub const MAX_REQUEST: usize = weft_storage::MAX_INTEREST_BYTES + 4096;

/// The largest sync response read.
pub const MAX_RESPONSE: usize = MAX_MESSAGE;

/// Reads a request: the whole stream, at most [`MAX_REQUEST`] bytes.
///
/// Cancel safety: not cancel safe; a cancelled read loses the bytes read so far.
///
/// # Errors
/// [`WireError`] when the bytes are too many, not a request, or the stream fails.
pub async fn read_request<R: AsyncRead + Unpin>(io: &mut R) -> Result<Request, WireError> {
    wire::read_message(io, MAX_REQUEST).await
}

/// Reads a response: the whole stream, at most [`MAX_RESPONSE`] bytes.
///
/// Cancel safety: not cancel safe; a cancelled read loses the bytes read so far.
///
/// # Errors
/// As [`read_request`].
pub async fn read_response<R: AsyncRead + Unpin>(io: &mut R) -> Result<Response, WireError> {
    wire::read_message(io, MAX_RESPONSE).await
}

/// Writes a request and closes the writing side.
///
/// Cancel safety: not cancel safe; a cancelled write leaves a truncated message.
///
/// # Errors
/// Stream failures.
pub async fn write_request<W: AsyncWrite + Unpin>(
    io: &mut W,
    request: &Request,
) -> Result<(), WireError> {
    wire::write_message(io, request).await
}

/// Writes a response and closes the writing side.
///
/// Cancel safety: not cancel safe; a cancelled write leaves a truncated message.
///
/// # Errors
/// Stream failures.
pub async fn write_response<W: AsyncWrite + Unpin>(
    io: &mut W,
    response: &Response,
) -> Result<(), WireError> {
    wire::write_message(io, response).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Cap;
    use crate::wire::{Refusal, Topic};

    #[test]
    fn requests_and_responses_cross_a_pipe_and_oversize_is_refused() {
        futures::executor::block_on(async {
            let request = Request::Heads {
                topic: Topic([1; 32]),
                cap: Cap([2; 32]),
                after: None,
                digest: None,
            };
            let mut sent = Vec::new();
            write_request(&mut sent, &request).await.expect("write");
            let read = read_request(&mut futures::io::Cursor::new(sent))
                .await
                .expect("read");
            assert_eq!(read, request);

            let response = Response::Refused(Refusal::Busy);
            let mut sent = Vec::new();
            write_response(&mut sent, &response).await.expect("write");
            let read = read_response(&mut futures::io::Cursor::new(sent))
                .await
                .expect("read");
            assert_eq!(read, response);

            let huge = vec![0u8; MAX_REQUEST + 1];
            let read = read_request(&mut futures::io::Cursor::new(huge)).await;
            assert!(matches!(read, Err(WireError::TooLarge { .. })), "{read:?}");
        });
    }
}
