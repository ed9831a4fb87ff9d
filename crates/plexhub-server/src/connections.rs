//! Accepting connections: HTTP/1 on each with a deadline for request headers (a client that
//! never finishes them, slowloris-style, or a keep-alive connection left idle, is closed), at
//! most a set number of connections at once (further clients wait in the listen backlog), and a
//! graceful drain on shutdown: no new connections, requests in flight finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::Service as _;

use crate::front::Front;

/// Limits on client connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time a client has to send a request's headers, from the connection's start or the end of
    /// the previous answer (so also the idle keep-alive timeout).
    pub header_read_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// After the stop signal, how long the listener still accepts while `/readyz` answers 503,
    /// so that load balancers stop sending here before connections are refused. None by
    /// default (tests, embedders); `plexhub serve` sets its `drain_grace`.
    pub drain_grace: Duration,
    /// Once the listener is closed, the longest wait for requests and event deliveries in
    /// flight; connections still open then are cut.
    pub drain_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            drain_grace: Duration::ZERO,
            drain_timeout: Duration::from_secs(25),
        }
    }
}

/// Pause after a failed accept (out of file descriptors, say) before the next.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);
/// What is read of a request body its handler did not read, at most…
const DRAIN_LIMIT: usize = 1024 * 1024;
/// …and for at most this long.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// A request body that, when its handler drops it unread (a request refused before its body
/// mattered), is read to its end in the background, within [`DRAIN_LIMIT`] and [`DRAIN_TIME`]:
/// unread bytes left on a closing connection make the kernel reset it, and the client would
/// lose the answer it was sent.
struct DrainedBody(Option<Incoming>);

impl hyper::body::Body for DrainedBody {
    type Data = axum::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        match self.0.as_mut() {
            Some(body) => std::pin::Pin::new(body).poll_frame(cx),
            None => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(hyper::body::Body::is_end_stream)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.0.as_ref().map_or_else(
            || hyper::body::SizeHint::with_exact(0),
            hyper::body::Body::size_hint,
        )
    }
}

impl Drop for DrainedBody {
    fn drop(&mut self) {
        let Some(body) = self.0.take() else { return };
        if hyper::body::Body::is_end_stream(&body) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let limited = http_body_util::Limited::new(body, DRAIN_LIMIT);
                let _ = tokio::time::timeout(DRAIN_TIME, http_body_util::BodyExt::collect(limited))
                    .await;
            });
        }
    }
}

/// Connections the kernel completes and queues for the hub before it accepts them. Far above
/// the default listen backlog here (128): when hundreds of clients connect at once while the
/// worker is busy, a full queue drops their handshakes and each retries after a second (with
/// 128, a 256-connection `wrk` start had 31 handshakes dropped and its p99 reach 0.3-0.5 s). The
/// kernel caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `address` with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as `TcpListener::bind`).
pub fn listen(address: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `front` on `listener` until `shutdown` completes, then lets every connection finish
/// what it is doing, for at most `limits.drain_timeout`.
pub async fn serve(
    listener: TcpListener,
    front: Front,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        // Answers are written whole: Nagle's algorithm would only delay them.
        let _ = stream.set_nodelay(true);
        let front = front.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut front = front.clone();
            // A request without a body (most gateway calls) gets an empty one: no allocation.
            front.call(request.map(|body| {
                if hyper::body::Body::is_end_stream(&body) {
                    Body::empty()
                } else {
                    Body::new(DrainedBody(Some(body)))
                }
            }))
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            drain_timeout_ms = limits.drain_timeout.as_millis(),
            "connections still busy after the drain timeout are cut"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    /// Three hundred clients connecting at once to a listener that accepts none of them yet all
    /// complete their handshake at once: none waits for a dropped SYN to be retried (a second).
    #[tokio::test]
    async fn a_burst_of_connections_is_queued_not_dropped() {
        let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0))).expect("a free port");
        let address = listener.local_addr().expect("a bound address");
        let connects = (0..300).map(|_| {
            tokio::time::timeout(
                Duration::from_millis(500),
                tokio::net::TcpStream::connect(address),
            )
        });
        let connected = futures::future::join_all(connects).await;
        let completed = connected
            .iter()
            .filter(|outcome| matches!(outcome, Ok(Ok(_))))
            .count();
        assert_eq!(
            completed, 300,
            "every handshake completes without an accept"
        );
        drop(listener);
    }
}
