//! The consume loop of one job kind, over its main topic and its retry tiers: at most
//! `concurrency` jobs run at once per process (a permit is taken before a record is fetched, so a
//! busy worker stops pulling instead of buffering), each job on its own task, offsets stored
//! below the lowest unfinished job.
//!
//! A retry record that is not yet due waits on a timer (no sleeping in this loop) without a
//! concurrency permit; the main topic and other partitions keep flowing, and a tier partition is
//! paused only when it holds `worker.max_held_retries` waiting records.
//!
//! Guarantee: at-least-once. A job's offset is committed only after its outcome is durable; a
//! crash redoes the jobs after the last commit (up to `commit_interval` of finished work plus
//! whatever was in flight or waiting). Limits: a job that outlives `max.poll.interval.ms` (300 s)
//! while every permit is taken makes the group move its partitions elsewhere.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use rdkafka::{
    consumer::{CommitMode, Consumer},
    error::KafkaError,
    message::Message,
    types::RDKafkaErrorCode,
    TopicPartitionList,
};
use sluice_core::headers::now_millis;
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
};

use crate::{
    delivery::Delivery,
    process::{process, KindRuntime},
};

pub async fn consume(
    rt: Arc<KindRuntime>,
    permits: Arc<Semaphore>,
    drain_timeout: Duration,
    max_held: usize,
) -> anyhow::Result<()> {
    let mut topics = vec![rt.topics.jobs(&rt.kind)];
    topics.extend(
        rt.plan
            .tiers
            .iter()
            .map(|delay| rt.topics.retry(&rt.kind, *delay)),
    );
    let owner = format!("worker {}", rt.kind);
    let cancellations = rt.topics.cancellations(&rt.kind);
    let mut waited = topics.clone();
    waited.push(cancellations.clone());
    if !sluice_core::kafka::wait_for_topics(&rt.kafka, &waited, &owner, &rt.shutdown).await {
        return Ok(());
    }
    let reader_group = format!("{}.cancellations", rt.topics.worker_group(&rt.kind));
    let follow = rt
        .cancelled
        .catch_up(
            &rt.kafka,
            &reader_group,
            &cancellations,
            rt.shutdown.clone(),
        )
        .await?;
    if let Some(follow) = follow {
        tokio::spawn(follow);
    }
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    rt.consumer
        .subscribe(&topic_refs)
        .with_context(|| format!("subscribing to {}", topics.join(", ")))?;
    tracing::info!(kind = %rt.kind, topics = %topics.join(","), "worker consuming");

    let waiting = Arc::new(WaitingRetries::default());
    let mut jobs = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = rt.shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => permit.context("permits closed")?,
        };
        let received = tokio::select! {
            _ = rt.shutdown.cancelled() => break,
            received = rt.consumer.recv() => received.map(|m| m.detach()),
        };
        while jobs.try_join_next().is_some() {}
        match received {
            Ok(message) => {
                let delivery = Delivery::new(message);
                match (rt.tier_of(delivery.message.topic()), delivery.due_at) {
                    (Some(tier), Some(due)) if due > now_millis() => {
                        let tier = tier.to_owned();
                        drop(permit);
                        defer(
                            &rt, &permits, &waiting, &mut jobs, delivery, tier, due, max_held,
                        );
                    }
                    _ => {
                        let message = &delivery.message;
                        rt.tracker
                            .started(message.topic(), message.partition(), message.offset());
                        let rt = rt.clone();
                        jobs.spawn(async move {
                            process(rt, delivery).await;
                            drop(permit);
                        });
                    }
                }
            }
            Err(e) => {
                // librdkafka reconnects by itself; these are reports, not reasons to stop.
                tracing::warn!(kind = %rt.kind, error = %e, "consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    tracing::info!(kind = %rt.kind, tasks = jobs.len(), "draining in-flight jobs");
    let drained = tokio::time::timeout(drain_timeout, async {
        while jobs.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(kind = %rt.kind, left = jobs.len(), "drain timeout; unfinished jobs will be redelivered");
        jobs.abort_all();
    }
    // Finished jobs store their offsets once their status is written: let those land first.
    rt.status.flush(Duration::from_secs(5)).await;
    let consumer = rt.consumer.clone();
    let committed =
        tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync))
            .await?;
    match committed {
        Ok(()) => tracing::info!(kind = %rt.kind, "final offsets committed"),
        // Nothing was stored since the last commit: nothing to do.
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => {
            tracing::warn!(kind = %rt.kind, error = %e, "final commit failed; the last jobs may be redelivered")
        }
    }
    rt.consumer.unsubscribe();
    tracing::info!(kind = %rt.kind, "worker stopped");
    Ok(())
}

fn partition_list(topic: &str, partition: i32) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, partition);
    list
}

/// Holds a retry until it is due, on a timer task that then takes a permit and runs the job.
/// The partition keeps being read meanwhile, so a record due sooner behind one due later (jitter,
/// a longer `Retry-After`) is not held up by it; only when a partition holds `max_held` waiting
/// records is it paused, until half of them have run. Revocation or shutdown lets go of a waiting
/// record unprocessed; its offset was never stored, so whoever owns the partition next reads it
/// again.
#[allow(clippy::too_many_arguments)]
fn defer(
    rt: &Arc<KindRuntime>,
    permits: &Arc<Semaphore>,
    waiting: &Arc<WaitingRetries>,
    jobs: &mut JoinSet<()>,
    delivery: Delivery,
    tier: String,
    due: i64,
    max_held: usize,
) {
    let message = &delivery.message;
    let (topic, partition, offset) = (
        message.topic().to_owned(),
        message.partition(),
        message.offset(),
    );
    rt.tracker.deferred(&topic, partition, offset);
    let assignment = rt.tracker.assignment_token(&topic, partition);
    if waiting.add(rt, &tier, due, &topic, partition, max_held) {
        if let Err(e) = rt.consumer.pause(&partition_list(&topic, partition)) {
            tracing::warn!(%topic, partition, error = %e, "pausing a full retry tier partition failed");
        }
    }
    let (rt, permits, waiting) = (rt.clone(), permits.clone(), waiting.clone());
    jobs.spawn(async move {
        let wait = Duration::from_millis((due - now_millis()).max(0) as u64);
        let permit: Option<OwnedSemaphorePermit> = tokio::select! {
            _ = assignment.cancelled() => None,
            _ = rt.shutdown.cancelled() => None,
            permit = async {
                tokio::time::sleep(wait).await;
                permits.acquire_owned().await.ok()
            } => permit,
        };
        if waiting.remove(&rt, &tier, due, &topic, partition, max_held) {
            if let Err(e) = rt.consumer.resume(&partition_list(&topic, partition)) {
                tracing::debug!(%topic, partition, error = %e, "resuming a retry tier partition failed");
            }
        }
        if let Some(permit) = permit {
            rt.tracker.begin(&topic, partition, offset);
            process(rt, delivery).await;
            drop(permit);
        }
    });
}

/// The retries this worker holds: due times per tier (for the backlog metrics) and counts per
/// partition (for pausing a partition that holds too many).
#[derive(Default)]
struct WaitingRetries {
    inner: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    by_tier: BTreeMap<String, BTreeMap<i64, usize>>,
    by_partition: HashMap<(String, i32), usize>,
    paused: HashSet<(String, i32)>,
}

impl WaitingRetries {
    /// Records a held retry; returns true when its partition is now full and must be paused.
    fn add(
        &self,
        rt: &KindRuntime,
        tier: &str,
        due: i64,
        topic: &str,
        partition: i32,
        max_held: usize,
    ) -> bool {
        let mut held = self.inner.lock().unwrap();
        *held
            .by_tier
            .entry(tier.to_owned())
            .or_default()
            .entry(due)
            .or_default() += 1;
        let key = (topic.to_owned(), partition);
        let count = held.by_partition.entry(key.clone()).or_default();
        *count += 1;
        let full = *count >= max_held && held.paused.insert(key);
        Self::publish(rt, tier, &held.by_tier);
        full
    }

    /// Forgets a held retry; returns true when its partition was paused and may resume.
    fn remove(
        &self,
        rt: &KindRuntime,
        tier: &str,
        due: i64,
        topic: &str,
        partition: i32,
        max_held: usize,
    ) -> bool {
        let mut held = self.inner.lock().unwrap();
        if let Some(dues) = held.by_tier.get_mut(tier) {
            if let Some(count) = dues.get_mut(&due) {
                *count -= 1;
                if *count == 0 {
                    dues.remove(&due);
                }
            }
        }
        let key = (topic.to_owned(), partition);
        let count = held.by_partition.entry(key.clone()).or_default();
        *count = count.saturating_sub(1);
        let resume = *count <= max_held / 2 && held.paused.remove(&key);
        Self::publish(rt, tier, &held.by_tier);
        resume
    }

    fn publish(rt: &KindRuntime, tier: &str, by_tier: &BTreeMap<String, BTreeMap<i64, usize>>) {
        let dues = by_tier.get(tier);
        let count: usize = dues.map_or(0, |d| d.values().sum());
        let next = dues
            .and_then(|d| d.keys().next())
            .map_or(0.0, |ms| *ms as f64 / 1000.0);
        let labels = [rt.kind.as_str(), tier];
        rt.metrics
            .retry_waiting
            .with_label_values(&labels)
            .set(count as i64);
        rt.metrics
            .retry_next_due
            .with_label_values(&labels)
            .set(next);
    }
}
