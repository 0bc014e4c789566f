//! The delay-ladder mover (docs/architecture.md §14): reads every rung `sluice.delay.<wait>` in
//! group `sluice.delays`, and moves each record, once its hop is due, to the next rung or — with
//! less than the shortest rung left — to its lane, where the worker holds the last moment and
//! never starts it before its `sluice-run-at`.
//!
//! Every record of a rung waits the same time, so a rung partition is in due order: each
//! partition is one task that waits for its head record, then the next. Memory is bounded by
//! `READ_AHEAD` records per partition (a fuller partition is paused), however many jobs are
//! delayed. Moves are pipelined in order per partition and a record's offset is stored only once
//! its move is acknowledged: at-least-once, like every hop in sluice.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use anyhow::Context;
use futures::{stream::FuturesOrdered, StreamExt};
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};
use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer},
    message::{Headers, Message, OwnedHeaders, OwnedMessage},
    producer::{FutureProducer, FutureRecord},
    util::Timeout,
    ClientContext, Offset, TopicPartitionList,
};
use sluice_core::{
    delays,
    headers::{self, now_millis},
    kafka::QuietContext,
    metrics::register,
    retry::tier_name,
    topics::Topics,
    Config,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Records a rung partition may hold (waiting or being moved) before it is paused.
const READ_AHEAD: usize = 512;
/// Moves of one partition awaiting Kafka's acknowledgement at once.
const IN_FLIGHT: usize = 256;

pub struct LadderMetrics {
    moved: IntCounterVec,
    lateness: Histogram,
    held: IntGauge,
    malformed: prometheus::IntCounter,
}

impl LadderMetrics {
    pub fn new(registry: &Registry) -> Self {
        Self {
            moved: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "sluice_delayed_jobs_moved_total",
                        "Delayed jobs moved off a rung of the delay ladder, by rung and where to (rung or lane).",
                    ),
                    &["rung", "to"],
                )
                .unwrap(),
            ),
            lateness: register(
                registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "sluice_delay_hop_lateness_seconds",
                        "How long after its hop was due a delayed job moved on.",
                    )
                    .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
                )
                .unwrap(),
            ),
            held: register(
                registry,
                IntGauge::new(
                    "sluice_delayed_jobs_held",
                    "Delayed-job records this mover holds in memory (bounded per partition).",
                )
                .unwrap(),
            ),
            malformed: register(
                registry,
                prometheus::IntCounter::new(
                    "sluice_delayed_jobs_malformed_total",
                    "Records on a rung without a target lane, dead-lettered to sluice.delay.dlq.",
                )
                .unwrap(),
            ),
        }
    }
}

/// One token per assigned partition, cancelled on revocation so the partition's task stops.
#[derive(Default)]
struct Assignments {
    tokens: Mutex<HashMap<(String, i32), CancellationToken>>,
}

struct LadderContext {
    assignments: Arc<Assignments>,
}

impl ClientContext for LadderContext {
    fn stats(&self, _: rdkafka::statistics::Statistics) {}

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        sluice_core::kafka::log_client_error(&error, reason);
    }
}

impl ConsumerContext for LadderContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(revoked) = rebalance {
            let mut tokens = self.assignments.tokens.lock().unwrap();
            for e in revoked.elements() {
                if let Some(token) = tokens.remove(&(e.topic().to_owned(), e.partition())) {
                    token.cancel();
                }
            }
            drop(tokens);
            // What was stored becomes durable before the next owner starts reading.
            let _ = consumer.commit_consumer_state(CommitMode::Sync);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            let _ = consumer.resume(assigned);
        }
    }
}

type LadderConsumer = StreamConsumer<LadderContext>;

/// What every partition task shares.
struct Mover {
    consumer: Arc<LadderConsumer>,
    producer: FutureProducer<QuietContext>,
    topics: Topics,
    metrics: LadderMetrics,
    shutdown: CancellationToken,
}

/// How many records a partition's task holds, and whether the partition is paused for it. The
/// read loop pauses; the task resumes, since a paused partition brings the read loop nothing.
#[derive(Default)]
struct Held {
    count: AtomicUsize,
    /// Held across the pause or resume call it records, and the count is checked again under
    /// it: two threads flip it, and a flag out of step with librdkafka would leave a partition
    /// paused for good (its task resumes only on the flag, and a paused partition brings no
    /// record that would pause it again).
    paused: Mutex<bool>,
}

impl Held {
    /// Called by the read loop after each record it hands over.
    fn pause_if_full(&self, consumer: &LadderConsumer, topic: &str, partition: i32) {
        let mut paused = self.paused.lock().unwrap();
        if !*paused && self.count.load(Ordering::Relaxed) >= READ_AHEAD {
            match consumer.pause(&one_partition(topic, partition)) {
                Ok(()) => *paused = true,
                Err(e) => tracing::debug!(error = %e, "pausing a full delay rung partition failed"),
            }
        }
    }

    /// Called by the task after each record it is done with.
    fn resume_if_drained(&self, consumer: &LadderConsumer, topic: &str, partition: i32) {
        let mut paused = self.paused.lock().unwrap();
        if *paused && self.count.load(Ordering::Relaxed) <= READ_AHEAD / 2 {
            match consumer.resume(&one_partition(topic, partition)) {
                Ok(()) => *paused = false,
                // Tried again after the next record moves.
                Err(e) => {
                    tracing::warn!(error = %e, topic, partition, "resuming a delay rung partition failed")
                }
            }
        }
    }
}

fn one_partition(topic: &str, partition: i32) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, partition);
    list
}

/// A partition's task, for one assignment of the partition.
struct PartitionTask {
    sender: mpsc::UnboundedSender<OwnedMessage>,
    held: Arc<Held>,
    /// Cancelled when the partition is revoked.
    assignment: CancellationToken,
}

/// Runs the mover until `shutdown`.
pub async fn run(
    config: Arc<Config>,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let topics = Topics::new(&config.topics);
    let rungs: Vec<String> = delays::RUNGS
        .iter()
        .map(|rung| topics.delay_rung(*rung))
        .collect();
    if !sluice_core::kafka::wait_for_topics(&config.kafka, &rungs, "delay ladder", &shutdown).await
    {
        return Ok(());
    }
    let assignments = Arc::new(Assignments::default());
    let mut consumer_config = sluice_core::kafka::consumer_config(
        &config.kafka,
        &topics.delay_group(),
        Duration::from_secs(1),
    );
    // Short read-ahead inside librdkafka too, so what this process holds stays near READ_AHEAD
    // per partition: one fetch brings at most 64 KiB of a partition.
    consumer_config
        .set("queued.min.messages", "100")
        .set("max.partition.fetch.bytes", "65536")
        // Not a second's pause after a full queue (librdkafka's default): hops would be late.
        .set("fetch.queue.backoff.ms", "10");
    let consumer: LadderConsumer = consumer_config
        .create_with_context(LadderContext {
            assignments: assignments.clone(),
        })
        .context("creating the delay-ladder consumer")?;
    let producer: FutureProducer<QuietContext> =
        sluice_core::kafka::producer_config(&config.kafka, Duration::from_secs(30))
            .create_with_context(QuietContext)
            .context("creating the delay-ladder producer")?;
    let refs: Vec<&str> = rungs.iter().map(String::as_str).collect();
    consumer
        .subscribe(&refs)
        .context("subscribing to the delay ladder")?;
    tracing::info!(rungs = rungs.len(), "delay ladder moving");
    let mover = Arc::new(Mover {
        consumer: Arc::new(consumer),
        producer,
        topics,
        metrics: LadderMetrics::new(&registry),
        shutdown: shutdown.clone(),
    });

    let mut partitions: HashMap<(String, i32), PartitionTask> = HashMap::new();
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => break,
            received = mover.consumer.recv() => received.map(|m| m.detach()),
        };
        let message = match received {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(error = %e, "delay-ladder consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let key = (message.topic().to_owned(), message.partition());
        let token = assignments
            .tokens
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default()
            .clone();
        let task = partitions
            .entry(key.clone())
            .or_insert_with(|| spawn_partition(&mover, token.clone(), key.0.clone(), key.1));
        // Revocation runs inside `recv`, so a record after it belongs to a new assignment: it
        // must not reach the revoked task, which may still be finishing its moves and would drop
        // it on exit while the new task moves (and stores the offsets of) the records after it.
        if task.assignment.is_cancelled() {
            *task = spawn_partition(&mover, token, key.0.clone(), key.1);
        }
        task.held.count.fetch_add(1, Ordering::Relaxed);
        mover.metrics.held.inc();
        let _ = task.sender.send(message);
        task.held.pause_if_full(&mover.consumer, &key.0, key.1);
        partitions.retain(|_, task| !task.sender.is_closed());
    }

    drop(partitions);
    let consumer = mover.consumer.clone();
    let _ =
        tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync)).await;
    mover.consumer.unsubscribe();
    tracing::info!("delay ladder stopped");
    Ok(())
}

fn spawn_partition(
    mover: &Arc<Mover>,
    assignment: CancellationToken,
    topic: String,
    partition: i32,
) -> PartitionTask {
    let (sender, receiver) = mpsc::unbounded_channel();
    let held = Arc::new(Held::default());
    tokio::spawn(move_partition(
        mover.clone(),
        assignment.clone(),
        receiver,
        held.clone(),
        topic,
        partition,
    ));
    PartitionTask {
        sender,
        held,
        assignment,
    }
}

async fn move_partition(
    mover: Arc<Mover>,
    assignment: CancellationToken,
    mut records: mpsc::UnboundedReceiver<OwnedMessage>,
    held: Arc<Held>,
    topic: String,
    partition: i32,
) {
    let stop = CancellationToken::new();
    let stop_on = {
        let (stop, assignment, shutdown) =
            (stop.clone(), assignment.clone(), mover.shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = assignment.cancelled() => {}
                _ = shutdown.cancelled() => {}
            }
            stop.cancel();
        })
    };
    let mut moving = FuturesOrdered::new();
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            Some(offset) = moving.next(), if !moving.is_empty() => {
                store(&mover, &topic, partition, offset, &held);
            }
            record = records.recv(), if moving.len() < IN_FLIGHT => {
                let Some(record) = record else { break };
                let found = headers_of(&record);
                let due = found.hop_due;
                let wait = Duration::from_millis((due - now_millis()).max(0) as u64);
                if !wait.is_zero() {
                    // Everything behind it is due later: finish what is in flight, then wait.
                    let drained = async {
                        while let Some(offset) = moving.next().await {
                            store(&mover, &topic, partition, offset, &held);
                        }
                        tokio::time::sleep(wait).await;
                    };
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = drained => {}
                    }
                }
                let late = (now_millis() - due).max(0) as f64 / 1000.0;
                mover.metrics.lateness.observe(late);
                moving.push_back(move_on(mover.clone(), record, found));
            }
        }
    }
    // Left unmoved (revoked or stopping): their offsets were not stored, the next owner moves them.
    let left = held.count.swap(0, Ordering::Relaxed);
    mover.metrics.held.sub(left as i64);
    stop_on.abort();
}

fn store(mover: &Mover, topic: &str, partition: i32, offset: Option<i64>, held: &Held) {
    held.count.fetch_sub(1, Ordering::Relaxed);
    mover.metrics.held.dec();
    let Some(offset) = offset else { return };
    let mut list = TopicPartitionList::new();
    let _ = list.add_partition_offset(topic, partition, Offset::Offset(offset + 1));
    if let Err(e) = mover.consumer.store_offsets(&list) {
        tracing::debug!(error = %e, "delay-ladder offset not stored (revoked)");
    }
    held.resume_if_drained(&mover.consumer, topic, partition);
}

/// The ladder headers of one record.
struct LadderHeaders {
    hop_due: i64,
    run_at: Option<i64>,
    target: Option<String>,
}

fn headers_of(record: &OwnedMessage) -> LadderHeaders {
    let (mut hop_due, mut run_at, mut target) = (0, None, None);
    if let Some(found) = record.headers() {
        for header in found.iter() {
            let value = header.value.and_then(|v| std::str::from_utf8(v).ok());
            match header.key {
                headers::HOP_DUE_AT => hop_due = value.and_then(|v| v.parse().ok()).unwrap_or(0),
                headers::RUN_AT => run_at = value.and_then(|v| v.parse().ok()),
                headers::TARGET_TOPIC => target = value.map(str::to_owned),
                _ => {}
            }
        }
    }
    LadderHeaders {
        hop_due,
        run_at,
        target,
    }
}

/// Moves one due record to its next rung or its lane (a record without a lane or a run_at to the
/// ladder's dead letters); returns its offset once Kafka acknowledged, `None` at shutdown.
async fn move_on(mover: Arc<Mover>, record: OwnedMessage, found: LadderHeaders) -> Option<i64> {
    let from = rung_name(&mover.topics, record.topic());
    let (to, label, hop_due) = match (found.target, found.run_at) {
        (Some(lane), Some(run_at)) => {
            let remaining = Duration::from_millis((run_at - now_millis()).max(0) as u64);
            match delays::next_rung(remaining) {
                Some(rung) => (
                    mover.topics.delay_rung(rung),
                    "rung",
                    Some(now_millis() + rung.as_millis() as i64),
                ),
                None => (lane, "lane", None),
            }
        }
        _ => {
            mover.metrics.malformed.inc();
            tracing::warn!(
                topic = record.topic(),
                offset = record.offset(),
                "a delay-ladder record names no target lane or run_at; dead-lettering it"
            );
            (mover.topics.delay_dead_letters(), "dead_letter", None)
        }
    };
    let replaced = [headers::HOP_DUE_AT];
    let record_headers = || {
        let mut out: OwnedHeaders = headers::copy_except(record.headers(), &replaced);
        if let Some(due) = hop_due {
            out = out.insert(headers::str_header(headers::HOP_DUE_AT, &due.to_string()));
        }
        out
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut out = FutureRecord::to(&to)
            .payload(record.payload().unwrap_or_default())
            .headers(record_headers());
        if let Some(key) = record.key() {
            out = out.key(key);
        }
        match mover
            .producer
            .send(out, Timeout::After(Duration::from_secs(5)))
            .await
        {
            Ok(_) => break,
            Err((e, _)) => {
                tracing::warn!(topic = %to, error = %e, "moving a delayed job failed; retrying");
                if mover.shutdown.is_cancelled() {
                    return None;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    mover.metrics.moved.with_label_values(&[&from, label]).inc();
    Some(record.offset())
}

fn rung_name(topics: &Topics, topic: &str) -> String {
    delays::RUNGS
        .iter()
        .find(|rung| topics.delay_rung(**rung) == topic)
        .map_or_else(|| "unknown".to_owned(), |rung| tier_name(*rung))
}
