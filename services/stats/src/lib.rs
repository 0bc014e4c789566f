//! Queue health as an operator reads it first: pending jobs (consumer lag on each kind's lane
//! topics), failed jobs (dead letters not replayed or purged), active workers (members of each
//! kind's consumer group), retry backlog, and how old the oldest unprocessed job is.
//!
//! It is measured from outside the groups — committed offsets against high watermarks — so it
//! is right even when every worker is down, which is exactly when it matters. `groups` shows
//! each consumer group in detail (members, their assignments, lag per partition, timed
//! partitions waiting for a due time).

mod assignment;
mod groups;
mod heads;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    message::Message,
    Offset, TopicPartitionList,
};
use serde::Serialize;
use sluice_core::{
    headers::now_millis,
    kafka::{self, QuietContext},
    lanes::Priority,
    retry::tier_name,
    topics::Topics,
    Config,
};
use sluice_dlq::PendingCounter;
use sluice_kinds::Registry;

pub use groups::{AssignedPartition, GroupView, Member, WaitingPartition};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs blocking Kafka calls from async code. On a multi-thread runtime `block_in_place` hands
/// this thread's other tasks to the remaining workers; a current-thread runtime (a test, a
/// single-threaded embedder) has no other worker, so `block_in_place` would panic there and the
/// call simply blocks its one thread for the call's bounded `TIMEOUT`s.
fn blocking_kafka<T>(call: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(call),
        _ => call(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("dead letters: {0}")]
    Dlq(#[from] sluice_dlq::DlqError),
}

/// One partition of one topic as one consumer group sees it.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionLag {
    pub partition: i32,
    pub high_watermark: i64,
    /// The group's committed offset; the low watermark when it has none yet.
    pub committed: i64,
    pub lag: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopicLag {
    pub group: String,
    pub lag: i64,
    /// Age of the oldest record the group has not processed yet; 0 when there is none.
    pub lag_seconds: f64,
    pub partitions: Vec<PartitionLag>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KindStats {
    /// Jobs not yet taken, every lane together.
    pub pending: i64,
    /// Pending per lane: `high`, `normal`, `low`.
    pub lanes: BTreeMap<String, i64>,
    pub failed: i64,
    pub workers: i64,
    /// Age of the oldest pending job, in any lane.
    pub lag_seconds: f64,
    /// Records in each retry tier not yet consumed, shortest tier first.
    pub retry_backlog: Vec<TierBacklog>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TierBacklog {
    pub tier: String,
    pub backlog: i64,
}

/// `GET /v1/queue/stats` and `sluice stats`.
#[derive(Debug, Clone, Serialize)]
pub struct QueueStats {
    pub pending: i64,
    pub failed: i64,
    pub workers: i64,
    pub kinds: BTreeMap<String, KindStats>,
    /// Every topic sluice consumes, with its consumer group's view.
    pub topics: BTreeMap<String, TopicLag>,
    /// Milliseconds since the epoch.
    pub collected_at: i64,
}

/// Reads queue health; keeps one offset-reading client per consumer group.
pub struct StatsReader {
    config: Config,
    registry: Arc<Registry>,
    topics: Topics,
    dead_letters: PendingCounter,
    /// Describes groups; never assigned anything.
    peek: Reader,
    /// Reads head records (`heads`), one caller at a time.
    heads: Mutex<Reader>,
    groups: Mutex<HashMap<String, Reader>>,
}

/// Never subscribes, so it never joins the group: it only reads the group's offsets.
fn client(config: &Config, group: &str) -> Result<Reader, KafkaError> {
    sluice_core::kafka::reader_config(&config.kafka, group).create_with_context(QuietContext)
}

type Reader = BaseConsumer<QuietContext>;

impl StatsReader {
    pub fn new(config: &Config, registry: Arc<Registry>) -> Result<Self, StatsError> {
        Ok(Self {
            config: config.clone(),
            registry,
            topics: Topics::new(&config.topics),
            dead_letters: PendingCounter::new(config),
            peek: client(config, "sluice-stats-peek")?,
            heads: Mutex::new(client(config, "sluice-stats-peek")?),
            groups: Mutex::new(HashMap::new()),
        })
    }

    /// Collects everything; Kafka calls block, so they run on the blocking pool.
    pub async fn collect(&self) -> Result<QueueStats, StatsError> {
        let mut failed_by_kind = BTreeMap::new();
        for kind in self.registry.names() {
            let count = self.dead_letters.refresh(&kind).await?;
            failed_by_kind.insert(kind.clone(), count.pending as i64);
        }
        blocking_kafka(|| self.collect_offsets(failed_by_kind))
    }

    fn collect_offsets(
        &self,
        failed_by_kind: BTreeMap<String, i64>,
    ) -> Result<QueueStats, StatsError> {
        let mut topics = BTreeMap::new();
        let mut kinds = BTreeMap::new();
        for spec in self.registry.kinds() {
            let kind = spec.name.clone();
            let group = self.topics.worker_group(&kind);
            let (mut pending, mut lag_seconds, mut lanes) = (0, 0.0f64, BTreeMap::new());
            for lane in Priority::ALL {
                let topic = self.topics.lane(&kind, lane);
                let lag = self.topic_lag(&group, &topic, true)?;
                pending += lag.lag;
                lag_seconds = lag_seconds.max(lag.lag_seconds);
                lanes.insert(lane.as_str().to_owned(), lag.lag);
                topics.insert(topic, lag);
            }
            let mut retry_backlog = Vec::new();
            for delay in spec.plan.tiers.iter().copied() {
                let tier_topic = self.topics.retry(&kind, delay);
                let lag = self.topic_lag(&group, &tier_topic, false)?;
                retry_backlog.push(TierBacklog {
                    tier: tier_name(delay),
                    backlog: lag.lag,
                });
                topics.insert(tier_topic, lag);
            }
            kinds.insert(
                kind.clone(),
                KindStats {
                    pending,
                    lanes,
                    failed: failed_by_kind.get(&kind).copied().unwrap_or(0),
                    workers: self.members(&group)?,
                    lag_seconds,
                    retry_backlog,
                },
            );
        }
        for (topic, group) in [
            (self.topics.posts(), self.topics.posts_group()),
            (self.topics.follows(), self.topics.follows_group()),
        ] {
            let lag = self.topic_lag(&group, &topic, true)?;
            topics.insert(topic, lag);
        }
        Ok(QueueStats {
            pending: kinds.values().map(|k| k.pending).sum(),
            failed: kinds.values().map(|k| k.failed).sum(),
            workers: kinds.values().map(|k| k.workers).sum(),
            kinds,
            topics,
            collected_at: now_millis(),
        })
    }

    /// Members of a consumer group right now.
    pub fn members(&self, group: &str) -> Result<i64, StatsError> {
        let list = self.peek.fetch_group_list(Some(group), TIMEOUT)?;
        Ok(list.groups().iter().map(|g| g.members().len() as i64).sum())
    }

    fn topic_lag(&self, group: &str, topic: &str, with_age: bool) -> Result<TopicLag, StatsError> {
        let mut clients = self.groups.lock().unwrap();
        if !clients.contains_key(group) {
            clients.insert(group.to_owned(), client(&self.config, group)?);
        }
        let reader = &clients[group];
        let mut list = TopicPartitionList::new();
        let mut watermarks = BTreeMap::new();
        for partition in kafka::partitions(reader.client(), topic, TIMEOUT)? {
            list.add_partition(topic, partition);
            watermarks.insert(
                partition,
                kafka::watermarks(reader.client(), topic, partition, TIMEOUT)?,
            );
        }
        let committed = reader.committed_offsets(list, TIMEOUT)?;
        let mut partitions = Vec::new();
        for element in committed.elements() {
            let (low, high) = watermarks[&element.partition()];
            let position = match element.offset() {
                Offset::Offset(o) => o.max(low),
                _ => low,
            };
            partitions.push(PartitionLag {
                partition: element.partition(),
                high_watermark: high,
                committed: position,
                lag: (high - position).max(0),
            });
        }
        let lag_seconds = if with_age {
            self.oldest_age(topic, &partitions)
        } else {
            0.0
        };
        Ok(TopicLag {
            group: group.to_owned(),
            lag: partitions.iter().map(|p| p.lag).sum(),
            lag_seconds,
            partitions,
        })
    }

    /// Age in seconds of the oldest unprocessed record: the record at each lagging partition's
    /// committed offset, read by timestamp.
    fn oldest_age(&self, topic: &str, partitions: &[PartitionLag]) -> f64 {
        let oldest = self
            .read_heads(topic, partitions, |message| message.timestamp().to_millis())
            .into_values()
            .flatten()
            .min();
        oldest.map_or(0.0, |ts| ((now_millis() - ts).max(0)) as f64 / 1000.0)
    }
}
