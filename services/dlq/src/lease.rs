//! One writer of a kind's dead letters at a time: a lease in Redis (`<prefix>dlq:lease:<kind>`)
//! that a replay or purge takes before it reads which dead letters are pending, renews before
//! every chunk it sends, and gives back at the end. A second replay of the same kind meanwhile
//! is refused, so two replays started together cannot both send the same dead letter.
//!
//! Limits: the lease expires after `TTL` without renewal, so a replayer that stalls longer than
//! that inside one chunk (a chunk takes well under a second) can overlap a newer one for the rest
//! of that chunk. A crashed replayer's lease frees itself after `TTL`.

use std::time::Duration;

use redis::Script;
use sluice_core::config::RedisConfig;
use sluice_core::redis_conn::RedisConn;

use crate::DlqError;

const TTL: Duration = Duration::from_secs(30);

pub(crate) struct Lease {
    redis: RedisConn,
    key: String,
    token: String,
}

impl Lease {
    /// Takes the lease of `kind`, or fails naming who holds it.
    pub(crate) async fn acquire(config: &RedisConfig, kind: &str) -> Result<Self, DlqError> {
        let mut redis = sluice_core::redis_conn::connect(config).await?;
        let key = format!("{}dlq:lease:{kind}", config.key_prefix);
        let token = format!(
            "{}@{} pid {}",
            uuid::Uuid::new_v4().simple(),
            hostname(),
            std::process::id()
        );
        let taken: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(TTL.as_millis() as u64)
            .query_async(&mut redis)
            .await?;
        if taken.is_none() {
            let holder: Option<String> =
                redis::cmd("GET").arg(&key).query_async(&mut redis).await?;
            return Err(DlqError::Busy {
                kind: kind.to_owned(),
                holder: holder
                    .and_then(|h| h.split_once('@').map(|(_, who)| who.to_owned()))
                    .unwrap_or_else(|| "another process".into()),
            });
        }
        Ok(Self { redis, key, token })
    }

    /// Extends the lease; fails if it expired and someone else took it meanwhile.
    pub(crate) async fn renew(&mut self, kind: &str) -> Result<(), DlqError> {
        static RENEW: &str = r"
            if redis.call('GET', KEYS[1]) == ARGV[1] then
              return redis.call('PEXPIRE', KEYS[1], ARGV[2])
            end
            return 0";
        let renewed: i64 = Script::new(RENEW)
            .key(&self.key)
            .arg(&self.token)
            .arg(TTL.as_millis() as u64)
            .invoke_async(&mut self.redis)
            .await?;
        if renewed == 1 {
            Ok(())
        } else {
            Err(DlqError::LeaseLost(kind.to_owned()))
        }
    }

    /// Gives the lease back (only if it is still ours).
    pub(crate) async fn release(mut self) {
        static RELEASE: &str = r"
            if redis.call('GET', KEYS[1]) == ARGV[1] then
              return redis.call('DEL', KEYS[1])
            end
            return 0";
        let released: redis::RedisResult<i64> = Script::new(RELEASE)
            .key(&self.key)
            .arg(&self.token)
            .invoke_async(&mut self.redis)
            .await;
        if let Err(e) = released {
            // It expires by itself after TTL.
            tracing::warn!(error = %e, key = %self.key, "releasing the dead-letter lease failed");
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown host".into())
}
