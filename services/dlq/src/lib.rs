//! Dead letters: the jobs that could not succeed, kept in `jobs.<kind>.dlq` with their original
//! bytes and headers. This crate lists, shows, replays and purges them for `sluice dlq` and the
//! API's `/v1/dlq`.
//!
//! Kafka cannot delete single records, so what happened to each dead letter is recorded next to
//! it, in the compacted topic `jobs.<kind>.dlq.state` (key: the dead letter's position, value:
//! `replayed` or `purged`). A dead letter without such a record is *pending*: it counts as failed
//! and may be replayed. Replay sends first and records after, so a crash between the two can send
//! a job twice, never zero times (handlers are idempotent by job id). Replays and purges of one
//! kind take a lease first (`lease`), so two of them never run at once.

mod lease;
mod pending;
mod read;
mod replay;

use rdkafka::producer::FutureProducer;
use serde::Serialize;
use std::sync::Arc;

use sluice_core::{kafka::QuietContext, topics::Topics, Config};
use sluice_kinds::Registry;

pub use pending::{PendingCount, PendingCounter};
pub use replay::{ReplayReport, Selector};

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("unknown job kind `{0}`")]
    UnknownKind(String),
    #[error("no dead letter at {0} in {1}")]
    NotFound(Position, String),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("reading {topic} did not reach its end within {seconds} s")]
    ReadTimeout { topic: String, seconds: u64 },
    #[error(
        "a replay or purge of `{kind}` is already running ({holder}); try again when it is done"
    )]
    Busy { kind: String, holder: String },
    #[error("the dead-letter lease of `{0}` expired and was taken by another replay; stopped")]
    LeaseLost(String),
    #[error("Redis (dead-letter lease): {0}")]
    Redis(#[from] redis::RedisError),
}

/// Where a dead letter is: its partition and offset in the DLQ topic. Printed as the bare offset
/// on partition 0 (DLQ topics have one partition), `partition:offset` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.partition == 0 {
            write!(f, "{}", self.offset)
        } else {
            write!(f, "{}:{}", self.partition, self.offset)
        }
    }
}

impl std::str::FromStr for Position {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not an offset (`17`, or `partition:offset` like `2:17`)");
        let (partition, offset) = match s.split_once(':') {
            Some((p, o)) => (p.parse().map_err(|_| bad())?, o.parse().map_err(|_| bad())?),
            None => (0, s.parse().map_err(|_| bad())?),
        };
        if partition < 0 || offset < 0 {
            return Err(bad());
        }
        Ok(Position { partition, offset })
    }
}

/// What has been done about a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Replayed,
    Purged,
}

/// One dead letter, with the facts its headers carry.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    #[serde(rename = "offset", serialize_with = "serialize_display")]
    pub position: Position,
    pub job_id: String,
    pub attempts: u32,
    pub error_class: String,
    pub error: String,
    /// Milliseconds since the Unix epoch.
    pub dead_at: i64,
    pub state: State,
    #[serde(skip)]
    pub key: Option<Vec<u8>>,
    #[serde(skip)]
    pub payload: Vec<u8>,
    /// Every header, values as UTF-8 where they are.
    #[serde(skip)]
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

fn serialize_display<S: serde::Serializer>(p: &Position, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(p)
}

/// Which dead letters `list` returns.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub error_class: Option<String>,
    /// Only those dead since this time (ms since epoch).
    pub since_ms: Option<i64>,
    /// Include dead letters already replayed or purged.
    pub include_handled: bool,
    pub limit: Option<usize>,
}

impl Filter {
    fn matches(&self, d: &DeadLetter) -> bool {
        (self.include_handled || d.state == State::Pending)
            && self
                .error_class
                .as_ref()
                .is_none_or(|c| *c == d.error_class)
            && self.since_ms.is_none_or(|since| d.dead_at >= since)
    }
}

/// Dead-letter operations for one configuration.
pub struct Dlq {
    config: Config,
    registry: Arc<Registry>,
    topics: Topics,
    producer: FutureProducer<QuietContext>,
}

impl Dlq {
    pub fn new(config: &Config, registry: Arc<Registry>) -> Result<Self, DlqError> {
        let producer =
            sluice_core::kafka::producer_config(&config.kafka, std::time::Duration::from_secs(30))
                .create_with_context(QuietContext)?;
        Ok(Self {
            config: config.clone(),
            registry,
            topics: Topics::new(&config.topics),
            producer,
        })
    }

    fn check_kind(&self, kind: &str) -> Result<(), DlqError> {
        if self.registry.get(kind).is_some() {
            Ok(())
        } else {
            Err(DlqError::UnknownKind(kind.to_owned()))
        }
    }

    /// Dead letters of `kind`, oldest first, as `filter` selects them.
    pub async fn list(&self, kind: &str, filter: &Filter) -> Result<Vec<DeadLetter>, DlqError> {
        self.check_kind(kind)?;
        let mut all = self.read(kind).await?;
        all.retain(|d| filter.matches(d));
        if let Some(limit) = filter.limit {
            all.truncate(limit);
        }
        Ok(all)
    }

    /// One dead letter, whatever its state.
    pub async fn show(&self, kind: &str, position: Position) -> Result<DeadLetter, DlqError> {
        self.check_kind(kind)?;
        self.read(kind)
            .await?
            .into_iter()
            .find(|d| d.position == position)
            .ok_or_else(|| DlqError::NotFound(position, self.topics.dead_letters(kind)))
    }
}
