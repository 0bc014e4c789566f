//! Liveness, readiness and metrics.

use std::time::Duration;

use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use rdkafka::producer::Producer;
use serde_json::json;

use crate::state::AppState;

pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Ready only when both Kafka answers a metadata request and Redis answers PING: a load balancer
/// must not send jobs to an api that cannot produce them.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let producer = state.producer.clone();
    let kafka = tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(None, Duration::from_secs(2))
            .is_ok()
    });
    let redis = tokio::time::timeout(Duration::from_secs(2), state.status.ping());
    let (kafka, redis) = tokio::join!(kafka, redis);
    let kafka_ok = kafka.unwrap_or(false);
    let redis_ok = matches!(redis, Ok(Ok(())));
    let code = if kafka_ok && redis_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok| if ok { "ok" } else { "unreachable" };
    (
        code,
        Json(json!({ "kafka": word(kafka_ok), "redis": word(redis_ok) })),
    )
}

pub async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    (
        [("content-type", "application/json")],
        state.openapi.clone(),
    )
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        sluice_core::metrics::render(&state.metrics.registry),
    )
}
