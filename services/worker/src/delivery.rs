//! One record as the worker sees it: what it needs of the Kafka message, copied out of
//! librdkafka once, and the sluice headers it carries, read in the same single pass over the
//! headers (instead of a scan per header per use).
//!
//! Why not rdkafka's `OwnedMessage`: detaching one copies the topic name and every header into a
//! separate allocation each (C and Rust), and freeing it costs as much again — together a seventh
//! of the worker's time on noop jobs. Here the topic is shared per partition and the headers are
//! packed into one buffer.

use std::{ops::Range, sync::Arc};

use rdkafka::message::{BorrowedMessage, Headers, Message};
use sluice_core::{headers, lanes::Priority};

/// Every header of a record, in order, names and values packed in one buffer.
#[derive(Default)]
pub struct PackedHeaders {
    bytes: Vec<u8>,
    entries: Vec<(Range<u32>, Option<Range<u32>>)>,
}

impl PackedHeaders {
    fn push(&mut self, name: &str, value: Option<&[u8]>) {
        let span = |bytes: &mut Vec<u8>, part: &[u8]| {
            let start = bytes.len() as u32;
            bytes.extend_from_slice(part);
            start..bytes.len() as u32
        };
        let name = span(&mut self.bytes, name.as_bytes());
        let value = value.map(|v| span(&mut self.bytes, v));
        self.entries.push((name, value));
    }

    /// Each header's name and value, in the record's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        let at = |r: &Range<u32>| &self.bytes[r.start as usize..r.end as usize];
        self.entries.iter().map(move |(name, value)| {
            // Pushed from a `&str`: always UTF-8.
            let name = std::str::from_utf8(at(name)).unwrap_or_default();
            (name, value.as_ref().map(at))
        })
    }
}

pub struct Delivery {
    /// Shared by every record of its partition.
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Box<[u8]>>,
    pub payload: Box<[u8]>,
    pub headers: PackedHeaders,
    /// The `sluice-job-id` header, or `topic-partition-offset` for a producer that sent none,
    /// so every job can be traced.
    pub job_id: String,
    /// `sluice-attempt`, 1 when absent or unreadable.
    pub attempt: u32,
    /// `sluice-due-at` of a retry record.
    pub due_at: Option<i64>,
    /// `sluice-enqueued-at`, else the record's timestamp.
    pub enqueued_at: Option<i64>,
    /// `traceparent`, else a new trace started for this delivery.
    pub traceparent: String,
    /// `sluice-error` of a retry: the previous attempt's error, kept in the job's status.
    pub last_error: Option<String>,
    /// No `sluice-original-topic` yet: this is the job's first delivery.
    pub first_delivery: bool,
    /// `sluice-expires-at`: not to be started after this (ms since the epoch).
    pub expires_at: Option<i64>,
    /// `sluice-run-at` of a delayed job: not to be started before this.
    pub run_at: Option<i64>,
    /// `sluice-priority`: the job's lane when it says one (a retry's, an outside producer's).
    pub priority: Option<Priority>,
}

impl Delivery {
    /// Copies what the worker needs out of `message`; `topic` is its topic's name, shared.
    pub fn new(message: &BorrowedMessage<'_>, topic: Arc<str>) -> Self {
        let mut packed = PackedHeaders::default();
        let (mut job_id, mut attempt, mut due_at, mut enqueued_at) = (None, None, None, None);
        let (mut traceparent, mut last_error, mut first_delivery) = (None, None, true);
        let (mut expires_at, mut run_at, mut priority) = (None, None, None);
        if let Some(found) = message.headers() {
            // Room for sluice's own headers without growing: ids, times, a traceparent.
            packed.bytes.reserve(256);
            packed.entries.reserve(found.count());
            // The last value of a repeated header wins, as `headers::get` does.
            for header in found.iter() {
                packed.push(header.key, header.value);
                let value = || header.value.and_then(|v| std::str::from_utf8(v).ok());
                match header.key {
                    headers::JOB_ID => job_id = value().map(str::to_owned),
                    headers::ATTEMPT => attempt = value().and_then(|v| v.parse::<u32>().ok()),
                    headers::DUE_AT => due_at = value().and_then(|v| v.parse().ok()),
                    headers::ENQUEUED_AT => enqueued_at = value().and_then(|v| v.parse().ok()),
                    headers::TRACEPARENT => traceparent = value().map(str::to_owned),
                    headers::ERROR => last_error = value().map(str::to_owned),
                    headers::ORIGINAL_TOPIC => first_delivery = value().is_none(),
                    headers::EXPIRES_AT => expires_at = value().and_then(|v| v.parse().ok()),
                    headers::RUN_AT => run_at = value().and_then(|v| v.parse().ok()),
                    headers::PRIORITY => priority = value().and_then(|v| v.parse().ok()),
                    _ => {}
                }
            }
        }
        let (partition, offset) = (message.partition(), message.offset());
        let job_id = job_id.unwrap_or_else(|| format!("{topic}-{partition}-{offset}"));
        // Bulk records (and outside producers) leave out what can be inferred: the record's
        // own timestamp is when it was produced, and a job without a trace starts one here;
        // `forward` writes both, so a retry keeps them.
        let enqueued_at = enqueued_at.or_else(|| message.timestamp().to_millis());
        let traceparent = traceparent.unwrap_or_else(headers::new_traceparent);
        Self {
            topic,
            partition,
            offset,
            key: message.key().map(Into::into),
            payload: message.payload().unwrap_or_default().into(),
            headers: packed,
            job_id,
            attempt: attempt.unwrap_or(1).max(1),
            due_at,
            enqueued_at,
            traceparent,
            last_error,
            first_delivery,
            expires_at,
            run_at,
            priority,
        }
    }

    /// When the job may start: a retry's due time, a delayed job's run_at, the later of both.
    pub fn not_before(&self) -> Option<i64> {
        match (self.due_at, self.run_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn trace_id(&self) -> &str {
        headers::trace_id(&self.traceparent).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_headers_keep_order_absent_values_and_repeats() {
        let mut packed = PackedHeaders::default();
        packed.push("a", Some(b"1"));
        packed.push("empty", Some(b""));
        packed.push("none", None);
        packed.push("a", Some(&[0xff, 0x00]));
        let all: Vec<_> = packed.iter().collect();
        assert_eq!(
            all,
            vec![
                ("a", Some(&b"1"[..])),
                ("empty", Some(&b""[..])),
                ("none", None),
                ("a", Some(&[0xff, 0x00][..])),
            ]
        );
    }
}
