//! The consumer context: on revocation, waits for the revoked partitions' in-flight jobs (up to
//! the drain timeout) and commits their offsets synchronously, so the next owner starts exactly
//! after the jobs this worker finished.

use std::{
    sync::{Condvar, Mutex},
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance},
    ClientContext, Offset, TopicPartitionList,
};

use crate::offsets::OffsetTracker;

/// The offset tracker, plus a condition variable signalled whenever a job finishes.
#[derive(Default)]
pub struct Tracker {
    offsets: Mutex<OffsetTracker>,
    changed: Condvar,
}

impl Tracker {
    pub fn started(&self, topic: &str, partition: i32, offset: i64) {
        self.offsets
            .lock()
            .unwrap()
            .started(topic, partition, offset);
    }

    /// Marks a job done and returns the offset to store, if it moved.
    pub fn finished(&self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        let stored = self
            .offsets
            .lock()
            .unwrap()
            .finished(topic, partition, offset);
        self.changed.notify_all();
        stored
    }

    /// Blocks until none of `partitions` has a job in flight or `timeout` passes, then returns the
    /// offsets to commit for them and forgets them.
    fn drain(&self, partitions: &[(String, i32)], timeout: Duration) -> Vec<(String, i32, i64)> {
        let deadline = Instant::now() + timeout;
        let mut offsets = self.offsets.lock().unwrap();
        while partitions
            .iter()
            .any(|(t, p)| offsets.in_flight_of(t, *p) > 0)
        {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                tracing::warn!("revoked partitions still have jobs running after the drain timeout; they will be redelivered");
                break;
            };
            offsets = self.changed.wait_timeout(offsets, left).unwrap().0;
        }
        let mut commit = Vec::new();
        for (topic, partition) in partitions {
            if let Some(offset) = offsets.committable(topic, *partition) {
                commit.push((topic.clone(), *partition, offset));
            }
            offsets.forget(topic, *partition);
        }
        commit
    }
}

pub struct WorkerContext {
    pub tracker: std::sync::Arc<Tracker>,
    pub drain_timeout: Duration,
}

impl ClientContext for WorkerContext {}

impl ConsumerContext for WorkerContext {
    /// Runs on the thread polling the consumer. Blocking it is what makes the revocation wait;
    /// jobs keep running on the runtime's other threads (the worker needs a multi-thread runtime).
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let partitions: Vec<(String, i32)> = revoked
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let commit = self.tracker.drain(&partitions, self.drain_timeout);
        if commit.is_empty() {
            return;
        }
        let mut list = TopicPartitionList::new();
        for (topic, partition, offset) in &commit {
            // Offsets were also stored as jobs finished; this only makes them durable now.
            let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*offset));
        }
        match consumer.commit(&list, CommitMode::Sync) {
            Ok(()) => tracing::info!(partitions = commit.len(), "committed revoked partitions"),
            Err(e) => {
                tracing::warn!(error = %e, "commit on revocation failed; jobs may be redelivered")
            }
        }
    }
}
