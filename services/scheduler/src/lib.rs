//! The sluice scheduler (role `scheduler`): periodic jobs (`[[schedules]]`), each tick fired
//! exactly once across any number of replicas (docs/architecture.md §15).
//!
//! `leader` elects one replica through a Kafka consumer group, `ticker` is the leader's loop,
//! `fire` commits a tick's job together with its record in the fired-ticks topic (`fired`) in
//! one transaction, `catch_up` decides which missed ticks are fired. Parsing the schedules, the
//! fired-ticks topic's reader and the listing are the `sluice-schedules` library, shared with
//! the CLI and the api.

pub mod catch_up;
mod fire;
pub mod ladder;
mod leader;
mod metrics;
mod ticker;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use axum::{routing::get, Router};
use sluice_core::{status::StatusStore, topics::Topics, Config};
use sluice_kinds::Registry;
use sluice_schedules::schedule;
use tokio::{
    net::TcpListener,
    sync::{watch, OnceCell},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

pub use metrics::SchedulerMetrics;

/// Checks the schedules, binds `scheduler.metrics_listen` and runs until `shutdown`.
pub async fn run(
    config: Arc<Config>,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Before binding, so a bad schedule is the error reported, whatever the port.
    schedule::load(&config, &registry)?;
    let addr = config.scheduler.metrics_listen;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding scheduler metrics to {addr}"))?;
    serve(config, registry, listener, shutdown).await
}

/// Runs the scheduler, serving `/metrics` and `/healthz` on `listener`, until `shutdown`.
pub async fn serve(
    config: Arc<Config>,
    registry: Arc<Registry>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let schedules = schedule::load(&config, &registry)?;
    let metrics = SchedulerMetrics::new();
    let kafka_stats = sluice_core::kafka_stats::KafkaStats::new(&metrics.registry, "scheduler");
    let (leading_tx, leading_rx) = watch::channel(false);
    let status = Arc::new(OnceCell::new());
    let scheduler = Arc::new(ticker::Scheduler {
        topics: Topics::new(&config.topics),
        config: config.clone(),
        registry,
        schedules,
        metrics: metrics.clone(),
        kafka_stats: kafka_stats.clone(),
        status: status.clone(),
    });
    // Any task that fails stops the others: a scheduler that silently stopped electing or
    // firing is worse than one that exits and is restarted.
    let shutdown = shutdown.child_token();
    let mut tasks = JoinSet::new();

    let app = {
        let registry = metrics.registry.clone();
        Router::new()
            .route(
                "/metrics",
                get(move || async move { sluice_core::metrics::render(&registry) }),
            )
            .route("/healthz", get(|| async { "ok" }))
    };
    tracing::info!(addr = %listener.local_addr()?, schedules = scheduler.schedules.len(), "scheduler metrics listening");
    let server_shutdown = shutdown.clone();
    tasks.spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(server_shutdown.cancelled_owned())
            .await
            .context("serving scheduler metrics")
    });
    tasks.spawn(connect_status(config.clone(), status, shutdown.clone()));
    tasks.spawn(leader::elect(
        config.clone(),
        leading_tx,
        metrics.clone(),
        kafka_stats,
        shutdown.clone(),
    ));
    tasks.spawn(ticker::run(scheduler, leading_rx, shutdown.clone()));
    // Every replica moves delayed jobs: group `sluice.delays` shares the ladder's partitions.
    tasks.spawn(ladder::run(
        config.clone(),
        metrics.registry.clone(),
        shutdown.clone(),
    ));

    let mut first_error = None;
    while let Some(result) = tasks.join_next().await {
        let error = match result {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(e) => anyhow::Error::from(e).context("scheduler task panicked"),
        };
        tracing::error!(error = %format!("{error:#}"), "scheduler task failed; stopping");
        shutdown.cancel();
        first_error.get_or_insert(error);
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Connects to Redis for `queued` statuses, retrying until it answers: the scheduler fires
/// without it (status is a view for people, Kafka holds the jobs).
async fn connect_status(
    config: Arc<Config>,
    status: Arc<OnceCell<StatusStore>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut warned = false;
    loop {
        match StatusStore::connect(&config.redis).await {
            Ok(store) => {
                let _ = status.set(store);
                return Ok(());
            }
            Err(error) if !warned => {
                tracing::warn!(error = %error, url = %sluice_core::redact::url(&config.redis.url), "Redis unavailable: firing without job statuses until it answers");
                warned = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}
