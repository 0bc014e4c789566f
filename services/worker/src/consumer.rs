//! The consume loop of one job kind, over its lanes and its retry tiers. Each partition is read
//! on its own queue, at most `read_ahead` records ahead (`partitions`), into one queue per lane;
//! whenever one of the kind's `concurrency` slots is free, the lanes' weights pick the job that
//! starts (`ready`), each job on its own task, offsets stored below the lowest unfinished job.
//!
//! A record not yet due (a retry, or a delayed job in its last second) waits on a timer without
//! a slot; other partitions keep flowing, and a partition stops being read only while it holds
//! its whole budget (`worker.max_held_retries` for a tier) of records not yet started.
//!
//! Guarantee: at-least-once. A job's offset is committed only after its outcome is durable; a
//! crash redoes the jobs after the last commit (up to `commit_interval` of finished work plus
//! whatever was in flight, read ahead or waiting). Limits: a job that outlives
//! `max.poll.interval.ms` (300 s) while every slot is taken makes the group move its
//! partitions elsewhere.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use rdkafka::{
    consumer::{CommitMode, Consumer},
    error::KafkaError,
    message::Message,
    types::RDKafkaErrorCode,
};
use sluice_core::{
    headers::now_millis,
    lanes::{LaneWeights, Priority},
};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{
    context::STORE_INTERVAL,
    delivery::Delivery,
    partitions::{spawn_reader, AssignedReceiver, Read},
    process::{process, KindRuntime},
    ready::{Ready, Waiting},
};

/// How one kind's consumer shares its slots.
pub struct Slots {
    pub permits: Arc<Semaphore>,
    pub drain_timeout: Duration,
    /// The lanes this worker serves; with `normal`, also the retry tiers.
    pub lanes: Vec<Priority>,
    pub weights: LaneWeights,
    pub lane_max_wait: Duration,
    /// How many records a lane partition may have read and not started.
    pub read_ahead: usize,
    /// The same for a retry-tier partition.
    pub max_held: usize,
}

/// A record read, with the token its partition's revocation cancels and its share of the
/// partition's read-ahead budget, given back when its job starts.
struct Queued {
    delivery: Delivery,
    assignment: CancellationToken,
    _budget: Option<OwnedSemaphorePermit>,
}

/// The topics a worker serving `lanes` reads: those lanes, and every retry tier when it serves
/// the normal lane (retries of all lanes share the tiers; each still goes in its own lane).
pub fn subscribed_topics(rt: &KindRuntime, lanes: &[Priority]) -> Vec<String> {
    let mut topics: Vec<String> = Priority::ALL
        .into_iter()
        .filter(|lane| lanes.contains(lane))
        .map(|lane| rt.topics.lane(&rt.kind, lane))
        .collect();
    if lanes.contains(&Priority::Normal) {
        topics.extend(rt.tier_topics.iter().map(|(topic, _)| topic.clone()));
    }
    topics
}

pub async fn consume(
    rt: Arc<KindRuntime>,
    slots: Slots,
    mut assigned: AssignedReceiver,
) -> anyhow::Result<()> {
    let topics = subscribed_topics(&rt, &slots.lanes);
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

    let ready = Arc::new(Ready::new(slots.weights, slots.lane_max_wait));
    let waiting = Arc::new(WaitingRetries::default());
    let (read_tx, mut read) = tokio::sync::mpsc::unbounded_channel::<Read>();
    let mut readers = JoinSet::new();
    readers.spawn(poll_main_queue(rt.clone(), read_tx.clone()));
    let mut jobs = JoinSet::new();
    let mut store = tokio::time::interval(STORE_INTERVAL);
    store.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Checked here as well as in the select: the select is biased, and under load an earlier
        // branch is always ready, so its own shutdown branch would be polled only when idle.
        if rt.shutdown.is_cancelled() {
            break;
        }
        // Reading comes first: a high-priority record already fetched is queued before the next
        // slot is given away. Each turn does as much of its work as is ready (every record read,
        // every free slot filled): a turn of this select costs more than a job's bookkeeping.
        tokio::select! {
            biased;
            Some(one) = read.recv() => {
                while jobs.try_join_next().is_some() {}
                receive(&rt, &ready, &waiting, &mut jobs, one);
                for _ in 0..BATCH {
                    let Ok(one) = read.try_recv() else { break };
                    receive(&rt, &ready, &waiting, &mut jobs, one);
                }
            }
            (permit, next) = next_job(&slots.permits, &ready) => {
                start(&rt, &ready, &mut jobs, permit, next);
                for _ in 0..BATCH {
                    let Ok(permit) = slots.permits.clone().try_acquire_owned() else { break };
                    let Some(next) = ready.try_next(std::time::Instant::now()) else { break };
                    start(&rt, &ready, &mut jobs, permit, next);
                }
            }
            Some(partitions) = assigned.recv() => {
                while readers.try_join_next().is_some() {}
                for partition in partitions {
                    let budget = if rt.tier_of(&partition.topic).is_some() {
                        slots.max_held
                    } else {
                        slots.read_ahead
                    };
                    spawn_reader(&rt.consumer, partition, budget, read_tx.clone(), &mut readers);
                }
            }
            _ = store.tick() => rt.tracker.store_noted(rt.consumer.as_ref()),
            _ = rt.shutdown.cancelled() => break,
        }
    }
    // The partition queues hold the consumer: they go before it is closed.
    readers.abort_all();
    while readers.join_next().await.is_some() {}

    tracing::info!(kind = %rt.kind, tasks = jobs.len(), "draining in-flight jobs");
    let drained = tokio::time::timeout(slots.drain_timeout, async {
        while jobs.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(kind = %rt.kind, left = jobs.len(), "drain timeout; unfinished jobs will be redelivered");
        jobs.abort_all();
    }
    // Finished jobs note their offsets once their status is written: let those land first.
    rt.status.flush(Duration::from_secs(5)).await;
    rt.tracker.store_noted(rt.consumer.as_ref());
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

/// Polls the consumer's main queue, on a task of its own so the consume loop does not poll
/// librdkafka on every turn. It serves the rebalance callbacks (librdkafka counts these polls for
/// `max.poll.interval.ms`) and delivers the records fetched for a partition before its queue was
/// split off.
async fn poll_main_queue(rt: Arc<KindRuntime>, read: tokio::sync::mpsc::UnboundedSender<Read>) {
    loop {
        let received = tokio::select! {
            _ = rt.shutdown.cancelled() => return,
            received = rt.consumer.recv() => received,
        };
        match received {
            Ok(message) => {
                let topic = Arc::from(message.topic());
                let delivery = Delivery::new(&message, topic);
                let one = Read {
                    delivery,
                    budget: None,
                    assignment: None,
                };
                if read.send(one).is_err() {
                    return;
                }
            }
            Err(e) => {
                // librdkafka reconnects by itself; these are reports, not reasons to stop.
                tracing::warn!(kind = %rt.kind, error = %e, "consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// At most this many records received, or jobs started, in one turn of the consume loop
/// beyond the first, so that neither starves the other.
const BATCH: usize = 64;

/// A free slot and the job to start in it. Cancel-safe: dropped, it gives the slot back and
/// takes no job.
async fn next_job(
    permits: &Arc<Semaphore>,
    ready: &Ready<Queued>,
) -> (OwnedSemaphorePermit, Waiting<Queued>) {
    let permit = permits
        .clone()
        .acquire_owned()
        .await
        .expect("the slots are never closed");
    (permit, ready.next().await)
}

/// A record just read: held until due, or queued in its lane. Either way it holds its
/// partition's committed offset back from now until its job has a durable outcome.
fn receive(
    rt: &Arc<KindRuntime>,
    ready: &Arc<Ready<Queued>>,
    waiting: &Arc<WaitingRetries>,
    jobs: &mut JoinSet<()>,
    read: Read,
) {
    let Read {
        delivery,
        budget,
        assignment,
    } = read;
    let (topic, partition, offset) = (&*delivery.topic, delivery.partition, delivery.offset);
    let assignment = assignment.unwrap_or_else(|| rt.tracker.assignment_token(topic, partition));
    if assignment.is_cancelled() {
        // Read just before its partition was revoked: its next owner reads it again.
        return;
    }
    let lane = delivery
        .priority
        .or_else(|| rt.topics.lane_of(&rt.kind, topic))
        .unwrap_or_default();
    rt.tracker.deferred(topic, partition, offset);
    let not_before = delivery.not_before();
    let queued = Queued {
        delivery,
        assignment,
        _budget: budget,
    };
    match not_before {
        Some(due) if due > now_millis() => defer(rt, ready, waiting, jobs, queued, lane, due),
        _ => make_ready(rt, ready, queued, lane),
    }
}

fn make_ready(rt: &KindRuntime, ready: &Ready<Queued>, queued: Queued, lane: Priority) {
    let queued_now = ready.push(queued, lane);
    rt.kind_metrics.ready[lane.index()].set(queued_now as i64);
}

/// Starts the job picked for a free slot, unless its partition was revoked while it waited (its
/// new owner reads it again).
fn start(
    rt: &Arc<KindRuntime>,
    ready: &Ready<Queued>,
    jobs: &mut JoinSet<()>,
    permit: OwnedSemaphorePermit,
    next: Waiting<Queued>,
) {
    // Dropping the budget lets its partition's reader read one more.
    let Queued {
        mut delivery,
        assignment,
        _budget,
    } = next.item;
    let lane = next.lane;
    let (topic, partition, offset) = (delivery.topic.clone(), delivery.partition, delivery.offset);
    rt.kind_metrics.ready[lane.index()].set(ready.len(lane) as i64);
    if assignment.is_cancelled() {
        return;
    }
    let now = now_millis();
    if delivery.attempt == 1 {
        let since = delivery.run_at.or(delivery.enqueued_at);
        if let Some(since) = since {
            let wait = (now - since).max(0) as f64 / 1000.0;
            rt.kind_metrics.queue_wait_seconds[lane.index()].observe(wait);
        }
        if let Some(run_at) = delivery.run_at {
            let late = (now - run_at).max(0) as f64 / 1000.0;
            rt.kind_metrics.delayed_lateness_seconds.observe(late);
        }
    }
    // Its retries keep the lane it was served in.
    delivery.priority = Some(lane);
    rt.tracker.begin(&topic, partition, offset);
    let rt = rt.clone();
    // Boxed: a job's future is ~3 KiB, and spawning it unboxed copied it several times on the
    // way into its task (a tenth of the worker's time went to those copies).
    jobs.spawn(Box::pin(async move {
        process(rt, delivery).await;
        drop(permit);
    }));
}

/// Holds a record until it is due, on a timer task, then queues it in its lane. The partition
/// keeps being read meanwhile, so a record due sooner behind one due later (jitter, a longer
/// `Retry-After`) is not held up by it. Revocation or shutdown lets go of a waiting record
/// unprocessed; its offset was never stored, so whoever owns the partition next reads it again.
fn defer(
    rt: &Arc<KindRuntime>,
    ready: &Arc<Ready<Queued>>,
    waiting: &Arc<WaitingRetries>,
    jobs: &mut JoinSet<()>,
    queued: Queued,
    lane: Priority,
    due: i64,
) {
    let tier = rt.tier_of(&queued.delivery.topic).map(str::to_owned);
    if let Some(tier) = &tier {
        waiting.add(rt, tier, due);
    }
    let assignment = queued.assignment.clone();
    let (rt, ready, waiting) = (rt.clone(), ready.clone(), waiting.clone());
    jobs.spawn(async move {
        let wait = Duration::from_millis((due - now_millis()).max(0) as u64);
        let due_now = tokio::select! {
            _ = assignment.cancelled() => false,
            _ = rt.shutdown.cancelled() => false,
            _ = tokio::time::sleep(wait) => true,
        };
        if let Some(tier) = &tier {
            waiting.remove(&rt, tier, due);
        }
        if due_now {
            make_ready(&rt, &ready, queued, lane);
        }
    });
}

/// The due times of the retries this worker holds, per tier, for the backlog metrics.
#[derive(Default)]
struct WaitingRetries {
    by_tier: Mutex<BTreeMap<String, BTreeMap<i64, usize>>>,
}

impl WaitingRetries {
    fn add(&self, rt: &KindRuntime, tier: &str, due: i64) {
        let mut by_tier = self.by_tier.lock().unwrap();
        *by_tier
            .entry(tier.to_owned())
            .or_default()
            .entry(due)
            .or_default() += 1;
        Self::publish(rt, tier, &by_tier);
    }

    fn remove(&self, rt: &KindRuntime, tier: &str, due: i64) {
        let mut by_tier = self.by_tier.lock().unwrap();
        if let Some(dues) = by_tier.get_mut(tier) {
            if let Some(count) = dues.get_mut(&due) {
                *count -= 1;
                if *count == 0 {
                    dues.remove(&due);
                }
            }
        }
        Self::publish(rt, tier, &by_tier);
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
