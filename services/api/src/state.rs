//! What every request handler shares.

use std::{ops::Deref, sync::Arc};

use rdkafka::producer::FutureProducer;
use sluice_core::{status::StatusStore, topics::Topics, Config};
use sluice_dlq::Dlq;

use crate::metrics::ApiMetrics;

/// Shared by every request. axum clones the state several times per request (extractors,
/// middleware), so it is one `Arc`: a clone is a reference-count bump, not a copy of every
/// client handle and prefix string (that cost 16 % of the api's CPU per request, measured).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub config: Arc<Config>,
    pub registry: Arc<sluice_kinds::Registry>,
    pub topics: Topics,
    pub producer: FutureProducer<sluice_core::kafka_stats::StatsContext>,
    pub status: StatusStore,
    pub metrics: ApiMetrics,
    pub dlq: Dlq,
    pub graph: sluice_feed::graph::Graph,
    pub stats: Arc<sluice_stats::StatsReader>,
    /// Uploads and what jobs make of them.
    pub storage: sluice_storage::Storage,
    pub queue_metrics: crate::queue::QueueMetrics,
    /// Requests waiting for a job's final status.
    pub waiters: crate::wait::JobWaiters,
    /// The bearer tokens of `/v1`.
    pub auth: Arc<crate::auth::Tokens>,
    /// `[hooks.<source>]`: the verifiers of incoming webhooks.
    pub hooks: crate::hooks::Hooks,
    /// `GET /openapi.json`, rendered once at start.
    pub openapi: String,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
