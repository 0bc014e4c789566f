//! `GET /v1/dlq/{kind}` and `POST /v1/dlq/{kind}/replay`: the CLI's dead-letter tools over HTTP.

use axum::{
    extract::{rejection::JsonRejection, Path, Query, State},
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};
use sluice_dlq::{DlqError, Filter, Position, Selector};

use crate::{error::ApiError, state::AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<usize>,
    error_class: Option<String>,
    /// Milliseconds since the epoch.
    since: Option<i64>,
    /// Include replayed and purged dead letters.
    #[serde(default)]
    all: bool,
}

/// What a dead-letter failure is to a client (of the JSON API or the console).
pub(crate) fn api_error(e: DlqError) -> ApiError {
    match e {
        DlqError::UnknownKind(_) | DlqError::NotFound(..) => ApiError::NotFound(e.to_string()),
        // Another replay or purge of the kind holds the lease: the client may retry later.
        DlqError::Busy { .. } | DlqError::LeaseLost(_) => ApiError::Conflict(e.to_string()),
        other => {
            tracing::warn!(error = %other, "dead-letter operation failed");
            ApiError::Unavailable("the dead-letter topic cannot be read right now".into())
        }
    }
}

/// Counts dead letters sent back, whoever sent them (`sluice_dlq_replays_total`).
pub(crate) fn count_replayed(state: &AppState, kind: &str, replayed: usize) {
    state
        .metrics
        .dlq_replays
        .with_label_values(&[kind])
        .inc_by(replayed as u64);
}

pub async fn list(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 10000".into(),
        ));
    }
    let filter = Filter {
        error_class: query.error_class,
        since_ms: query.since,
        include_handled: query.all,
        limit: Some(limit),
    };
    let letters = state.dlq.list(&kind, &filter).await.map_err(api_error)?;
    Ok(Json(json!({ "kind": kind, "dead_letters": letters })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    offset: Option<String>,
    job_id: Option<String>,
    error_class: Option<String>,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    dry_run: bool,
}

pub async fn replay(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    body: Result<Json<ReplayRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(request) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let selector = match (
        request.offset,
        request.job_id,
        request.error_class,
        request.all,
    ) {
        (Some(offset), None, None, false) => Selector::Position(
            offset
                .parse::<Position>()
                .map_err(|e| ApiError::BadRequest(format!("field `offset`: {e}")))?,
        ),
        (None, Some(id), None, false) => Selector::JobId(id),
        (None, None, Some(class), false) => Selector::ErrorClass(class),
        (None, None, None, true) => Selector::All,
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of `offset`, `job_id`, `error_class` or `all: true`".into(),
            ))
        }
    };
    let report = state
        .dlq
        .replay(&kind, &selector, request.dry_run, |_, _| {})
        .await
        .map_err(api_error)?;
    if !report.dry_run {
        count_replayed(&state, &kind, report.replayed.len());
    }
    Ok(Json(json!({
        "kind": kind,
        "dry_run": report.dry_run,
        "replayed": report.replayed,
    })))
}
