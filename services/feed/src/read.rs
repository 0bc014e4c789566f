//! The hybrid read: a user's materialized feed merged with the recent posts of the celebrities
//! they follow, newest first, with their bodies, the result cached. On a single Redis the merge
//! is one server-side script (`read_single.rs`); on a cluster, whose keys live in different
//! slots, it takes a few pipelined round trips (here).

use std::collections::{HashMap, HashSet};

use redis::RedisResult;
use serde::{Deserialize, Serialize};

use crate::graph::{parse_feed_member, Graph};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedPost {
    pub post_id: String,
    pub author_id: String,
    pub text: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// A feed read and whether it came from the cache.
#[derive(Debug)]
pub struct FeedRead {
    pub posts: Vec<FeedPost>,
    pub cached: bool,
}

/// Drops a user's cached reads and bumps the cache's version (field `v`), so that a read that
/// started before — and would cache what it saw then — does not write its result (see
/// `WRITE_CACHE`). Without it, a read racing a follow could put the old feed back for a whole TTL.
pub const INVALIDATE_CACHE: &str = r"
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0') + 1
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', v)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return v";

/// Caches one limit's read, unless the cache was invalidated since the read began (its version
/// `v` changed). NX: the first cached limit sets the expiry; later ones must not extend it.
const WRITE_CACHE: &str = r"
if (redis.call('HGET', KEYS[1], 'v') or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4], 'NX')
return 1";

/// Which of `following` are celebrities (pulled on read).
async fn pulled_of(
    redis: &mut sluice_core::redis_conn::RedisConn,
    graph: &Graph,
    following: &[String],
) -> RedisResult<Vec<String>> {
    if following.is_empty() {
        return Ok(Vec::new());
    }
    let pulled: Vec<bool> = redis::cmd("SMISMEMBER")
        .arg(graph.celebrities_key())
        .arg(following)
        .query_async(redis)
        .await?;
    Ok(following
        .iter()
        .zip(pulled)
        .filter(|(_, pulled)| *pulled)
        .map(|(author, _)| author.clone())
        .collect())
}

/// Reads `user`'s feed, newest first, at most `limit` posts.
pub async fn read_feed(graph: &Graph, user: &str, limit: usize) -> RedisResult<FeedRead> {
    let mut redis = graph.connection();
    let ttl = graph.config().feed_cache_ttl;
    let cache_key = graph.feed_cache_key(user);
    let mut cache_version = String::new();
    if !ttl.is_zero() {
        let (cached, version): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(&cache_key)
            .arg(limit)
            .arg("v")
            .query_async(&mut redis)
            .await?;
        cache_version = version.unwrap_or_default();
        if let Some(posts) = cached.and_then(|json| serde_json::from_str(&json).ok()) {
            return Ok(FeedRead {
                posts,
                cached: true,
            });
        }
    }

    // The materialized feed's newest entries: twice the limit, in case some are filtered out
    // below, but never past the cap (a feed can hold a few more until its next trim).
    let feed_entries = (2 * limit).min(graph.config().feed_cap);
    let posts = if redis.is_cluster() {
        read_cluster(graph, user, limit, feed_entries).await?
    } else {
        crate::read_single::read_feed(graph, user, limit, feed_entries).await?
    };

    if !ttl.is_zero() {
        let json = serde_json::to_string(&posts).expect("feed posts serialize");
        let _: i64 = redis::Script::new(WRITE_CACHE)
            .key(&cache_key)
            .arg(&cache_version)
            .arg(limit)
            .arg(json)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut redis)
            .await?;
    }
    Ok(FeedRead {
        posts,
        cached: false,
    })
}

/// The merged read on a Redis Cluster, where the feed, the follow set, the celebrity set, the
/// authors' lists and the bodies are in different slots: four round trips.
async fn read_cluster(
    graph: &Graph,
    user: &str,
    limit: usize,
    feed_entries: usize,
) -> RedisResult<Vec<FeedPost>> {
    let mut redis = graph.connection();
    // Round trips 1 and 2: the materialized feed and whom the user follows, then which of those
    // are pulled on read (the celebrity set is in another slot than the follow set).
    let feed_key = graph.feed_key(user);
    let following_key = graph.following_key(user);
    let mut feed_range = redis::cmd("ZREVRANGE");
    feed_range
        .arg(&feed_key)
        .arg(0)
        .arg(feed_entries as i64 - 1)
        .arg("WITHSCORES");
    let mut members = redis::cmd("SMEMBERS");
    members.arg(&following_key);
    let answers = redis
        .pipeline_by_key(vec![(feed_key, feed_range), (following_key, members)])
        .await?;
    let feed: Vec<(String, i64)> = redis::from_redis_value(&answers[0])?;
    let following: Vec<String> = redis::from_redis_value(&answers[1])?;
    let celebrities = pulled_of(&mut redis, graph, &following).await?;
    let following: HashSet<String> = following.into_iter().collect();

    // Candidates: (created_at, post_id, author_id).
    let mut candidates: Vec<(i64, String, String)> = feed
        .iter()
        .filter_map(|(member, score)| {
            let (post_id, author) = parse_feed_member(member)?;
            Some((*score, post_id.to_owned(), author.to_owned()))
        })
        .collect();

    // Round trip 3: the celebrities' recent posts.
    if !celebrities.is_empty() {
        let queries = celebrities
            .iter()
            .map(|celebrity| graph.newest_posts_query(celebrity, limit))
            .collect();
        let pulled = redis.pipeline_by_node(queries).await?;
        for (celebrity, posts) in celebrities.iter().zip(pulled) {
            let posts: Vec<(String, i64)> = redis::from_redis_value(&posts)?;
            candidates.extend(
                posts
                    .into_iter()
                    .map(|(id, score)| (score, id, celebrity.clone())),
            );
        }
    }

    // Only authors followed now (an unfollow may race its cleanup), each post once, newest first
    // with the id breaking ties, like the sorted sets themselves.
    candidates.retain(|(_, _, author)| following.contains(author));
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    let mut seen = HashSet::new();
    candidates.retain(|(_, id, _)| seen.insert(id.clone()));
    candidates.truncate(limit);

    // Round trip 4: the bodies, all at once. A post whose body is gone is skipped.
    let mut posts = Vec::with_capacity(candidates.len());
    if !candidates.is_empty() {
        let queries = candidates
            .iter()
            .map(|(_, id, _)| {
                let key = graph.post_key(id);
                let mut body = redis::cmd("HGETALL");
                body.arg(&key);
                (key, body)
            })
            .collect();
        let bodies = redis.pipeline_by_node(queries).await?;
        for ((created_at, post_id, author_id), body) in candidates.into_iter().zip(bodies) {
            let body: HashMap<String, String> = redis::from_redis_value(&body)?;
            if let Some(text) = body.get("text") {
                posts.push(FeedPost {
                    post_id,
                    author_id,
                    text: text.clone(),
                    created_at,
                });
            }
        }
    }
    Ok(posts)
}
