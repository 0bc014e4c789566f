//! `POST /v1/jobs/{kind}` and `GET /v1/jobs/{id}`.

use std::time::Duration;

use axum::{
    body::Bytes,
    extract::{
        rejection::{BytesRejection, QueryRejection},
        Path, Query, State,
    },
    http::{header::LOCATION, HeaderMap, HeaderName, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Deserialize;
use serde_json::json;
use sluice_core::{
    headers::{self, OwnedHeaders},
    status::{Accepted, JobStatus, Status},
};
use sluice_kinds::PreparedJob;

use crate::{
    error::ApiError,
    produce::{produce, Produced},
    state::AppState,
    wait,
};

/// Accepts a job: 202 only once Kafka acknowledged it (acks=all), so a 202 is a promise.
pub async fn create(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    request_headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if state.registry.get(&kind).is_none() {
        return Err(ApiError::NotFound(format!("unknown job kind `{kind}`")));
    }
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(state.config.api.body_limit_bytes)
        } else {
            ApiError::BadRequest(format!("could not read the request body: {rejection}"))
        }
    })?;
    let job = state.registry.prepare(&kind, &body)?;

    let incoming = request_headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    let traceparent = enqueue(&state, &kind, &job, incoming).await?;
    let location = format!("/v1/jobs/{}", job.job_id);
    let mut accepted = json!({ "job_id": job.job_id, "status": "queued" });
    if let Some(at) = job.run_at {
        accepted["status"] = json!("scheduled");
        accepted["run_at"] = json!(at);
    }
    Ok((
        StatusCode::ACCEPTED,
        [
            (LOCATION, location),
            (HeaderName::from_static("traceparent"), traceparent),
        ],
        Json(accepted),
    )
        .into_response())
}

/// Produces a prepared job (202 material only once Kafka acknowledged it) and records it
/// queued; returns the job's `traceparent`, continuing `incoming` when the caller sent one.
pub async fn enqueue(
    state: &AppState,
    kind: &str,
    job: &PreparedJob,
    incoming: Option<&str>,
) -> Result<String, ApiError> {
    // The job's log lines in every role carry the caller's trace when it sent one.
    let route = job.route(&state.topics, kind, incoming);
    let what = Produced {
        label: kind,
        unavailable: "the job queue cannot take jobs right now; retry later",
    };
    produce(
        state,
        what,
        &route.topic,
        &job.key,
        &job.value,
        route.headers,
    )
    .await?;
    state
        .metrics
        .jobs_published
        .with_label_values(&[kind])
        .inc();

    // Kafka holds the job now; a status write that fails only delays what GET shows until the
    // worker writes its own, so it must not turn an accepted job into an error.
    let status_write = tokio::time::timeout(
        Duration::from_secs(1),
        state.status.mark_accepted(
            &job.job_id,
            &Accepted {
                kind,
                lane: job.priority,
                traceparent: Some(&route.traceparent),
            },
            job.run_at,
        ),
    )
    .await;
    if !matches!(status_write, Ok(Ok(()))) {
        tracing::warn!(job_id = %job.job_id, "could not record queued status in Redis");
    }
    tracing::debug!(
        job_id = %job.job_id,
        %kind,
        trace_id = headers::trace_id(&route.traceparent).unwrap_or_default(),
        "job accepted"
    );
    Ok(route.traceparent)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    /// Wait this long (`10s`, `500ms`, or seconds) for a final status; at most `wait::MAX_WAIT`.
    pub wait: Option<String>,
}

/// `GET /v1/jobs/{id}`, or with `?wait=` the status once final or when the wait is over.
pub async fn get(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    query: Result<Query<GetQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let status = status_after_wait(&state, &job_id, query.wait.as_deref()).await?;
    Ok(Json(
        serde_json::to_value(status).map_err(|_| ApiError::Internal)?,
    ))
}

/// The job's status now, or with `wait` (`10s`, `500ms`, seconds; at most `wait::MAX_WAIT`)
/// once it is final or the wait is over. No thread is held while waiting.
pub async fn status_after_wait(
    state: &AppState,
    job_id: &str,
    wait: Option<&str>,
) -> Result<JobStatus, ApiError> {
    let wait = match wait {
        None => Duration::ZERO,
        Some(text) => parse_wait(text)
            .ok_or_else(|| {
                ApiError::BadRequest(format!("`wait`: `{text}` is not a duration like `10s`"))
            })?
            .min(wait::MAX_WAIT),
    };
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Registered before reading, so a final status written in between still wakes us.
        let woken = (!wait.is_zero()).then(|| state.waiters.register(job_id));
        let status = read_status(state, job_id).await?;
        let now = tokio::time::Instant::now();
        if status.status.is_final() || now >= deadline || state.waiters.is_stopping() {
            state.waiters.forget_closed(job_id);
            return Ok(status);
        }
        let pause = (deadline - now).min(wait::RECHECK);
        if let Some(woken) = woken {
            let _ = tokio::time::timeout(pause, woken).await;
        }
        state.waiters.forget_closed(job_id);
    }
}

/// `DELETE /v1/jobs/{id}`: cancels a job that has not started (queued, scheduled, or waiting for
/// a retry).
/// The status becomes `cancelled` at once (atomically: a job that started meanwhile is not
/// touched), and the id goes to `jobs.<kind>.cancel`, which every worker of the kind reads, so
/// a worker skips the job when it comes to it. A worker that had already taken the job before
/// the cancellation reached it runs it, and its status says what happened.
pub async fn cancel(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    cancel_job(&state, &job_id).await?;
    Ok(Json(json!({"job_id": job_id, "status": "cancelled"})))
}

/// What `DELETE /v1/jobs/{id}` and the console's cancel button do. `Ok` also when the job was
/// cancelled already.
pub(crate) async fn cancel_job(state: &AppState, job_id: &str) -> Result<(), ApiError> {
    let current = read_status(state, job_id).await?;
    let not_cancellable = |status: Status| {
        ApiError::Conflict(format!(
            "job `{job_id}` is {}: only a job that has not started can be cancelled",
            status.as_str()
        ))
    };
    // Decided on what the script saw, not on `current`: the job may have moved on since.
    let was = state.status.cancel_if_waiting(job_id).await.map_err(|e| {
        tracing::warn!(error = %e, "cancelling in Redis failed");
        ApiError::Unavailable("job status is unavailable right now; retry".into())
    })?;
    match was {
        None => return Err(ApiError::NotFound(format!("no job `{job_id}`"))),
        Some(Status::Cancelled) => return Ok(()),
        Some(status) if !status.is_waiting() => return Err(not_cancellable(status)),
        Some(_) => {}
    }
    let what = Produced {
        label: &current.kind,
        unavailable:
            "the cancellation could not be recorded in Kafka; the job was not cancelled, retry",
    };
    let topic = state.topics.cancellations(&current.kind);
    let announced = produce(state, what, &topic, job_id, b"", OwnedHeaders::new()).await;
    if let Err(error) = announced {
        // Workers would never hear of it: put the status back rather than show a cancellation
        // that is not one.
        if let Err(e) = state.status.restore(&current).await {
            tracing::warn!(error = %e, %job_id, "could not restore the status of an unannounced cancellation");
        }
        return Err(error);
    }
    state
        .metrics
        .jobs_cancelled
        .with_label_values(&[current.kind.as_str()])
        .inc();
    Ok(())
}

pub(crate) async fn read_status(state: &AppState, job_id: &str) -> Result<JobStatus, ApiError> {
    let status = state.status.get(job_id).await.map_err(|e| {
        tracing::warn!(error = %e, "job status lookup failed");
        ApiError::Unavailable("job status is unavailable right now".into())
    })?;
    status.ok_or_else(|| ApiError::NotFound(format!("no job `{job_id}`")))
}

/// `10s`, `1500ms`, or a bare number of seconds.
fn parse_wait(text: &str) -> Option<Duration> {
    match text.trim().parse::<u64>() {
        Ok(seconds) => Some(Duration::from_secs(seconds)),
        Err(_) => humantime::parse_duration(text.trim()).ok(),
    }
}
