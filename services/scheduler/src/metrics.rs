//! The scheduler's metrics.

use prometheus::{GaugeVec, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};
use sluice_core::metrics::register;

#[derive(Clone)]
pub struct SchedulerMetrics {
    pub registry: Registry,
    pub fires: IntCounterVec,
    pub last_fire: GaugeVec,
    pub lateness: Histogram,
    pub leader: IntGauge,
}

impl SchedulerMetrics {
    pub fn new() -> Self {
        let registry = sluice_core::metrics::new_registry("scheduler");
        Self {
            fires: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "sluice_schedule_fires_total",
                        "Ticks fired by this replica (each one job, committed with its fired-tick record).",
                    ),
                    &["schedule"],
                )
                .unwrap(),
            ),
            last_fire: register(
                &registry,
                GaugeVec::new(
                    Opts::new(
                        "sluice_schedule_last_fire_timestamp_seconds",
                        "The newest fired tick of each schedule (its scheduled time), as the leader knows it.",
                    ),
                    &["schedule"],
                )
                .unwrap(),
            ),
            lateness: register(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "sluice_schedule_lateness_seconds",
                        "How long after its scheduled time a tick was fired (committed).",
                    )
                    // Milliseconds normally; seconds after a failover; minutes for a catch-up.
                    .buckets(vec![
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                        300.0,
                    ]),
                )
                .unwrap(),
            ),
            leader: register(
                &registry,
                IntGauge::new(
                    "sluice_scheduler_leader",
                    "1 while this replica is the leader (owns the leader partition), else 0.",
                )
                .unwrap(),
            ),
            registry,
        }
    }
}

impl Default for SchedulerMetrics {
    fn default() -> Self {
        Self::new()
    }
}
