//! The fan-out processor: one consumer group on `social.posts`, another on `social.follows`.
//!
//! Guarantee: at-least-once, with an exactly-once effect because every Redis write is idempotent.
//! Each consumer applies what one poll returned (up to a batch), then stores the batch's offsets;
//! a batch is stored only after all its writes succeeded. When Redis fails, the batch is retried
//! with backoff (no further records are read meanwhile) until Redis answers or the process is
//! asked to stop, in which case its offsets are not stored and it is read again on restart.
//!
//! Posts and follows are consumed separately so that a bulk import of follows (a backlog of
//! millions, say) never holds back other authors' posts. Nothing relies on the order between the
//! two topics: a follow backfills the author's recent posts and an unfollow removes them, so a
//! post applied before or after a follow of the same moment ends up the same (docs/architecture.md
//! §8 has the cases).

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use futures::{FutureExt, StreamExt};
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
    events::{FollowChanged, PostCreated},
    graph::{Graph, Mode},
};

use crate::metrics::FanoutMetrics;

/// Records applied per batch at most: follow changes share a few Redis round trips per batch.
const MAX_BATCH: usize = 5000;
/// Posts of one batch fanned out at once (each is one author's fan-out).
const POSTS_IN_FLIGHT: usize = 8;

/// Commits synchronously when partitions are revoked: a batch's offsets are stored only once it
/// is applied, so at that moment everything stored is done.
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

pub type FanoutConsumer = StreamConsumer<FanoutContext>;

/// Which of the two social streams a consumer applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Posts,
    Follows,
}

impl Stream {
    fn event(self) -> &'static str {
        match self {
            Stream::Posts => "post",
            Stream::Follows => "follow",
        }
    }
}

pub struct Processor {
    pub producer: FutureProducer<sluice_core::kafka_stats::StatsContext>,
    pub graph: Graph,
    pub topics: Topics,
    /// For the start-up wait for the social topics.
    pub kafka: sluice_core::config::KafkaConfig,
    pub metrics: FanoutMetrics,
    pub shutdown: CancellationToken,
}

impl Processor {
    /// Runs both consumers until shutdown.
    pub async fn run(
        self: Arc<Self>,
        posts: FanoutConsumer,
        follows: FanoutConsumer,
    ) -> anyhow::Result<()> {
        let wanted = [self.topics.posts(), self.topics.follows()];
        if !sluice_core::kafka::wait_for_topics(&self.kafka, &wanted, "fanout", &self.shutdown)
            .await
        {
            return Ok(());
        }
        // Tasks of their own: a big follow batch being built never delays a post on this thread.
        let posts = tokio::spawn(self.clone().consume(posts, Stream::Posts));
        let follows = tokio::spawn(self.clone().consume(follows, Stream::Follows));
        let (posts, follows) = tokio::join!(posts, follows);
        posts.context("the posts consumer panicked")??;
        follows.context("the follows consumer panicked")?
    }

    async fn consume(
        self: Arc<Self>,
        consumer: FanoutConsumer,
        stream: Stream,
    ) -> anyhow::Result<()> {
        let topic = match stream {
            Stream::Posts => self.topics.posts(),
            Stream::Follows => self.topics.follows(),
        };
        if let Err(e) = consumer.subscribe(&[&topic]) {
            // The other consumer stops too: the role fails as a whole.
            self.shutdown.cancel();
            return Err(e).with_context(|| format!("subscribing to {topic}"));
        }
        tracing::info!(%topic, "fanout consuming");
        let mut batch: Vec<OwnedMessage> = Vec::with_capacity(MAX_BATCH);
        loop {
            let received = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                received = consumer.recv() => received.map(|m| m.detach()),
            };
            match received {
                Ok(message) => batch.push(message),
                Err(e) => {
                    tracing::warn!(error = %e, "consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
            // Everything already fetched joins the batch, without waiting for more.
            while batch.len() < MAX_BATCH {
                match consumer.recv().now_or_never() {
                    Some(Ok(message)) => batch.push(message.detach()),
                    _ => break,
                }
            }
            let done = match stream {
                Stream::Posts => self.apply_posts(&batch).await,
                Stream::Follows => self.apply_follows(&batch).await,
            };
            if !done {
                break;
            }
            store_offsets(&consumer, &batch);
            batch.clear();
        }
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {}
            Err(e) => tracing::debug!(error = %e, "final commit"),
        }
        consumer.unsubscribe();
        tracing::info!(%topic, "fanout stopped");
        Ok(())
    }

    /// Fans out a batch of posts, a few authors at once. Returns false only when asked to stop
    /// before every post was applied.
    async fn apply_posts(&self, batch: &[OwnedMessage]) -> bool {
        let posts: Vec<_> = batch
            .iter()
            .map(|message| self.apply_one_post(message))
            .collect();
        let applied = futures::stream::iter(posts)
            .buffer_unordered(POSTS_IN_FLIGHT)
            .fold(true, |all, done| async move { all && done })
            .await;
        applied && !self.shutdown.is_cancelled()
    }

    async fn apply_one_post(&self, message: &OwnedMessage) -> bool {
        match PostCreated::decode(message.payload().unwrap_or_default()) {
            Ok(post) => self.with_retries(|| self.apply_post(&post)).await,
            Err(e) => {
                self.dead_letter(message, Stream::Posts, &e.to_string())
                    .await
            }
        }
    }

    /// Applies a batch of follow changes together; unreadable ones are dead-lettered first.
    async fn apply_follows(&self, batch: &[OwnedMessage]) -> bool {
        let mut changes = Vec::with_capacity(batch.len());
        for message in batch {
            match FollowChanged::decode(message.payload().unwrap_or_default()) {
                Ok(change) => changes.push(change),
                Err(e) => {
                    if !self
                        .dead_letter(message, Stream::Follows, &e.to_string())
                        .await
                    {
                        return false;
                    }
                }
            }
        }
        self.with_retries(|| async {
            let applied = self.graph.apply_follows(&changes).await?;
            let counts = &self.metrics.follow_changes;
            counts
                .with_label_values(&["follow"])
                .inc_by(applied.follows);
            counts
                .with_label_values(&["unfollow"])
                .inc_by(applied.unfollows);
            self.metrics.follow_batches.inc();
            Ok(())
        })
        .await
    }

    /// Runs `write` until it succeeds, backing off while Redis fails. Returns false only when
    /// asked to stop first.
    async fn with_retries<F, Fut>(&self, write: F) -> bool
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<()>>,
    {
        let mut backoff = Duration::from_millis(100);
        loop {
            match write().await {
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
        let (mode, delivery) = self.graph.apply_post(post).await?;
        self.metrics.posts.with_label_values(&[mode.as_str()]).inc();
        if mode == Mode::Push {
            let source = if delivery.cached_followers {
                "cache"
            } else {
                "redis"
            };
            self.metrics
                .follower_lists
                .with_label_values(&[source])
                .inc();
        }
        self.metrics.deliveries.inc_by(delivery.feeds);
        let seconds = (now_millis() - post.created_at).max(0) as f64 / 1000.0;
        self.metrics.duration_seconds.observe(seconds);
        Ok(())
    }

    /// An event that cannot be read goes, bytes intact, to `<topic>.dlq`; the processor moves on.
    async fn dead_letter(&self, message: &OwnedMessage, stream: Stream, error: &str) -> bool {
        let event = stream.event();
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

/// Stores, per partition, the offset after the batch's last record there.
fn store_offsets(consumer: &FanoutConsumer, batch: &[OwnedMessage]) {
    let mut next: std::collections::HashMap<(&str, i32), i64> = std::collections::HashMap::new();
    for message in batch {
        let entry = next
            .entry((message.topic(), message.partition()))
            .or_default();
        *entry = (*entry).max(message.offset() + 1);
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        let _ = list.add_partition_offset(topic, partition, Offset::Offset(offset));
    }
    if let Err(e) = consumer.store_offsets(&list) {
        tracing::debug!(error = %e, "offsets not stored (partition revoked)");
    }
}
