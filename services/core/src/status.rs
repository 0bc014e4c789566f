//! Job status in Redis: one hash per job, `<prefix>job:<id>`, expiring `status_ttl` after its
//! last change. Kafka holds the work; this is only what `GET /v1/jobs/{id}` reports.

use std::time::Duration;

use redis::{aio::ConnectionManager, AsyncCommands, Script};
use serde::Serialize;

use crate::{config::RedisConfig, headers::now_millis};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Running,
    Retrying,
    Succeeded,
    DeadLettered,
}

impl Status {
    /// Nothing more will happen to the job (unless a person replays its dead letter).
    pub fn is_final(self) -> bool {
        matches!(self, Status::Succeeded | Status::DeadLettered)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Retrying => "retrying",
            Status::Succeeded => "succeeded",
            Status::DeadLettered => "dead_lettered",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Status::Queued,
            Status::Running,
            Status::Retrying,
            Status::Succeeded,
            Status::DeadLettered,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

/// What `GET /v1/jobs/{id}` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobStatus {
    pub job_id: String,
    pub kind: String,
    pub status: Status,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// What the handler returned (a small JSON document), once the job succeeded.
    pub result: Option<serde_json::Value>,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
}

/// One change of one job's status.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub job_id: String,
    pub kind: String,
    pub status: Status,
    pub attempts: u32,
    /// Kept as `last_error`.
    pub error: Option<String>,
    /// The handler's result, once succeeded.
    pub result: Option<serde_json::Value>,
}

/// A self-healing Redis connection with bounded waits: commands and connection attempts time out
/// after `redis.timeout`, and a lost connection is re-established on the next command.
pub async fn connect(config: &RedisConfig) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(config.url.as_str())?;
    let settings = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(config.timeout)
        .set_response_timeout(config.timeout)
        // Reconnect attempts within one command: 2, 4 ms apart... capped at 1 s; callers retry.
        .set_number_of_retries(3)
        .set_max_delay(1000);
    ConnectionManager::new_with_config(client, settings).await
}

#[derive(Clone)]
pub struct StatusStore {
    redis: ConnectionManager,
    key_prefix: String,
    ttl: Duration,
}

impl StatusStore {
    pub async fn connect(config: &RedisConfig) -> redis::RedisResult<Self> {
        let redis = connect(config).await?;
        Ok(Self {
            redis,
            key_prefix: config.key_prefix.clone(),
            ttl: config.status_ttl,
        })
    }

    pub fn connection(&self) -> ConnectionManager {
        self.redis.clone()
    }

    fn key(&self, job_id: &str) -> String {
        format!("{}job:{job_id}", self.key_prefix)
    }

    /// The pub/sub channel a job's id is published on when it reaches a final status, so
    /// `GET /v1/jobs/{id}?wait=` answers at once instead of polling.
    pub fn final_channel(&self) -> String {
        format!("{}job-final", self.key_prefix)
    }

    /// Records a job as queued unless a worker already recorded progress: the API writes this
    /// after Kafka's acknowledgement, which can come after a fast worker has started the job.
    pub async fn mark_queued(&self, job_id: &str, kind: &str) -> redis::RedisResult<()> {
        static SCRIPT: &str = r"
            if redis.call('EXISTS', KEYS[1]) == 0 then
              redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'status', 'queued', 'attempts', 0, 'updated_at', ARGV[2])
              redis.call('PEXPIRE', KEYS[1], ARGV[3])
            end
            return 0";
        Script::new(SCRIPT)
            .key(self.key(job_id))
            .arg(kind)
            .arg(now_millis())
            .arg(self.ttl.as_millis() as u64)
            .invoke_async::<()>(&mut self.redis.clone())
            .await
    }

    /// Adds the commands of one job's status change to `pipe` (`StatusWriter` sends many in one
    /// round trip): one HSET (atomic by itself), the expiry, and for a final status the
    /// notification `GET /v1/jobs/{id}?wait=` listens for.
    pub fn add_to(&self, pipe: &mut redis::Pipeline, update: &StatusUpdate) {
        let key = self.key(&update.job_id);
        let mut fields = vec![
            ("kind", update.kind.clone()),
            ("status", update.status.as_str().to_owned()),
            ("attempts", update.attempts.to_string()),
            ("updated_at", now_millis().to_string()),
        ];
        if let Some(error) = &update.error {
            fields.push(("last_error", error.clone()));
        }
        if let Some(result) = &update.result {
            fields.push(("result", result.to_string()));
        }
        pipe.hset_multiple(&key, &fields).ignore();
        pipe.pexpire(&key, self.ttl.as_millis() as i64).ignore();
        if update.status.is_final() {
            pipe.publish(self.final_channel(), &update.job_id).ignore();
        }
    }

    pub async fn get(&self, job_id: &str) -> redis::RedisResult<Option<JobStatus>> {
        let fields: std::collections::HashMap<String, String> =
            self.redis.clone().hgetall(self.key(job_id)).await?;
        let Some(status) = fields.get("status").and_then(|s| Status::parse(s)) else {
            return Ok(None);
        };
        Ok(Some(JobStatus {
            job_id: job_id.to_owned(),
            kind: fields.get("kind").cloned().unwrap_or_default(),
            status,
            attempts: fields
                .get("attempts")
                .and_then(|a| a.parse().ok())
                .unwrap_or(0),
            last_error: fields.get("last_error").cloned(),
            result: fields
                .get("result")
                .and_then(|r| serde_json::from_str(r).ok()),
            updated_at: fields
                .get("updated_at")
                .and_then(|a| a.parse().ok())
                .unwrap_or(0),
        }))
    }

    pub async fn ping(&self) -> redis::RedisResult<()> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.redis.clone())
            .await
            .map(|_| ())
    }
}
