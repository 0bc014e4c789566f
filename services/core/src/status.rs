//! Job status in Redis: one JSON string per job, `<prefix>job:<id>`, expiring `status_ttl` after
//! its last change. Kafka holds the work; this is only what `GET /v1/jobs/{id}` reports.
//!
//! A string written whole with one `SET … PX` (rather than a hash plus an expiry) is one command
//! per change: the worker's throughput was bound by Redis's time for these writes. Every update
//! therefore carries every field, `last_error` included (a retry carries its previous error in
//! its headers).
//!
//! The one exception is the history of attempt errors (`errors`), which no single update
//! carries: an update that is a failure, or comes after one, is written by a small script on the
//! same key that keeps the stored history and appends this attempt's error
//! ([`MERGE_ERRORS`]). An attempt-1 update without an error — nearly every job — stays one `SET`.

use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::{
    config::RedisConfig,
    headers::now_millis,
    lanes::Priority,
    redis_conn::{connect, RedisConn},
};

/// Attempt errors a status keeps at most (the newest).
pub const MAX_ERRORS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    /// Delayed: waits on the delay ladder until its `run_at`.
    Scheduled,
    Running,
    Retrying,
    Succeeded,
    DeadLettered,
    /// Cancelled before it started (`DELETE /v1/jobs/{id}`); a worker skips it.
    Cancelled,
    /// Not started before its `expires_at`; a worker skips it.
    Expired,
}

impl Status {
    /// Nothing more will happen to the job (unless a person replays its dead letter).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Succeeded | Status::DeadLettered | Status::Cancelled | Status::Expired
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Scheduled => "scheduled",
            Status::Running => "running",
            Status::Retrying => "retrying",
            Status::Succeeded => "succeeded",
            Status::DeadLettered => "dead_lettered",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
        }
    }

    /// Not started yet (or waiting between attempts): what a cancellation may still stop.
    pub fn is_waiting(self) -> bool {
        matches!(self, Status::Queued | Status::Scheduled | Status::Retrying)
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
    /// A delayed job's due time (ms since the epoch), while it is `scheduled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_at: Option<i64>,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
    /// The lane the job runs in; unknown for a job written before lanes were recorded.
    pub lane: Option<Priority>,
    /// The 32-hex trace id of the job's `traceparent`.
    pub trace_id: Option<String>,
    /// One entry per failed attempt, oldest first, the last [`MAX_ERRORS`] at most.
    pub errors: Vec<AttemptError>,
}

/// The error of one failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    pub attempt: u32,
    pub error: String,
    /// When the attempt failed, ms since the epoch.
    pub at: i64,
}

/// One change of one job's status.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub job_id: String,
    pub kind: String,
    pub status: Status,
    pub attempts: u32,
    /// Stored as `last_error`: this attempt's error, or the previous attempt's.
    pub error: Option<String>,
    /// The handler's result, once succeeded.
    pub result: Option<serde_json::Value>,
    /// The lane the job is served in.
    pub lane: Option<Priority>,
    /// The trace id of the job's `traceparent`.
    pub trace_id: Option<String>,
}

impl StatusUpdate {
    /// A failure of this attempt: `error` is this attempt's own, to add to the history.
    fn is_failure(&self) -> bool {
        matches!(self.status, Status::Retrying | Status::DeadLettered)
    }

    /// Whether the job has an error history to keep: it failed now or before. Only such updates
    /// pay for the merge script; the rest are one plain `SET`.
    fn has_history(&self) -> bool {
        self.is_failure() || self.error.is_some() || self.attempts > 1
    }
}

/// The stored form of a job's status (its id is in the key).
#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    #[serde(borrow)]
    kind: std::borrow::Cow<'a, str>,
    status: Status,
    attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    last_error: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run_at: Option<i64>,
    updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lane: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    trace_id: Option<std::borrow::Cow<'a, str>>,
    /// Never written empty (the merge script would read `[]` back as `{}`, Lua having one table
    /// type); read tolerantly.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "tolerant_errors"
    )]
    errors: Vec<AttemptError>,
}

/// The stored `errors`: a list, or anything else (an empty Lua table encodes as `{}`) as none.
fn tolerant_errors<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<AttemptError>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(match value {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|item| serde_json::from_value(item).ok())
            .collect(),
        _ => Vec::new(),
    })
}

/// Writes an update that has an error history (`KEYS[1]`: the status key). `ARGV[1]` is the new
/// document without `errors`, `ARGV[2]` the ttl in ms, `ARGV[3..=5]` this attempt's number, error
/// and time it failed (attempt `0`: nothing to add), `ARGV[6]` the entries kept at most. The
/// stored history is kept and the attempt's error appended unless it is there already (a write
/// repeated after a redelivery), the newest kept; a history with a later attempt than this one is
/// from before the job started over (a replayed dead letter counts from 1 again) and is dropped.
/// The new document is spliced as sent rather than decoded and encoded again, so its `result`
/// reaches Redis byte for byte.
pub const MERGE_ERRORS: &str = r#"
local errors = {}
local stored = redis.call('GET', KEYS[1])
if stored then
    local ok, old = pcall(cjson.decode, stored)
    if ok and type(old) == 'table' and type(old.errors) == 'table' then
        for _, entry in ipairs(old.errors) do
            if type(entry) == 'table' and tonumber(entry.attempt) then
                errors[#errors + 1] = entry
            end
        end
    end
end
local attempt = tonumber(ARGV[3])
if attempt > 0 then
    local seen = false
    for _, entry in ipairs(errors) do
        if tonumber(entry.attempt) == attempt then seen = true end
        if tonumber(entry.attempt) > attempt then
            -- The job started over (a replayed dead letter counts from 1 again).
            errors, seen = {}, false
            break
        end
    end
    if not seen then
        errors[#errors + 1] = {attempt = attempt, error = ARGV[4], at = tonumber(ARGV[5])}
    end
end
local keep = tonumber(ARGV[6])
while #errors > keep do table.remove(errors, 1) end
local document = ARGV[1]
if #errors > 0 then
    document = string.sub(document, 1, -2) .. ',"errors":' .. cjson.encode(errors) .. '}'
end
return redis.call('SET', KEYS[1], document, 'PX', ARGV[2])
"#;

/// What the api (or the scheduler) knows of a job it has just handed to Kafka.
#[derive(Debug, Clone, Copy)]
pub struct Accepted<'a> {
    pub kind: &'a str,
    pub lane: Priority,
    /// The job's `traceparent` (its trace id is stored).
    pub traceparent: Option<&'a str>,
}

#[derive(Clone)]
pub struct StatusStore {
    redis: RedisConn,
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

    pub fn connection(&self) -> RedisConn {
        self.redis.clone()
    }

    /// `redis.key_prefix`, which every key of this store starts with.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The hash slot of the job's status key (writers batch by slot on a Redis Cluster).
    pub fn key_slot(&self, job_id: &str) -> u16 {
        crate::redis_conn::slot_of(&self.key(job_id))
    }

    fn key(&self, job_id: &str) -> String {
        format!("{}job:{job_id}", self.key_prefix)
    }

    /// The pub/sub channel on which the ids of jobs that reached a final status are published
    /// (one message per status batch, ids separated by newlines), so `GET /v1/jobs/{id}?wait=`
    /// answers at once instead of polling.
    pub fn final_channel(&self) -> String {
        format!("{}job-final", self.key_prefix)
    }

    /// Records a job as queued unless a worker already recorded progress: the API writes this
    /// after Kafka's acknowledgement, which can come after a fast worker has started the job.
    pub async fn mark_queued(
        &self,
        job_id: &str,
        accepted: &Accepted<'_>,
    ) -> redis::RedisResult<()> {
        self.mark_accepted(job_id, accepted, None).await
    }

    /// `mark_queued`, or for a delayed job `scheduled` with its due time, kept until
    /// `status_ttl` after it is due.
    pub async fn mark_accepted(
        &self,
        job_id: &str,
        job: &Accepted<'_>,
        run_at: Option<i64>,
    ) -> redis::RedisResult<()> {
        let now = now_millis();
        let accepted = Stored {
            kind: job.kind.into(),
            status: if run_at.is_some() {
                Status::Scheduled
            } else {
                Status::Queued
            },
            attempts: 0,
            last_error: None,
            result: None,
            run_at,
            updated_at: now,
            lane: Some(job.lane),
            trace_id: job
                .traceparent
                .and_then(crate::headers::trace_id)
                .map(Into::into),
            errors: Vec::new(),
        };
        let wait = Duration::from_millis(run_at.map_or(0, |at| (at - now).max(0) as u64));
        let mut set = self.set_kept(job_id, &accepted, wait + self.ttl);
        set.arg("NX");
        set.query_async::<()>(&mut self.redis.clone()).await
    }

    /// Adds the one command of one job's status change to `pipe` (`StatusWriter` sends many in
    /// one round trip): a `SET`, or for a job with an error history the `MERGE_ERRORS` script on
    /// the same key (so a batch grouped by the key's slot stays valid on a cluster). `scratch`
    /// is reused across a batch for the key and the document, which the command copies: no
    /// allocation of its own per update.
    pub fn add_to(
        &self,
        pipe: &mut redis::Pipeline,
        update: &StatusUpdate,
        now: i64,
        scratch: &mut Vec<u8>,
    ) {
        let stored = Stored {
            kind: update.kind.as_str().into(),
            status: update.status,
            attempts: update.attempts,
            last_error: update.error.as_deref().map(Into::into),
            result: update.result.clone(),
            run_at: None,
            updated_at: now,
            lane: update.lane,
            trace_id: update.trace_id.as_deref().map(Into::into),
            errors: Vec::new(),
        };
        let history = update.has_history();
        if history {
            pipe.cmd("EVAL").arg(MERGE_ERRORS).arg(1);
        } else {
            pipe.cmd("SET");
        }
        scratch.clear();
        scratch.extend_from_slice(self.key_prefix.as_bytes());
        scratch.extend_from_slice(b"job:");
        scratch.extend_from_slice(update.job_id.as_bytes());
        pipe.arg(&scratch[..]);
        scratch.clear();
        serde_json::to_writer(&mut *scratch, &stored).expect("status serializes");
        pipe.arg(&scratch[..]);
        let ttl = self.ttl.as_millis() as u64;
        if !history {
            pipe.arg("PX").arg(ttl).ignore();
            return;
        }
        pipe.arg(ttl);
        match (update.is_failure(), update.error.as_deref()) {
            (true, Some(error)) => pipe.arg(update.attempts).arg(error).arg(now),
            _ => pipe.arg(0).arg("").arg(0),
        };
        pipe.arg(MAX_ERRORS).ignore();
    }

    /// Adds the one notification of a batch naming every job in it that became final.
    pub fn add_final_notice(&self, pipe: &mut redis::Pipeline, job_ids: &[&str]) {
        if !job_ids.is_empty() {
            pipe.publish(self.final_channel(), job_ids.join("\n"))
                .ignore();
        }
    }

    pub async fn get(&self, job_id: &str) -> redis::RedisResult<Option<JobStatus>> {
        let stored: Option<String> = self.redis.clone().get(self.key(job_id)).await?;
        // Unreadable (written by something else) reads as unknown rather than failing the api.
        let Some(stored) = stored.and_then(|s| {
            serde_json::from_str::<Stored>(&s).ok().map(|s| JobStatus {
                job_id: job_id.to_owned(),
                kind: s.kind.into_owned(),
                status: s.status,
                attempts: s.attempts,
                last_error: s.last_error.map(|e| e.into_owned()),
                result: s.result,
                run_at: s.run_at,
                updated_at: s.updated_at,
                lane: s.lane,
                trace_id: s.trace_id.map(|t| t.into_owned()),
                errors: s.errors,
            })
        }) else {
            return Ok(None);
        };
        Ok(Some(stored))
    }

    /// Marks the job `cancelled` if it is still waiting (`Status::is_waiting`), atomically
    /// against other writers of its status. Returns the status it had (`None`: no such job);
    /// only a waiting one was changed.
    pub async fn cancel_if_waiting(&self, job_id: &str) -> redis::RedisResult<Option<Status>> {
        // The status document is JSON: Redis's cjson reads and rewrites it in place, so nothing
        // can write between the check and the change.
        let script = redis::Script::new(
            r"
            local stored = redis.call('GET', KEYS[1])
            if not stored then return false end
            local ok, status = pcall(cjson.decode, stored)
            if not ok then return false end
            local was = status.status
            if was == 'queued' or was == 'scheduled' or was == 'retrying' then
                status.status = 'cancelled'
                status.updated_at = tonumber(ARGV[1])
                redis.call('SET', KEYS[1], cjson.encode(status), 'PX', ARGV[2])
            end
            return was
            ",
        );
        let was: Option<String> = script
            .key(self.key(job_id))
            .arg(now_millis())
            // A cancelled delayed job stays visible until status_ttl after it would have run.
            .arg(self.ttl.as_millis() as u64 + crate::delays::MAX_DELAY.as_millis() as u64)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(was.and_then(|w| serde_json::from_value(serde_json::Value::String(w)).ok()))
    }

    /// Writes `status` back as it was (a cancellation that could not be announced).
    pub async fn restore(&self, status: &JobStatus) -> redis::RedisResult<()> {
        let stored = Stored {
            kind: status.kind.as_str().into(),
            status: status.status,
            attempts: status.attempts,
            last_error: status.last_error.as_deref().map(Into::into),
            result: status.result.clone(),
            run_at: status.run_at,
            updated_at: now_millis(),
            lane: status.lane,
            trace_id: status.trace_id.as_deref().map(Into::into),
            errors: status.errors.clone(),
        };
        self.set(&status.job_id, &stored)
            .query_async::<()>(&mut self.redis.clone())
            .await
    }

    /// `SET <key> <document> PX <status_ttl>`: every status write is this one command.
    fn set(&self, job_id: &str, stored: &Stored<'_>) -> redis::Cmd {
        self.set_kept(job_id, stored, self.ttl)
    }

    /// `set`, kept for `keep` instead of `status_ttl`.
    fn set_kept(&self, job_id: &str, stored: &Stored<'_>, keep: Duration) -> redis::Cmd {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(job_id))
            .arg(serde_json::to_string(stored).expect("status serializes"))
            .arg("PX")
            .arg(keep.as_millis() as u64);
        cmd
    }

    pub async fn ping(&self) -> redis::RedisResult<()> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.redis.clone())
            .await
            .map(|_| ())
    }
}
