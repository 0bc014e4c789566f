//! Job status writes batched: every update goes through one channel to one task, which sends
//! whatever has queued up meanwhile as one pipeline — one Redis round trip for many jobs, instead
//! of one per job per state. Order is kept (one FIFO, one pipeline at a time), so a job's
//! `running` can never land after its `succeeded`.
//!
//! A worker does not wait for `running` (it is for people watching); it waits for a final status
//! (bounded), so a job's outcome is in Redis before its offset is stored.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::status::{StatusStore, StatusUpdate};

/// Updates a batch holds at most.
const MAX_BATCH: usize = 1024;
/// Updates waiting at most; a sender waits when Redis falls this far behind.
const QUEUE: usize = 16 * 1024;

#[derive(Debug, Clone, thiserror::Error)]
#[error("job status write failed: {0}")]
pub struct WriteError(String);

struct Queued {
    update: StatusUpdate,
    written: Option<oneshot::Sender<Result<(), WriteError>>>,
}

/// The sending side; cheap to clone. The writing task ends when every clone is dropped.
#[derive(Clone)]
pub struct StatusWriter {
    queue: mpsc::Sender<Queued>,
}

impl StatusWriter {
    /// Starts the writing task on the current runtime.
    pub fn start(store: StatusStore) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(store, receiver));
        Self { queue }
    }

    /// Queues an update without waiting for Redis. When Redis is so far behind that the queue
    /// is full, the update is dropped: status is for people, and a job never waits for it.
    pub fn record_later(&self, update: StatusUpdate) {
        if self
            .queue
            .try_send(Queued {
                update,
                written: None,
            })
            .is_err()
        {
            tracing::debug!("status queue full; an intermediate status was not recorded");
        }
    }

    /// Queues an update and waits until its batch was written, at most `timeout`.
    pub async fn record(&self, update: StatusUpdate, timeout: Duration) -> Result<(), WriteError> {
        let (written, done) = oneshot::channel();
        let queued = Queued {
            update,
            written: Some(written),
        };
        let wait = async {
            self.queue
                .send(queued)
                .await
                .map_err(|_| WriteError("the status writer stopped".into()))?;
            done.await
                .map_err(|_| WriteError("the status writer stopped".into()))?
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| WriteError(format!("no answer within {timeout:?}")))?
    }
}

async fn write_batches(store: StatusStore, mut receiver: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // A job's `running` followed by its `succeeded` in the same batch: only the last one
        // needs writing (it carries every field), which halves the writes of fast jobs.
        let mut later = std::collections::HashSet::new();
        let mut pipe = redis::pipe();
        let mut writes = Vec::with_capacity(batch.len());
        for queued in batch.iter().rev() {
            let superseded = !later.insert(queued.update.job_id.as_str());
            // An update carrying an error is kept: the later one would not repeat it.
            writes.push(!superseded || queued.update.error.is_some());
        }
        drop(later);
        writes.reverse();
        for (queued, write) in batch.iter().zip(writes) {
            if write {
                store.add_to(&mut pipe, &queued.update);
            }
        }
        let result = pipe
            .query_async::<()>(&mut store.connection())
            .await
            .map_err(|e| WriteError(e.to_string()));
        for queued in batch.drain(..) {
            if let Some(written) = queued.written {
                let _ = written.send(result.clone());
            }
        }
    }
}
