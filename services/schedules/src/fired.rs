//! The fired-ticks topic (`sluice.schedules.fired`, compacted, one partition): key = schedule
//! name, value = a tick fired and its job id; the newest record of a key is the schedule's last
//! fire, and the older ones compaction has not removed yet are its recent fires. It is written in the same transaction as
//! the jobs, so what it says was fired was fired, and nothing else.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::{BaseConsumer, Consumer, ConsumerContext},
    error::KafkaError,
    ClientContext, Message, Offset, TopicPartitionList,
};
use serde::{Deserialize, Serialize};
use sluice_core::{config::KafkaConfig, kafka};

/// A fired tick of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fired {
    /// The tick, ms since the epoch.
    pub tick: i64,
    /// The id of the job it enqueued.
    pub job_id: String,
    /// When the leader fired it, ms since the epoch.
    pub fired_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum FiredError {
    #[error("reading {topic}: {source}")]
    Kafka {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("reading {topic}: not at its end after {bound:?}")]
    Timeout { topic: String, bound: Duration },
}

impl Fired {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a fired tick serializes")
    }
}

/// The reader's context: the end-of-partition events it asks for are also reported as client
/// errors, which are not errors here.
struct ReaderContext;

impl ClientContext for ReaderContext {
    fn stats(&self, _: rdkafka::statistics::Statistics) {}

    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::PartitionEOF(_))
            && error.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        {
            kafka::log_client_error(&error, reason);
        }
    }
}

impl ConsumerContext for ReaderContext {}

/// Every schedule's newest fired tick: `topic` read from its start to its end, committed
/// records only (aborted fires are invisible), without a consumer group. Blocks up to `bound`.
pub fn read_all(
    kafka_config: &KafkaConfig,
    group: &str,
    topic: &str,
    bound: Duration,
) -> Result<HashMap<String, Fired>, FiredError> {
    Ok(read_recent(kafka_config, group, topic, bound, 1)?
        .into_iter()
        .filter_map(|(name, fires)| Some((name, fires.into_iter().next()?)))
        .collect())
}

/// Every schedule's fires that `topic` still holds, newest first, at most `keep` of each (at
/// least one: 0 is read as 1). The topic is compacted by schedule name, so how many older fires
/// survive depends on when the broker last compacted it: as many as it still holds, and always
/// the last. Read like [`read_all`]; a tombstone forgets the schedule's fires before it.
pub fn read_recent(
    kafka_config: &KafkaConfig,
    group: &str,
    topic: &str,
    bound: Duration,
    keep: usize,
) -> Result<HashMap<String, Vec<Fired>>, FiredError> {
    let failed = |source| FiredError::Kafka {
        topic: topic.to_owned(),
        source,
    };
    let mut config = kafka::reader_config(kafka_config, group);
    // read_committed is librdkafka's default; spelled out because exactly-once rests on it. The
    // end-of-partition events say when the end (the last stable offset) is reached: offsets
    // cannot, since transaction markers take offsets no message is read at.
    config
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer<ReaderContext> =
        config.create_with_context(ReaderContext).map_err(failed)?;
    let deadline = Instant::now() + bound;
    let mut list = TopicPartitionList::new();
    for partition in kafka::partitions(consumer.client(), topic, bound).map_err(failed)? {
        let left = deadline.saturating_duration_since(Instant::now());
        let (low, high) =
            kafka::watermarks(consumer.client(), topic, partition, left).map_err(failed)?;
        if high > low {
            list.add_partition_offset(topic, partition, Offset::Beginning)
                .map_err(failed)?;
        }
    }
    let mut fired = Recent::new(keep);
    let mut open = list.count();
    if open == 0 {
        return Ok(HashMap::new());
    }
    consumer.assign(&list).map_err(failed)?;
    while open > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(FiredError::Timeout {
                topic: topic.to_owned(),
                bound,
            });
        }
        match consumer.poll(left.min(Duration::from_millis(200))) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => open -= 1,
            Some(Err(error)) => return Err(failed(error)),
            Some(Ok(message)) => {
                let Some(name) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                    continue;
                };
                match message.payload().map(serde_json::from_slice::<Fired>) {
                    // A tombstone: the schedule's history was deleted on purpose.
                    None => fired.forget(name),
                    Some(Ok(record)) => fired.push(name, record),
                    Some(Err(error)) => tracing::warn!(
                        topic,
                        schedule = name,
                        offset = message.offset(),
                        error = %error,
                        "a fired-tick record that is not sluice's JSON; ignored"
                    ),
                }
            }
        }
    }
    Ok(fired.newest_first())
}

/// The last `keep` fires of each schedule, in the order they were read (oldest first).
struct Recent {
    keep: usize,
    fires: HashMap<String, VecDeque<Fired>>,
}

impl Recent {
    fn new(keep: usize) -> Self {
        Self {
            keep: keep.max(1),
            fires: HashMap::new(),
        }
    }

    fn push(&mut self, name: &str, fired: Fired) {
        let fires = self.fires.entry(name.to_owned()).or_default();
        if fires.len() == self.keep {
            fires.pop_front();
        }
        fires.push_back(fired);
    }

    /// A tombstone: the schedule's history was deleted on purpose.
    fn forget(&mut self, name: &str) {
        self.fires.remove(name);
    }

    fn newest_first(self) -> HashMap<String, Vec<Fired>> {
        self.fires
            .into_iter()
            .map(|(name, fires)| (name, fires.into_iter().rev().collect()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(tick: i64) -> Fired {
        Fired {
            tick,
            job_id: format!("schedule-s-{tick}"),
            fired_at: tick + 3,
        }
    }

    #[test]
    fn recent_fires_are_the_newest_few_newest_first_and_a_tombstone_forgets_them() {
        let mut recent = Recent::new(3);
        for tick in 1..=5 {
            recent.push("a", fire(tick));
        }
        recent.push("b", fire(10));
        recent.push("c", fire(20));
        recent.forget("c");
        recent.push("c", fire(21));
        let fires = recent.newest_first();
        let ticks = |name: &str| fires[name].iter().map(|f| f.tick).collect::<Vec<_>>();
        assert_eq!(ticks("a"), [5, 4, 3]);
        assert_eq!(ticks("b"), [10]);
        assert_eq!(ticks("c"), [21], "nothing from before the tombstone");
        // keep 0 is read as 1: the last fire is always there.
        let mut last = Recent::new(0);
        last.push("a", fire(1));
        last.push("a", fire(2));
        assert_eq!(last.newest_first()["a"], [fire(2)]);
    }

    #[test]
    fn a_fired_tick_is_the_json_its_readers_expect() {
        let fired = Fired {
            tick: 1_767_229_200_000,
            job_id: "schedule-nightly-1767229200000".into(),
            fired_at: 1_767_229_200_004,
        };
        let json: serde_json::Value = serde_json::from_slice(&fired.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "tick": 1_767_229_200_000_i64,
                "job_id": "schedule-nightly-1767229200000",
                "fired_at": 1_767_229_200_004_i64
            })
        );
    }
}
