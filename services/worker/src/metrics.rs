//! The worker's metrics.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use sluice_core::{lanes::Priority, metrics::register};

#[derive(Clone)]
pub struct WorkerMetrics {
    pub registry: Registry,
    pub started: IntCounterVec,
    pub finished: IntCounterVec,
    pub handler_seconds: HistogramVec,
    pub end_to_end_seconds: HistogramVec,
    pub in_flight: IntGaugeVec,
    pub dead_letters: IntCounterVec,
    pub retries: IntCounterVec,
    pub retry_lateness_seconds: HistogramVec,
    pub retry_waiting: IntGaugeVec,
    pub retry_next_due: prometheus::GaugeVec,
    pub queue_wait_seconds: HistogramVec,
    pub ready: IntGaugeVec,
    pub delayed_lateness_seconds: HistogramVec,
    pub endpoints_disabled: IntGauge,
    pub endpoint_gone: IntCounterVec,
    pub endpoint_disabled_jobs: IntCounterVec,
}

impl WorkerMetrics {
    pub fn new() -> Self {
        let registry = sluice_core::metrics::new_registry("worker");
        let latency_buckets = vec![
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        ];
        Self {
            started: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "sluice_jobs_started_total",
                        "Job deliveries handed to a handler.",
                    ),
                    &["kind"],
                )
                .unwrap(),
            ),
            finished: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "sluice_jobs_finished_total",
                        "Job deliveries with a durable outcome, by outcome (success, retry, dead_letter).",
                    ),
                    &["kind", "outcome"],
                )
                .unwrap(),
            ),
            handler_seconds: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new("sluice_job_handler_duration_seconds", "Handler run time.")
                        .buckets(latency_buckets.clone()),
                    &["kind"],
                )
                .unwrap(),
            ),
            end_to_end_seconds: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "sluice_job_end_to_end_duration_seconds",
                        "From enqueued-at to a durable outcome.",
                    )
                    // End to end includes retry waits: tiers go up to minutes or hours.
                    .buckets(vec![
                        0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                        600.0, 1800.0, 3600.0, 7200.0,
                    ]),
                    &["kind"],
                )
                .unwrap(),
            ),
            in_flight: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new("sluice_jobs_in_flight", "Jobs being handled right now."),
                    &["kind"],
                )
                .unwrap(),
            ),
            dead_letters: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "sluice_dead_letters_total",
                        "Jobs written to the dead-letter topic, by error class.",
                    ),
                    &["kind", "error_class"],
                )
                .unwrap(),
            ),
            retries: register(
                &registry,
                IntCounterVec::new(
                    Opts::new("sluice_retries_total", "Failed jobs sent to a retry tier."),
                    &["kind", "tier"],
                )
                .unwrap(),
            ),
            retry_lateness_seconds: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "sluice_retry_lateness_seconds",
                        "How long after its due time a retried job started.",
                    )
                    .buckets(vec![
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ]),
                    &["kind"],
                )
                .unwrap(),
            ),
            retry_waiting: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "sluice_retry_waiting_jobs",
                        "Retries this worker holds until they are due, by tier.",
                    ),
                    &["kind", "tier"],
                )
                .unwrap(),
            ),
            retry_next_due: register(
                &registry,
                prometheus::GaugeVec::new(
                    Opts::new(
                        "sluice_retry_next_due_timestamp_seconds",
                        "Due time of the earliest retry this worker holds, by tier (0: none).",
                    ),
                    &["kind", "tier"],
                )
                .unwrap(),
            ),
            queue_wait_seconds: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "sluice_job_queue_wait_seconds",
                        "From enqueue (or, for a delayed job, its run_at) to the start of its first attempt, by lane.",
                    )
                    .buckets(latency_buckets.clone()),
                    &["kind", "lane"],
                )
                .unwrap(),
            ),
            ready: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "sluice_jobs_ready",
                        "Jobs read and due, waiting for a slot in this worker, by lane.",
                    ),
                    &["kind", "lane"],
                )
                .unwrap(),
            ),
            delayed_lateness_seconds: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "sluice_delayed_job_lateness_seconds",
                        "How long after its run_at a delayed job started.",
                    )
                    .buckets(vec![
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ]),
                    &["kind"],
                )
                .unwrap(),
            ),
            endpoints_disabled: register(
                &registry,
                IntGauge::new(
                    "sluice_endpoints_disabled",
                    "Endpoints disabled after a 410 Gone, as this worker last read them from Redis.",
                )
                .unwrap(),
            ),
            endpoint_gone: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "sluice_endpoint_gone_total",
                        "410 Gone answers: each disables the job's endpoint.",
                    ),
                    &["kind"],
                )
                .unwrap(),
            ),
            endpoint_disabled_jobs: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "sluice_endpoint_disabled_jobs_total",
                        "Jobs dead-lettered without a call because their endpoint is disabled.",
                    ),
                    &["kind"],
                )
                .unwrap(),
            ),
            registry,
        }
    }
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The series every delivery of one kind touches, looked up once per kind instead of hashing
/// the labels on every job.
pub struct KindMetrics {
    pub started: IntCounter,
    pub in_flight: IntGauge,
    pub handler_seconds: Histogram,
    pub end_to_end_seconds: Histogram,
    pub retry_lateness_seconds: Histogram,
    pub succeeded: IntCounter,
    pub retried: IntCounter,
    pub dead_lettered: IntCounter,
    pub cancelled: IntCounter,
    pub expired: IntCounter,
    /// Indexed by `Priority::index`.
    pub queue_wait_seconds: [Histogram; 3],
    pub ready: [IntGauge; 3],
    pub delayed_lateness_seconds: Histogram,
    pub endpoint_gone: IntCounter,
    pub endpoint_disabled_jobs: IntCounter,
}

impl KindMetrics {
    pub fn new(metrics: &WorkerMetrics, kind: &str) -> Self {
        let finished = |outcome| metrics.finished.with_label_values(&[kind, outcome]);
        Self {
            started: metrics.started.with_label_values(&[kind]),
            in_flight: metrics.in_flight.with_label_values(&[kind]),
            handler_seconds: metrics.handler_seconds.with_label_values(&[kind]),
            end_to_end_seconds: metrics.end_to_end_seconds.with_label_values(&[kind]),
            retry_lateness_seconds: metrics.retry_lateness_seconds.with_label_values(&[kind]),
            succeeded: finished("success"),
            retried: finished("retry"),
            dead_lettered: finished("dead_letter"),
            cancelled: finished("cancelled"),
            expired: finished("expired"),
            queue_wait_seconds: Priority::ALL.map(|lane| {
                metrics
                    .queue_wait_seconds
                    .with_label_values(&[kind, lane.as_str()])
            }),
            ready: Priority::ALL
                .map(|lane| metrics.ready.with_label_values(&[kind, lane.as_str()])),
            delayed_lateness_seconds: metrics.delayed_lateness_seconds.with_label_values(&[kind]),
            endpoint_gone: metrics.endpoint_gone.with_label_values(&[kind]),
            endpoint_disabled_jobs: metrics.endpoint_disabled_jobs.with_label_values(&[kind]),
        }
    }
}
