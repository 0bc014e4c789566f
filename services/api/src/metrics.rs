//! The API's metrics and the middleware that records every request.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use sluice_core::metrics::register;

use crate::state::AppState;

#[derive(Clone)]
pub struct ApiMetrics {
    pub registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    pub jobs_published: IntCounterVec,
    pub jobs_cancelled: IntCounterVec,
    pub publish_failures: IntCounterVec,
    pub dlq_replays: IntCounterVec,
    pub feed_reads: prometheus::IntCounter,
    pub feed_read_seconds: prometheus::Histogram,
    pub feed_cache_hits: prometheus::IntCounter,
}

impl ApiMetrics {
    pub fn new() -> Self {
        let registry = sluice_core::metrics::new_registry("api");
        let requests = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "sluice_http_requests_total",
                    "HTTP requests by route and status.",
                ),
                &["route", "status"],
            )
            .unwrap(),
        );
        let request_seconds = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "sluice_http_request_duration_seconds",
                    "HTTP request latency.",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
                &["route"],
            )
            .unwrap(),
        );
        let jobs_published = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "sluice_jobs_published_total",
                    "Jobs acknowledged by Kafka, by kind.",
                ),
                &["kind"],
            )
            .unwrap(),
        );
        let jobs_cancelled = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "sluice_jobs_cancelled_total",
                    "Jobs cancelled through DELETE /v1/jobs/{id} before they started, by kind.",
                ),
                &["kind"],
            )
            .unwrap(),
        );
        let publish_failures = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "sluice_publish_failures_total",
                    "Jobs Kafka did not take, by kind and reason (timeout, queue_full, too_large, kafka).",
                ),
                &["kind", "reason"],
            )
            .unwrap(),
        );
        let dlq_replays = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "sluice_dlq_replays_total",
                    "Dead letters sent back to their main topic.",
                ),
                &["kind"],
            )
            .unwrap(),
        );
        let feed_reads = register(
            &registry,
            prometheus::IntCounter::new("sluice_feed_reads_total", "Feed reads served.").unwrap(),
        );
        let feed_read_seconds = register(
            &registry,
            prometheus::Histogram::with_opts(
                HistogramOpts::new(
                    "sluice_feed_read_duration_seconds",
                    "Feed read latency, cache hits included.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                ]),
            )
            .unwrap(),
        );
        let feed_cache_hits = register(
            &registry,
            prometheus::IntCounter::new(
                "sluice_feed_cache_hits_total",
                "Feed reads served from the cache.",
            )
            .unwrap(),
        );
        Self {
            feed_reads,
            feed_read_seconds,
            feed_cache_hits,
            dlq_replays,
            registry,
            requests,
            request_seconds,
            jobs_published,
            jobs_cancelled,
            publish_failures,
        }
    }
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Records route (the matched pattern, never the raw path with ids), status and latency.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics
        .requests
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    metrics
        .request_seconds
        .with_label_values(&[route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}
