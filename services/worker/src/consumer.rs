//! The consume loop of one job kind: at most `concurrency` jobs in flight per process (a permit
//! is taken before a record is fetched, so a busy worker stops pulling instead of buffering),
//! each job on its own task, offsets stored below the lowest unfinished job.
//!
//! Guarantee: at-least-once. A job's offset is committed only after its outcome is durable; a
//! crash redoes the jobs after the last commit (up to `commit_interval` of finished work plus
//! whatever was in flight). Limits: a job that outlives `max.poll.interval.ms` (300 s) while
//! every permit is taken makes the group move its partitions elsewhere.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use rdkafka::{
    consumer::{CommitMode, Consumer},
    error::KafkaError,
    message::Message,
    types::RDKafkaErrorCode,
};
use tokio::{sync::Semaphore, task::JoinSet};

use crate::process::{process, KindRuntime};

pub async fn consume(
    rt: Arc<KindRuntime>,
    permits: Arc<Semaphore>,
    drain_timeout: Duration,
) -> anyhow::Result<()> {
    let topic = rt.topics.jobs(&rt.kind);
    rt.consumer
        .subscribe(&[&topic])
        .with_context(|| format!("subscribing to {topic}"))?;
    tracing::info!(kind = %rt.kind, %topic, "worker consuming");

    let mut jobs = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = rt.shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => permit.context("permits closed")?,
        };
        let received = tokio::select! {
            _ = rt.shutdown.cancelled() => break,
            received = rt.consumer.recv() => received.map(|m| m.detach()),
        };
        while jobs.try_join_next().is_some() {}
        match received {
            Ok(message) => {
                rt.tracker
                    .started(message.topic(), message.partition(), message.offset());
                let rt = rt.clone();
                jobs.spawn(async move {
                    process(rt, message).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // librdkafka reconnects by itself; these are reports, not reasons to stop.
                tracing::warn!(kind = %rt.kind, error = %e, "consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    tracing::info!(kind = %rt.kind, in_flight = jobs.len(), "draining in-flight jobs");
    let drained = tokio::time::timeout(drain_timeout, async {
        while jobs.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(kind = %rt.kind, left = jobs.len(), "drain timeout; unfinished jobs will be redelivered");
        jobs.abort_all();
    }
    let consumer = rt.consumer.clone();
    let committed =
        tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync))
            .await?;
    match committed {
        Ok(()) => tracing::info!(kind = %rt.kind, "final offsets committed"),
        // Nothing was stored since the last commit: nothing to do.
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => {
            tracing::warn!(kind = %rt.kind, error = %e, "final commit failed; the last jobs may be redelivered")
        }
    }
    rt.consumer.unsubscribe();
    tracing::info!(kind = %rt.kind, "worker stopped");
    Ok(())
}
