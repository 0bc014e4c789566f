//! Reading a whole (small) topic from its start to its current end, without a consumer group.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    message::{Headers, Message, OwnedMessage},
    ClientConfig, Offset, TopicPartitionList,
};
use sluice_core::{headers, Config};

use crate::{DeadLetter, Dlq, DlqError, Position, State};

const READ_TIMEOUT: Duration = Duration::from_secs(60);

impl Dlq {
    /// Every dead letter of `kind` with its state, oldest first.
    pub(crate) async fn read(&self, kind: &str) -> Result<Vec<DeadLetter>, DlqError> {
        let config = self.config.clone();
        let (dlq_topic, state_topic) = (
            self.topics.dead_letters(kind),
            self.topics.dead_letter_state(kind),
        );
        tokio::task::spawn_blocking(move || {
            let states = read_states(&config, &state_topic)?;
            let letters = read_topic(&config, &dlq_topic)?
                .iter()
                .map(|m| dead_letter(m, &states))
                .collect();
            Ok(letters)
        })
        .await
        .expect("the DLQ reader does not panic")
    }
}

/// The newest state recorded for each position; absent means pending.
fn read_states(config: &Config, topic: &str) -> Result<HashMap<Position, State>, DlqError> {
    let mut states = HashMap::new();
    for message in read_topic(config, topic)? {
        let position = message
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| k.parse::<Position>().ok());
        let state = message
            .payload()
            .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
            .and_then(|v| match v["state"].as_str() {
                Some("replayed") => Some(State::Replayed),
                Some("purged") => Some(State::Purged),
                _ => None,
            });
        if let (Some(position), Some(state)) = (position, state) {
            states.insert(position, state);
        }
    }
    Ok(states)
}

fn dead_letter(message: &OwnedMessage, states: &HashMap<Position, State>) -> DeadLetter {
    let position = Position {
        partition: message.partition(),
        offset: message.offset(),
    };
    let header = |name| {
        message
            .headers()
            .and_then(|h| headers::get(h, name))
            .map(str::to_owned)
    };
    DeadLetter {
        position,
        job_id: header(headers::JOB_ID).unwrap_or_default(),
        attempts: header(headers::ATTEMPT)
            .and_then(|a| a.parse().ok())
            .unwrap_or(1),
        error_class: header(headers::ERROR_CLASS).unwrap_or_default(),
        error: header(headers::ERROR).unwrap_or_default(),
        dead_at: header(headers::DEAD_AT)
            .and_then(|a| a.parse().ok())
            .or_else(|| message.timestamp().to_millis())
            .unwrap_or(0),
        state: states.get(&position).copied().unwrap_or(State::Pending),
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().unwrap_or_default().to_vec(),
        headers: message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Every record of `topic` from each partition's low watermark to the high watermark it had
/// when reading began, in partition then offset order.
pub(crate) fn read_topic(config: &Config, topic: &str) -> Result<Vec<OwnedMessage>, DlqError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.bootstrap_servers)
        // assign() needs a group id; nothing is ever committed under it.
        .set("group.id", "sluice-dlq-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut ends = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) =
            consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(10))?;
        if high > low {
            ends.insert(partition.id(), high);
            assignment.add_partition_offset(topic, partition.id(), Offset::Offset(low))?;
        }
    }
    let mut by_partition: HashMap<i32, Vec<OwnedMessage>> = HashMap::new();
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut unfinished = ends.len();
    while unfinished > 0 {
        if Instant::now() > deadline {
            return Err(DlqError::ReadTimeout {
                topic: topic.to_owned(),
                seconds: READ_TIMEOUT.as_secs(),
            });
        }
        let Some(result) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = result?;
        let end = ends[&message.partition()];
        if message.offset() >= end {
            continue;
        }
        let records = by_partition.entry(message.partition()).or_default();
        records.push(message.detach());
        // Compacted topics have gaps: the partition is done when its last record is read.
        if records.last().is_some_and(|m| m.offset() == end - 1) {
            unfinished -= 1;
        }
    }
    let mut partitions: Vec<_> = by_partition.into_iter().collect();
    partitions.sort_by_key(|(p, _)| *p);
    Ok(partitions
        .into_iter()
        .flat_map(|(_, records)| records)
        .collect())
}
