//! The follower graph and the feeds in Redis, and every write the fan-out makes to them.
//!
//! Keys, under `redis.key_prefix`:
//! - `social:followers:<user>`, `social:following:<user>`: sets, the graph both ways.
//! - `social:celebrities`: set of authors at or over the threshold (pulled on read).
//! - `social:post:<post_id>`: hash with the post's body.
//! - `social:posts:<author>`: sorted set of the author's recent post ids, scored by time.
//! - `social:feed:<user>`: sorted set of `<post_id>:<author_id>`, scored by time, the newest
//!   `feed_cap` kept.
//! - `social:feedcache:<user>`: hash of cached merged reads, one field per limit.
//!
//! Every write is idempotent (set adds, sorted-set adds of the same member and score, trims), so
//! re-processing an event after a crash changes nothing: at-least-once delivery, exactly-once
//! effect.

use redis::{AsyncCommands, RedisResult, Script};
use sluice_core::config::SocialConfig;
use sluice_core::redis_conn::RedisConn;

use crate::events::{FollowAction, FollowChanged, PostCreated};

/// Adds one entry to many feeds, trimming each to the cap. One script call per batch of
/// followers: one round trip, and no second command per follower for the trim.
const PUSH_ONE_TO_MANY: &str = r"
local cap = tonumber(ARGV[3])
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[1], ARGV[2])
  if redis.call('ZCARD', key) > cap then
    redis.call('ZREMRANGEBYRANK', key, 0, -(cap + 1))
  end
end
return #KEYS";

/// Adds many entries (score, member pairs in ARGV[2..]) to each feed in KEYS, trimming to ARGV[1].
const PUSH_MANY_TO_MANY: &str = r"
local cap = tonumber(ARGV[1])
for _, key in ipairs(KEYS) do
  for i = 2, #ARGV, 2 do
    redis.call('ZADD', key, ARGV[i], ARGV[i + 1])
  end
  if redis.call('ZCARD', key) > cap then
    redis.call('ZREMRANGEBYRANK', key, 0, -(cap + 1))
  end
end
return #KEYS";

/// How a post was distributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Push,
    Pull,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Push => "push",
            Mode::Pull => "pull",
        }
    }
}

#[derive(Clone)]
pub struct Graph {
    redis: RedisConn,
    prefix: String,
    config: SocialConfig,
}

impl Graph {
    pub fn new(redis: RedisConn, key_prefix: &str, config: &SocialConfig) -> Self {
        Self {
            redis,
            prefix: format!("{key_prefix}social:"),
            config: config.clone(),
        }
    }

    pub fn config(&self) -> &SocialConfig {
        &self.config
    }

    pub fn connection(&self) -> RedisConn {
        self.redis.clone()
    }

    pub fn followers_key(&self, user: &str) -> String {
        format!("{}followers:{user}", self.prefix)
    }
    pub fn following_key(&self, user: &str) -> String {
        format!("{}following:{user}", self.prefix)
    }
    pub fn celebrities_key(&self) -> String {
        format!("{}celebrities", self.prefix)
    }
    pub fn post_key(&self, post_id: &str) -> String {
        format!("{}post:{post_id}", self.prefix)
    }
    pub fn author_posts_key(&self, author: &str) -> String {
        format!("{}posts:{author}", self.prefix)
    }
    pub fn feed_key(&self, user: &str) -> String {
        format!("{}feed:{user}", self.prefix)
    }
    /// A hash of cached merged reads, one field per limit, expiring as a whole.
    pub fn feed_cache_key(&self, user: &str) -> String {
        format!("{}feedcache:{user}", self.prefix)
    }

    /// Stores the post and its author's recent-posts entry, then pushes it to every follower's
    /// feed unless the author is a celebrity. Returns the mode and the feeds written.
    pub async fn apply_post(&self, post: &PostCreated) -> RedisResult<(Mode, u64)> {
        let mut redis = self.redis.clone();
        let author_posts = self.author_posts_key(&post.author_id);
        let (is_celebrity,): (bool,) = redis::pipe()
            .hset_multiple(
                self.post_key(&post.post_id),
                &[
                    ("post_id", post.post_id.as_str()),
                    ("author_id", post.author_id.as_str()),
                    ("text", post.text.as_str()),
                    ("created_at", &post.created_at.to_string()),
                ],
            )
            .ignore()
            .zadd(&author_posts, &post.post_id, post.created_at)
            .ignore()
            .zremrangebyrank(
                &author_posts,
                0,
                -(self.config.author_posts_cap as isize) - 1,
            )
            .ignore()
            .sismember(self.celebrities_key(), &post.author_id)
            .query_async(&mut redis)
            .await?;
        if is_celebrity {
            return Ok((Mode::Pull, 0));
        }
        let member = feed_member(&post.post_id, &post.author_id);
        let script = Script::new(PUSH_ONE_TO_MANY);
        let delivered = self
            .for_each_follower_batch(&post.author_id, |keys| {
                let mut invocation = script.prepare_invoke();
                for key in keys {
                    invocation.key(key);
                }
                invocation
                    .arg(post.created_at)
                    .arg(&member)
                    .arg(self.config.feed_cap);
                let mut redis = redis.clone();
                async move { invocation.invoke_async::<u64>(&mut redis).await }
            })
            .await?;
        Ok((Mode::Push, delivered))
    }

    /// Applies a follow or an unfollow: the graph both ways, the new follower's backfill or the
    /// old follower's cleanup, and the author's mode when the change crosses the threshold.
    pub async fn apply_follow(&self, change: &FollowChanged) -> RedisResult<()> {
        let mut redis = self.redis.clone();
        let (follower, followee) = (&change.follower_id, &change.followee_id);
        let followers = self.followers_key(followee);
        let following = self.following_key(follower);
        let mut pipe = redis::pipe();
        match change.action {
            FollowAction::Follow => pipe
                .sadd(&followers, follower)
                .ignore()
                .sadd(&following, followee)
                .ignore(),
            FollowAction::Unfollow => pipe
                .srem(&followers, follower)
                .ignore()
                .srem(&following, followee)
                .ignore(),
        };
        let (count, was_celebrity): (u64, bool) = pipe
            .scard(&followers)
            .sismember(self.celebrities_key(), followee)
            .query_async(&mut redis)
            .await?;
        let is_celebrity = count >= self.config.celebrity_threshold;

        match change.action {
            // A pull author's posts are merged on read; a push author's recent posts are copied
            // so the new follower sees them without waiting for a new post.
            FollowAction::Follow if !was_celebrity => {
                let recent = self
                    .recent_entries(followee, self.config.backfill_posts)
                    .await?;
                self.push_entries(&[self.feed_key(follower)], &recent)
                    .await?;
            }
            FollowAction::Follow => {}
            FollowAction::Unfollow => {
                let members: Vec<String> =
                    redis.zrange(self.author_posts_key(followee), 0, -1).await?;
                if !members.is_empty() {
                    let entries: Vec<String> =
                        members.iter().map(|id| feed_member(id, followee)).collect();
                    let _: () = redis.zrem(self.feed_key(follower), entries).await?;
                }
            }
        }
        // The follower expects to see the change on their next read, not after the cache expires.
        let _: () = redis.del(self.feed_cache_key(follower)).await?;

        if is_celebrity && !was_celebrity {
            let _: () = redis.sadd(self.celebrities_key(), followee).await?;
            tracing::info!(author = %followee, followers = count, "author became a celebrity: pulled on read from now on");
        } else if !is_celebrity && was_celebrity {
            // Before leaving the pull set, copy the author's recent posts into every follower's
            // feed: once the author is no longer merged on read they must be there already.
            let recent = self.recent_entries(followee, self.config.feed_cap).await?;
            let copied = self
                .for_each_follower_batch(followee, |keys| {
                    let this = self.clone();
                    let recent = recent.clone();
                    async move {
                        this.push_entries(&keys, &recent)
                            .await
                            .map(|()| keys.len() as u64)
                    }
                })
                .await?;
            let _: () = redis.srem(self.celebrities_key(), followee).await?;
            tracing::info!(author = %followee, followers = count, feeds = copied, "author fell below the threshold: pushed on write from now on");
        }
        Ok(())
    }

    /// The newest `n` posts of an author as (score, feed member) pairs.
    async fn recent_entries(&self, author: &str, n: usize) -> RedisResult<Vec<(i64, String)>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let posts: Vec<(String, i64)> = self
            .redis
            .clone()
            .zrevrange_withscores(self.author_posts_key(author), 0, n as isize - 1)
            .await?;
        Ok(posts
            .into_iter()
            .map(|(id, score)| (score, feed_member(&id, author)))
            .collect())
    }

    async fn push_entries(&self, feeds: &[String], entries: &[(i64, String)]) -> RedisResult<()> {
        if feeds.is_empty() || entries.is_empty() {
            return Ok(());
        }
        let script = Script::new(PUSH_MANY_TO_MANY);
        let mut invocation = script.prepare_invoke();
        for feed in feeds {
            invocation.key(feed);
        }
        invocation.arg(self.config.feed_cap);
        for (score, member) in entries {
            invocation.arg(*score).arg(member);
        }
        invocation
            .invoke_async::<u64>(&mut self.redis.clone())
            .await
            .map(|_| ())
    }

    /// Calls `write` with the feed keys of the author's followers, `batch_size` at a time,
    /// iterating with SSCAN so a huge follower set is never loaded in one command.
    async fn for_each_follower_batch<F, Fut>(&self, author: &str, mut write: F) -> RedisResult<u64>
    where
        F: FnMut(Vec<String>) -> Fut,
        Fut: std::future::Future<Output = RedisResult<u64>>,
    {
        let mut redis = self.redis.clone();
        let key = self.followers_key(author);
        let (mut cursor, mut written, mut pending) = (0u64, 0u64, Vec::new());
        loop {
            let (next, followers): (u64, Vec<String>) = redis::cmd("SSCAN")
                .arg(&key)
                .arg(cursor)
                .arg("COUNT")
                .arg(self.config.batch_size)
                .query_async(&mut redis)
                .await?;
            pending.extend(followers.iter().map(|f| self.feed_key(f)));
            cursor = next;
            while pending.len() >= self.config.batch_size || (cursor == 0 && !pending.is_empty()) {
                let take = pending.len().min(self.config.batch_size);
                let batch: Vec<String> = pending.drain(..take).collect();
                written += write(batch).await?;
                if !self.config.batch_pause.is_zero() {
                    tokio::time::sleep(self.config.batch_pause).await;
                }
            }
            if cursor == 0 {
                return Ok(written);
            }
        }
    }
}

/// A feed entry: the post id first (so equal scores order by id, like the merged read), then the
/// author, so unfollow cleanup and read-time filtering need no body lookup.
pub fn feed_member(post_id: &str, author_id: &str) -> String {
    format!("{post_id}:{author_id}")
}

/// Splits a feed member back into (post id, author id).
pub fn parse_feed_member(member: &str) -> Option<(&str, &str)> {
    member.split_once(':')
}
