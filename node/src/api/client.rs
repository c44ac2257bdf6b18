//! The blocking client of a running node's local API, as the CLI uses it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::messages::{ApiError, ApiRequest, ApiResponse, MAX_FRAME};
use crate::config::SOCKET_FILE;

/// Why a local API call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The node answered with an error.
    #[error(transparent)]
    Node(ApiError),
    /// The socket failed.
    #[error("talking to the node on {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The request is over [`MAX_FRAME`].
    #[error("request of {0} bytes is over the local API's limit of {MAX_FRAME}")]
    TooLarge(usize),
    /// The node's answer is not one this client reads.
    #[error("the node sent an answer this weft does not understand (is it another version?)")]
    Protocol,
}

/// A blocking client of a running node's local API.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    path: PathBuf,
}

impl Client {
    /// Connects to the node running on `dir`, or `None` when none is: no socket, or a socket
    /// left behind by a node that was killed.
    ///
    /// # Errors
    /// [`ClientError::Io`] for other failures, such as a socket owned by another user.
    pub fn connect(dir: &Path) -> Result<Option<Client>, ClientError> {
        let path = dir.join(SOCKET_FILE);
        match UnixStream::connect(&path) {
            Ok(stream) => Ok(Some(Client { stream, path })),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(None)
            }
            Err(source) => Err(ClientError::Io { path, source }),
        }
    }

    /// Sends one request and waits for its answer; an [`ApiResponse::Error`] becomes
    /// [`ClientError::Node`].
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn call(&mut self, request: &ApiRequest) -> Result<ApiResponse, ClientError> {
        let io = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        let bytes = postcard::to_allocvec(request).expect("requests always encode");
        let len = u32::try_from(bytes.len())
            .ok()
            .filter(|len| *len as usize <= MAX_FRAME)
            .ok_or(ClientError::TooLarge(bytes.len()))?;
        self.stream.write_all(&len.to_le_bytes()).map_err(io)?;
        self.stream.write_all(&bytes).map_err(io)?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).map_err(io)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(ClientError::Protocol);
        }
        let mut bytes = vec![0u8; len];
        self.stream.read_exact(&mut bytes).map_err(io)?;
        match postcard::from_bytes(&bytes).map_err(|_| ClientError::Protocol)? {
            ApiResponse::Error(error) => Err(ClientError::Node(error)),
            response => Ok(response),
        }
    }
}
