//! The sluice HTTP API (docs/architecture.md §5): accepts jobs in milliseconds and answers 202
//! only after Kafka acknowledged them; reports job status from Redis.

mod auth;
mod console;
mod consumers;
mod dlq;
mod error;
mod files;
mod health;
mod hooks;
mod jobs;
mod metrics;
pub mod openapi;
mod produce;
mod queue;
mod social;
mod state;
mod uploads;
mod wait;

use std::sync::Arc;

use anyhow::Context;
use axum::{
    extract::DefaultBodyLimit,
    handler::Handler,
    middleware,
    routing::{delete, get, post},
    Router,
};
use rdkafka::producer::Producer;
use sluice_core::{status::StatusStore, topics::Topics, Config};
use sluice_kinds::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::Scope;
pub use error::ApiError;
pub use metrics::ApiMetrics;
pub use state::AppState;

/// The routes, for `run` and for tests that drive the router directly.
///
/// Which scope a `/v1` route needs is declared here, by the group it is in; every path under
/// `/v1/` needs a known token whatever its group (`auth`). One path may be in several groups,
/// one method each (`/v1/jobs/…`: POST publishes, GET reads, DELETE cancels).
pub fn app(state: AppState) -> Router {
    let publish = Router::new()
        // One pattern for POST and GET: POST names a kind, GET and DELETE name a job id.
        .route("/v1/jobs/{kind_or_id}", post(jobs::create))
        .route("/v1/posts", post(social::create_post))
        .route("/v1/follows", post(social::follow).delete(social::unfollow))
        .route(
            "/v1/uploads/images",
            // Streamed to storage and counted against api.upload_limit_bytes there.
            post(uploads::create).layer(DefaultBodyLimit::disable()),
        )
        .route_layer(middleware::from_fn_with_state(
            Scope::Publish,
            auth::require,
        ));
    let read = Router::new()
        .route("/v1/jobs/{kind_or_id}", get(jobs::get))
        .route("/v1/feed/{user_id}", get(social::feed))
        .route("/v1/queue/stats", get(queue::stats))
        .route("/v1/queue/consumers", get(consumers::list))
        .route("/v1/dlq/{kind}", get(dlq::list))
        .route("/v1/uploads/images/{job_id}", get(uploads::get))
        .route_layer(middleware::from_fn_with_state(Scope::Read, auth::require));
    let admin = Router::new()
        .route("/v1/jobs/{kind_or_id}", delete(jobs::cancel))
        .route("/v1/dlq/{kind}/replay", post(dlq::replay))
        .route_layer(middleware::from_fn_with_state(Scope::Admin, auth::require));
    // Open: probes, scrapes and the document; stored files are public URLs, like a CDN's
    // (their keys hold an unguessable job id; README "API tokens").
    let mut open = Router::new()
        .route("/files/{*key}", get(files::get))
        // Incoming webhooks are authenticated by their signatures, not by API tokens.
        .route("/v1/hooks/{source}", post(hooks::receive))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(health::openapi));
    if state.config.api.metrics_listen.is_none() {
        open = open.route("/metrics", get(health::metrics));
    }
    let authenticate = middleware::from_fn_with_state(state.auth.clone(), auth::authenticate);
    let not_found = || async { ApiError::NotFound("no such route".into()) };
    Router::new()
        .merge(publish)
        .merge(read)
        .merge(admin)
        .merge(open)
        .merge(console::routes(&state))
        // Unknown paths under /v1 too: a stranger learns nothing about which exist.
        .fallback(not_found.layer(authenticate.clone()))
        .layer(DefaultBodyLimit::max(state.config.api.body_limit_bytes))
        // Inside `track`, so refusals are counted per route like any other answer.
        .route_layer(authenticate)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// Connects to Kafka and Redis and builds the shared state.
pub async fn state(config: Arc<Config>, registry: Arc<Registry>) -> anyhow::Result<AppState> {
    let metrics = ApiMetrics::new();
    let kafka_stats = sluice_core::kafka_stats::KafkaStats::new(&metrics.registry, "api");
    let producer_config =
        sluice_core::kafka::producer_config(&config.kafka, config.api.publish_timeout);
    let producer = sluice_core::kafka::with_statistics(producer_config, &config.kafka)
        .create_with_context(sluice_core::kafka_stats::StatsContext(kafka_stats))
        .context("creating the Kafka producer")?;
    let status = StatusStore::connect(&config.redis).await.with_context(|| {
        format!(
            "connecting to Redis at {}",
            sluice_core::redact::url(&config.redis.url)
        )
    })?;
    let dlq = sluice_dlq::Dlq::new(&config, registry.clone())
        .context("creating the dead-letter client")?;
    let graph = sluice_feed::graph::Graph::new(
        status.connection(),
        &config.redis.key_prefix,
        &config.social,
    );
    let stats = sluice_stats::StatsReader::new(&config, registry.clone())
        .context("creating the queue-health reader")?;
    let queue_metrics = queue::QueueMetrics::new(&metrics.registry);
    let hooks = hooks::Hooks::load(&config, &registry, status.connection(), &metrics.registry)
        .context("checking [hooks]")?;
    let storage =
        sluice_storage::Storage::open(&config.storage).context("opening object storage")?;
    tracing::info!(
        location = storage.location(),
        "uploads are stored in object storage"
    );
    let auth = auth::Tokens::new(&config.api.tokens, &metrics.registry);
    if auth.is_empty() {
        tracing::warn!(
            "no API tokens are configured ([api.tokens.<name>]): every /v1 call will answer 401; \
             make one with `sluice tokens new --name <name> --scope publish,read`"
        );
    }
    Ok(AppState::new(state::Shared {
        auth: Arc::new(auth),
        storage,
        stats: Arc::new(stats),
        queue_metrics,
        waiters: wait::JobWaiters::default(),
        hooks,
        openapi: openapi::document(&registry).to_string(),
        graph,
        dlq,
        topics: Topics::new(&config.topics),
        registry,
        producer,
        status,
        metrics,
        config,
    }))
}

/// Serves the API on `listener` until `shutdown` is cancelled, then flushes the producer.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let producer = state.producer.clone();
    let addr = listener.local_addr()?;
    let exporter = tokio::spawn(queue::export(
        state.stats.clone(),
        state.queue_metrics.clone(),
        state.config.api.queue_stats_interval,
        shutdown.clone(),
    ));
    let waiters = tokio::spawn(state.waiters.clone().listen(
        state.config.redis.clone(),
        state.status.final_channel(),
        shutdown.clone(),
    ));
    let metrics = match state.config.api.metrics_listen {
        Some(metrics_addr) => {
            let metrics_listener = TcpListener::bind(metrics_addr).await.with_context(|| {
                format!("binding the api's metrics to {metrics_addr} (api.metrics_listen)")
            })?;
            tracing::info!(addr = %metrics_listener.local_addr()?, "api metrics listening");
            let routes = Router::new()
                .route("/metrics", get(health::metrics))
                .route("/healthz", get(health::healthz))
                .with_state(state.clone());
            let stop = shutdown.clone().cancelled_owned();
            Some(tokio::spawn(async move {
                axum::serve(metrics_listener, routes)
                    .with_graceful_shutdown(stop)
                    .await
            }))
        }
        None => None,
    };
    tracing::info!(%addr, "api listening");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("serving HTTP")?;
    exporter.abort();
    let _ = waiters.await;
    if let Some(metrics) = metrics {
        metrics.await?.context("serving the api's metrics")?;
    }
    // In-flight requests have completed; anything librdkafka still holds gets a chance to go out.
    tokio::task::spawn_blocking(move || producer.flush(std::time::Duration::from_secs(10)))
        .await?
        .context("flushing the producer")?;
    tracing::info!("api stopped");
    Ok(())
}

/// Binds `api.listen` and serves until `shutdown`.
pub async fn run(
    config: Arc<Config>,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("binding the api to {}", config.api.listen))?;
    let state = state(config, registry).await?;
    serve(listener, state, shutdown).await
}
