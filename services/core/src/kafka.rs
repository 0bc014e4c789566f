//! Kafka client settings in one place, so every role agrees on the delivery guarantees
//! (docs/architecture.md §6) and every client the binary creates — producers, consumers, offset
//! readers, admin clients — gets `kafka.properties` (SASL, TLS, ...) applied last.
//!
//! Also the bounded waits a fresh topic needs: right after creation a topic may have no leader
//! yet, and metadata or watermark reads fail with `NotLeaderForPartition` for a moment.

use std::time::{Duration, Instant};

use rdkafka::{
    client::Client,
    config::ClientConfig,
    consumer::ConsumerContext,
    error::{KafkaError, KafkaResult},
    producer::ProducerContext,
    statistics::Statistics,
    types::RDKafkaErrorCode,
    ClientContext,
};

use crate::config::KafkaConfig;

pub(crate) fn base(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("client.id", &kafka.client_id);
    config
}

pub(crate) fn with_overrides(mut config: ClientConfig, kafka: &KafkaConfig) -> ClientConfig {
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config
}

/// Turns on librdkafka's statistics (once per scrape interval) for a client whose context turns
/// them into `sluice_kafka_*` metrics. Clients without such a context leave them off.
pub fn with_statistics(mut config: ClientConfig, kafka: &KafkaConfig) -> ClientConfig {
    config.set("statistics.interval.ms", "15000");
    with_overrides(config, kafka)
}

/// A producer that never loses an acknowledged record and never reorders or duplicates on retry:
/// acks=all with idempotence. `delivery_timeout` bounds how long a record may wait for the broker
/// before its delivery fails (the API answers 503 then, instead of hanging for librdkafka's
/// default 300 s).
pub fn producer_config(kafka: &KafkaConfig, delivery_timeout: Duration) -> ClientConfig {
    let mut config = base(kafka);
    config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        // Java's partitioner, so keys land where Java and Python producers put them.
        .set("partitioner", "murmur2_random")
        // 5 ms lets concurrent requests share a batch at a cost far below an HTTP round trip.
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            delivery_timeout.as_millis().to_string(),
        );
    with_overrides(config, kafka)
}

/// A consumer for at-least-once processing: offsets are stored by the application only after a
/// job's outcome is durable, and the stored offsets are committed in the background.
pub fn consumer_config(
    kafka: &KafkaConfig,
    group: &str,
    commit_interval: Duration,
) -> ClientConfig {
    let mut config = base(kafka);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.commit.interval.ms",
            commit_interval.as_millis().to_string(),
        )
        .set("auto.offset.reset", "earliest")
        // Jobs are latency-sensitive: wait at most 100 ms for a fetch to fill instead of 500 ms.
        .set("fetch.wait.max.ms", "100")
        // A crashed worker's partitions move to the survivors after 10 s instead of 45 s.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "3000");
    with_overrides(config, kafka)
}

/// A client that reads without joining a group: topics by `assign()`, a group's committed
/// offsets, watermarks, metadata. `group` is only the group whose offsets it may read; it never
/// subscribes or commits, so it never becomes a member.
pub fn reader_config(kafka: &KafkaConfig, group: &str) -> ClientConfig {
    let mut config = base(kafka);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    with_overrides(config, kafka)
}

/// Logs what librdkafka reports about a client. Its transport errors are reports, not failures:
/// it reconnects by itself. A subscribed topic that does not exist is a setup error that names
/// the command that fixes it.
pub fn log_client_error(error: &KafkaError, reason: &str) {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::UnknownTopicOrPartition) => tracing::error!(
            error = %error,
            reason,
            "a topic this client needs does not exist; create it with `sluice topics ensure`"
        ),
        // Down or unreachable brokers: librdkafka keeps retrying and says so when it recovers.
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::Resolve,
        ) => tracing::warn!(error = %error, reason, "Kafka unreachable; librdkafka retries"),
        _ => tracing::error!(error = %error, reason, "librdkafka reported an error"),
    }
}

/// The context of clients that export no statistics: errors logged by `log_client_error`,
/// statistics (should `kafka.properties` turn them on) dropped instead of logged at INFO.
#[derive(Clone, Copy, Default)]
pub struct QuietContext;

impl ClientContext for QuietContext {
    fn stats(&self, _: Statistics) {}

    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(&error, reason);
    }
}

impl ConsumerContext for QuietContext {}

impl ProducerContext for QuietContext {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: ()) {}
}

/// Errors that go away by themselves shortly after a topic is created or a leader moves.
fn is_transient(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::NotCoordinator
                | RDKafkaErrorCode::CoordinatorLoadInProgress
                | RDKafkaErrorCode::CoordinatorNotAvailable
        )
    )
}

/// Runs `attempt` until it succeeds, fails with a lasting error, or `bound` passes (then the last
/// transient error is returned).
fn retry_transient<T>(
    bound: Duration,
    mut attempt: impl FnMut() -> KafkaResult<T>,
) -> KafkaResult<T> {
    let deadline = Instant::now() + bound;
    let mut pause = Duration::from_millis(50);
    loop {
        match attempt() {
            Err(e) if is_transient(&e) && Instant::now() + pause < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            result => return result,
        }
    }
}

/// The partition ids of `topic`, once every partition has a leader. Blocks up to `bound`; a
/// topic that does not exist (or has a leaderless partition) after it is an error.
pub fn partitions<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    bound: Duration,
) -> KafkaResult<Vec<i32>> {
    retry_transient(bound, || {
        let metadata = client.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::UnknownTopicOrPartition,
            ));
        };
        if let Some(code) = found.error() {
            return Err(KafkaError::MetadataFetch(code.into()));
        }
        if found.partitions().is_empty() {
            return Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::UnknownTopicOrPartition,
            ));
        }
        if let Some(p) = found
            .partitions()
            .iter()
            .find(|p| p.leader() < 0 || p.error().is_some())
        {
            let code = p
                .error()
                .map_or(RDKafkaErrorCode::LeaderNotAvailable, Into::into);
            return Err(KafkaError::MetadataFetch(code));
        }
        Ok(found.partitions().iter().map(|p| p.id()).collect())
    })
}

/// Low and high watermark of one partition, retrying the errors of a partition whose leader is
/// not ready yet for up to `bound`.
pub fn watermarks<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    partition: i32,
    bound: Duration,
) -> KafkaResult<(i64, i64)> {
    retry_transient(bound, || {
        client.fetch_watermarks(topic, partition, Duration::from_secs(5))
    })
}

/// The names among `topics` that do not exist (or have a partition without a leader) after
/// waiting up to `bound` for them.
fn missing_topics<C: ClientContext>(
    client: &Client<C>,
    topics: &[String],
    bound: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + bound;
    topics
        .iter()
        .filter(|topic| {
            let left = deadline.saturating_duration_since(Instant::now());
            partitions(client, topic, left.max(Duration::from_millis(1))).is_err()
        })
        .cloned()
        .collect()
}

/// Waits (bounded by `kafka.topic_wait`) until `topics` exist, so a consumer started right after
/// `sluice topics ensure` does not report them missing; logs one ERROR naming those still
/// missing after the bound (the consumer goes on: librdkafka picks them up once they exist).
/// Returns false when `shutdown` came first. `owner` says who waits, for the log line.
pub async fn wait_for_topics(
    kafka: &KafkaConfig,
    topics: &[String],
    owner: &str,
    shutdown: &tokio_util::sync::CancellationToken,
) -> bool {
    let (config, wanted, bound) = (
        with_overrides(base(kafka), kafka),
        topics.to_vec(),
        kafka.topic_wait,
    );
    let check = tokio::task::spawn_blocking(move || {
        match config
            .create_with_context::<_, rdkafka::consumer::BaseConsumer<QuietContext>>(QuietContext)
        {
            Ok(client) => {
                missing_topics(rdkafka::consumer::Consumer::client(&client), &wanted, bound)
            }
            // The consumer itself is built from the same settings and reports the problem.
            Err(_) => Vec::new(),
        }
    });
    let missing = tokio::select! {
        _ = shutdown.cancelled() => return false,
        missing = check => missing.unwrap_or_default(),
    };
    if !missing.is_empty() {
        tracing::error!(
            owner,
            missing = %missing.join(","),
            waited = ?bound,
            "topics do not exist; create them with `sluice topics ensure` (consuming the others meanwhile)"
        );
    }
    true
}
