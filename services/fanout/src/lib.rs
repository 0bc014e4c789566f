//! The fan-out stream processor (role `fanout`): applies the social events of `sluice_feed` to
//! the follower graph and the feeds in Redis.

mod metrics;
mod processor;

use std::sync::Arc;

use anyhow::Context;
use axum::{routing::get, Router};
use sluice_core::{topics::Topics, Config};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use metrics::FanoutMetrics;
use processor::{FanoutContext, Processor};
use sluice_feed::graph;

/// Connects to Redis for the graph.
pub async fn connect_graph(config: &Config) -> anyhow::Result<graph::Graph> {
    let redis = sluice_core::redis_conn::connect(&config.redis)
        .await
        .with_context(|| {
            format!(
                "connecting to Redis at {}",
                sluice_core::redact::url(&config.redis.url)
            )
        })?;
    Ok(graph::Graph::new(
        redis,
        &config.redis.key_prefix,
        &config.social,
    ))
}

/// Binds `social.metrics_listen` and runs until `shutdown`.
pub async fn run(config: Arc<Config>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.social.metrics_listen)
        .await
        .with_context(|| format!("binding fanout metrics to {}", config.social.metrics_listen))?;
    serve(config, listener, shutdown).await
}

/// Runs the processor, serving `/metrics` and `/healthz` on `listener`, until `shutdown`.
pub async fn serve(
    config: Arc<Config>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let graph = connect_graph(&config).await?;
    let topics = Topics::new(&config.topics);
    let metrics = FanoutMetrics::new();
    let kafka_stats = sluice_core::kafka_stats::KafkaStats::new(&metrics.registry, "fanout");
    let consumer_for =
        |group: String, latency_bound: bool| -> anyhow::Result<processor::FanoutConsumer> {
            let mut consumer_config = sluice_core::kafka::consumer_config(
                &config.kafka,
                &group,
                config.worker.commit_interval,
            );
            if latency_bound {
                consumer_config
                    // A fetch waits at most this long for data (100 ms elsewhere): a post
                    // on a partition that was idle can wait behind one whole empty wait,
                    // most of the 100 ms budget from POST to the last feed written (the
                    // worker's lanes measured p99 109 ms at 100 ms, 38 ms at 20 ms). Costs
                    // up to 50 empty fetches a second when no one posts. (`kafka.properties`
                    // is applied after, and wins.)
                    .set("fetch.wait.max.ms", "20")
                    // librdkafka waits this long (default 1 s) before fetching again for a
                    // partition whose local queue was over `queued.min.messages`: after a
                    // burst of posts a partition could start again up to a second late.
                    .set("fetch.queue.backoff.ms", "10");
            }
            sluice_core::kafka::with_statistics(consumer_config, &config.kafka)
                .create_with_context(FanoutContext(kafka_stats.clone()))
                .with_context(|| format!("creating the fanout consumer of group {group}"))
        };
    let posts = consumer_for(topics.posts_group(), true)?;
    // Follows are bulk imports as often as clicks: a follow seen 100 ms later is not noticed.
    let follows = consumer_for(topics.follows_group(), false)?;
    let producer_config =
        sluice_core::kafka::producer_config(&config.kafka, std::time::Duration::from_secs(30));
    let producer: rdkafka::producer::FutureProducer<_> =
        sluice_core::kafka::with_statistics(producer_config, &config.kafka)
            .create_with_context(sluice_core::kafka_stats::StatsContext(kafka_stats))
            .context("creating the dead-letter producer")?;
    let registry = metrics.registry.clone();
    let app = Router::new()
        .route(
            "/metrics",
            get(move || async move { sluice_core::metrics::render(&registry) }),
        )
        .route("/healthz", get(|| async { "ok" }));
    tracing::info!(addr = %listener.local_addr()?, "fanout metrics listening");
    let server_shutdown = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(server_shutdown.cancelled_owned())
            .await
    });
    let processor = Arc::new(Processor {
        producer: producer.clone(),
        graph,
        topics,
        kafka: config.kafka.clone(),
        metrics,
        shutdown: shutdown.clone(),
    });
    let result = processor.run(posts, follows).await;
    shutdown.cancel();
    server.await?.context("serving fanout metrics")?;
    tokio::task::spawn_blocking(move || {
        rdkafka::producer::Producer::flush(&producer, std::time::Duration::from_secs(10))
    })
    .await?
    .context("flushing the fanout producer")?;
    result
}
