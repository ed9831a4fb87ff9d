//! Kept-alive HTTP/1 connections to one plain-`http` replica, held by the replica itself.
//!
//! Why not hyper-util's pooled client (which still serves `https` replicas and event
//! deliveries): on the proxy's hot path its pool hashed a `(scheme, authority)` key twice per
//! request, wrapped each checkout, and parsed an absolute URI only to write the origin form
//! (`bench/callgrind.sh`). Here taking a connection is a pop from the replica's own list, the
//! request goes out in origin form, and the connection comes back when the answer's body has
//! been read to its end (an answer dropped before its end closes the connection).

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{Request, Response};
use futures::FutureExt as _;
use futures::future::Either;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Idle connections an address keeps at most; more are closed when their answer ends.
const MAX_IDLE: usize = 1024;
/// How long a connection may stay idle before it is closed (a plugin, or something between,
/// may drop an idle connection without telling).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The connections of every plain-`http` address the gateway forwards to, shared by the
/// replicas at that address (of every tenant, and across reloads of a registry entry, so a
/// registry change does not close them); an address no replica uses any more is forgotten.
#[derive(Debug, Default)]
pub struct Pools {
    by_address: Mutex<HashMap<String, Weak<Connections>>>,
}

impl Pools {
    /// The connections to `address` (`host:port`), made on first use.
    pub fn for_address(&self, address: &str) -> Arc<Connections> {
        let mut pools = self
            .by_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(pool) = pools.get(address).and_then(Weak::upgrade) {
            return pool;
        }
        pools.retain(|_, pool| pool.strong_count() > 0);
        let pool = Arc::new(Connections::new(address.to_owned(), IDLE_TIMEOUT));
        pools.insert(address.to_owned(), Arc::downgrade(&pool));
        pool
    }
}

/// The idle connections to one address, and where new ones are opened.
#[derive(Debug)]
pub struct Connections {
    /// `host:port` of the replica.
    address: String,
    /// Idle connections and since when, oldest first; the newest is used first.
    idle: Mutex<VecDeque<(SendRequest<Body>, Instant)>>,
    idle_timeout: Duration,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be opened (refused, unresolvable, or not within the connect timeout).
    #[error("{0}")]
    Connect(std::io::Error),
    /// The connection failed while the request was written or the answer awaited.
    #[error(transparent)]
    Exchange(#[from] hyper::Error),
}

impl Connections {
    /// Connections to `address` (`host:port`), closed after `idle_timeout` unused; none is
    /// opened before the first request.
    fn new(address: String, idle_timeout: Duration) -> Self {
        Self {
            address,
            idle: Mutex::new(VecDeque::new()),
            idle_timeout,
        }
    }

    /// Sends `request` (origin-form URI, `Host` set) on an idle connection, or on a new one
    /// when none is idle. A connection the plugin closed while it was idle fails before the
    /// request is written: the request then goes to the next one.
    ///
    /// When the newest idle connection is ready the request is handed to it before this
    /// returns, and the future holds only that exchange; anything else (waiting for a
    /// connection, opening one) is a boxed future, off the common path's size.
    pub fn send(
        self: &Arc<Self>,
        request: Request<Body>,
        connect_timeout: Duration,
    ) -> impl Future<Output = Result<Response<PooledBody>, SendError>> + Send + '_ {
        let mut sender = match self.take_idle() {
            Some(sender) if sender.is_ready() => sender,
            idle => {
                return Either::Right(crate::cold::wait(self.send_slowly(
                    idle,
                    request,
                    connect_timeout,
                )));
            }
        };
        let sent = sender.try_send_request(request);
        Either::Left(sent.then(move |sent| match sent {
            Ok(response) => Either::Left(std::future::ready(Ok(self.pooled(response, sender)))),
            Err(mut failed) => match failed.take_message() {
                // Closed while idle: the next connection takes it.
                Some(unsent) => Either::Right(crate::cold::wait(self.send_slowly(
                    None,
                    unsent,
                    connect_timeout,
                ))),
                None => Either::Left(std::future::ready(Err(failed.into_error().into()))),
            },
        }))
    }

    /// [`Self::send`] when it must wait: for `first` (an idle connection not ready yet), then
    /// for the other idle ones, then for a new one.
    async fn send_slowly(
        self: &Arc<Self>,
        mut first: Option<SendRequest<Body>>,
        mut request: Request<Body>,
        connect_timeout: Duration,
    ) -> Result<Response<PooledBody>, SendError> {
        loop {
            let (mut sender, fresh) = match first.take().or_else(|| self.take_idle()) {
                Some(sender) => (sender, false),
                None => (self.connect(connect_timeout).await?, true),
            };
            if let Err(error) = sender.ready().await {
                if fresh {
                    return Err(error.into());
                }
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.pooled(response, sender)),
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) if !fresh => request = unsent,
                    _ => return Err(failed.into_error().into()),
                },
            }
        }
    }

    /// The answer, whose body gives `sender` back once read to its end.
    fn pooled(
        self: &Arc<Self>,
        response: Response<Incoming>,
        sender: SendRequest<Body>,
    ) -> Response<PooledBody> {
        let home = Arc::downgrade(self);
        response.map(|body| PooledBody {
            body,
            sender: Some(sender),
            home,
        })
    }

    /// An idle connection still open, if any (the most recently used).
    fn take_idle(&self) -> Option<SendRequest<Body>> {
        let now = Instant::now();
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while let Some((sender, since)) = idle.pop_back() {
            if now.duration_since(since) >= self.idle_timeout {
                // The others have been idle longer still.
                idle.clear();
                return None;
            }
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    /// Keeps `sender` for the next request, unless its connection closed or enough are idle;
    /// closes the connections idle for too long.
    fn give_back(&self, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while idle
            .front()
            .is_some_and(|(_, since)| now.duration_since(*since) >= self.idle_timeout)
        {
            idle.pop_front();
        }
        if idle.len() < MAX_IDLE {
            idle.push_back((sender, now));
        }
    }

    /// Opens a connection (TCP with `TCP_NODELAY`, HTTP/1) and runs it in its own task.
    async fn connect(&self, timeout: Duration) -> Result<SendRequest<Body>, SendError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(&self.address)).await {
            Ok(connected) => connected.map_err(SendError::Connect)?,
            Err(_) => {
                return Err(SendError::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {} ms", timeout.as_millis()),
                )));
            }
        };
        stream.set_nodelay(true).map_err(SendError::Connect)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a connection to a plugin ended");
            }
        });
        Ok(sender)
    }
}

/// An answer's body that gives its connection back to the replica once read to its end.
pub struct PooledBody {
    body: Incoming,
    sender: Option<SendRequest<Body>>,
    home: Weak<Connections>,
}

impl PooledBody {
    fn give_back(&mut self) {
        if let (Some(sender), Some(home)) = (self.sender.take(), self.home.upgrade()) {
            home.give_back(sender);
        }
    }
}

impl hyper::body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &frame {
            None => this.give_back(),
            // A broken answer leaves the connection in no state to be used again.
            Some(Err(_)) => this.sender = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // An answer without a body (or one whose end was known before it was polled) is not
        // polled to its end by the server: it is complete all the same.
        if hyper::body::Body::is_end_stream(&self.body) {
            self.give_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Request, header};
    use http_body_util::BodyExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::Connections;

    /// A plugin that answers every request on a connection with `ok` and counts connections.
    async fn plugin() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while let Ok(read) = socket.read(&mut chunk).await {
                        if read == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..read]);
                        while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            buffer.drain(..end + 4);
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if socket.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (address, accepted)
    }

    async fn get(connections: &Arc<Connections>, address: &str) {
        let request = Request::builder()
            .uri("/")
            .header(header::HOST, address)
            .body(Body::empty())
            .expect("a request");
        let answer = connections
            .send(request, Duration::from_secs(5))
            .await
            .expect("an answer");
        let body = answer.into_body().collect().await.expect("the body");
        assert_eq!(body.to_bytes().as_ref(), b"ok");
    }

    #[tokio::test]
    async fn a_connection_is_reused_until_it_has_been_idle_too_long() {
        let (address, accepted) = plugin().await;
        let connections = Arc::new(Connections::new(
            address.clone(),
            Duration::from_millis(200),
        ));
        for _ in 0..3 {
            get(&connections, &address).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "reused while busy");
        tokio::time::sleep(Duration::from_millis(300)).await;
        get(&connections, &address).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "closed after its idle time"
        );
    }
}
