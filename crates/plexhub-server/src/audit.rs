//! The gateway's audit log: every call (forwarded or refused) is queued here and written in
//! batches by one task, so recording costs the call a channel send, not a database round trip.

use std::time::Duration;

use plexhub_store::CallRecord;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// Calls written per batch at most.
const BATCH: usize = 2_000;
/// How long the writer lets calls gather before a write that is not full. Short: on SQLite the
/// write runs on a thread beside the request workers, and a batch of 50 ms of calls (a few ms
/// of CPU) delayed the calls behind it (proxy p99 at 32 connections 2 820 µs with 50 ms, 2 370
/// with 10; `bench/gateway.sh`).
const GATHER: Duration = Duration::from_millis(10);
/// Calls queued before callers wait for the writer.
const QUEUE: usize = 65_536;
/// First pause after a failed write; doubled up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest pause between two attempts of a write.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Attempts of a write once the hub is stopping, before its records are given up.
const RETRIES_WHEN_STOPPING: u32 = 3;
/// Attempts of a write the database refuses (not a lost connection) before it is split.
const RETRIES_WHEN_REFUSED: u32 = 4;

/// The sending side, held in the app state.
#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<CallRecord>,
}

impl AuditLog {
    /// A log and the queue its task drains.
    pub fn new() -> (Self, mpsc::Receiver<CallRecord>) {
        let (queue, calls) = mpsc::channel(QUEUE);
        (Self { queue }, calls)
    }

    /// Queues one call. The future waits only while the queue is full (nothing is dropped:
    /// the call waits for the writer); otherwise the call is queued before this returns and
    /// the future, ready at once, holds nothing but an empty slot.
    pub fn record(&self, call: CallRecord) -> impl Future<Output = ()> + Send + 'static {
        let full = match self.queue.try_send(call) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(call)) => {
                let queue = self.queue.clone();
                Some(crate::cold::wait(async move { queue.send(call).await }))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                closed();
                None
            }
        };
        async move {
            if let Some(wait) = full
                && wait.await.is_err()
            {
                closed();
            }
        }
    }
}

/// Says that a call could not be recorded because the log is closed (the hub is stopping).
fn closed() {
    tracing::warn!("the audit log is closed; a call was not recorded");
}

/// Writes queued calls in batches; once `stop` is cancelled (after the server drained), writes
/// what is left and returns.
pub async fn run(state: AppState, mut calls: mpsc::Receiver<CallRecord>, stop: CancellationToken) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let received = tokio::select! {
            received = calls.recv_many(&mut batch, BATCH) => received,
            () = stop.cancelled() => {
                while let Ok(call) = calls.try_recv() {
                    batch.push(call);
                }
                write(&state, &mut batch).await;
                return;
            }
        };
        if received == 0 {
            return;
        }
        // Nobody waits for the audit log: let calls gather so that one write carries many
        // (each write costs a hand-off to the writer's thread and a commit).
        if batch.len() < BATCH {
            tokio::time::sleep(GATHER).await;
            while batch.len() < BATCH {
                match calls.try_recv() {
                    Ok(call) => batch.push(call),
                    Err(_) => break,
                }
            }
        }
        let started = std::time::Instant::now();
        write(&state, &mut batch).await;
        state
            .metrics
            .audit_batch(calls.len(), started.elapsed().as_secs_f64());
    }
}

/// Writes a batch. While the database cannot be reached the write is retried with backoff and
/// nothing is dropped (meanwhile the queue fills and calls wait for room). A batch the database
/// keeps refusing (a record of a tenant deleted meanwhile) is written record by record, and only
/// the refused records are given up, with a log line. Once the hub is stopping it gives up after
/// a few attempts and says how many records it lost.
async fn write(state: &AppState, batch: &mut Vec<CallRecord>) {
    if batch.is_empty() {
        return;
    }
    let mut pause = RETRY_FIRST;
    let mut attempts = 0;
    while let Err(error) = state.store.record_calls(batch).await {
        attempts += 1;
        if state.shutdown.is_cancelled() && attempts >= RETRIES_WHEN_STOPPING {
            tracing::error!(%error, lost = batch.len(), "cannot write the gateway audit log");
            break;
        }
        if !error.is_unavailable() && attempts >= RETRIES_WHEN_REFUSED {
            write_one_by_one(state, batch).await;
            break;
        }
        tracing::warn!(%error, queued = batch.len(), "cannot write the gateway audit log; retrying");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY_MAX);
    }
    batch.clear();
}

async fn write_one_by_one(state: &AppState, batch: &[CallRecord]) {
    for call in batch {
        if let Err(error) = state.store.record_calls(std::slice::from_ref(call)).await {
            tracing::error!(%error, tenant = %call.tenant_id, request_id = %call.request_id, "the database refuses an audit record; it is dropped");
        }
    }
}
