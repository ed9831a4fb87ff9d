//! The caller's request body on its way to a plugin: capped, watched for stalls, and any failure
//! recorded as the caller's fault, so that the gateway answers 413/400/408 and never counts a
//! caller's broken body against the plugin's health (its circuit breaker).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use hyper::body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// What went wrong with a caller's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    /// More bytes than the gateway forwards.
    TooLarge,
    /// Broken framing (an invalid chunked encoding, a connection cut mid-body).
    Malformed,
    /// Nothing arrived for the body timeout.
    Stalled,
}

/// Where a [`WatchedBody`] leaves its fault for the code that sent it.
#[derive(Debug, Default)]
pub struct FaultCell(AtomicU8);

impl FaultCell {
    fn set(&self, fault: BodyFault) {
        let code = match fault {
            BodyFault::TooLarge => 1,
            BodyFault::Malformed => 2,
            BodyFault::Stalled => 3,
        };
        self.0.store(code, Ordering::Release);
    }

    /// The fault, if the body failed.
    pub fn get(&self) -> Option<BodyFault> {
        match self.0.load(Ordering::Acquire) {
            1 => Some(BodyFault::TooLarge),
            2 => Some(BodyFault::Malformed),
            3 => Some(BodyFault::Stalled),
            _ => None,
        }
    }
}

/// A caller's body: at most `limit` bytes, and no gap longer than `idle` between two pieces.
pub struct WatchedBody {
    inner: Body,
    remaining: u64,
    idle: Duration,
    /// Made at the first wait, moved on at each piece.
    deadline: Option<Pin<Box<Sleep>>>,
    fault: Arc<FaultCell>,
}

impl WatchedBody {
    /// Watches `inner`; its failure lands in `fault`.
    pub fn new(inner: Body, limit: u64, idle: Duration, fault: Arc<FaultCell>) -> Self {
        Self {
            inner,
            remaining: limit,
            idle,
            deadline: None,
            fault,
        }
    }

    fn fail(
        &self,
        fault: BodyFault,
        message: &str,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.fault.set(fault);
        Poll::Ready(Some(Err(axum::Error::new(message.to_owned()))))
    }
}

impl hyper::body::Body for WatchedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let size = frame.data_ref().map_or(0, |data| data.len() as u64);
                if size > self.remaining {
                    return self.fail(BodyFault::TooLarge, "the request body exceeds the limit");
                }
                self.remaining -= size;
                let next = Instant::now() + self.idle;
                if let Some(deadline) = self.deadline.as_mut() {
                    deadline.as_mut().reset(next);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(_))) => {
                self.fail(BodyFault::Malformed, "the request body could not be read")
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let idle = self.idle;
                let deadline = self
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if deadline.as_mut().poll(cx).is_ready() {
                    return self.fail(BodyFault::Stalled, "the request body stopped arriving");
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    #[tokio::test]
    async fn an_oversize_body_is_the_callers_fault() {
        let fault = Arc::new(FaultCell::default());
        let body = WatchedBody::new(
            Body::from(vec![b'x'; 100]),
            10,
            Duration::from_secs(1),
            fault.clone(),
        );
        assert!(body.collect().await.is_err());
        assert_eq!(fault.get(), Some(BodyFault::TooLarge));
    }

    #[tokio::test]
    async fn a_stalled_body_is_the_callers_fault() {
        let fault = Arc::new(FaultCell::default());
        let (_sender, stream) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let inner = Body::from_stream(tokio_stream_of(stream));
        let body = WatchedBody::new(inner, 10, Duration::from_millis(50), fault.clone());
        assert!(body.collect().await.is_err());
        assert_eq!(fault.get(), Some(BodyFault::Stalled));
    }

    fn tokio_stream_of(
        mut receiver: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    ) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
        futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
    }
}
