//! Reading a topic without a consumer group: all of it, from its start to its current end, or
//! only what was written since a cursor.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    message::{Headers, Message, OwnedMessage},
    Offset, TopicPartitionList,
};
use sluice_core::{
    headers,
    kafka::{self, QuietContext},
    Config,
};

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
    Ok(read_topic(config, topic)?
        .iter()
        .filter_map(state_of)
        .collect())
}

/// The dead letter a state record is about, and what was done with it; `None` for a record
/// that is not a state record.
pub(crate) fn state_of(message: &OwnedMessage) -> Option<(Position, State)> {
    let position = message
        .key()
        .and_then(|k| std::str::from_utf8(k).ok())
        .and_then(|k| k.parse::<Position>().ok())?;
    let value = serde_json::from_slice::<serde_json::Value>(message.payload()?).ok()?;
    let state = match value["state"].as_str()? {
        "replayed" => State::Replayed,
        "purged" => State::Purged,
        _ => return None,
    };
    Some((position, state))
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
    let consumer = reader(config)?;
    read_new(&consumer, topic, &mut Cursor::default())
}

/// Where reading a topic goes on from, per partition.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    /// The next offset to read.
    pub next: HashMap<i32, i64>,
    /// The low watermark seen by the last read: what retention has not removed.
    pub low: HashMap<i32, i64>,
}

pub(crate) type Reader = BaseConsumer<QuietContext>;

/// assign() needs a group id; nothing is ever committed under it.
pub(crate) fn reader(config: &Config) -> Result<Reader, DlqError> {
    Ok(kafka::reader_config(&config.kafka, "sluice-dlq-reader")
        .create_with_context(QuietContext)?)
}

/// The records of `topic` from `cursor` (the next offset per partition; a partition not in it
/// starts at its low watermark) to the high watermark each partition had when reading began, in
/// partition then offset order; `cursor` is moved past them. Offsets below the low watermark
/// (removed by retention or compaction) are skipped. Costs what is new, not what was read before.
pub(crate) fn read_new(
    consumer: &Reader,
    topic: &str,
    cursor: &mut Cursor,
) -> Result<Vec<OwnedMessage>, DlqError> {
    let mut ends = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in kafka::partitions(consumer.client(), topic, Duration::from_secs(10))? {
        let (low, high) =
            kafka::watermarks(consumer.client(), topic, partition, Duration::from_secs(10))?;
        let start = cursor.next.get(&partition).copied().unwrap_or(low).max(low);
        cursor.next.insert(partition, start);
        cursor.low.insert(partition, low);
        if high > start {
            ends.insert(partition, high);
            assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
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
    consumer.unassign()?;
    for (partition, end) in ends {
        cursor.next.insert(partition, end);
    }
    let mut partitions: Vec<_> = by_partition.into_iter().collect();
    partitions.sort_by_key(|(p, _)| *p);
    Ok(partitions
        .into_iter()
        .flat_map(|(_, records)| records)
        .collect())
}
