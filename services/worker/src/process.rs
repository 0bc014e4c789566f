//! One delivery of one job, from bytes to a durable outcome: decode, validate, run the handler,
//! then either record success or dead-letter the original bytes. Only after that outcome is
//! durable does the job's offset become storable.

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
    codec::SchemaRegistry,
    headers::{self, now_millis},
    status::{Status, StatusStore},
    topics::Topics,
};
use tokio_util::sync::CancellationToken;

use crate::{
    context::{Tracker, WorkerContext},
    handler::{ErrorClass, Handler, Job, JobFailure},
    metrics::WorkerMetrics,
};

/// Everything the jobs of one kind share.
pub struct KindRuntime {
    pub kind: String,
    pub consumer: Arc<StreamConsumer<WorkerContext>>,
    pub tracker: Arc<Tracker>,
    pub handler: Arc<dyn Handler>,
    pub status: StatusStore,
    pub producer: FutureProducer,
    pub topics: Topics,
    pub metrics: WorkerMetrics,
    pub shutdown: CancellationToken,
}

/// Handles one delivery to a durable outcome and stores its offset.
pub async fn process(rt: Arc<KindRuntime>, message: OwnedMessage) {
    let kind = rt.kind.as_str();
    let job_id = message
        .headers()
        .and_then(|h| headers::get(h, headers::JOB_ID))
        .map(str::to_owned)
        // A producer that sent no id still gets a stable one, so the job can be traced.
        .unwrap_or_else(|| {
            format!(
                "{}-{}-{}",
                message.topic(),
                message.partition(),
                message.offset()
            )
        });
    let attempt = message
        .headers()
        .and_then(|h| headers::get(h, headers::ATTEMPT))
        .and_then(|a| a.parse::<u32>().ok())
        .unwrap_or(1);

    rt.metrics.started.with_label_values(&[kind]).inc();
    rt.metrics.in_flight.with_label_values(&[kind]).inc();
    let started = std::time::Instant::now();
    let result = run(&rt, &message, &job_id, attempt).await;
    rt.metrics
        .handler_seconds
        .with_label_values(&[kind])
        .observe(started.elapsed().as_secs_f64());

    let durable = match result {
        Ok(()) => {
            record_status(&rt, &job_id, Status::Succeeded, attempt, None).await;
            rt.metrics
                .finished
                .with_label_values(&[kind, "success"])
                .inc();
            true
        }
        Err(failure) => {
            tracing::info!(%job_id, kind, class = failure.class.as_str(), error = %failure.message, "job failed; dead-lettering");
            let written = dead_letter(&rt, &message, &job_id, &failure).await;
            if written {
                record_status(
                    &rt,
                    &job_id,
                    Status::DeadLettered,
                    attempt,
                    Some(&failure.message),
                )
                .await;
                rt.metrics
                    .finished
                    .with_label_values(&[kind, "dead_letter"])
                    .inc();
                rt.metrics
                    .dead_letters
                    .with_label_values(&[kind, failure.class.as_str()])
                    .inc();
            }
            written
        }
    };
    rt.metrics.in_flight.with_label_values(&[kind]).dec();
    if let Some(enqueued_at) = message
        .headers()
        .and_then(|h| headers::get(h, headers::ENQUEUED_AT))
        .and_then(|v| v.parse::<i64>().ok())
    {
        let seconds = (now_millis() - enqueued_at).max(0) as f64 / 1000.0;
        rt.metrics
            .end_to_end_seconds
            .with_label_values(&[kind])
            .observe(seconds);
    }
    if durable {
        store_offset(&rt, &message);
    }
}

async fn run(
    rt: &KindRuntime,
    message: &OwnedMessage,
    job_id: &str,
    attempt: u32,
) -> Result<(), JobFailure> {
    let bytes = message.payload().unwrap_or_default();
    let decoded = SchemaRegistry::embedded()
        .decode(&rt.kind, bytes)
        .map_err(|e| JobFailure::new(ErrorClass::Decode, e.to_string()))?;
    sluice_core::jobs::validate(&rt.kind, &decoded.value)
        .map_err(|e| JobFailure::new(ErrorClass::Fatal, e.to_string()))?;
    record_status(rt, job_id, Status::Running, attempt, None).await;
    let job = Job {
        id: job_id.to_owned(),
        kind: rt.kind.clone(),
        attempt,
        record: decoded.value,
    };
    // A panicking handler must not take the worker down with it, nor lose the job.
    match AssertUnwindSafe(rt.handler.handle(&job))
        .catch_unwind()
        .await
    {
        Ok(result) => result,
        Err(panic) => {
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
    }
}

/// Writes the original bytes, key and headers to the kind's dead-letter topic, adding why and
/// where from. Retries until Kafka acknowledges, or gives up at shutdown (the job is then
/// redelivered, because its offset is not stored). Returns whether the dead letter is durable.
async fn dead_letter(
    rt: &KindRuntime,
    message: &OwnedMessage,
    job_id: &str,
    failure: &JobFailure,
) -> bool {
    let topic = rt.topics.dead_letters(&rt.kind);
    let added = [
        headers::JOB_ID,
        headers::ERROR,
        headers::ERROR_CLASS,
        headers::ORIGINAL_TOPIC,
        headers::ORIGINAL_PARTITION,
        headers::ORIGINAL_OFFSET,
        headers::DEAD_AT,
    ];
    let (partition, offset, dead_at) = (
        message.partition().to_string(),
        message.offset().to_string(),
        now_millis().to_string(),
    );
    let error: String = failure.message.chars().take(500).collect();
    let mut backoff = Duration::from_millis(100);
    loop {
        let record_headers = headers::copy_except(message.headers(), &added)
            .insert(headers::str_header(headers::JOB_ID, job_id))
            .insert(headers::str_header(headers::ERROR, &error))
            .insert(headers::str_header(
                headers::ERROR_CLASS,
                failure.class.as_str(),
            ))
            .insert(headers::str_header(
                headers::ORIGINAL_TOPIC,
                message.topic(),
            ))
            .insert(headers::str_header(headers::ORIGINAL_PARTITION, &partition))
            .insert(headers::str_header(headers::ORIGINAL_OFFSET, &offset))
            .insert(headers::str_header(headers::DEAD_AT, &dead_at));
        let mut record = FutureRecord::to(&topic)
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
                tracing::warn!(%job_id, error = %e, "dead-letter write failed; retrying");
                if rt.shutdown.is_cancelled() {
                    return false;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn store_offset(rt: &KindRuntime, message: &OwnedMessage) {
    let Some(next) = rt
        .tracker
        .finished(message.topic(), message.partition(), message.offset())
    else {
        return;
    };
    let mut list = TopicPartitionList::new();
    // `store_offsets` stores exactly this value: the next offset to consume. (The single-offset
    // `store_offset` adds one, a classic source of skipped or repeated records.)
    let _ = list.add_partition_offset(message.topic(), message.partition(), Offset::Offset(next));
    if let Err(e) = rt.consumer.store_offsets(&list) {
        // The partition was revoked meanwhile; its new owner redoes from the last commit.
        tracing::debug!(error = %e, "offset not stored");
    }
}

/// Job status is for people and `GET /v1/jobs/{id}`; Kafka holds the truth. A slow or absent
/// Redis delays what status shows but never blocks or fails a job.
async fn record_status(
    rt: &KindRuntime,
    job_id: &str,
    status: Status,
    attempt: u32,
    error: Option<&str>,
) {
    let write = rt.status.record(job_id, &rt.kind, status, attempt, error);
    match tokio::time::timeout(Duration::from_secs(2), write).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(%job_id, error = %e, "job status write failed"),
        Err(_) => tracing::warn!(%job_id, "job status write timed out"),
    }
}
