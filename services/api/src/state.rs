//! What every request handler shares.

use std::sync::Arc;

use rdkafka::producer::FutureProducer;
use sluice_core::{status::StatusStore, topics::Topics, Config};
use sluice_dlq::Dlq;

use crate::metrics::ApiMetrics;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub topics: Topics,
    pub producer: FutureProducer<sluice_core::kafka_stats::StatsContext>,
    pub status: StatusStore,
    pub metrics: ApiMetrics,
    pub dlq: Arc<Dlq>,
    pub graph: sluice_fanout::graph::Graph,
    pub stats: Arc<sluice_stats::StatsReader>,
    pub queue_metrics: crate::queue::QueueMetrics,
}
