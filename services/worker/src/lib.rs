//! The sluice worker: consumes the topics of some job kinds, one consumer group per kind, runs
//! each job's handler and records its outcome. See `consumer` for the delivery guarantee.

mod consumer;
mod context;
pub mod handler;
mod metrics;
pub mod offsets;
mod process;
pub mod webhook;

use std::{collections::HashMap, sync::Arc};

use anyhow::{bail, Context};
use axum::{routing::get, Router};
use rdkafka::consumer::StreamConsumer;
use sluice_core::{status::StatusStore, topics::Topics, Config};
use tokio::{net::TcpListener, sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    context::{Tracker, WorkerContext},
    handler::{Handler, NoopHandler},
    process::KindRuntime,
};
pub use metrics::WorkerMetrics;

fn handlers(
    config: &Config,
    kinds: &[String],
) -> anyhow::Result<HashMap<String, Arc<dyn Handler>>> {
    let mut handlers: HashMap<String, Arc<dyn Handler>> = HashMap::new();
    for kind in kinds {
        let handler: Arc<dyn Handler> = match kind.as_str() {
            "webhook" => Arc::new(webhook::WebhookHandler::new(&config.webhook)?),
            "noop" => Arc::new(NoopHandler),
            other if sluice_core::topics::is_job_kind(other) => {
                bail!("job kind `{other}` has no handler in this worker")
            }
            other => bail!(
                "unknown job kind `{other}` (known: {})",
                sluice_core::topics::job_kinds().join(", ")
            ),
        };
        handlers.insert(kind.clone(), handler);
    }
    Ok(handlers)
}

/// Binds `worker.metrics_listen` and runs until `shutdown`.
pub async fn run(
    config: Arc<Config>,
    kinds: Vec<String>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.worker.metrics_listen)
        .await
        .with_context(|| format!("binding worker metrics to {}", config.worker.metrics_listen))?;
    serve(config, kinds, listener, shutdown).await
}

/// Runs the worker for `kinds` (empty: `worker.kinds`, else every job kind), serving `/metrics`
/// and `/healthz` on `listener`, until `shutdown`; then drains and commits.
pub async fn serve(
    config: Arc<Config>,
    kinds: Vec<String>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let kinds = match (kinds.is_empty(), config.worker.kinds.is_empty()) {
        (false, _) => kinds,
        (true, false) => config.worker.kinds.clone(),
        (true, true) => sluice_core::topics::job_kinds(),
    };
    let handlers = handlers(&config, &kinds)?;
    let status = StatusStore::connect(&config.redis)
        .await
        .with_context(|| format!("connecting to Redis at {}", config.redis.url))?;
    let metrics = WorkerMetrics::new();
    let kafka_stats = sluice_core::kafka_stats::KafkaStats::new(&metrics.registry, "worker");
    let producer_config =
        sluice_core::kafka::producer_config(&config.kafka, std::time::Duration::from_secs(30));
    let producer: rdkafka::producer::FutureProducer<_> =
        sluice_core::kafka::with_statistics(producer_config, &config.kafka)
            .create_with_context(sluice_core::kafka_stats::StatsContext(kafka_stats.clone()))
            .context("creating the retry and dead-letter producer")?;
    let topics = Topics::new(&config.topics);
    let permits = Arc::new(Semaphore::new(config.worker.concurrency));
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

    for kind in kinds {
        let tracker = Arc::new(Tracker::default());
        let context = WorkerContext {
            tracker: tracker.clone(),
            drain_timeout: config.worker.drain_timeout,
            kafka_stats: kafka_stats.clone(),
        };
        let consumer_config = sluice_core::kafka::consumer_config(
            &config.kafka,
            &topics.worker_group(&kind),
            config.worker.commit_interval,
        );
        let consumer: StreamConsumer<WorkerContext> =
            sluice_core::kafka::with_statistics(consumer_config, &config.kafka)
                .create_with_context(context)
                .with_context(|| format!("creating the consumer for {kind}"))?;
        let rt = Arc::new(KindRuntime {
            handler: handlers[&kind].clone(),
            plan: config.retry_plan(&kind),
            kind,
            consumer: Arc::new(consumer),
            tracker,
            status: status.clone(),
            producer: producer.clone(),
            topics: topics.clone(),
            topic_wait: config.kafka.topic_wait,
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
        });
        tasks.spawn(consumer::consume(
            rt,
            permits.clone(),
            config.worker.drain_timeout,
            config.worker.max_held_retries,
        ));
    }

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
