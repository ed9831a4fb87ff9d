//! The gateway's audit log: every call (forwarded or refused) is queued here and written in
//! batches by one task, so recording costs the call a channel send, not a database round trip.

use std::time::Duration;

use plexhub_store::CallRecord;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// Calls written per batch at most.
const BATCH: usize = 2_000;
/// How long the writer lets calls gather before a write that is not full.
const GATHER: Duration = Duration::from_millis(50);
/// Calls queued before callers wait for the writer.
const QUEUE: usize = 65_536;

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

    /// Queues one call (waits only while the queue is full).
    pub async fn record(&self, call: CallRecord) {
        if self.queue.send(call).await.is_err() {
            tracing::warn!("the audit log is closed; a call was not recorded");
        }
    }
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
        // (each write costs the SQLite driver thread hand-offs and a commit).
        if batch.len() < BATCH {
            tokio::time::sleep(GATHER).await;
            while batch.len() < BATCH {
                match calls.try_recv() {
                    Ok(call) => batch.push(call),
                    Err(_) => break,
                }
            }
        }
        write(&state, &mut batch).await;
    }
}

async fn write(state: &AppState, batch: &mut Vec<CallRecord>) {
    if batch.is_empty() {
        return;
    }
    if let Err(error) = state.store.record_calls(batch).await {
        tracing::warn!(%error, lost = batch.len(), "cannot write the gateway audit log");
    }
    batch.clear();
}
