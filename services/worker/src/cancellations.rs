//! The kind's cancelled jobs, as this worker knows them: every worker reads all of
//! `jobs.<kind>.cancel` (one partition, kept `redis.status_ttl`) into memory, from the beginning
//! before it takes any job, then follows it. A job is checked against this set before it runs —
//! a hash lookup, not a Redis round trip per job.
//!
//! A cancellation produced while a worker is already taking the job can miss it; the job then
//! runs and its status says so (`DELETE /v1/jobs/{id}` documents this, as Celery's revoke and
//! Sidekiq's cancellation do). Memory: one id per job cancelled within the retention.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use anyhow::Context;
use rdkafka::{
    consumer::{BaseConsumer, Consumer, StreamConsumer},
    Message, Offset, TopicPartitionList,
};
use sluice_core::{config::KafkaConfig, headers::now_millis, kafka::QuietContext};
use tokio_util::sync::CancellationToken;

/// Ids added between two prunes of entries older than the retention.
const PRUNE_EVERY: usize = 10_000;

pub struct Cancelled {
    /// Job id → when its cancellation was produced (ms).
    ids: RwLock<HashMap<String, i64>>,
    retention_ms: i64,
}

impl Cancelled {
    /// An empty set whose entries are forgotten `retention` after their cancellation.
    pub fn new(retention: Duration) -> Self {
        Self {
            ids: RwLock::new(HashMap::new()),
            retention_ms: i64::try_from(retention.as_millis()).unwrap_or(i64::MAX),
        }
    }

    pub fn contains(&self, job_id: &str) -> bool {
        // Every job checks; a write happens once per cancellation.
        self.ids
            .read()
            .expect("cancellations lock")
            .contains_key(job_id)
    }

    fn insert(&self, job_id: String, at: i64) {
        let mut ids = self.ids.write().expect("cancellations lock");
        ids.insert(job_id, at);
        if ids.len().is_multiple_of(PRUNE_EVERY) {
            let oldest = now_millis().saturating_sub(self.retention_ms);
            ids.retain(|_, at| *at >= oldest);
        }
    }

    /// Reads `topic` (one partition) from its beginning to its end into the set, then returns
    /// the task that follows it until `shutdown`. `None` when the topic cannot be read (missing:
    /// the caller's topic wait has named it already); the worker then runs without
    /// cancellations rather than not at all.
    pub async fn catch_up(
        self: &Arc<Self>,
        kafka: &KafkaConfig,
        group: &str,
        topic: &str,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Option<impl std::future::Future<Output = ()> + Send + 'static>> {
        let config = sluice_core::kafka::reader_config(kafka, group);
        let end = {
            let (config, topic) = (config.clone(), topic.to_owned());
            tokio::task::spawn_blocking(move || {
                let client: BaseConsumer<QuietContext> =
                    config.create_with_context(QuietContext)?;
                sluice_core::kafka::watermarks(client.client(), &topic, 0, Duration::from_secs(5))
            })
            .await?
        };
        let (low, high) = match end {
            Ok(marks) => marks,
            Err(e) => {
                tracing::warn!(%topic, error = %e, "cannot read cancellations; running without them");
                return Ok(None);
            }
        };
        let consumer: StreamConsumer<QuietContext> = config
            .create_with_context(QuietContext)
            .context("creating the cancellations reader")?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(topic, 0, Offset::Offset(low))
            .context("assigning the cancellations partition")?;
        consumer
            .assign(&assignment)
            .context("assigning the cancellations partition")?;
        // Caught up first: a cancelled job must not run because this worker had not read its
        // cancellation yet when it started.
        let mut next = low;
        while next < high {
            let message = tokio::select! {
                message = consumer.recv() => message.context("reading cancellations")?,
                () = shutdown.cancelled() => return Ok(None),
            };
            next = message.offset() + 1;
            self.add(&message);
        }
        tracing::debug!(topic, count = high - low, "cancellations loaded");
        let set = self.clone();
        Ok(Some(async move {
            loop {
                tokio::select! {
                    message = consumer.recv() => match message {
                        Ok(message) => set.add(&message),
                        Err(e) => tracing::warn!(error = %e, "reading cancellations failed; retrying"),
                    },
                    () = shutdown.cancelled() => return,
                }
            }
        }))
    }

    fn add(&self, message: &impl Message) {
        let Some(job_id) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            return;
        };
        let at = message.timestamp().to_millis().unwrap_or_else(now_millis);
        self.insert(job_id.to_owned(), at);
    }
}
