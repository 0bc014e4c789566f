//! `GET /v1/jobs/{id}?wait=10s`: answers once the job is final (`succeeded`, `dead_lettered`) or
//! the wait is over, so a client that needs the outcome does not poll. Waiting costs no thread:
//! each waiter is a parked future on a oneshot channel, woken by one Redis pub/sub subscription
//! per api process (workers publish the ids of the jobs that became final on
//! `StatusStore::final_channel`, one message per status batch). A missed message (the
//! subscription was reconnecting) only delays a waiter to the next re-check, once a second.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use futures::StreamExt;
use sluice_core::config::RedisConfig;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// The longest wait a client may ask for; longer asks are cut to it.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// How often a waiter re-reads the status anyway.
pub const RECHECK: Duration = Duration::from_secs(1);

/// Waiters by job id.
#[derive(Clone, Default)]
pub struct JobWaiters {
    waiting: Arc<Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>>,
    /// Set at shutdown: waiters answer at once, so a graceful stop is not held up by them.
    stopping: Arc<AtomicBool>,
}

impl JobWaiters {
    /// A receiver woken when `job_id` reaches a final status.
    pub fn register(&self, job_id: &str) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap()
            .entry(job_id.to_owned())
            .or_default()
            .push(sender);
        receiver
    }

    /// Forgets the waiters of `job_id` that gave up (timed out or disconnected).
    pub fn forget_closed(&self, job_id: &str) {
        let mut waiting = self.waiting.lock().unwrap();
        if let Some(senders) = waiting.get_mut(job_id) {
            senders.retain(|s| !s.is_closed());
            if senders.is_empty() {
                waiting.remove(job_id);
            }
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    fn wake(&self, job_id: &str) {
        let senders = self.waiting.lock().unwrap().remove(job_id);
        for sender in senders.into_iter().flatten() {
            let _ = sender.send(());
        }
    }

    /// How many jobs have waiters (a gauge for tests and metrics).
    pub fn len(&self) -> usize {
        self.waiting.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Listens on `channel` until `shutdown`, reconnecting after Redis errors.
    pub async fn listen(self, redis: RedisConfig, channel: String, shutdown: CancellationToken) {
        // A Redis Cluster delivers a PUBLISH to subscribers on every node, so any one node will
        // do: the first seed, and the next one each time a subscription is lost.
        let urls = sluice_core::redis_conn::cluster_seeds(&redis.url)
            .filter(|seeds| !seeds.is_empty())
            .unwrap_or_else(|| vec![redis.url.clone()]);
        for url in urls.iter().cycle() {
            let listened = tokio::select! {
                _ = shutdown.cancelled() => break,
                result = self.listen_once(url, &channel) => result,
            };
            if let Err(e) = listened {
                tracing::debug!(error = %e, "job-final subscription lost; reconnecting");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(RECHECK) => {}
            }
        }
        self.stopping.store(true, Ordering::Relaxed);
        let everyone: Vec<String> = self.waiting.lock().unwrap().keys().cloned().collect();
        for job_id in everyone {
            self.wake(&job_id);
        }
    }

    async fn listen_once(&self, url: &str, channel: &str) -> redis::RedisResult<()> {
        let client = redis::Client::open(url)?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            if let Ok(job_ids) = message.get_payload::<String>() {
                for job_id in job_ids.split('\n') {
                    self.wake(job_id);
                }
            }
        }
        Ok(())
    }
}
