//! Topic and consumer-group names (docs/architecture.md §3), all behind `topics.prefix`.

use std::time::Duration;

use crate::{config::TopicsConfig, retry::tier_name};

#[derive(Debug, Clone)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    pub fn new(config: &TopicsConfig) -> Self {
        Self {
            prefix: config.prefix.clone(),
        }
    }

    /// The main topic of a job kind: `jobs.<kind>`.
    pub fn jobs(&self, kind: &str) -> String {
        format!("{}jobs.{kind}", self.prefix)
    }

    /// A retry tier: `jobs.<kind>.retry.<delay>`.
    pub fn retry(&self, kind: &str, delay: Duration) -> String {
        format!("{}jobs.{kind}.retry.{}", self.prefix, tier_name(delay))
    }

    /// Which dead letters were replayed or purged: `jobs.<kind>.dlq.state`, compacted.
    pub fn dead_letter_state(&self, kind: &str) -> String {
        format!("{}jobs.{kind}.dlq.state", self.prefix)
    }

    /// Ids of the kind's jobs cancelled before they started: `jobs.<kind>.cancel`. Every worker
    /// of the kind reads all of it and skips those jobs.
    pub fn cancellations(&self, kind: &str) -> String {
        format!("{}jobs.{kind}.cancel", self.prefix)
    }

    /// Where jobs that cannot succeed end: `jobs.<kind>.dlq`.
    pub fn dead_letters(&self, kind: &str) -> String {
        format!("{}jobs.{kind}.dlq", self.prefix)
    }

    pub fn posts(&self) -> String {
        format!("{}social.posts", self.prefix)
    }

    pub fn follows(&self) -> String {
        format!("{}social.follows", self.prefix)
    }

    /// One consumer group per kind, so kinds scale and lag independently.
    pub fn worker_group(&self, kind: &str) -> String {
        format!("{}sluice.worker.{kind}", self.prefix)
    }

    /// The topics of one job kind: its main topic, one per retry tier, the DLQ and its state.
    /// Every topic of a kind. `cancel_retention`: how long a cancellation is kept (as long as
    /// job status, `redis.status_ttl`: a job older than that is not waiting any more).
    pub fn kind_topics(
        &self,
        kind: &str,
        tiers: &[Duration],
        partitions: i32,
        cancel_retention: Duration,
    ) -> Vec<TopicSpec> {
        let mut topics = vec![TopicSpec::new(self.jobs(kind), partitions, false)];
        for delay in tiers {
            topics.push(TopicSpec::new(self.retry(kind, *delay), partitions, false));
        }
        // One partition: a dead letter's offset is its id for `sluice dlq show/replay`, and
        // dead letters are too few to need more.
        topics.push(TopicSpec::new(self.dead_letters(kind), 1, false));
        topics.push(TopicSpec::new(self.dead_letter_state(kind), 1, true));
        // One partition: every worker of the kind reads all of it anyway.
        let mut cancellations = TopicSpec::new(self.cancellations(kind), 1, false);
        cancellations.retention = Some(cancel_retention);
        topics.push(cancellations);
        topics
    }

    /// The social topics and their dead-letter topics.
    pub fn social_topics(&self, partitions: i32) -> Vec<TopicSpec> {
        // Co-partitioned (docs/architecture.md §3): the same count for both social topics.
        vec![
            TopicSpec::new(self.posts(), partitions, false),
            TopicSpec::new(self.follows(), partitions, false),
            TopicSpec::new(format!("{}.dlq", self.posts()), 1, false),
            TopicSpec::new(format!("{}.dlq", self.follows()), 1, false),
        ]
    }
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// Log compaction: only the newest record per key is kept.
    pub compacted: bool,
    /// `retention.ms`; `None`: the broker's default.
    pub retention: Option<Duration>,
}

impl TopicSpec {
    pub fn new(name: String, partitions: i32, compacted: bool) -> Self {
        Self {
            name,
            partitions,
            compacted,
            retention: None,
        }
    }
}
