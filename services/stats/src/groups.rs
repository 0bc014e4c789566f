//! Each consumer group sluice uses, in detail: who its members are and what each is assigned,
//! lag per partition, and which timed partitions (retry tiers, delay-ladder rungs) are waiting
//! for their head record to be due.
//!
//! Like the rest of this crate it is read from outside the groups: members from the group
//! coordinator (DescribeGroups), lag from committed offsets, and "waiting" from the record at a
//! partition's committed offset. A worker holds a retry record on a timer until it is due and
//! commits nothing past it, so a tier partition whose head record is not due yet moves no
//! further until then, whatever is behind it.

use std::collections::BTreeMap;

use rdkafka::{consumer::Consumer, message::Message};
use serde::Serialize;
use sluice_core::{
    headers::{self, now_millis},
    lanes::Priority,
};

use crate::{assignment, PartitionLag, StatsError, StatsReader, TopicLag, TIMEOUT};

/// One consumer group (`GET /v1/queue/consumers`).
#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    pub group: String,
    /// As the group coordinator says: `Stable`, `Empty`, `PreparingRebalance`,
    /// `CompletingRebalance` or `Dead` (a group that never had a member).
    pub state: String,
    pub members: Vec<Member>,
    /// Records not yet consumed, every topic of the group together.
    pub lag: i64,
    /// Every topic the group consumes, keyed by name.
    pub topics: BTreeMap<String, TopicLag>,
    /// Timed partitions whose head record is not due yet, soonest first.
    pub waiting: Vec<WaitingPartition>,
}

/// One member of a consumer group: one consumer in one process.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    /// The coordinator's id for it, unique in the group.
    pub member_id: String,
    /// The `client.id` it connected with.
    pub client_id: String,
    /// The address the broker saw it connect from.
    pub host: String,
    /// What the group leader assigned it, by topic then partition; empty while the group
    /// rebalances.
    pub assignments: Vec<AssignedPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct AssignedPartition {
    pub topic: String,
    pub partition: i32,
}

/// A timed partition held back by its head record, which is not due yet.
#[derive(Debug, Clone, Serialize)]
pub struct WaitingPartition {
    pub topic: String,
    pub partition: i32,
    /// The head record: the group's committed offset.
    pub offset: i64,
    /// When it is due (its `sluice-due-at` or `sluice-hop-due-at`), ms since the epoch.
    pub due_at_ms: i64,
}

/// A topic a group consumes; `due_header` names the header of records that wait until a time.
struct Consumed {
    topic: String,
    due_header: Option<&'static str>,
}

impl Consumed {
    fn plain(topic: String) -> Self {
        Self {
            topic,
            due_header: None,
        }
    }

    fn timed(topic: String, due_header: &'static str) -> Self {
        Self {
            topic,
            due_header: Some(due_header),
        }
    }
}

impl StatsReader {
    /// Every consumer group sluice uses: each kind's worker group (its lanes and retry tiers),
    /// the fanout's posts and follows groups, the scheduler's election group and the
    /// delay-ladder group. Kafka calls block (see `blocking_kafka`).
    pub async fn groups(&self) -> Result<Vec<GroupView>, StatsError> {
        super::blocking_kafka(|| {
            self.consumed()
                .into_iter()
                .map(|(group, topics)| self.group_view(group, &topics))
                .collect()
        })
    }

    fn consumed(&self) -> Vec<(String, Vec<Consumed>)> {
        let topics = &self.topics;
        let mut groups = Vec::new();
        for spec in self.registry.kinds() {
            let kind = &spec.name;
            let mut consumed: Vec<Consumed> = Priority::ALL
                .iter()
                .map(|lane| Consumed::plain(topics.lane(kind, *lane)))
                .collect();
            consumed.extend(
                spec.plan
                    .tiers
                    .iter()
                    .map(|delay| Consumed::timed(topics.retry(kind, *delay), headers::DUE_AT)),
            );
            groups.push((topics.worker_group(kind), consumed));
        }
        groups.push((topics.posts_group(), vec![Consumed::plain(topics.posts())]));
        groups.push((
            topics.follows_group(),
            vec![Consumed::plain(topics.follows())],
        ));
        groups.push((
            topics.scheduler_group(),
            vec![Consumed::plain(topics.scheduler_leader())],
        ));
        groups.push((
            topics.delay_group(),
            sluice_core::delays::RUNGS
                .iter()
                .map(|rung| Consumed::timed(topics.delay_rung(*rung), headers::HOP_DUE_AT))
                .collect(),
        ));
        groups
    }

    fn group_view(&self, group: String, consumed: &[Consumed]) -> Result<GroupView, StatsError> {
        let (state, members) = self.describe(&group)?;
        let mut topics = BTreeMap::new();
        let mut waiting = Vec::new();
        for Consumed { topic, due_header } in consumed {
            let lag = self.topic_lag(&group, topic, due_header.is_none())?;
            if let Some(header) = due_header {
                waiting.extend(self.waiting(topic, header, &lag.partitions));
            }
            topics.insert(topic.clone(), lag);
        }
        waiting.sort_by_key(|w| w.due_at_ms);
        Ok(GroupView {
            group,
            state,
            members,
            lag: topics.values().map(|t| t.lag).sum(),
            topics,
            waiting,
        })
    }

    /// The group's state and members, as its coordinator describes them.
    fn describe(&self, group: &str) -> Result<(String, Vec<Member>), StatsError> {
        let list = self.peek.fetch_group_list(Some(group), TIMEOUT)?;
        let Some(info) = list.groups().iter().find(|g| g.name() == group) else {
            return Ok(("Dead".to_owned(), Vec::new()));
        };
        // Only the consumer protocol's assignments are ConsumerProtocolAssignment bytes.
        let consumer_protocol = info.protocol_type() == "consumer";
        let members = info
            .members()
            .iter()
            .map(|m| {
                let mut assignments: Vec<AssignedPartition> = m
                    .assignment()
                    .filter(|_| consumer_protocol)
                    .map(assignment::decode)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(topic, partition)| AssignedPartition { topic, partition })
                    .collect();
                assignments.sort();
                Member {
                    member_id: m.id().to_owned(),
                    client_id: m.client_id().to_owned(),
                    host: m.client_host().to_owned(),
                    assignments,
                }
            })
            .collect();
        Ok((info.state().to_owned(), members))
    }

    /// The partitions of `topic` with lag whose record at the committed offset carries a due
    /// time (`header`) still in the future. Best effort: a head not read in time is left out.
    fn waiting(
        &self,
        topic: &str,
        header: &str,
        partitions: &[PartitionLag],
    ) -> Vec<WaitingPartition> {
        let now = now_millis();
        self.read_heads(topic, partitions, |message| {
            let due = message
                .headers()
                .and_then(|h| headers::get(h, header))
                .and_then(|v| v.parse::<i64>().ok());
            (message.offset(), due)
        })
        .into_iter()
        .filter_map(|(partition, (offset, due))| {
            let due_at_ms = due.filter(|due| *due > now)?;
            Some(WaitingPartition {
                topic: topic.to_owned(),
                partition,
                offset,
                due_at_ms,
            })
        })
        .collect()
    }
}
