//! The fan-out processor's metrics; feed reads are measured where they happen, in the api.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};
use sluice_core::metrics::register;

#[derive(Clone)]
pub struct FanoutMetrics {
    pub registry: Registry,
    pub posts: IntCounterVec,
    pub deliveries: IntCounter,
    pub follower_lists: IntCounterVec,
    pub duration_seconds: Histogram,
    pub follow_changes: IntCounterVec,
    pub follow_batches: IntCounter,
    pub dead_letters: IntCounterVec,
    pub redis_retries: IntCounter,
}

impl FanoutMetrics {
    pub fn new() -> Self {
        let registry = sluice_core::metrics::new_registry("fanout");
        Self {
            posts: register(
                &registry,
                IntCounterVec::new(
                    Opts::new("sluice_fanout_posts_total", "Posts distributed, by mode (push, pull)."),
                    &["mode"],
                )
                .unwrap(),
            ),
            deliveries: register(
                &registry,
                IntCounter::new("sluice_fanout_deliveries_total", "Feed entries written by push fan-out.").unwrap(),
            ),
            follower_lists: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "sluice_fanout_follower_lists_total",
                        "Follower lists read for a push, by source: cache (the fanout's memory, still current) or redis (SSCAN).",
                    ),
                    &["source"],
                )
                .unwrap(),
            ),
            duration_seconds: register(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "sluice_fanout_duration_seconds",
                        "From a post's creation to its last follower's feed written.",
                    )
                    .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
                )
                .unwrap(),
            ),
            follow_changes: register(
                &registry,
                IntCounterVec::new(
                    Opts::new("sluice_follow_changes_total", "Follows and unfollows applied."),
                    &["action"],
                )
                .unwrap(),
            ),
            follow_batches: register(
                &registry,
                IntCounter::new(
                    "sluice_follow_batches_total",
                    "Batches of follow changes applied (what one poll returned, at most 5000): changes / batches is the batch size.",
                )
                .unwrap(),
            ),
            dead_letters: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "sluice_social_dead_letters_total",
                        "Social events that could not be read (event: post, follow), sent to <topic>.dlq.",
                    ),
                    &["event"],
                )
                .unwrap(),
            ),
            redis_retries: register(
                &registry,
                IntCounter::new("sluice_fanout_redis_retries_total", "Writes retried because Redis failed.").unwrap(),
            ),
            registry,
        }
    }
}

impl Default for FanoutMetrics {
    fn default() -> Self {
        Self::new()
    }
}
