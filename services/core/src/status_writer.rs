//! Job status writes batched: every update goes through one channel to one task, which sends
//! whatever has queued up meanwhile as one pipeline — one Redis round trip for many jobs, instead
//! of one per job per state. Order is kept (one FIFO, one pipeline at a time, and within a batch
//! only a job's last update is written), so a job's `running` can never land after its
//! `succeeded`.
//!
//! A worker does not wait for `running` (it is for people watching). A final status carries a
//! completion that runs once its batch was written (or failed, or timed out): the worker stores
//! the job's offset there, so an outcome is in Redis before its offset is stored, without the
//! job's slot waiting for the round trip.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::sync::{mpsc, oneshot};

use crate::{
    redis_conn::SlotGroups,
    status::{StatusStore, StatusUpdate},
};

/// Updates a batch holds at most.
const MAX_BATCH: usize = 1024;
/// Updates waiting at most; a sender waits when Redis falls this far behind.
const QUEUE: usize = 16 * 1024;
/// A batch write taking longer than this counts as failed, so a hung Redis delays offsets by
/// at most this much.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Counter writes of one writing task in flight at most; past that (Redis answering counters
/// far slower than statuses) a batch's counts are dropped rather than piling up tasks.
const MAX_COUNTER_WRITES: usize = 8;

#[derive(Debug, Clone, thiserror::Error)]
#[error("job status write failed: {0}")]
pub struct WriteError(String);

/// What runs once an update's batch was written (`Ok`) or given up on (`Err`).
pub type Completion = Box<dyn FnOnce(Result<(), WriteError>) + Send>;

enum Queued {
    Update {
        update: StatusUpdate,
        done: Option<Completion>,
    },
    /// Answered once everything queued before it was written.
    Flush(oneshot::Sender<()>),
}

/// Writing tasks, each with its own queue; a job's updates always go to the same one (by its
/// id), so their order holds, while one task's round trip overlaps another's batch building.
const SHARDS: usize = 2;

/// The sending side; cheap to clone. The writing tasks end when every clone is dropped.
#[derive(Clone)]
pub struct StatusWriter {
    queues: std::sync::Arc<[mpsc::Sender<Queued>]>,
}

impl StatusWriter {
    /// Starts the writing tasks on the current runtime.
    pub fn start(store: StatusStore) -> Self {
        let queues = (0..SHARDS)
            .map(|_| {
                let (queue, receiver) = mpsc::channel(QUEUE / SHARDS);
                tokio::spawn(write_batches(store.clone(), receiver));
                queue
            })
            .collect();
        Self { queues }
    }

    fn queue(&self, job_id: &str) -> &mpsc::Sender<Queued> {
        // FNV-1a: cheap, and stable for the process's lifetime, which is all ordering needs.
        let hash = job_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        &self.queues[(hash % SHARDS as u64) as usize]
    }

    /// Queues an update without waiting for Redis. When Redis is so far behind that the queue
    /// is full, the update is dropped: status is for people, and a job never waits for it.
    pub fn record_later(&self, update: StatusUpdate) {
        if self
            .queue(&update.job_id)
            .try_send(Queued::Update { update, done: None })
            .is_err()
        {
            tracing::debug!("status queue full; an intermediate status was not recorded");
        }
    }

    /// Queues an update; `done` runs once its batch was written or failed. Waits only while the
    /// queue is full (Redis far behind), at most `timeout`; then `done` runs at once with the
    /// error, so a job is never held up by status for longer than that.
    pub async fn record_then(&self, update: StatusUpdate, done: Completion, timeout: Duration) {
        let queue = self.queue(&update.job_id);
        let queued = Queued::Update {
            update,
            done: Some(done),
        };
        let refused = match queue.try_send(queued) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(queued)) => {
                match queue.send_timeout(queued, timeout).await {
                    Ok(()) => return,
                    Err(mpsc::error::SendTimeoutError::Timeout(q)) => (q, "the queue stayed full"),
                    Err(mpsc::error::SendTimeoutError::Closed(q)) => {
                        (q, "the status writer stopped")
                    }
                }
            }
            Err(mpsc::error::TrySendError::Closed(queued)) => (queued, "the status writer stopped"),
        };
        if let (
            Queued::Update {
                done: Some(done), ..
            },
            reason,
        ) = refused
        {
            done(Err(WriteError(reason.to_owned())));
        }
    }

    /// Waits until every update queued before this call was written or given up on (so every
    /// completion ran), at most `timeout`.
    pub async fn flush(&self, timeout: Duration) {
        let flushes = self.queues.iter().map(|queue| async move {
            let (flushed, wait) = oneshot::channel();
            if queue.send(Queued::Flush(flushed)).await.is_ok() {
                let _ = wait.await;
            }
        });
        let _ = tokio::time::timeout(timeout, futures::future::join_all(flushes)).await;
    }
}

async fn write_batches(store: StatusStore, mut receiver: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let counter_writes = Arc::new(AtomicUsize::new(0));
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        write_counters(&store, &batch, &counter_writes);
        let result = write(&store, commands(&store, &batch)).await;
        if let Err(e) = &result {
            // Once per batch, not per job: the jobs go on, only their status is missing.
            tracing::warn!(error = %e, jobs = batch.len(), "job status write failed");
        }
        for queued in batch.drain(..) {
            match queued {
                Queued::Update {
                    done: Some(done), ..
                } => done(result.clone()),
                Queued::Update { done: None, .. } => {}
                Queued::Flush(flushed) => {
                    let _ = flushed.send(());
                }
            }
        }
    }
}

/// Counts the batch's outcomes (`outcomes`) on a task of its own, bounded by `WRITE_TIMEOUT`;
/// sent before the statuses' own round trip, so on a healthy Redis both go out together.
fn write_counters(store: &StatusStore, batch: &[Queued], in_flight: &Arc<AtomicUsize>) {
    let updates = batch.iter().filter_map(|queued| match queued {
        Queued::Update { update, .. } => Some(update),
        Queued::Flush(_) => None,
    });
    let now = crate::headers::now_millis();
    let commands = crate::outcomes::count_commands(store.key_prefix(), updates, now);
    if commands.is_empty() {
        return;
    }
    if in_flight.fetch_add(1, Ordering::Relaxed) >= MAX_COUNTER_WRITES {
        in_flight.fetch_sub(1, Ordering::Relaxed);
        tracing::debug!("outcome counter writes backed up; a batch's counts were dropped");
        return;
    }
    let connection = store.connection();
    let in_flight = in_flight.clone();
    tokio::spawn(async move {
        let written =
            tokio::time::timeout(WRITE_TIMEOUT, connection.pipeline_by_key(commands)).await;
        in_flight.fetch_sub(1, Ordering::Relaxed);
        match written {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "outcome counter write failed"),
            Err(_) => tracing::warn!("outcome counter write timed out"),
        }
    });
}

/// A batch's Redis commands: the status writes, and the notice of the jobs that became final,
/// sent once every write is done (so a waiter that hears it reads them).
#[derive(Default)]
struct Commands {
    writes: Vec<redis::Pipeline>,
    notice: Option<redis::Pipeline>,
}

/// One pipeline for the batch (one per hash slot on a Redis Cluster): only the last update of
/// each job in it is written (each carries every field; `running` followed by `succeeded` is one
/// write), and one notification names every job that became final.
fn commands(store: &StatusStore, batch: &[Queued]) -> Commands {
    let updates: Vec<&StatusUpdate> = batch
        .iter()
        .filter_map(|queued| match queued {
            Queued::Update { update, .. } => Some(update),
            Queued::Flush(_) => None,
        })
        .collect();
    if updates.is_empty() {
        return Commands::default();
    }
    // Hashed per update: foldhash rather than SipHash (no untrusted input decides the keys'
    // count here, one batch at most).
    let mut later = std::collections::HashSet::with_capacity_and_hasher(
        updates.len(),
        foldhash::fast::RandomState::default(),
    );
    let latest: Vec<&StatusUpdate> = updates
        .into_iter()
        .rev()
        .filter(|update| later.insert(update.job_id.as_str()))
        .collect();
    let finals: Vec<&str> = latest
        .iter()
        .filter(|update| update.status.is_final())
        .map(|update| update.job_id.as_str())
        .collect();
    let mut scratch = Vec::with_capacity(256);
    let now = crate::headers::now_millis();
    let cluster = store.connection().is_cluster();
    let groups = SlotGroups::new(cluster, latest, |update| store.key_slot(&update.job_id));
    let mut writes: Vec<redis::Pipeline> = groups
        .groups
        .iter()
        .map(|group| {
            let mut pipe = redis::pipe();
            for update in group {
                store.add_to(&mut pipe, update, now, &mut scratch);
            }
            pipe
        })
        .collect();
    if finals.is_empty() {
        return Commands {
            writes,
            notice: None,
        };
    }
    // A single Redis runs the notice after the writes in the same pipeline. On a cluster it is a
    // pipeline of its own, sent after the per-slot pipelines (which run side by side) answered;
    // even one slot's pipeline cannot carry it, as the cluster client routes PUBLISH by its
    // channel's slot and refuses a pipeline that spans two slots.
    if cluster {
        let mut notice = redis::pipe();
        store.add_final_notice(&mut notice, &finals);
        return Commands {
            writes,
            notice: Some(notice),
        };
    }
    if let Some(pipe) = writes.last_mut() {
        store.add_final_notice(pipe, &finals);
    }
    Commands {
        writes,
        notice: None,
    }
}

async fn write(store: &StatusStore, commands: Commands) -> Result<(), WriteError> {
    let connection = store.connection();
    let query = async {
        futures::future::try_join_all(commands.writes.iter().map(|pipe| {
            let mut connection = connection.clone();
            async move { pipe.query_async::<()>(&mut connection).await }
        }))
        .await?;
        match commands.notice {
            Some(pipe) => pipe.query_async::<()>(&mut connection.clone()).await,
            None => Ok(()),
        }
    };
    match tokio::time::timeout(WRITE_TIMEOUT, query).await {
        Ok(result) => result.map_err(|e| WriteError(e.to_string())),
        Err(_) => Err(WriteError(format!("no answer within {WRITE_TIMEOUT:?}"))),
    }
}
