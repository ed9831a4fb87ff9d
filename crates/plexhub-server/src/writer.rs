//! Group commit for shared-data writes: concurrent writes are applied in one transaction, so
//! one commit (and, on PostgreSQL, one fsync) serves many acknowledgements. Nothing waits for
//! a batch to fill: the writer takes what is queued when it is free. Every write is answered
//! only after its transaction committed.

use plexhub_core::tenant::TenantId;
use plexhub_store::{DataOutcome, DataWrite, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::state::AppState;

/// Writes applied in one transaction at most.
const MAX_BATCH: usize = 256;
/// Queued writes before callers wait.
const QUEUE: usize = 4096;

/// A write waiting for its batch.
pub struct WriteRequest {
    tenant: TenantId,
    write: DataWrite,
    reply: oneshot::Sender<Result<DataOutcome, StoreError>>,
}

/// The sending side, held in the app state.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<WriteRequest>,
}

/// Why a write was not applied by the batch writer.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The database refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The hub is shutting down.
    #[error("the hub is shutting down")]
    Stopped,
}

impl Writer {
    /// A writer and the queue its task drains.
    pub fn new() -> (Self, mpsc::Receiver<WriteRequest>) {
        let (queue, requests) = mpsc::channel(QUEUE);
        (Self { queue }, requests)
    }

    /// Applies one write in the next batch and waits until it is committed.
    pub async fn write(
        &self,
        tenant: TenantId,
        write: DataWrite,
    ) -> Result<DataOutcome, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(WriteRequest {
                tenant,
                write,
                reply,
            })
            .await
            .map_err(|_| WriteError::Stopped)?;
        Ok(answer.await.map_err(|_| WriteError::Stopped)??)
    }
}

/// Drains the queue (until the hub stops it): one transaction per batch; if a batch fails as a whole
/// (a database error in one write), each of its writes is retried alone so only the faulty one
/// fails.
pub async fn run(state: AppState, mut requests: mpsc::Receiver<WriteRequest>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while requests.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let now = state.clock.now_ms();
        let writes: Vec<(TenantId, DataWrite)> =
            batch.iter().map(|r| (r.tenant, r.write.clone())).collect();
        match state.store.put_data_batch(&writes, now).await {
            Ok(outcomes) => {
                for (request, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = request.reply.send(Ok(outcome));
                }
            }
            Err(_) => {
                for request in batch.drain(..) {
                    let result = state
                        .store
                        .put_data(request.tenant, &request.write, now)
                        .await;
                    let _ = request.reply.send(result);
                }
            }
        }
    }
}
