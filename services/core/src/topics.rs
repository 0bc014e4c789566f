//! Topic and consumer-group names (docs/architecture.md §3), all behind `topics.prefix`.

use std::time::Duration;

use crate::{codec::SchemaRegistry, config::TopicsConfig, retry::tier_name, Config};

/// Job kinds are the schema types with lower-case names (`webhook`, `noop`); capitalised types
/// (`PostCreated`) are events, not jobs.
pub fn job_kinds() -> Vec<String> {
    SchemaRegistry::embedded()
        .type_names()
        .filter(|name| name.starts_with(|c: char| c.is_ascii_lowercase()))
        .map(str::to_owned)
        .collect()
}

pub fn is_job_kind(kind: &str) -> bool {
    job_kinds().iter().any(|k| k == kind)
}

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

    /// Every topic the configuration needs, for `sluice topics ensure`.
    pub fn all(&self, config: &Config) -> Vec<TopicSpec> {
        let partitions = config.topics.partitions;
        let spec = |name: String, partitions: i32, compacted: bool| TopicSpec {
            name,
            partitions,
            compacted,
        };
        let mut topics = Vec::new();
        for kind in job_kinds() {
            topics.push(spec(self.jobs(&kind), partitions, false));
            for delay in config.retry_plan(&kind).tiers {
                topics.push(spec(self.retry(&kind, delay), partitions, false));
            }
            // One partition: a dead letter's offset is its id for `sluice dlq show/replay`, and
            // dead letters are too few to need more.
            topics.push(spec(self.dead_letters(&kind), 1, false));
            topics.push(spec(self.dead_letter_state(&kind), 1, true));
        }
        // Co-partitioned (docs/architecture.md §3): the same count for both social topics.
        topics.push(spec(self.posts(), partitions, false));
        topics.push(spec(self.follows(), partitions, false));
        topics.push(spec(format!("{}.dlq", self.posts()), 1, false));
        topics.push(spec(format!("{}.dlq", self.follows()), 1, false));
        topics
    }
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// Log compaction: only the newest record per key is kept.
    pub compacted: bool,
}
