//! One delivery of one job, from bytes to a durable outcome: decode, validate, run the handler
//! (bounded by the kind's timeout, panics caught), then record success, or forward the original
//! bytes to the next retry tier or to the dead-letter topic. Only once that outcome is durable
//! does the job's offset become storable.

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures::FutureExt;
use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    message::{Message, OwnedMessage},
    producer::{FutureProducer, FutureRecord},
    util::Timeout,
    Offset, TopicPartitionList,
};
use sluice_core::{
    headers::{self, now_millis},
    retry::{tier_name, RetryPlan},
    status::{Status, StatusUpdate},
    status_writer::StatusWriter,
    topics::Topics,
};
use sluice_kinds::{ErrorClass, Handler, HandlerType, Job, JobFailure, Outcome, Registry};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    context::{Tracker, WorkerContext},
    metrics::WorkerMetrics,
};

/// Everything the jobs of one kind share.
pub struct KindRuntime {
    pub kind: String,
    pub plan: RetryPlan,
    pub consumer: Arc<StreamConsumer<WorkerContext>>,
    pub tracker: Arc<Tracker>,
    pub handler: Arc<dyn Handler>,
    /// The kind's own checks beyond its schema.
    pub validate: &'static dyn HandlerType,
    /// Decodes the kind's records.
    pub schemas: Arc<Registry>,
    pub status: StatusWriter,
    pub producer: FutureProducer<sluice_core::kafka_stats::StatsContext>,
    pub topics: Topics,
    /// For the start-up wait for the kind's topics.
    pub kafka: sluice_core::config::KafkaConfig,
    pub metrics: WorkerMetrics,
    pub shutdown: CancellationToken,
}

impl KindRuntime {
    /// The tier name of a retry topic of this kind, `None` for any other topic.
    pub fn tier_of(&self, topic: &str) -> Option<String> {
        self.plan
            .tiers
            .iter()
            .find(|delay| self.topics.retry(&self.kind, **delay) == topic)
            .map(|delay| tier_name(*delay))
    }
}

/// The job id: the `sluice-job-id` header, or `topic-partition-offset` for a producer that sent
/// none, so every job can be traced.
pub fn job_id(message: &OwnedMessage) -> String {
    message
        .headers()
        .and_then(|h| headers::get(h, headers::JOB_ID))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            format!(
                "{}-{}-{}",
                message.topic(),
                message.partition(),
                message.offset()
            )
        })
}

/// `sluice-due-at` of a retry record.
pub fn due_at(message: &OwnedMessage) -> Option<i64> {
    message
        .headers()
        .and_then(|h| headers::get(h, headers::DUE_AT))
        .and_then(|v| v.parse().ok())
}

/// Handles one delivery to a durable outcome and stores its offset, inside a span carrying the
/// job id and its trace id, so every log line of the job names them.
pub async fn process(rt: Arc<KindRuntime>, message: OwnedMessage) {
    let trace_id = message
        .headers()
        .and_then(|h| headers::get(h, headers::TRACEPARENT))
        .and_then(headers::trace_id)
        .unwrap_or_default()
        .to_owned();
    let span = tracing::info_span!("job", job_id = %job_id(&message), kind = %rt.kind, %trace_id);
    process_in_span(rt, message).instrument(span).await;
}

async fn process_in_span(rt: Arc<KindRuntime>, message: OwnedMessage) {
    let kind = rt.kind.as_str();
    let job_id = job_id(&message);
    let attempt = message
        .headers()
        .and_then(|h| headers::get(h, headers::ATTEMPT))
        .and_then(|a| a.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    if let Some(due) = due_at(&message) {
        let late = (now_millis() - due).max(0) as f64 / 1000.0;
        rt.metrics
            .retry_lateness_seconds
            .with_label_values(&[kind])
            .observe(late);
    }

    tracing::debug!(attempt, "job started");
    rt.metrics.started.with_label_values(&[kind]).inc();
    rt.metrics.in_flight.with_label_values(&[kind]).inc();
    let started = std::time::Instant::now();
    let result = run(&rt, &message, &job_id, attempt).await;
    rt.metrics
        .handler_seconds
        .with_label_values(&[kind])
        .observe(started.elapsed().as_secs_f64());

    let outcome = match result {
        Ok(done) => {
            tracing::debug!(attempt, "job succeeded");
            record_status(
                &rt,
                status_update(&rt, &job_id, Status::Succeeded, attempt, None, done.result),
            )
            .await;
            Some("success")
        }
        Err(failure) => fail(&rt, &message, &job_id, attempt, &failure).await,
    };
    rt.metrics.in_flight.with_label_values(&[kind]).dec();
    if let Some(outcome) = outcome {
        rt.metrics
            .finished
            .with_label_values(&[kind, outcome])
            .inc();
        if outcome != "retry" {
            observe_end_to_end(&rt, &message);
        }
        store_offset(&rt, &message);
    }
}

async fn run(
    rt: &KindRuntime,
    message: &OwnedMessage,
    job_id: &str,
    attempt: u32,
) -> Result<Outcome, JobFailure> {
    let bytes = message.payload().unwrap_or_default();
    let decoded = rt
        .schemas
        .decode(&rt.kind, bytes)
        .map_err(|e| JobFailure::new(ErrorClass::Decode, e.to_string()))?;
    rt.validate
        .validate(&decoded.value)
        .map_err(|e| JobFailure::new(ErrorClass::Fatal, e.to_string()))?;
    rt.status.record_later(status_update(
        rt,
        job_id,
        Status::Running,
        attempt,
        None,
        None,
    ));
    let header = |name| message.headers().and_then(|h| headers::get(h, name));
    let job = Job {
        id: job_id.to_owned(),
        kind: rt.kind.clone(),
        attempt,
        record: decoded.value,
        enqueued_at: header(headers::ENQUEUED_AT).and_then(|v| v.parse().ok()),
        traceparent: header(headers::TRACEPARENT).map(str::to_owned),
    };
    // A panicking handler must not take the worker down with it, nor lose the job; a stuck one
    // must not hold its slot forever.
    let handled = AssertUnwindSafe(rt.handler.handle(&job)).catch_unwind();
    match tokio::time::timeout(rt.plan.timeout, handled).await {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "handler panicked".to_owned());
            Err(JobFailure::new(
                ErrorClass::Panic,
                format!("panic: {message}"),
            ))
        }
        Err(_) => Err(JobFailure::new(
            ErrorClass::Timeout,
            format!("handler ran past its {:?} timeout", rt.plan.timeout),
        )),
    }
}

/// Retries the job in its next tier, or dead-letters it. Returns the outcome label once the
/// forwarded record is durable, `None` if it could not be written before shutdown (the job is
/// then redelivered, because its offset is not stored).
async fn fail(
    rt: &KindRuntime,
    message: &OwnedMessage,
    job_id: &str,
    attempt: u32,
    failure: &JobFailure,
) -> Option<&'static str> {
    let kind = rt.kind.as_str();
    let class = failure.class.as_str();
    let retryable = matches!(
        failure.class,
        ErrorClass::Retryable | ErrorClass::Timeout | ErrorClass::Panic
    );
    let error: String = failure.message.chars().take(500).collect();
    let next_tier = if retryable {
        rt.plan.tier_after(attempt)
    } else {
        None
    };

    if let Some(delay) = next_tier {
        let mut due = rt.plan.due_at(now_millis(), delay, fastrand::f64());
        if let Some(wait) = failure.retry_after {
            // The receiver asked for more time than the tier gives: honour it.
            due = due.max(now_millis() + wait.as_millis() as i64);
        }
        let topic = rt.topics.retry(kind, delay);
        let added = [
            (headers::ATTEMPT, (attempt + 1).to_string()),
            (headers::DUE_AT, due.to_string()),
            (headers::ERROR, error.clone()),
            (headers::ERROR_CLASS, class.to_owned()),
        ];
        tracing::debug!(%job_id, kind, attempt, class, %topic, "job failed; retrying later");
        if !forward(rt, message, job_id, &topic, &added).await {
            return None;
        }
        record_status(
            rt,
            status_update(rt, job_id, Status::Retrying, attempt, Some(&error), None),
        )
        .await;
        rt.metrics
            .retries
            .with_label_values(&[kind, &tier_name(delay)])
            .inc();
        return Some("retry");
    }

    tracing::info!(%job_id, kind, attempt, class, error = %error, "job failed for good; dead-lettering");
    let topic = rt.topics.dead_letters(kind);
    let added = [
        (headers::ERROR, error.clone()),
        (headers::ERROR_CLASS, class.to_owned()),
        (headers::DEAD_AT, now_millis().to_string()),
    ];
    if !forward(rt, message, job_id, &topic, &added).await {
        return None;
    }
    let dead = status_update(
        rt,
        job_id,
        Status::DeadLettered,
        attempt,
        Some(&error),
        None,
    );
    record_status(rt, dead).await;
    rt.metrics
        .dead_letters
        .with_label_values(&[kind, class])
        .inc();
    Some("dead_letter")
}

/// Writes the original key and bytes to `topic` with every original header, the job id, where
/// the job was first read from (kept from the first delivery), and `added` (replacing any
/// earlier values of those headers). Retries until Kafka acknowledges; gives up only at shutdown.
async fn forward(
    rt: &KindRuntime,
    message: &OwnedMessage,
    job_id: &str,
    topic: &str,
    added: &[(&str, String)],
) -> bool {
    let first_delivery = message
        .headers()
        .and_then(|h| headers::get(h, headers::ORIGINAL_TOPIC))
        .is_none();
    let mut set: Vec<(&str, String)> = vec![(headers::JOB_ID, job_id.to_owned())];
    if first_delivery {
        set.push((headers::ORIGINAL_TOPIC, message.topic().to_owned()));
        set.push((headers::ORIGINAL_PARTITION, message.partition().to_string()));
        set.push((headers::ORIGINAL_OFFSET, message.offset().to_string()));
    }
    set.extend(added.iter().cloned());
    let replaced: Vec<&str> = set.iter().map(|(key, _)| *key).collect();

    let mut backoff = Duration::from_millis(100);
    loop {
        let mut record_headers = headers::copy_except(message.headers(), &replaced);
        for (key, value) in &set {
            record_headers = record_headers.insert(headers::str_header(key, value));
        }
        let mut record = FutureRecord::to(topic)
            .payload(message.payload().unwrap_or_default())
            .headers(record_headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        match rt
            .producer
            .send(record, Timeout::After(Duration::from_secs(5)))
            .await
        {
            Ok(_) => return true,
            Err((e, _)) => {
                tracing::warn!(%job_id, %topic, error = %e, "forwarding a failed job failed; retrying");
                if rt.shutdown.is_cancelled() {
                    return false;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn observe_end_to_end(rt: &KindRuntime, message: &OwnedMessage) {
    if let Some(enqueued_at) = message
        .headers()
        .and_then(|h| headers::get(h, headers::ENQUEUED_AT))
        .and_then(|v| v.parse::<i64>().ok())
    {
        let seconds = (now_millis() - enqueued_at).max(0) as f64 / 1000.0;
        rt.metrics
            .end_to_end_seconds
            .with_label_values(&[&rt.kind])
            .observe(seconds);
    }
}

fn store_offset(rt: &KindRuntime, message: &OwnedMessage) {
    let (topic, partition) = (message.topic(), message.partition());
    rt.tracker
        .finished(topic, partition, message.offset(), |next| {
            let mut list = TopicPartitionList::new();
            // `store_offsets` stores exactly this value: the next offset to consume. (The
            // single-offset `store_offset` adds one, a classic source of skipped or repeated records.)
            let _ = list.add_partition_offset(topic, partition, Offset::Offset(next));
            if let Err(e) = rt.consumer.store_offsets(&list) {
                // The partition was revoked meanwhile; its new owner redoes from the last commit.
                tracing::debug!(error = %e, "offset not stored");
            }
        });
}

/// Job status is for people and `GET /v1/jobs/{id}`; Kafka holds the truth. A slow or absent
/// Redis delays what status shows but never blocks or fails a job: `running` is not waited for,
/// a final status is, for at most 2 s, so that normally it is in Redis before the job's offset
/// is stored.
fn status_update(
    rt: &KindRuntime,
    job_id: &str,
    status: Status,
    attempt: u32,
    error: Option<&str>,
    result: Option<serde_json::Value>,
) -> StatusUpdate {
    StatusUpdate {
        job_id: job_id.to_owned(),
        kind: rt.kind.clone(),
        status,
        attempts: attempt,
        error: error.map(str::to_owned),
        result,
    }
}

async fn record_status(rt: &KindRuntime, update: StatusUpdate) {
    let job_id = update.job_id.clone();
    if let Err(e) = rt.status.record(update, Duration::from_secs(2)).await {
        tracing::warn!(%job_id, error = %e, "job status write failed");
    }
}
