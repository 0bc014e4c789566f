//! Remembering event ids: a two-state claim in Redis, `<prefix>hook:<source>:<event id>`.
//!
//! `pending:<token>` (for a short while) means one request is producing the event now; `done`
//! (for the source's tolerance) means Kafka holds it. The first request claims the id, produces,
//! and marks it done — or, if Kafka refused, releases it so the sender's retry can claim it
//! again. A repeat finding `done` is answered 200 without enqueueing; one finding `pending` is
//! told to retry (503 + Retry-After): answering 200 then could acknowledge an event whose only
//! produce is about to fail, and producing it too could enqueue it twice.
//!
//! The pending state expires after twice the produce bound plus a margin, so a process that died
//! holding a claim blocks the event's retries for seconds, not forever. Redis unreachable:
//! `Unavailable`, and the caller enqueues anyway (see the module header of `hooks`).

use std::time::Duration;

use redis::Script;
use sluice_core::redis_conn::RedisConn;

/// What the claim found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// This request holds the claim, under this token.
    Claimed(String),
    /// Kafka holds the event already.
    Done,
    /// Another request is producing it now.
    InProgress,
    /// Redis did not answer in time.
    Unavailable,
}

/// SET NX, or report what is there — in one round trip.
const CLAIM: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 'claimed' end
local held = redis.call('GET', KEYS[1])
if held == 'done' then return 'done' end
if held then return 'pending' end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 'claimed'
";

/// Deletes the claim only if it is still this request's (it may have expired and been taken).
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

pub struct Claims {
    redis: RedisConn,
    prefix: String,
    pending_ttl: Duration,
    /// Redis gets at most this long per command: the sender's whole deadline is 5 s.
    timeout: Duration,
    claim: Script,
    release: Script,
}

impl Claims {
    pub fn new(
        redis: RedisConn,
        config: &sluice_core::config::RedisConfig,
        publish_timeout: Duration,
    ) -> Self {
        Self {
            redis,
            prefix: config.key_prefix.clone(),
            pending_ttl: publish_timeout * 2 + Duration::from_secs(2),
            timeout: config.timeout.min(Duration::from_secs(1)),
            claim: Script::new(CLAIM),
            release: Script::new(RELEASE),
        }
    }

    fn key(&self, source: &str, event_id: &str) -> String {
        format!("{}hook:{source}:{event_id}", self.prefix)
    }

    pub async fn claim(&self, source: &str, event_id: &str) -> Claim {
        let token = format!("pending:{}", uuid::Uuid::new_v4());
        let mut redis = self.redis.clone();
        let mut invocation = self.claim.key(self.key(source, event_id));
        invocation
            .arg(&token)
            .arg(self.pending_ttl.as_millis() as u64);
        let found =
            tokio::time::timeout(self.timeout, invocation.invoke_async::<String>(&mut redis)).await;
        match found {
            Ok(Ok(state)) if state == "claimed" => Claim::Claimed(token),
            Ok(Ok(state)) if state == "done" => Claim::Done,
            Ok(Ok(_)) => Claim::InProgress,
            _ => Claim::Unavailable,
        }
    }

    /// Kafka holds the event: repeats within `tolerance` are answered without enqueueing.
    pub async fn done(&self, source: &str, event_id: &str, tolerance: Duration) {
        let mut redis = self.redis.clone();
        let mut command = redis::cmd("SET");
        command
            .arg(self.key(source, event_id))
            .arg("done")
            .arg("PX")
            .arg(tolerance.as_millis() as u64);
        let set = command.exec_async(&mut redis);
        // Failing here only lets a repeat arriving after the pending state expired be enqueued
        // again, under the same job id.
        if !matches!(tokio::time::timeout(self.timeout, set).await, Ok(Ok(()))) {
            tracing::debug!(%source, "could not mark a webhook event done in Redis");
        }
    }

    /// Kafka refused the event: the sender's retry may claim it again at once.
    pub async fn release(&self, source: &str, event_id: &str, token: &str) {
        let mut redis = self.redis.clone();
        let mut invocation = self.release.key(self.key(source, event_id));
        invocation.arg(token);
        let released =
            tokio::time::timeout(self.timeout, invocation.invoke_async::<i64>(&mut redis)).await;
        if !matches!(released, Ok(Ok(_))) {
            tracing::debug!(%source, "could not release a webhook event claim in Redis");
        }
    }
}
