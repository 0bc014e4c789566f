//! The fan-out processor: one consumer group over `social.posts` and `social.follows`.
//!
//! Guarantee: at-least-once, with an exactly-once effect because every Redis write is idempotent.
//! Records are applied one at a time, in order, and a record's offset is stored only after its
//! writes succeeded. When Redis fails, the same record is retried with backoff (no further
//! records are read meanwhile) until Redis answers or the process is asked to stop, in which case
//! the record's offset is not stored and it is read again on restart.
//!
//! The two topics are co-partitioned and assigned with the range assignor, so the instance that
//! owns an author's posts also owns that author's follower changes. The order between the two
//! topics is not relied on: a follow backfills the author's recent posts and an unfollow removes
//! them, so a post processed before or after a follow of the same moment ends up the same.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer},
    message::{Message, OwnedMessage},
    producer::{FutureProducer, FutureRecord},
    util::Timeout,
    ClientContext, Offset, TopicPartitionList,
};
use sluice_core::{
    headers::{self, now_millis},
    topics::Topics,
};
use tokio_util::sync::CancellationToken;

use sluice_feed::{
    events::{FollowAction, FollowChanged, PostCreated},
    graph::Graph,
};

use crate::metrics::FanoutMetrics;

/// Commits synchronously when partitions are revoked: records are applied one at a time, so
/// at that moment everything stored is done.
pub struct FanoutContext(pub sluice_core::kafka_stats::KafkaStats);

impl ClientContext for FanoutContext {
    fn stats(&self, statistics: rdkafka::statistics::Statistics) {
        self.0.record(&statistics);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        sluice_core::kafka::log_client_error(&error, reason);
    }
}

impl ConsumerContext for FanoutContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %e, "commit on revocation");
            }
        }
    }
}

pub struct Processor {
    pub consumer: StreamConsumer<FanoutContext>,
    pub producer: FutureProducer<sluice_core::kafka_stats::StatsContext>,
    pub graph: Graph,
    pub topics: Topics,
    /// For the start-up wait for the social topics.
    pub kafka: sluice_core::config::KafkaConfig,
    pub metrics: FanoutMetrics,
    pub shutdown: CancellationToken,
}

enum Event {
    Post(PostCreated),
    Follow(FollowChanged),
}

impl Processor {
    pub async fn run(self: Arc<Self>) -> anyhow::Result<()> {
        let (posts, follows) = (self.topics.posts(), self.topics.follows());
        let wanted = [posts.clone(), follows.clone()];
        if !sluice_core::kafka::wait_for_topics(&self.kafka, &wanted, "fanout", &self.shutdown)
            .await
        {
            return Ok(());
        }
        self.consumer
            .subscribe(&[&posts, &follows])
            .context("subscribing to the social topics")?;
        tracing::info!(%posts, %follows, "fanout consuming");
        loop {
            let received = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                received = self.consumer.recv() => received.map(|m| m.detach()),
            };
            let message = match received {
                Ok(message) => message,
                Err(e) => {
                    tracing::warn!(error = %e, "consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let event = if message.topic() == posts {
                PostCreated::decode(message.payload().unwrap_or_default()).map(Event::Post)
            } else {
                FollowChanged::decode(message.payload().unwrap_or_default()).map(Event::Follow)
            };
            let done = match event {
                Ok(event) => self.apply_with_retries(&event).await,
                Err(e) => self.dead_letter(&message, &e.to_string()).await,
            };
            if !done {
                break;
            }
            let mut list = TopicPartitionList::new();
            let _ = list.add_partition_offset(
                message.topic(),
                message.partition(),
                Offset::Offset(message.offset() + 1),
            );
            if let Err(e) = self.consumer.store_offsets(&list) {
                tracing::debug!(error = %e, "offset not stored (partition revoked)");
            }
        }
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {}
            Err(e) => tracing::debug!(error = %e, "final commit"),
        }
        self.consumer.unsubscribe();
        tracing::info!("fanout stopped");
        Ok(())
    }

    /// Applies an event, retrying Redis failures with backoff. Returns false only when asked to
    /// stop before the event could be applied.
    async fn apply_with_retries(&self, event: &Event) -> bool {
        let mut backoff = Duration::from_millis(100);
        loop {
            let result = match event {
                Event::Post(post) => self.apply_post(post).await,
                Event::Follow(change) => self.graph.apply_follow(change).await.map(|()| {
                    let action = match change.action {
                        FollowAction::Follow => "follow",
                        FollowAction::Unfollow => "unfollow",
                    };
                    self.metrics
                        .follow_changes
                        .with_label_values(&[action])
                        .inc();
                }),
            };
            match result {
                Ok(()) => return true,
                Err(e) => {
                    self.metrics.redis_retries.inc();
                    tracing::warn!(error = %e, retry_in = ?backoff, "Redis write failed; not consuming until it succeeds");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return false,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn apply_post(&self, post: &PostCreated) -> redis::RedisResult<()> {
        let (mode, delivered) = self.graph.apply_post(post).await?;
        self.metrics.posts.with_label_values(&[mode.as_str()]).inc();
        self.metrics.deliveries.inc_by(delivered);
        let seconds = (now_millis() - post.created_at).max(0) as f64 / 1000.0;
        self.metrics.duration_seconds.observe(seconds);
        Ok(())
    }

    /// An event that cannot be read goes, bytes intact, to `<topic>.dlq`; the processor moves on.
    async fn dead_letter(&self, message: &OwnedMessage, error: &str) -> bool {
        let event = if message.topic() == self.topics.posts() {
            "post"
        } else {
            "follow"
        };
        tracing::warn!(topic = message.topic(), offset = message.offset(), %error, "unreadable social event; dead-lettering");
        let topic = format!("{}.dlq", message.topic());
        let (partition, offset, dead_at) = (
            message.partition().to_string(),
            message.offset().to_string(),
            now_millis().to_string(),
        );
        let mut backoff = Duration::from_millis(100);
        loop {
            let record_headers = headers::copy_except(message.headers(), &[])
                .insert(headers::str_header(headers::ERROR, error))
                .insert(headers::str_header(headers::ERROR_CLASS, "decode"))
                .insert(headers::str_header(
                    headers::ORIGINAL_TOPIC,
                    message.topic(),
                ))
                .insert(headers::str_header(headers::ORIGINAL_PARTITION, &partition))
                .insert(headers::str_header(headers::ORIGINAL_OFFSET, &offset))
                .insert(headers::str_header(headers::DEAD_AT, &dead_at));
            let mut record = FutureRecord::to(&topic)
                .payload(message.payload().unwrap_or_default())
                .headers(record_headers);
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            match self
                .producer
                .send(record, Timeout::After(Duration::from_secs(5)))
                .await
            {
                Ok(_) => {
                    self.metrics.dead_letters.with_label_values(&[event]).inc();
                    return true;
                }
                Err((e, _)) => {
                    tracing::warn!(%topic, error = %e, "dead-letter write failed; retrying");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return false,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}
