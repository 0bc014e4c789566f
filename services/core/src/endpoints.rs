//! Endpoints disabled because they answered 410 Gone.
//!
//! One Redis hash, `<redis.key_prefix>endpoints:disabled`: field = the endpoint's URL (as the
//! kinds crate normalizes it: the whole URL, since a 410 says this resource is gone, not its
//! whole host), value = JSON `{kind, disabled_at, job_id, error}`. Redis makes it survive
//! restarts and shares it between every worker replica; `sluice endpoints list` and `enable`
//! read and edit it.
//!
//! Workers do not read Redis per job: each keeps the set of URLs in memory (`DisabledCache`),
//! refreshed every `REFRESH_INTERVAL` by one `HKEYS`. So an endpoint one replica disabled is
//! refused by the others within that interval (until then they may call it once more and get
//! their own 410), and an endpoint enabled again is called again within it.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex, RwLock,
    },
    time::{Duration, Instant},
};

use redis::AsyncCommands;

use crate::redis_conn::RedisConn;
use serde::{Deserialize, Serialize};

/// How often a worker re-reads the disabled set.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// Why an endpoint was disabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisabledEndpoint {
    /// Not stored in the value: it is the hash field.
    #[serde(skip)]
    pub url: String,
    /// The kind whose job got the 410.
    pub kind: String,
    /// Milliseconds since the Unix epoch.
    pub disabled_at: i64,
    /// The job that got the 410.
    pub job_id: String,
    /// That job's error.
    pub error: String,
}

/// The hash in Redis.
#[derive(Clone)]
pub struct EndpointStore {
    conn: RedisConn,
    key: String,
}

impl EndpointStore {
    pub fn new(conn: RedisConn, key_prefix: &str) -> Self {
        Self {
            conn,
            key: format!("{key_prefix}endpoints:disabled"),
        }
    }

    /// Records `entry` unless its URL is disabled already (the first 410 is the one kept).
    /// True if it was not disabled before.
    pub async fn disable(&self, entry: &DisabledEndpoint) -> redis::RedisResult<bool> {
        let value = serde_json::to_string(entry).expect("a DisabledEndpoint serializes");
        self.conn
            .clone()
            .hset_nx(&self.key, &entry.url, value)
            .await
    }

    /// Enables `url` again; false if it was not disabled.
    pub async fn enable(&self, url: &str) -> redis::RedisResult<bool> {
        let removed: u32 = self.conn.clone().hdel(&self.key, url).await?;
        Ok(removed > 0)
    }

    /// Every disabled endpoint, oldest first. A value that does not parse is still listed (with
    /// what is known: its URL), so it can be enabled.
    pub async fn list(&self) -> redis::RedisResult<Vec<DisabledEndpoint>> {
        let all: std::collections::HashMap<String, String> =
            self.conn.clone().hgetall(&self.key).await?;
        let mut entries: Vec<DisabledEndpoint> = all
            .into_iter()
            .map(|(url, value)| {
                let mut entry = serde_json::from_str(&value).unwrap_or(DisabledEndpoint {
                    url: String::new(),
                    kind: String::new(),
                    disabled_at: 0,
                    job_id: String::new(),
                    error: value,
                });
                entry.url = url;
                entry
            })
            .collect();
        entries.sort_by(|a, b| (a.disabled_at, &a.url).cmp(&(b.disabled_at, &b.url)));
        Ok(entries)
    }

    /// The disabled URLs.
    pub async fn urls(&self) -> redis::RedisResult<HashSet<String>> {
        self.conn.clone().hkeys(&self.key).await
    }
}

/// A worker's copy of the disabled set: a lookup per job, no Redis round trip.
#[derive(Default)]
pub struct DisabledCache {
    urls: RwLock<HashSet<String>>,
    /// `urls.len()`, read without the lock: the common case is an empty set.
    len: AtomicUsize,
    /// Disabled here since a refresh began: kept through a refresh whose read may predate them.
    recent: Mutex<Vec<(String, Instant)>>,
}

impl DisabledCache {
    pub fn contains(&self, url: &str) -> bool {
        self.len.load(Ordering::Relaxed) > 0
            && self
                .urls
                .read()
                .expect("disabled endpoints lock")
                .contains(url)
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Disables `url` in this worker at once (its Redis write may still be on its way).
    pub fn insert(&self, url: &str) {
        self.recent
            .lock()
            .expect("recent disables lock")
            .push((url.to_owned(), Instant::now()));
        let mut urls = self.urls.write().expect("disabled endpoints lock");
        urls.insert(url.to_owned());
        self.len.store(urls.len(), Ordering::Relaxed);
    }

    /// Replaces the set with `fresh`, read from Redis by a read that began at `read_started`;
    /// URLs disabled here after that are kept.
    pub fn replace(&self, mut fresh: HashSet<String>, read_started: Instant) {
        {
            let mut recent = self.recent.lock().expect("recent disables lock");
            recent.retain(|(_, at)| *at >= read_started);
            fresh.extend(recent.iter().map(|(url, _)| url.clone()));
        }
        let mut urls = self.urls.write().expect("disabled endpoints lock");
        self.len.store(fresh.len(), Ordering::Relaxed);
        *urls = fresh;
    }

    /// Re-reads the set from `store`.
    pub async fn refresh(&self, store: &EndpointStore) -> redis::RedisResult<()> {
        let started = Instant::now();
        let fresh = store.urls().await?;
        self.replace(fresh, started);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(urls: &[&str]) -> HashSet<String> {
        urls.iter().map(|u| (*u).to_owned()).collect()
    }

    #[test]
    fn a_refresh_replaces_the_set_but_keeps_what_was_disabled_while_it_read() {
        let cache = DisabledCache::default();
        assert!(!cache.contains("http://a/"));
        cache.replace(set(&["http://a/", "http://b/"]), Instant::now());
        assert!(cache.contains("http://a/") && cache.contains("http://b/"));
        let read_started = Instant::now();
        cache.insert("http://c/");
        // A read that began before the local disable did not see it.
        cache.replace(set(&["http://a/"]), read_started);
        assert!(cache.contains("http://a/"));
        assert!(!cache.contains("http://b/"), "enabled elsewhere");
        assert!(
            cache.contains("http://c/"),
            "kept until a read that began after it"
        );
        assert_eq!(cache.len(), 2);
        cache.replace(set(&[]), Instant::now());
        assert!(cache.is_empty() && !cache.contains("http://c/"));
    }
}
