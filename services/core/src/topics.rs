//! Topic and consumer-group names (docs/architecture.md §3), all behind `topics.prefix`.

use std::time::Duration;

use crate::{config::TopicsConfig, lanes::Priority, retry::tier_name};

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

    /// The topic of a lane: `jobs.<kind>.high`, `jobs.<kind>`, `jobs.<kind>.low`.
    pub fn lane(&self, kind: &str, priority: Priority) -> String {
        match priority {
            Priority::Normal => self.jobs(kind),
            other => format!("{}jobs.{kind}.{}", self.prefix, other.as_str()),
        }
    }

    /// The lane a topic of `kind` is, `None` for its other topics.
    /// Read per record by the worker, so it compares in place instead of formatting names.
    pub fn lane_of(&self, kind: &str, topic: &str) -> Option<Priority> {
        let lane = topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix("jobs.")?
            .strip_prefix(kind)?;
        match lane.strip_prefix('.') {
            None if lane.is_empty() => Some(Priority::Normal),
            Some(suffix) if suffix != Priority::Normal.as_str() => {
                Priority::ALL.into_iter().find(|p| p.as_str() == suffix)
            }
            _ => None,
        }
    }

    /// A rung of the delay ladder shared by every kind: `sluice.delay.<delay>`.
    pub fn delay_rung(&self, delay: Duration) -> String {
        format!("{}sluice.delay.{}", self.prefix, tier_name(delay))
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

    /// The fanout's consumer group for posts. Posts and follows have a group each, so a bulk
    /// import of follows never holds posts back.
    pub fn posts_group(&self) -> String {
        format!("{}sluice.fanout", self.prefix)
    }

    /// The fanout's consumer group for follow changes.
    pub fn follows_group(&self) -> String {
        format!("{}sluice.fanout.follows", self.prefix)
    }

    /// One consumer group per kind, so kinds scale and lag independently.
    pub fn worker_group(&self, kind: &str) -> String {
        format!("{}sluice.worker.{kind}", self.prefix)
    }

    /// Every topic of a kind: its three lanes, one per retry tier, the DLQ and its state, and its
    /// cancellations. `cancel_retention`: how long a cancellation is kept (as long as
    /// job status, `redis.status_ttl`: a job older than that is not waiting any more).
    pub fn kind_topics(
        &self,
        kind: &str,
        tiers: &[Duration],
        partitions: i32,
        cancel_retention: Duration,
    ) -> Vec<TopicSpec> {
        let mut topics: Vec<TopicSpec> = Priority::ALL
            .iter()
            .map(|lane| TopicSpec::new(self.lane(kind, *lane), partitions, false))
            .collect();
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

    /// Records on the delay ladder that name no lane or due time (not written by sluice).
    pub fn delay_dead_letters(&self) -> String {
        format!("{}sluice.delay.dlq", self.prefix)
    }

    /// The rungs of the delay ladder (`crate::delays`), shared by every kind, and its dead
    /// letters.
    pub fn delay_topics(&self, partitions: i32) -> Vec<TopicSpec> {
        let mut topics: Vec<TopicSpec> = crate::delays::RUNGS
            .iter()
            .map(|rung| TopicSpec::new(self.delay_rung(*rung), partitions, false))
            .collect();
        topics.push(TopicSpec::new(self.delay_dead_letters(), 1, false));
        topics
    }

    /// The scheduler's leader election topic: one partition, whose owner in the scheduler group
    /// is the leader. Nothing is written to it.
    pub fn scheduler_leader(&self) -> String {
        format!("{}sluice.scheduler.leader", self.prefix)
    }

    /// The last fired tick of each schedule, keyed by schedule name, compacted.
    pub fn schedule_fires(&self) -> String {
        format!("{}sluice.schedules.fired", self.prefix)
    }

    /// The consumer group whose owner of the leader topic fires the schedules.
    pub fn scheduler_group(&self) -> String {
        format!("{}sluice.scheduler", self.prefix)
    }

    /// The consumer group moving delayed jobs down the ladder.
    pub fn delay_group(&self) -> String {
        format!("{}sluice.delays", self.prefix)
    }

    /// The scheduler's topics.
    pub fn scheduler_topics(&self) -> Vec<TopicSpec> {
        vec![
            TopicSpec::new(self.scheduler_leader(), 1, false),
            TopicSpec::new(self.schedule_fires(), 1, true),
        ]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_of_names_exactly_the_three_lane_topics() {
        let topics = Topics {
            prefix: "t1.".into(),
        };
        for lane in Priority::ALL {
            assert_eq!(
                topics.lane_of("email", &topics.lane("email", lane)),
                Some(lane)
            );
        }
        for other in [
            "t1.jobs.email.normal",
            "t1.jobs.email.retry.2s",
            "t1.jobs.email.dlq",
            "t1.jobs.emailx",
            "t1.jobs.email.",
            "jobs.email",
            "t1.jobs.sms.high",
        ] {
            assert_eq!(topics.lane_of("email", other), None, "{other}");
        }
    }
}
