//! One record as the worker sees it: the message and the sluice headers it carries, read in one
//! pass over the headers when the record arrives (instead of a scan per header per use).

use rdkafka::message::{Headers, Message, OwnedMessage};
use sluice_core::{headers, lanes::Priority};

pub struct Delivery {
    pub message: OwnedMessage,
    /// The `sluice-job-id` header, or `topic-partition-offset` for a producer that sent none,
    /// so every job can be traced.
    pub job_id: String,
    /// `sluice-attempt`, 1 when absent or unreadable.
    pub attempt: u32,
    /// `sluice-due-at` of a retry record.
    pub due_at: Option<i64>,
    pub enqueued_at: Option<i64>,
    pub traceparent: Option<String>,
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
    pub fn new(message: OwnedMessage) -> Self {
        let (mut job_id, mut attempt, mut due_at, mut enqueued_at) = (None, None, None, None);
        let (mut traceparent, mut last_error, mut first_delivery) = (None, None, true);
        let (mut expires_at, mut run_at, mut priority) = (None, None, None);
        if let Some(found) = message.headers() {
            // The last value of a repeated header wins, as `headers::get` does.
            for header in found.iter() {
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
        let job_id = job_id.unwrap_or_else(|| {
            format!(
                "{}-{}-{}",
                message.topic(),
                message.partition(),
                message.offset()
            )
        });
        Self {
            message,
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
        self.traceparent
            .as_deref()
            .and_then(headers::trace_id)
            .unwrap_or_default()
    }
}
