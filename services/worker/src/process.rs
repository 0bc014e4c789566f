//! One delivery of one job, from bytes to a durable outcome: decode, validate, run the handler
//! (bounded by the kind's timeout, panics caught), produce its follow-up jobs, then record
//! success, or forward the original bytes to the next retry tier or to the dead-letter topic.
//! Only once that outcome is durable, and its status written (or given up on), is the job's
//! offset stored.

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures::FutureExt;
use prometheus::IntCounter;
use rdkafka::{
    consumer::StreamConsumer,
    message::OwnedHeaders,
    producer::{FutureProducer, FutureRecord},
    util::Timeout,
};
use sluice_core::{
    headers::{self, now_millis},
    retry::{tier_name, RetryPlan},
    status::{Status, StatusUpdate},
    status_writer::{Completion, StatusWriter},
    topics::Topics,
};
use sluice_kinds::{
    follow_up_id, ErrorClass, FollowUp, Handler, HandlerType, Job, JobFailure, Outcome, Registry,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    context::{Tracker, WorkerContext},
    delivery::Delivery,
    metrics::{KindMetrics, WorkerMetrics},
};

/// Everything the jobs of one kind share.
pub struct KindRuntime {
    pub kind: String,
    pub plan: RetryPlan,
    /// Each retry topic of the kind with its tier name.
    pub tier_topics: Vec<(String, String)>,
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
    pub kind_metrics: KindMetrics,
    /// The kind's jobs cancelled before they started.
    pub cancelled: Arc<crate::cancellations::Cancelled>,
    /// The kind's jobs being handled now, per lane, for the in-flight reports.
    pub in_flight: Arc<crate::in_flight::LaneCounts>,
    /// Endpoints disabled after a 410 Gone, shared by every kind of this worker.
    pub endpoints: Arc<crate::endpoints::Endpoints>,
    pub shutdown: CancellationToken,
}

impl KindRuntime {
    /// The tier name of a retry topic of this kind, `None` for any other topic.
    pub fn tier_of(&self, topic: &str) -> Option<&str> {
        self.tier_topics
            .iter()
            .find(|(tier_topic, _)| tier_topic == topic)
            .map(|(_, tier)| tier.as_str())
    }
}

/// Handles one delivery to a durable outcome and stores its offset, inside a span carrying the
/// job id and its trace id, so every log line of the job names them.
pub async fn process(rt: Arc<KindRuntime>, delivery: Delivery) {
    let span = tracing::info_span!("job", job_id = %delivery.job_id, kind = %rt.kind, trace_id = %delivery.trace_id());
    process_in_span(rt, delivery).instrument(span).await;
}

async fn process_in_span(rt: Arc<KindRuntime>, delivery: Delivery) {
    let metrics = &rt.kind_metrics;
    let attempt = delivery.attempt;
    if let Some(due) = delivery.due_at {
        let late = (now_millis() - due).max(0) as f64 / 1000.0;
        metrics.retry_lateness_seconds.observe(late);
    }

    // Before each attempt: a cancelled or expired job is skipped, its offset stored.
    let skipped = if delivery.expires_at.is_some_and(|at| now_millis() >= at) {
        Some((Status::Expired, &metrics.expired))
    } else if rt.cancelled.contains(&delivery.job_id) {
        Some((Status::Cancelled, &metrics.cancelled))
    } else {
        None
    };
    if let Some((status, counter)) = skipped {
        tracing::debug!(attempt, status = status.as_str(), "job skipped");
        counter.inc();
        let update = status_update(
            &rt,
            &delivery,
            status,
            attempt - 1,
            delivery.last_error.as_deref(),
            None,
        );
        return finish(rt, delivery, update).await;
    }

    tracing::debug!(attempt, "job started");
    metrics.started.inc();
    metrics.in_flight.inc();
    // Set when the job was started: the lane it is served in.
    let lane = delivery.priority.unwrap_or_default();
    rt.in_flight.start(lane);
    let started = std::time::Instant::now();
    let result = run(&rt, &delivery).await;
    metrics
        .handler_seconds
        .observe(started.elapsed().as_secs_f64());
    let result = match result {
        Ok(done) if !done.follow_ups.is_empty() => {
            match Box::pin(enqueue_follow_ups(&rt, &delivery, &done.follow_ups)).await {
                Some(Ok(())) => Ok(done),
                Some(Err(failure)) => Err(failure),
                None => {
                    metrics.in_flight.dec();
                    rt.in_flight.end(lane);
                    return;
                }
            }
        }
        other => other,
    };

    let outcome = match result {
        Ok(done) => {
            tracing::debug!(attempt, "job succeeded");
            let update = status_update(
                &rt,
                &delivery,
                Status::Succeeded,
                attempt,
                delivery.last_error.as_deref(),
                done.result,
            );
            Some((&metrics.succeeded, Some(update)))
        }
        // Boxed: the failure path is rare and its future large; every job's task would
        // otherwise carry (and copy) its size.
        Err(failure) => Box::pin(fail(&rt, &delivery, &failure)).await,
    };
    metrics.in_flight.dec();
    rt.in_flight.end(lane);
    let Some((finished, update)) = outcome else {
        return;
    };
    finished.inc();
    let Some(update) = update else {
        // A retry: its status is in Redis already; only its offset is left to note.
        rt.tracker
            .finished(&delivery.topic, delivery.partition, delivery.offset);
        return;
    };
    if update.status.is_final() {
        observe_end_to_end(&rt, &delivery);
    }
    finish(rt, delivery, update).await;
}

/// Records the job's status, then stores its offset once that is in Redis (or Redis gave up).
async fn finish(rt: Arc<KindRuntime>, delivery: Delivery, update: StatusUpdate) {
    let (topic, partition, offset) = (delivery.topic.clone(), delivery.partition, delivery.offset);
    let offset_rt = rt.clone();
    // The offset is noted once the outcome's status is in Redis (or Redis gave up), and stored
    // with the next batch: the slot is free already, so a job's concurrency is the handler's
    // time, not a Redis round trip.
    let store: Completion = Box::new(move |_written| {
        offset_rt.tracker.finished(&topic, partition, offset);
    });
    rt.status
        .record_then(update, store, STATUS_QUEUE_WAIT)
        .await;
}

/// How long a finished job waits to queue its status when Redis is far behind, before its
/// offset is stored without it.
const STATUS_QUEUE_WAIT: Duration = Duration::from_secs(2);

async fn run(rt: &KindRuntime, delivery: &Delivery) -> Result<Outcome, JobFailure> {
    let bytes = &delivery.payload;
    let decoded = rt
        .schemas
        .decode(&rt.kind, bytes)
        .map_err(|e| JobFailure::new(ErrorClass::Decode, e.to_string()))?;
    rt.validate
        .validate(&decoded.value)
        .map_err(|e| JobFailure::new(ErrorClass::Fatal, e.to_string()))?;
    let job = Job {
        id: delivery.job_id.clone(),
        kind: rt.kind.clone(),
        attempt: delivery.attempt,
        record: decoded.value,
        enqueued_at: delivery.enqueued_at,
        traceparent: Some(delivery.traceparent.clone()),
    };
    // The endpoint (a URL parse for webhooks) is worked out only while some endpoint is
    // disabled, or after a 410 — not for every job.
    let disabled = !rt.endpoints.is_empty()
        && rt
            .handler
            .endpoint(&job)
            .is_some_and(|e| rt.endpoints.is_disabled(&e));
    if disabled {
        rt.kind_metrics.endpoint_disabled_jobs.inc();
        return Err(JobFailure::new(
            ErrorClass::Fatal,
            crate::endpoints::DISABLED,
        ));
    }
    rt.status.record_later(status_update(
        rt,
        delivery,
        Status::Running,
        delivery.attempt,
        delivery.last_error.as_deref(),
        None,
    ));
    let mut result = handle(rt, &job).await;
    if let Err(failure) = &mut result {
        if let Some(endpoint) = failure
            .endpoint_gone
            .then(|| rt.handler.endpoint(&job))
            .flatten()
        {
            failure.message.push_str("; endpoint disabled");
            rt.kind_metrics.endpoint_gone.inc();
            rt.endpoints
                .disable(&endpoint, &rt.kind, &job.id, &failure.message)
                .await;
        }
    }
    result
}

/// Runs the handler, bounded by the kind's timeout, a panic caught.
async fn handle(rt: &KindRuntime, job: &Job) -> Result<Outcome, JobFailure> {
    // A panicking handler must not take the worker down with it, nor lose the job; a stuck one
    // must not hold its slot forever.
    let handled = AssertUnwindSafe(rt.handler.handle(job)).catch_unwind();
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

/// Forwards the job to its next retry tier, or dead-letters it. Returns the outcome's counter
/// and the status still to write (none for a retry: written already) once the forwarded record
/// is durable, `None` if it could not be written before shutdown (the job is then redelivered,
/// because its offset is not stored).
async fn fail<'a>(
    rt: &'a KindRuntime,
    delivery: &Delivery,
    failure: &JobFailure,
) -> Option<(&'a IntCounter, Option<StatusUpdate>)> {
    let (kind, job_id, attempt) = (rt.kind.as_str(), delivery.job_id.as_str(), delivery.attempt);
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
        // `retrying` is queued before the retry record is sent, not once it is acknowledged: a
        // record is readable as soon as it is replicated, and its acknowledgement can reach us
        // seconds later (a broker failing over), after the next attempt ran — a `retrying`
        // written then would overwrite that attempt's outcome for good. The status writer keeps
        // each job's updates in order, so this one lands before any the next attempt makes.
        let update = status_update(rt, delivery, Status::Retrying, attempt, Some(&error), None);
        let (written_tx, written) = tokio::sync::oneshot::channel();
        let written_tx: Completion = Box::new(move |_| {
            let _ = written_tx.send(());
        });
        rt.status
            .record_then(update, written_tx, STATUS_QUEUE_WAIT)
            .await;
        if !forward(rt, delivery, &topic, &added).await {
            return None;
        }
        // The offset is stored only once the status is in Redis too (or Redis gave up).
        let _ = written.await;
        rt.metrics
            .retries
            .with_label_values(&[kind, &tier_name(delay)])
            .inc();
        return Some((&rt.kind_metrics.retried, None));
    }

    tracing::info!(%job_id, kind, attempt, class, error = %error, "job failed for good; dead-lettering");
    let topic = rt.topics.dead_letters(kind);
    let added = [
        (headers::ERROR, error.clone()),
        (headers::ERROR_CLASS, class.to_owned()),
        (headers::DEAD_AT, now_millis().to_string()),
    ];
    if !forward(rt, delivery, &topic, &added).await {
        return None;
    }
    rt.metrics
        .dead_letters
        .with_label_values(&[kind, class])
        .inc();
    let update = status_update(
        rt,
        delivery,
        Status::DeadLettered,
        attempt,
        Some(&error),
        None,
    );
    Some((&rt.kind_metrics.dead_lettered, Some(update)))
}

/// Writes the original key and bytes to `topic` with every original header, the job id, where
/// the job was first read from (kept from the first delivery), and `added` (replacing any
/// earlier values of those headers). Retries until Kafka acknowledges; gives up only at shutdown.
async fn forward(
    rt: &KindRuntime,
    delivery: &Delivery,
    topic: &str,
    added: &[(&str, String)],
) -> bool {
    let job_id = delivery.job_id.as_str();
    let mut set: Vec<(&str, String)> = vec![(headers::JOB_ID, job_id.to_owned())];
    if delivery.first_delivery {
        set.push((headers::ORIGINAL_TOPIC, delivery.topic.to_string()));
        set.push((headers::ORIGINAL_PARTITION, delivery.partition.to_string()));
        set.push((headers::ORIGINAL_OFFSET, delivery.offset.to_string()));
    }
    if let Some(lane) = delivery.priority {
        set.push((headers::PRIORITY, lane.as_str().to_owned()));
    }
    // Written even when the record came without them (a bulk or outside record): the next
    // record's own timestamp is not the job's enqueue time, and its trace must not change.
    if let Some(at) = delivery.enqueued_at {
        set.push((headers::ENQUEUED_AT, at.to_string()));
    }
    set.push((headers::TRACEPARENT, delivery.traceparent.clone()));
    set.extend(added.iter().cloned());
    let replaced: Vec<&str> = set.iter().map(|(key, _)| *key).collect();

    let record_headers = || {
        let mut record_headers = headers::copy_pairs_except(delivery.headers.iter(), &replaced);
        for (key, value) in &set {
            record_headers = record_headers.insert(headers::str_header(key, value));
        }
        record_headers
    };
    let key = delivery.key.as_deref();
    produce_until_acked(rt, job_id, topic, key, &delivery.payload, record_headers).await
}

/// Produces one record, retrying until Kafka acknowledges it; false only if shutdown came first.
async fn produce_until_acked(
    rt: &KindRuntime,
    job_id: &str,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    record_headers: impl Fn() -> OwnedHeaders,
) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut record = FutureRecord::to(topic)
            .payload(payload)
            .headers(record_headers());
        if let Some(key) = key {
            record = record.key(key);
        }
        match rt
            .producer
            .send(record, Timeout::After(Duration::from_secs(5)))
            .await
        {
            Ok(_) => return true,
            Err((e, _)) => {
                tracing::warn!(%job_id, %topic, error = %e, "producing for a job failed; retrying");
                if rt.shutdown.is_cancelled() {
                    return false;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Produces a succeeded job's follow-ups, each under an id derived from the job's, before the
/// job's offset can be stored. A follow-up that is not a valid job of its kind fails the job
/// (`fatal`: the handler asked for something that can never be enqueued). `None` if shutdown
/// came first (the job is redelivered and asks again).
async fn enqueue_follow_ups(
    rt: &KindRuntime,
    delivery: &Delivery,
    follow_ups: &[FollowUp],
) -> Option<Result<(), JobFailure>> {
    let mut prepared = Vec::with_capacity(follow_ups.len());
    for (i, follow_up) in follow_ups.iter().enumerate() {
        let id = follow_up_id(&delivery.job_id, i + 1);
        match rt
            .schemas
            .prepare_as(&follow_up.kind, follow_up.job.to_string().as_bytes(), id)
        {
            Ok(job) => prepared.push((follow_up.kind.as_str(), job)),
            Err(e) => {
                let problem = format!("follow-up {} ({}): {e}", i + 1, follow_up.kind);
                return Some(Err(JobFailure::new(ErrorClass::Fatal, problem)));
            }
        }
    }
    let traceparent = Some(delivery.traceparent.as_str());
    let sends = prepared.iter().map(|(kind, job)| {
        let topic = job.route(&rt.topics, kind, traceparent).topic;
        let record_headers = move || job.route(&rt.topics, kind, traceparent).headers;
        async move {
            produce_until_acked(
                rt,
                &job.job_id,
                &topic,
                Some(job.key.as_bytes()),
                &job.value,
                record_headers,
            )
            .await
        }
    });
    let sent = futures::future::join_all(sends).await;
    sent.into_iter().all(|ok| ok).then_some(Ok(()))
}

fn observe_end_to_end(rt: &KindRuntime, delivery: &Delivery) {
    if let Some(enqueued_at) = delivery.enqueued_at {
        let seconds = (now_millis() - enqueued_at).max(0) as f64 / 1000.0;
        rt.kind_metrics.end_to_end_seconds.observe(seconds);
    }
}

/// Job status is for people and `GET /v1/jobs/{id}`; Kafka holds the truth. A slow or absent
/// Redis delays what status shows but never blocks or fails a job: `running` is not waited for,
/// and a job's offset is stored once its final status is written or Redis gave up on it.
/// Every update names the job's lane and trace, so its status shows them whichever update
/// was written last.
fn status_update(
    rt: &KindRuntime,
    delivery: &Delivery,
    status: Status,
    attempt: u32,
    error: Option<&str>,
    result: Option<serde_json::Value>,
) -> StatusUpdate {
    let trace_id = delivery.trace_id();
    StatusUpdate {
        job_id: delivery.job_id.clone(),
        kind: rt.kind.clone(),
        status,
        attempts: attempt,
        error: error.map(str::to_owned),
        result,
        // Set when the job was started (its lane then), so always known here.
        lane: delivery.priority,
        trace_id: (!trace_id.is_empty()).then(|| trace_id.to_owned()),
    }
}
