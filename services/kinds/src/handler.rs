//! What a job handler is given and what it may answer.

use std::time::Duration;

use apache_avro::types::Value;
use async_trait::async_trait;

/// One delivery of one job.
#[derive(Debug, Clone)]
pub struct Job {
    /// From the `sluice-job-id` header, or `topic-partition-offset` when a producer sent none.
    pub id: String,
    pub kind: String,
    /// 1 on first delivery.
    pub attempt: u32,
    /// The record, resolved to the newest schema version of its kind.
    pub record: Value,
    /// When it was first enqueued (ms since the epoch), from `sluice-enqueued-at`.
    pub enqueued_at: Option<i64>,
    /// The W3C trace context it carries, passed on to whatever the handler calls.
    pub traceparent: Option<String>,
}

/// How a failure is handled (docs/architecture.md §7, `sluice-error-class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// May succeed later (timeouts, 5xx, connection errors).
    Retryable,
    /// Will never succeed as sent (4xx, invalid content): dead-letter at once.
    Fatal,
    /// The bytes are not a record of this kind: dead-letter at once.
    Decode,
    /// The handler ran past its time limit.
    Timeout,
    /// The handler panicked.
    Panic,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Retryable => "retryable",
            ErrorClass::Fatal => "fatal",
            ErrorClass::Decode => "decode",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Panic => "panic",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{class:?}: {message}")]
pub struct JobFailure {
    pub class: ErrorClass,
    /// Short and free of secrets: it is stored in headers and job status.
    pub message: String,
    /// When the far side asked us to wait (HTTP 429/503 `Retry-After`).
    pub retry_after: Option<Duration>,
    /// The far side said the job's endpoint is gone for good (HTTP 410): the worker disables
    /// `Handler::endpoint` of the job, so later jobs to it dead-letter without calling it.
    pub endpoint_gone: bool,
}

impl JobFailure {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            retry_after: None,
            endpoint_gone: false,
        }
    }
}

/// What a job that succeeded leaves behind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// A small JSON result, stored with the job's status and returned by `GET /v1/jobs/{id}`.
    pub result: Option<serde_json::Value>,
    /// Jobs to enqueue because this one succeeded (the seed's "notify when done"). The worker
    /// produces them before it stores this job's offset, so a crash cannot lose them; it may
    /// produce them twice, under the same derived job ids (`<this job's id>.<n>`, n from 1), so
    /// receivers can de-duplicate.
    pub follow_ups: Vec<FollowUp>,
}

/// One job to enqueue after the current one: a document of `kind` exactly as
/// `POST /v1/jobs/{kind}` takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowUp {
    pub kind: String,
    pub job: serde_json::Value,
}

impl Outcome {
    pub fn with_result(result: serde_json::Value) -> Self {
        Self {
            result: Some(result),
            follow_ups: Vec::new(),
        }
    }

    /// Adds a follow-up job of `kind`.
    pub fn then_enqueue(mut self, kind: impl Into<String>, job: serde_json::Value) -> Self {
        self.follow_ups.push(FollowUp {
            kind: kind.into(),
            job,
        });
        self
    }
}

/// The id of a job's `n`th follow-up (from 1): the same on every redelivery of the parent.
pub fn follow_up_id(parent: &str, n: usize) -> String {
    format!("{parent}.{n}")
}

/// A kind's work. Handlers must be idempotent: at-least-once delivery may run a job twice, and
/// the job id is the idempotency key.
#[async_trait]
pub trait Handler: Send + Sync {
    async fn handle(&self, job: &Job) -> Result<Outcome, JobFailure>;

    /// The URL this job would call, for handlers that call out: an endpoint that answered
    /// 410 Gone is disabled by this URL, and the worker dead-letters later jobs to it without
    /// running them until someone enables it again (`sluice endpoints enable`).
    fn endpoint(&self, _job: &Job) -> Option<String> {
        None
    }
}
