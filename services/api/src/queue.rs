//! Queue health: `GET /v1/queue/stats`, and the same numbers exported as metrics for every
//! consumer group, refreshed every `api.queue_stats_interval`.

use std::{sync::Arc, time::Duration};

use axum::{extract::State, Json};
use prometheus::{Gauge, GaugeVec, IntGaugeVec, Opts, Registry};
use sluice_core::metrics::register;
use sluice_stats::{QueueStats, StatsReader};
use tokio_util::sync::CancellationToken;

use crate::{error::ApiError, state::AppState};

#[derive(Clone)]
pub struct QueueMetrics {
    /// The last numbers read, for the console: it shows them without reading Kafka again.
    latest: Arc<std::sync::Mutex<Option<QueueStats>>>,
    lag_records: IntGaugeVec,
    lag_seconds: GaugeVec,
    pending: IntGaugeVec,
    retry_backlog: IntGaugeVec,
    dlq_pending: IntGaugeVec,
    workers: IntGaugeVec,
    last_success: Gauge,
}

impl QueueMetrics {
    pub fn new(registry: &Registry) -> Self {
        let int_gauges = |name: &str, help: &str, labels: &[&str]| {
            register(
                registry,
                IntGaugeVec::new(Opts::new(name, help), labels).unwrap(),
            )
        };
        Self {
            latest: Arc::default(),
            lag_records: int_gauges(
                "sluice_consumer_lag_records",
                "High watermark minus the group's committed offset.",
                &["group", "topic", "partition"],
            ),
            lag_seconds: register(
                registry,
                GaugeVec::new(
                    Opts::new(
                        "sluice_consumer_lag_seconds",
                        "Age of the oldest record the group has not processed (0: none).",
                    ),
                    &["group", "topic"],
                )
                .unwrap(),
            ),
            pending: int_gauges("sluice_queue_pending_jobs", "Jobs waiting on the kind's main topic.", &["kind"]),
            retry_backlog: int_gauges(
                "sluice_retry_backlog_jobs",
                "Records in a retry tier not yet consumed.",
                &["kind", "tier"],
            ),
            dlq_pending: int_gauges(
                "sluice_dlq_pending_jobs",
                "Dead letters neither replayed nor purged.",
                &["kind"],
            ),
            workers: int_gauges("sluice_workers_active", "Members of the kind's consumer group.", &["kind"]),
            last_success: register(
                registry,
                Gauge::new(
                    "sluice_queue_stats_last_success_timestamp_seconds",
                    "When queue health was last read successfully: the gauges above are this fresh.",
                )
                .unwrap(),
            ),
        }
    }

    /// The last numbers read, if they are at most `max_age` old.
    pub fn latest(&self, max_age: Duration) -> Option<QueueStats> {
        let latest = self.latest.lock().unwrap();
        let fresh = |s: &&QueueStats| {
            sluice_core::headers::now_millis() - s.collected_at <= max_age.as_millis() as i64
        };
        latest.as_ref().filter(fresh).cloned()
    }

    pub fn set(&self, stats: &QueueStats) {
        *self.latest.lock().unwrap() = Some(stats.clone());
        // Reset first, so partitions and tiers that went away do not linger.
        self.lag_records.reset();
        self.lag_seconds.reset();
        self.retry_backlog.reset();
        for (topic, lag) in &stats.topics {
            self.lag_seconds
                .with_label_values(&[lag.group.as_str(), topic])
                .set(lag.lag_seconds);
            for p in &lag.partitions {
                self.lag_records
                    .with_label_values(&[lag.group.as_str(), topic, &p.partition.to_string()])
                    .set(p.lag);
            }
        }
        for (kind, k) in &stats.kinds {
            self.pending.with_label_values(&[kind]).set(k.pending);
            self.dlq_pending.with_label_values(&[kind]).set(k.failed);
            self.workers.with_label_values(&[kind]).set(k.workers);
            for tier in &k.retry_backlog {
                self.retry_backlog
                    .with_label_values(&[kind, &tier.tier])
                    .set(tier.backlog);
            }
        }
        self.last_success.set(stats.collected_at as f64 / 1000.0);
    }
}

/// Refreshes the queue metrics until `shutdown`.
pub async fn export(
    reader: Arc<StatsReader>,
    metrics: QueueMetrics,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match reader.collect().await {
            Ok(stats) => metrics.set(&stats),
            Err(e) => {
                tracing::warn!(error = %e, "reading queue health failed; the queue metrics are stale")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

pub async fn stats(State(state): State<AppState>) -> Result<Json<QueueStats>, ApiError> {
    let stats = state.stats.collect().await.map_err(|e| {
        tracing::warn!(error = %e, "reading queue health failed");
        ApiError::Unavailable("queue health cannot be read right now".into())
    })?;
    state.queue_metrics.set(&stats);
    Ok(Json(stats))
}
