//! One reader per assigned partition, each on the partition's own librdkafka queue, each with a
//! budget of records it may have read and not yet started (`worker.read_ahead` for a lane,
//! `worker.max_held_retries` for a retry tier, whose records mostly wait on timers).
//!
//! Why not one queue and `pause`: librdkafka keeps a single queue for every partition of a
//! consumer, so a high-priority record can sit behind thousands of low ones; pausing the full
//! partitions frees it, but each pause throws away what librdkafka had already fetched for that
//! partition and each resume fetches it again. Bounded by pauses, the worker did 17 000 noop
//! jobs/s; with a budget per partition queue nothing is fetched twice and no partition is ever
//! paused (`make bench-consume`, README). A reader whose budget is spent simply stops reading its
//! queue, and librdkafka stops fetching that partition once `queued.min.messages` are waiting.

use std::sync::Arc;

use rdkafka::consumer::StreamConsumer;
use tokio::{
    sync::{mpsc, OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{context::WorkerContext, delivery::Delivery};

/// A partition this worker was just given, with the token its revocation cancels.
pub struct Assigned {
    pub topic: String,
    pub partition: i32,
    pub assignment: CancellationToken,
}

/// A record read, with the share of its partition's budget it holds until its job starts.
pub struct Read {
    pub delivery: Delivery,
    /// `None` for a record librdkafka delivered on the consumer's main queue (fetched between
    /// the assignment and the split), which no budget covers; there are at most a fetch's worth.
    pub budget: Option<OwnedSemaphorePermit>,
    /// Its partition's token, when its reader has it.
    pub assignment: Option<CancellationToken>,
}

/// Moves `assigned`'s records to their own queue and reads them into `read` until the partition
/// is revoked or the worker stops. Does nothing for a partition already revoked.
pub fn spawn_reader(
    consumer: &Arc<StreamConsumer<WorkerContext>>,
    assigned: Assigned,
    budget: usize,
    read: mpsc::UnboundedSender<Read>,
    readers: &mut JoinSet<()>,
) {
    let Assigned {
        topic,
        partition,
        assignment,
    } = assigned;
    if assignment.is_cancelled() {
        return;
    }
    let Some(queue) = consumer.split_partition_queue(&topic, partition) else {
        // Unknown to librdkafka (deleted meanwhile): its records, if any, come on the main queue.
        tracing::debug!(%topic, partition, "could not split the partition's queue");
        return;
    };
    let budget = Arc::new(Semaphore::new(budget));
    let topic_name: Arc<str> = Arc::from(topic.as_str());
    // No shutdown branch: at shutdown the consume loop aborts every reader. Each wait polls the
    // ready side first, so a record or a budget share already there is taken without
    // registering a waker on the revocation token (a lock per record otherwise).
    readers.spawn(async move {
        loop {
            let permit = match budget.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => tokio::select! {
                    biased;
                    permit = budget.clone().acquire_owned() => permit.expect("never closed"),
                    _ = assignment.cancelled() => return,
                },
            };
            let received = tokio::select! {
                biased;
                received = queue.recv() => received,
                _ = assignment.cancelled() => return,
            };
            if assignment.is_cancelled() {
                // Read just as the partition was revoked: its next owner reads it again.
                return;
            }
            match received {
                Ok(message) => {
                    let delivery = Delivery::new(&message, topic_name.clone());
                    let read_one = Read {
                        delivery,
                        budget: Some(permit),
                        assignment: Some(assignment.clone()),
                    };
                    if read.send(read_one).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    // librdkafka reconnects by itself; these are reports, not reasons to stop.
                    tracing::warn!(%topic, partition, error = %e, "partition read error");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
    });
}

/// Which partitions were assigned, from the rebalance callback to the consume loop.
pub type AssignedSender = mpsc::UnboundedSender<Vec<Assigned>>;
pub type AssignedReceiver = mpsc::UnboundedReceiver<Vec<Assigned>>;
