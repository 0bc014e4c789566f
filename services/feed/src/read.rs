//! The hybrid read: a user's materialized feed merged with the recent posts of the celebrities
//! they follow, newest first, bodies fetched in one pipelined round trip, the result cached.

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

/// Reads `user`'s feed, newest first, at most `limit` posts.
pub async fn read_feed(graph: &Graph, user: &str, limit: usize) -> RedisResult<FeedRead> {
    let mut redis = graph.connection();
    let ttl = graph.config().feed_cache_ttl;
    let cache_key = graph.feed_cache_key(user);
    if !ttl.is_zero() {
        let cached: Option<String> = redis::cmd("HGET")
            .arg(&cache_key)
            .arg(limit)
            .query_async(&mut redis)
            .await?;
        if let Some(posts) = cached.and_then(|json| serde_json::from_str(&json).ok()) {
            return Ok(FeedRead {
                posts,
                cached: true,
            });
        }
    }

    // Round trip 1: the materialized feed (twice the limit, in case some entries are filtered
    // out below), whom the user follows, and which of those are pulled on read.
    let (feed, following, celebrities): (Vec<(String, i64)>, Vec<String>, Vec<String>) =
        redis::pipe()
            .zrevrange_withscores(graph.feed_key(user), 0, (2 * limit) as isize - 1)
            .smembers(graph.following_key(user))
            .sinter(&[graph.following_key(user), graph.celebrities_key()])
            .query_async(&mut redis)
            .await?;
    let following: HashSet<String> = following.into_iter().collect();

    // Candidates: (created_at, post_id, author_id).
    let mut candidates: Vec<(i64, String, String)> = feed
        .iter()
        .filter_map(|(member, score)| {
            let (post_id, author) = parse_feed_member(member)?;
            Some((*score, post_id.to_owned(), author.to_owned()))
        })
        .collect();

    // Round trip 2: the celebrities' recent posts.
    if !celebrities.is_empty() {
        let mut pipe = redis::pipe();
        for celebrity in &celebrities {
            pipe.zrevrange_withscores(graph.author_posts_key(celebrity), 0, limit as isize - 1);
        }
        let pulled: Vec<Vec<(String, i64)>> = pipe.query_async(&mut redis).await?;
        for (celebrity, posts) in celebrities.iter().zip(pulled) {
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

    // Round trip 3: the bodies, all at once. A post whose body is gone is skipped.
    let mut posts = Vec::with_capacity(candidates.len());
    if !candidates.is_empty() {
        let mut pipe = redis::pipe();
        for (_, id, _) in &candidates {
            pipe.hgetall(graph.post_key(id));
        }
        let bodies: Vec<HashMap<String, String>> = pipe.query_async(&mut redis).await?;
        for ((created_at, post_id, author_id), body) in candidates.into_iter().zip(bodies) {
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

    if !ttl.is_zero() {
        let json = serde_json::to_string(&posts).expect("feed posts serialize");
        let _: () = redis::pipe()
            .hset(&cache_key, limit, json)
            .ignore()
            // NX: the first cached limit sets the expiry; later ones must not extend it.
            .cmd("PEXPIRE")
            .arg(&cache_key)
            .arg(ttl.as_millis() as u64)
            .arg("NX")
            .ignore()
            .query_async(&mut redis)
            .await?;
    }
    Ok(FeedRead {
        posts,
        cached: false,
    })
}
