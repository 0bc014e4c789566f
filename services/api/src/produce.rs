//! Producing one record for a request: acks=all, bounded by `api.publish_timeout`, failures
//! counted by reason. Jobs and social events share it, so both give 503 the same way.

use std::time::Duration;

use rdkafka::{
    error::KafkaError, message::OwnedHeaders, producer::FutureRecord, types::RDKafkaErrorCode,
    util::Timeout,
};

use crate::{error::ApiError, state::AppState};

/// What is being produced: the metric label and the words of the 503.
pub struct Produced<'a> {
    /// `kind` label of `sluice_publish_failures_total`: the job kind, or `social`.
    pub label: &'a str,
    /// The client's 503 message.
    pub unavailable: &'a str,
}

/// Produces and waits for Kafka's acknowledgement; 503 if it does not come within the bound.
pub async fn produce(
    state: &AppState,
    what: Produced<'_>,
    topic: &str,
    key: &str,
    value: &[u8],
    headers: OwnedHeaders,
) -> Result<(), ApiError> {
    let record = FutureRecord::to(topic)
        .key(key)
        .payload(value)
        .headers(headers);
    let bound = state.config.api.publish_timeout;
    // librdkafka fails the delivery after `message.timeout.ms` (= publish_timeout); the outer
    // timeout only guards against a delivery report that never comes.
    let delivery = tokio::time::timeout(
        bound + Duration::from_secs(1),
        state.producer.send(record, Timeout::After(bound)),
    )
    .await;
    let reason = match delivery {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err((error, _))) => classify(&error),
        Err(_) => "timeout",
    };
    state
        .metrics
        .publish_failures
        .with_label_values(&[what.label, reason])
        .inc();
    tracing::warn!(%topic, reason, "Kafka did not acknowledge a record");
    Err(ApiError::Unavailable(what.unavailable.to_owned()))
}

/// Reasons are a small fixed set: they become metric labels.
fn classify(error: &KafkaError) -> &'static str {
    match error.rdkafka_error_code() {
        // The broker did not acknowledge within message.timeout.ms: down or partitioned away.
        Some(RDKafkaErrorCode::MessageTimedOut) => "timeout",
        // librdkafka's local queue is full: we are producing faster than the broker takes.
        Some(RDKafkaErrorCode::QueueFull) => "queue_full",
        // The record is over the broker's or topic's size limit.
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => "too_large",
        // Anything else the broker or client reported.
        _ => "kafka",
    }
}
