//! Kafka client settings in one place, so every role agrees on the guarantees of DESIGN.md §8.

use std::time::Duration;

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    config::ClientConfig,
    error::KafkaError,
    types::RDKafkaErrorCode,
};

use crate::{config::KafkaConfig, topics::TopicSpec};

fn base(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("client.id", &kafka.client_id)
        // librdkafka's statistics feed the sluice_kafka_* metrics; once per scrape interval.
        .set("statistics.interval.ms", "15000");
    config
}

fn with_overrides(mut config: ClientConfig, kafka: &KafkaConfig) -> ClientConfig {
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config
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

/// Creates the topics that do not exist yet; existing ones are left alone.
/// Returns the names that were created.
pub async fn ensure_topics(
    kafka: &KafkaConfig,
    replication_factor: i32,
    specs: &[TopicSpec],
) -> Result<Vec<String>, KafkaError> {
    let admin: AdminClient<DefaultClientContext> = with_overrides(base(kafka), kafka).create()?;
    let new_topics: Vec<NewTopic> = specs
        .iter()
        .map(|spec| {
            let topic = NewTopic::new(
                &spec.name,
                spec.partitions,
                TopicReplication::Fixed(replication_factor),
            );
            if spec.compacted {
                topic.set("cleanup.policy", "compact")
            } else {
                topic
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let mut created = Vec::new();
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaError::AdminOp(code)).inspect_err(|_| {
                    tracing::error!(topic = %name, error = %code, "topic creation failed");
                })
            }
        }
    }
    Ok(created)
}
