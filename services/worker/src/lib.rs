//! The sluice worker: consumes the topics of some job kinds, one consumer group per kind, runs
//! each job's handler and records its outcome. See `consumer` for the delivery guarantee.

mod cancellations;
mod consumer;
mod context;
mod delivery;
mod endpoints;
mod in_flight;
mod metrics;
pub mod offsets;
mod partitions;
mod process;
mod ready;

use std::{collections::HashMap, sync::Arc};

use anyhow::Context;
use axum::{routing::get, Router};
use rdkafka::consumer::StreamConsumer;
use sluice_core::{lanes::Priority, status::StatusStore, topics::Topics, Config};
use sluice_kinds::{Handler, Registry};
use tokio::{net::TcpListener, sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    context::{Tracker, WorkerContext},
    process::KindRuntime,
};
pub use metrics::WorkerMetrics;

/// A worker: which kinds it consumes, and handlers that replace or add to the registry's (a
/// custom worker binary registers its typed Rust handlers here). Every guarantee — retries, dead
/// letters, offsets, drain, metrics — is the same for all of them.
pub struct Worker {
    config: Arc<Config>,
    registry: Arc<Registry>,
    kinds: Vec<String>,
    lanes: Vec<Priority>,
    handlers: HashMap<String, Arc<dyn Handler>>,
}

impl Worker {
    pub fn new(config: Arc<Config>, registry: Arc<Registry>) -> Self {
        Self {
            config,
            registry,
            kinds: Vec::new(),
            lanes: Vec::new(),
            handlers: HashMap::new(),
        }
    }

    /// The lanes to serve (`--lanes high` for a worker of urgent jobs only). Default:
    /// `worker.lanes`, all three unless configured.
    pub fn lanes(mut self, lanes: Vec<Priority>) -> Self {
        self.lanes = lanes;
        self
    }

    /// The kinds to consume. Default: `worker.kinds`, else every kind with a handler here.
    pub fn kinds(mut self, kinds: Vec<String>) -> Self {
        self.kinds = kinds;
        self
    }

    /// Runs `handler` for `kind` instead of the registry's handler type.
    pub fn handler(mut self, kind: &str, handler: Arc<dyn Handler>) -> Self {
        self.handlers.insert(kind.to_owned(), handler);
        self
    }

    /// Binds `worker.metrics_listen` and runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let addr = self.config.worker.metrics_listen;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding worker metrics to {addr}"))?;
        self.serve(listener, shutdown).await
    }

    /// The handler of each kind to run; an unknown kind or one whose handler cannot be built
    /// (a missing secret) fails the start, naming it.
    fn handlers(&self) -> anyhow::Result<Vec<(String, Arc<dyn Handler>)>> {
        let explicit = match (self.kinds.is_empty(), self.config.worker.kinds.is_empty()) {
            (false, _) => Some(self.kinds.clone()),
            (true, false) => Some(self.config.worker.kinds.clone()),
            (true, true) => None,
        };
        let kinds = explicit.clone().unwrap_or_else(|| {
            let mut all = self.registry.names();
            all.retain(|k| {
                self.handlers.contains_key(k)
                    || self
                        .registry
                        .kind(k)
                        .is_ok_and(|s| s.handler.runs_in_stock_worker())
            });
            all
        });
        let mut handlers = Vec::new();
        for kind in kinds {
            let spec = self.registry.kind(&kind)?;
            let handler = match self.handlers.get(&kind) {
                Some(handler) => handler.clone(),
                None => spec
                    .handler
                    .build(&kind, &spec.settings, &self.config)
                    .with_context(|| format!("starting a worker for `{kind}`"))?,
            };
            handlers.push((kind, handler));
        }
        Ok(handlers)
    }
}

/// The stock worker for `kinds` (empty: `worker.kinds`, else every kind) and `lanes` (empty:
/// `worker.lanes`): binds
/// `worker.metrics_listen` and runs until `shutdown`.
pub async fn run(
    config: Arc<Config>,
    registry: Arc<Registry>,
    kinds: Vec<String>,
    lanes: Vec<Priority>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    Worker::new(config, registry)
        .kinds(kinds)
        .lanes(lanes)
        .run(shutdown)
        .await
}

impl Worker {
    /// Runs the worker, serving `/metrics` and `/healthz` on `listener`, until `shutdown`; then
    /// drains and commits.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let handlers = self.handlers()?;
        let lanes = if self.lanes.is_empty() {
            self.config.worker.lanes.clone()
        } else {
            self.lanes.clone()
        };
        let (config, registry) = (self.config, self.registry);
        let status = StatusStore::connect(&config.redis).await.with_context(|| {
            format!(
                "connecting to Redis at {}",
                sluice_core::redact::url(&config.redis.url)
            )
        })?;
        let metrics = WorkerMetrics::new();
        let endpoints = endpoints::Endpoints::new(
            sluice_core::endpoints::EndpointStore::new(
                status.connection(),
                &config.redis.key_prefix,
            ),
            metrics.endpoints_disabled.clone(),
        );
        // Read before the first job, so a restarted worker does not call a disabled endpoint.
        endpoints.refresh().await;
        let status_store_connection = status.connection();
        let status = sluice_core::status_writer::StatusWriter::start(status);
        let kafka_stats = sluice_core::kafka_stats::KafkaStats::new(&metrics.registry, "worker");
        let producer_config =
            sluice_core::kafka::producer_config(&config.kafka, std::time::Duration::from_secs(30));
        let producer: rdkafka::producer::FutureProducer<_> =
            sluice_core::kafka::with_statistics(producer_config, &config.kafka)
                .create_with_context(sluice_core::kafka_stats::StatsContext(kafka_stats.clone()))
                .context("creating the retry and dead-letter producer")?;
        let topics = Topics::new(&config.topics);
        // Any task that fails stops the others: a worker that silently lost one kind is worse than
        // one that exits and gets restarted.
        let shutdown = shutdown.child_token();
        let mut tasks = JoinSet::new();

        let metrics_app = {
            let registry = metrics.registry.clone();
            Router::new()
                .route(
                    "/metrics",
                    get(move || async move { sluice_core::metrics::render(&registry) }),
                )
                .route("/healthz", get(|| async { "ok" }))
        };
        tracing::info!(addr = %listener.local_addr()?, "worker metrics listening");
        let metrics_shutdown = shutdown.clone();
        tasks.spawn(async move {
            axum::serve(listener, metrics_app)
                .with_graceful_shutdown(metrics_shutdown.cancelled_owned())
                .await
                .context("serving worker metrics")
        });

        tasks.spawn(endpoints.clone().follow(shutdown.clone()));
        let redis = status_store_connection;
        let mut in_flight_counts = Vec::new();

        for (kind, handler) in handlers {
            let spec = registry.kind(&kind)?;
            let tracker = Arc::new(Tracker::default());
            let (assigned, assignments) = tokio::sync::mpsc::unbounded_channel();
            let context = WorkerContext {
                assigned,
                tracker: tracker.clone(),
                drain_timeout: config.worker.drain_timeout,
                kafka_stats: kafka_stats.clone(),
            };
            let mut consumer_config = sluice_core::kafka::consumer_config(
                &config.kafka,
                &topics.worker_group(&kind),
                config.worker.commit_interval,
            );
            // librdkafka's own read-ahead, per partition, ahead of the worker's `read_ahead`:
            // enough for a few fetches, not the default 100 000 per partition (memory).
            consumer_config
                .set("queued.min.messages", "2000")
                // librdkafka waits this long (default 1 s) before fetching again for a partition
                // whose local queue was over `queued.min.messages`: a partition whose reader was
                // at its budget would start again up to a second late.
                .set("fetch.queue.backoff.ms", "10")
                // A fetch waits at most this long for data (100 ms elsewhere): a record of a lane
                // that was idle can wait behind one whole empty wait, which was the high lane's
                // p99 (109 ms at 100 ms, 38 ms at 20 ms). Costs up to 50 empty fetches a second
                // per kind when the worker is idle.
                .set("fetch.wait.max.ms", "20");
            let consumer: StreamConsumer<WorkerContext> =
                sluice_core::kafka::with_statistics(consumer_config, &config.kafka)
                    .create_with_context(context)
                    .with_context(|| format!("creating the consumer for {kind}"))?;
            let tier_topics = spec
                .plan
                .tiers
                .iter()
                .map(|delay| {
                    (
                        topics.retry(&kind, *delay),
                        sluice_core::retry::tier_name(*delay),
                    )
                })
                .collect();
            let counts = Arc::new(in_flight::LaneCounts::default());
            in_flight_counts.push((kind.clone(), counts.clone()));
            let rt = Arc::new(KindRuntime {
                in_flight: counts,
                kind_metrics: metrics::KindMetrics::new(&metrics, &kind),
                cancelled: Arc::new(cancellations::Cancelled::new(config.redis.status_ttl)),
                endpoints: endpoints.clone(),
                tier_topics,
                handler,
                validate: spec.handler,
                schemas: registry.clone(),
                plan: spec.plan.clone(),
                kind,
                consumer: Arc::new(consumer),
                tracker,
                status: status.clone(),
                producer: producer.clone(),
                topics: topics.clone(),
                kafka: config.kafka.clone(),
                metrics: metrics.clone(),
                shutdown: shutdown.clone(),
            });
            let slots = consumer::Slots {
                // Each kind has its own slots, so a kind whose jobs hang (an endpoint that is
                // down) never takes the slots of another.
                permits: Arc::new(Semaphore::new(
                    spec.concurrency.unwrap_or(config.worker.concurrency),
                )),
                drain_timeout: config.worker.drain_timeout,
                lanes: lanes.clone(),
                weights: spec.lane_weights.unwrap_or(config.worker.lane_weights),
                lane_max_wait: config.worker.lane_max_wait,
                read_ahead: config.worker.read_ahead,
                max_held: config.worker.max_held_retries,
            };
            tasks.spawn(consumer::consume(rt, slots, assignments));
        }
        tasks.spawn(in_flight::report(
            redis,
            config.redis.key_prefix.clone(),
            in_flight::instance_id(),
            in_flight_counts,
            shutdown.clone(),
        ));

        let mut first_error = None;
        while let Some(result) = tasks.join_next().await {
            let error = match result {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(e) => anyhow::Error::from(e).context("worker task panicked"),
            };
            tracing::error!(error = %format!("{error:#}"), "worker task failed; stopping");
            shutdown.cancel();
            first_error.get_or_insert(error);
        }
        let flush = tokio::task::spawn_blocking(move || {
            rdkafka::producer::Producer::flush(&producer, std::time::Duration::from_secs(10))
        });
        flush.await?.context("flushing the dead-letter producer")?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
