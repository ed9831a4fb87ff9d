//! Server-Sent Event streams that follow a per-tenant change log (registry, shared data).
//!
//! A stream re-reads its log when the change feed says something relevant changed, and every
//! few seconds anyway (so a missed notification only delays, never loses, an event). Event ids
//! are the log's sequence numbers, so a client resumes with `Last-Event-ID`; when the log no
//! longer reaches back that far the stream says `reset` and continues from the present.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use plexhub_store::feed::FeedEvent;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::state::AppState;

/// How often a stream sends a keep-alive comment (so proxies keep it open).
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often a stream re-reads its log without a notification.
const POLL: Duration = Duration::from_secs(2);
/// Log entries read at a time.
pub const BATCH: u32 = 100;

/// What one read of a change log gave.
pub enum Batch {
    /// Entries after the cursor, rendered (possibly filtered to none).
    Events {
        /// Rendered events, oldest first.
        events: Vec<Event>,
        /// The sequence number of the last entry read.
        last: i64,
        /// Whether the read was full (more may be waiting).
        more: bool,
    },
    /// The cursor is unknown or too old; `current` is the log's newest id.
    Reset {
        /// Newest id.
        current: i64,
    },
    /// The log could not be read (logged; retried on the next poll).
    Failed,
}

/// A change log that a stream can follow.
pub trait ChangeLog: Send + 'static {
    /// Whether a feed notification may concern this stream.
    fn concerns(&self, event: &FeedEvent) -> bool;
    /// The entries after `after`, rendered as events. `after = i64::MAX` must answer `Reset`
    /// with the newest id (that is where a stream without `Last-Event-ID` starts).
    fn read_after(&self, after: i64) -> impl Future<Output = Batch> + Send;
}

/// The `Last-Event-ID` a client resumes from (an unreadable one resumes from nowhere: reset).
pub fn resume_id(headers: &HeaderMap) -> Option<i64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|text| text.trim().parse::<i64>().unwrap_or(-1))
}

struct Follower<L> {
    state: AppState,
    log: L,
    last: i64,
    pending: VecDeque<Event>,
    feed: broadcast::Receiver<FeedEvent>,
    poll: tokio::time::Interval,
    read_now: bool,
}

impl<L: ChangeLog> Follower<L> {
    async fn read(&mut self) {
        match self.log.read_after(self.last).await {
            Batch::Events { events, last, more } => {
                self.pending.extend(events);
                self.last = self.last.max(last);
                self.read_now = more;
            }
            Batch::Reset { current } => {
                self.last = current;
                self.pending.push_back(
                    Event::default()
                        .id(current.to_string())
                        .event("reset")
                        .data(json!({ "type": "reset", "current": current }).to_string()),
                );
            }
            Batch::Failed => {}
        }
    }

    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(event), self));
            }
            if !self.read_now {
                tokio::select! {
                    () = self.state.shutdown.cancelled() => return None,
                    received = self.feed.recv() => match received {
                        Ok(event) if !self.log.concerns(&event) => continue,
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return None,
                    },
                    _ = self.poll.tick() => {}
                }
            }
            self.read_now = false;
            self.read().await;
        }
    }
}

/// A stream following `log` from `resume` (see [`resume_id`]) when given, else from now. It
/// ends when the hub shuts down.
pub async fn follow<L: ChangeLog>(
    state: AppState,
    log: L,
    resume: Option<i64>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribe before reading the position, so nothing between the two is missed.
    let feed = state.feed.subscribe();
    let last = match resume {
        Some(id) => id,
        None => match log.read_after(i64::MAX).await {
            Batch::Reset { current } => current,
            _ => 0,
        },
    };
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let follower = Follower {
        state,
        log,
        last,
        pending: VecDeque::new(),
        feed,
        poll,
        read_now: resume.is_some(),
    };
    Sse::new(futures::stream::unfold(follower, Follower::next))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
