//! The consumer context: on revocation, waits for the revoked partitions' in-flight jobs (up to
//! the drain timeout) and commits their offsets synchronously, so the next owner starts exactly
//! after the jobs this worker finished.
//!
//! Offsets are stored in batches: a finished job only notes its partition's new storable offset,
//! and the consume loop hands every noted offset to librdkafka at once every `STORE_INTERVAL`
//! (and before the final commit). One `store_offsets` call per partition per interval instead
//! of one per job; the guarantee is unchanged (only offsets whose jobs are durable are noted),
//! a crash merely redoes up to one more interval of finished work.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Condvar, Mutex,
    },
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance},
    ClientContext, Offset, TopicPartitionList,
};

use tokio_util::sync::CancellationToken;

use crate::{
    offsets::OffsetTracker,
    partitions::{Assigned, AssignedSender},
};

/// How often noted offsets are handed to librdkafka (which commits what it holds every
/// `worker.commit_interval`).
pub const STORE_INTERVAL: Duration = Duration::from_millis(100);

/// The offsets of each partition, and the storable offsets noted since the last store.
#[derive(Default)]
struct Offsets {
    tracker: OffsetTracker,
    /// By topic, then partition: looked up by `&str`, without a `String` per finished job.
    unstored: HashMap<String, HashMap<i32, i64>>,
}

/// The offset tracker, a condition variable signalled when a job finishes while a revocation
/// waits, and one token per assigned partition that revocation cancels (so its reader stops and
/// its waiting jobs let go).
#[derive(Default)]
pub struct Tracker {
    offsets: Mutex<Offsets>,
    changed: Condvar,
    /// Revocations waiting on `changed`: without one, a finishing job skips the wake-up (a
    /// futex system call per job otherwise).
    draining: AtomicUsize,
    /// Held while noted offsets are handed to librdkafka, so two stores cannot overtake each
    /// other (a later, lower store would move the committed position backwards).
    storing: Mutex<()>,
    assignments: Mutex<HashMap<(String, i32), CancellationToken>>,
}

impl Tracker {
    pub fn deferred(&self, topic: &str, partition: i32, offset: i64) {
        self.offsets
            .lock()
            .unwrap()
            .tracker
            .deferred(topic, partition, offset);
    }

    pub fn begin(&self, topic: &str, partition: i32, offset: i64) {
        self.offsets
            .lock()
            .unwrap()
            .tracker
            .begin(topic, partition, offset);
    }

    /// Cancelled when this partition is revoked from this worker.
    pub fn assignment_token(&self, topic: &str, partition: i32) -> CancellationToken {
        self.assignments
            .lock()
            .unwrap()
            .entry((topic.to_owned(), partition))
            .or_default()
            .clone()
    }

    /// Marks a job done; if its partition's storable offset moved, notes it for the next store.
    pub fn finished(&self, topic: &str, partition: i32, offset: i64) {
        let mut offsets = self.offsets.lock().unwrap();
        if let Some(next) = offsets.tracker.finished(topic, partition, offset) {
            match offsets.unstored.get_mut(topic) {
                Some(noted) => {
                    noted.insert(partition, next);
                }
                None => {
                    let noted = HashMap::from([(partition, next)]);
                    offsets.unstored.insert(topic.to_owned(), noted);
                }
            }
        }
        // Checked under the lock a revocation waits with, so its wake-up cannot be missed.
        let waited_for = self.draining.load(Ordering::Acquire) > 0;
        drop(offsets);
        if waited_for {
            self.changed.notify_all();
        }
    }

    /// Hands every offset noted since the last call to librdkafka, in one call.
    pub fn store_noted<C: Consumer<X>, X: ConsumerContext>(&self, consumer: &C) {
        let _storing = self.storing.lock().unwrap();
        let noted = std::mem::take(&mut self.offsets.lock().unwrap().unstored);
        if noted.is_empty() {
            return;
        }
        let mut list = TopicPartitionList::new();
        for (topic, partition, next) in noted
            .iter()
            .flat_map(|(topic, noted)| noted.iter().map(move |(p, next)| (topic, *p, *next)))
        {
            // `store_offsets` stores exactly this value: the next offset to consume. (The
            // single-offset `store_offset` adds one, a classic source of skipped or repeated
            // records.)
            let _ = list.add_partition_offset(topic, partition, Offset::Offset(next));
        }
        if let Err(e) = consumer.store_offsets(&list) {
            // A partition was revoked meanwhile; its new owner redoes from the last commit.
            tracing::debug!(error = %e, "offsets not stored");
        }
    }

    /// Lets go of the partitions' waiting retries, blocks until none of their jobs is running or
    /// `timeout` passes, then returns the offsets to commit for them and forgets them. A waiting
    /// retry holds its partition's offset back, so its new owner reads it again.
    fn drain(&self, partitions: &[(String, i32)], timeout: Duration) -> Vec<(String, i32, i64)> {
        {
            let mut assignments = self.assignments.lock().unwrap();
            for key in partitions {
                if let Some(token) = assignments.remove(key) {
                    token.cancel();
                }
            }
        }
        let deadline = Instant::now() + timeout;
        let mut offsets = self.offsets.lock().unwrap();
        self.draining.fetch_add(1, Ordering::AcqRel);
        while partitions
            .iter()
            .any(|(t, p)| offsets.tracker.running_of(t, *p) > 0)
        {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                tracing::warn!("revoked partitions still have jobs running after the drain timeout; they will be redelivered");
                break;
            };
            offsets = self.changed.wait_timeout(offsets, left).unwrap().0;
        }
        self.draining.fetch_sub(1, Ordering::AcqRel);
        let mut commit = Vec::new();
        for (topic, partition) in partitions {
            if let Some(offset) = offsets.tracker.committable(topic, *partition) {
                commit.push((topic.clone(), *partition, offset));
            }
            offsets.tracker.forget(topic, *partition);
            if let Some(noted) = offsets.unstored.get_mut(topic.as_str()) {
                noted.remove(partition);
            }
        }
        commit
    }
}

pub struct WorkerContext {
    pub tracker: std::sync::Arc<Tracker>,
    pub drain_timeout: Duration,
    pub kafka_stats: sluice_core::kafka_stats::KafkaStats,
    /// Where newly assigned partitions go, for the consume loop to give each its reader.
    pub assigned: AssignedSender,
}

impl ClientContext for WorkerContext {
    fn stats(&self, statistics: rdkafka::statistics::Statistics) {
        self.kafka_stats.record(&statistics);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        sluice_core::kafka::log_client_error(&error, reason);
    }
}

impl ConsumerContext for WorkerContext {
    /// Runs on the thread polling the consumer. Blocking it is what makes the revocation wait;
    /// jobs keep running on the runtime's other threads (the worker needs a multi-thread runtime).
    /// Each partition's token is made here, before any of its records can be read, so a
    /// revocation that comes before its reader starts still stops that reader.
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            let partitions = assigned
                .elements()
                .iter()
                .map(|e| Assigned {
                    topic: e.topic().to_owned(),
                    partition: e.partition(),
                    assignment: self.tracker.assignment_token(e.topic(), e.partition()),
                })
                .collect();
            // Fails only once the consume loop has stopped, when no reader is wanted.
            let _ = self.assigned.send(partitions);
        }
    }

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
