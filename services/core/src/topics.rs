//! Topic and consumer-group names (DESIGN.md §5), all behind `topics.prefix`.

use crate::{codec::SchemaRegistry, config::TopicsConfig};

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
    pub fn all(&self) -> Vec<String> {
        let mut topics = Vec::new();
        for kind in job_kinds() {
            topics.push(self.jobs(&kind));
            topics.push(self.dead_letters(&kind));
        }
        topics.push(self.posts());
        topics.push(self.follows());
        topics
    }
}
