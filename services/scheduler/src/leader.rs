//! Leader election through Kafka: every replica is a member of the scheduler group subscribed to
//! the one-partition leader topic; the member that owns partition 0 is the leader. Nothing is
//! ever written to that topic: the group coordinator's assignment is the whole mechanism.
//!
//! Leadership is only a hint for who should fire: exactly-once rests on the transactional
//! producer (`fire`), whose one shared `transactional.id` fences any previous leader.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use rdkafka::{
    consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer},
    ClientContext, TopicPartitionList,
};
use sluice_core::{kafka_stats::KafkaStats, topics::Topics, Config};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::SchedulerMetrics;

/// The leader partition.
const PARTITION: i32 = 0;

pub struct LeaderContext {
    topic: String,
    leading: watch::Sender<bool>,
    metrics: SchedulerMetrics,
    kafka_stats: KafkaStats,
}

impl LeaderContext {
    fn holds_leader(&self, list: &TopicPartitionList) -> bool {
        list.elements()
            .iter()
            .any(|e| e.topic() == self.topic && e.partition() == PARTITION)
    }

    fn set(&self, leading: bool) {
        self.metrics.leader.set(i64::from(leading));
        let changed = self.leading.send_if_modified(|now| {
            let changed = *now != leading;
            *now = leading;
            changed
        });
        if changed {
            tracing::info!(leading, "scheduler leadership changed");
        }
    }
}

impl ClientContext for LeaderContext {
    fn stats(&self, statistics: rdkafka::statistics::Statistics) {
        self.kafka_stats.record(&statistics);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        sluice_core::kafka::log_client_error(&error, reason);
    }
}

impl ConsumerContext for LeaderContext {
    /// Runs on the polling thread before the partition leaves: the fire loop sees `false`
    /// before the group can give the partition to another member, and begins no transaction
    /// after that (one already committing finishes; the next leader's `init_transactions`
    /// waits for it).
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(revoked) if self.holds_leader(revoked) => self.set(false),
            Rebalance::Error(error) => {
                tracing::warn!(error = %error, "scheduler group rebalance failed; not leading");
                self.set(false);
            }
            _ => {}
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            if self.holds_leader(assigned) {
                self.set(true);
            }
        }
    }
}

/// Joins the scheduler group and keeps polling it (which is what runs the rebalance callbacks)
/// until `shutdown`; `leading` follows the ownership of the leader partition.
pub async fn elect(
    config: Arc<Config>,
    leading: watch::Sender<bool>,
    metrics: SchedulerMetrics,
    kafka_stats: KafkaStats,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let topics = Topics::new(&config.topics);
    let topic = topics.scheduler_leader();
    let wanted = [topic.clone(), topics.schedule_fires()];
    if !sluice_core::kafka::wait_for_topics(&config.kafka, &wanted, "scheduler", &shutdown).await {
        return Ok(());
    }
    let mut client = sluice_core::kafka::consumer_config(
        &config.kafka,
        &topics.scheduler_group(),
        Duration::from_secs(5),
    );
    client
        // A leader that dies is replaced after 6 s (the broker's minimum), not 10 s.
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        // A replica joining or leaving does not move the leader partition off a live owner, so
        // restarts of other replicas do not interrupt firing.
        .set("partition.assignment.strategy", "cooperative-sticky");
    let context = LeaderContext {
        topic: topic.clone(),
        leading,
        metrics,
        kafka_stats,
    };
    let consumer: StreamConsumer<LeaderContext> =
        sluice_core::kafka::with_statistics(client, &config.kafka)
            .create_with_context(context)
            .context("creating the scheduler group consumer")?;
    consumer
        .subscribe(&[&topic])
        .with_context(|| format!("subscribing to {topic}"))?;
    tracing::info!(group = %topics.scheduler_group(), %topic, "scheduler joined its group");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            polled = consumer.recv() => {
                if let Err(error) = polled {
                    tracing::debug!(error = %error, "scheduler group poll");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
    consumer.context().set(false);
    // Dropping closes the consumer, which leaves the group: another replica gets the partition
    // at once rather than after the session timeout. Close blocks while it does.
    tokio::task::spawn_blocking(move || drop(consumer))
        .await
        .context("leaving the scheduler group")?;
    Ok(())
}
