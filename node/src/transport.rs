//! The node's transports: TCP (noise, yamux) and QUIC, with every TCP byte counted.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::future::Either;
use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::{PeerId, Transport, noise, quic, relay, tcp, yamux};

/// Bytes written and read on the node's TCP connections, counted below encryption and
/// multiplexing: what crosses the wire. QUIC traffic is not counted.
#[derive(Debug, Default)]
pub struct WireCounters {
    /// Bytes written.
    pub sent: AtomicU64,
    /// Bytes read.
    pub received: AtomicU64,
}

impl WireCounters {
    /// Bytes in both directions so far.
    pub fn total(&self) -> u64 {
        self.sent.load(Ordering::Relaxed) + self.received.load(Ordering::Relaxed)
    }
}

/// A connection that adds the bytes through it to shared counters.
struct Counted<S> {
    inner: S,
    counters: Arc<WireCounters>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            self.counters
                .received
                .fetch_add(*n as u64, Ordering::Relaxed);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            self.counters.sent.fetch_add(*n as u64, Ordering::Relaxed);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// TCP with noise and yamux, counted into `counters`, beside QUIC, and, with `relay`, circuit
/// relay v2 connections (noise and yamux again, end to end, inside a stream of the relay
/// connection: the relay sees only ciphertext).
///
/// # Errors
/// When noise cannot use the key.
pub fn build(
    key: &Keypair,
    counters: Arc<WireCounters>,
    relay: Option<relay::client::Transport>,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, noise::Error> {
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .map(move |stream, _| Counted {
            inner: stream,
            counters: Arc::clone(&counters),
        })
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default());
    let quic = quic::tokio::Transport::new(quic::Config::new(key));
    let direct = quic
        .or_transport(tcp)
        .map(|either, _| match either {
            Either::Left((peer, muxer)) => (peer, StreamMuxerBox::new(muxer)),
            Either::Right((peer, muxer)) => (peer, StreamMuxerBox::new(muxer)),
        })
        .boxed();
    let Some(relay) = relay else {
        return Ok(direct);
    };
    let relayed = relay
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
    Ok(relayed
        .or_transport(direct)
        .map(|either, _| either.into_inner())
        .boxed())
}
