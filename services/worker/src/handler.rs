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
}

/// How a failure is handled (docs/architecture.md §7 `sluice-error-class`).
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
}

impl JobFailure {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// A kind's work. Handlers must be idempotent: at-least-once delivery may run a job twice, and
/// the job id is the idempotency key.
#[async_trait]
pub trait Handler: Send + Sync {
    async fn handle(&self, job: &Job) -> Result<(), JobFailure>;
}

/// Does nothing, after waiting `sleep_ms` (v2 of the noop schema); panics on its first
/// `panic_attempts` attempts (v4) and fails its first `fail_attempts` attempts with a retryable
/// error (v3): drills for the worker's failure handling.
pub struct NoopHandler;

#[async_trait]
impl Handler for NoopHandler {
    async fn handle(&self, job: &Job) -> Result<(), JobFailure> {
        let sleep_ms = sluice_core::jobs::long_field(&job.record, "sleep_ms").unwrap_or(0);
        if sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(sleep_ms as u64)).await;
        }
        let panic_attempts =
            sluice_core::jobs::long_field(&job.record, "panic_attempts").unwrap_or(0);
        if i64::from(job.attempt) <= panic_attempts {
            panic!("noop asked to panic on attempt {}", job.attempt);
        }
        let fail_attempts =
            sluice_core::jobs::long_field(&job.record, "fail_attempts").unwrap_or(0);
        if i64::from(job.attempt) <= fail_attempts {
            return Err(JobFailure::new(
                ErrorClass::Retryable,
                format!("noop asked to fail attempt {}", job.attempt),
            ));
        }
        Ok(())
    }
}
