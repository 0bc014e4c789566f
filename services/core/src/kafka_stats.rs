//! librdkafka's own statistics (emitted every `statistics.interval.ms`) as Prometheus metrics:
//! what sits in the producer queue, broker round trips, consumer fetch lag and transport errors.

use std::{collections::HashMap, sync::Arc, sync::Mutex};

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use rdkafka::{producer::ProducerContext, statistics::Statistics, ClientContext};

use crate::metrics::register;

#[derive(Clone)]
pub struct KafkaStats {
    role: String,
    queue: IntGaugeVec,
    rtt: GaugeVec,
    fetch_lag: IntGaugeVec,
    errors: IntCounterVec,
    /// Cumulative error totals last seen per client handle, to turn them into increments.
    seen_errors: Arc<Mutex<HashMap<String, u64>>>,
}

impl KafkaStats {
    pub fn new(registry: &Registry, role: &str) -> Self {
        Self {
            role: role.to_owned(),
            queue: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "sluice_kafka_producer_queue_messages",
                        "Messages waiting in librdkafka's producer queue.",
                    ),
                    &["role"],
                )
                .unwrap(),
            ),
            rtt: register(
                registry,
                GaugeVec::new(
                    Opts::new(
                        "sluice_kafka_broker_rtt_seconds",
                        "Average broker round-trip time over the last window.",
                    ),
                    &["role", "broker"],
                )
                .unwrap(),
            ),
            fetch_lag: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "sluice_kafka_consumer_fetch_lag_records",
                        "This consumer's own view of its lag, from librdkafka.",
                    ),
                    &["role", "topic", "partition"],
                )
                .unwrap(),
            ),
            errors: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "sluice_kafka_errors_total",
                        "Broker transport errors and request timeouts.",
                    ),
                    &["role"],
                )
                .unwrap(),
            ),
            seen_errors: Arc::default(),
        }
    }

    pub fn record(&self, stats: &Statistics) {
        let role = self.role.as_str();
        if stats.client_type == "producer" {
            self.queue
                .with_label_values(&[role])
                .set(stats.msg_cnt as i64);
        }
        let mut errors = 0;
        for broker in stats.brokers.values() {
            errors += broker.txerrs + broker.rxerrs + broker.req_timeouts;
            // Bootstrap and controller entries have no node id; only real brokers are worth a series.
            if broker.nodeid < 0 {
                continue;
            }
            if let Some(rtt) = &broker.rtt {
                self.rtt
                    .with_label_values(&[role, &broker.nodename])
                    .set(rtt.avg as f64 / 1_000_000.0);
            }
        }
        let mut seen = self.seen_errors.lock().unwrap();
        let previous = seen.insert(stats.name.clone(), errors).unwrap_or(0);
        self.errors
            .with_label_values(&[role])
            .inc_by(errors.saturating_sub(previous));
        if stats.client_type == "consumer" {
            for (topic, t) in &stats.topics {
                for (partition, p) in &t.partitions {
                    // -1 is librdkafka's internal "unassigned" partition.
                    if *partition >= 0 && p.consumer_lag >= 0 {
                        self.fetch_lag
                            .with_label_values(&[role, topic, &partition.to_string()])
                            .set(p.consumer_lag);
                    }
                }
            }
        }
    }
}

/// A client context that only reports statistics (for producers and plain clients).
#[derive(Clone)]
pub struct StatsContext(pub KafkaStats);

impl ClientContext for StatsContext {
    fn stats(&self, statistics: Statistics) {
        self.0.record(&statistics);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        crate::kafka::log_client_error(&error, reason);
    }
}

impl ProducerContext for StatsContext {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: ()) {}
}
