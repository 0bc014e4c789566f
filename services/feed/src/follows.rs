//! Follow changes, applied a batch at a time: a bulk import of follows costs a few Redis round
//! trips per batch instead of several per follow.
//!
//! A batch is whatever the consumer read (in order per followee, the topic's key). Its effect is
//! the same as applying the changes one by one:
//! - the graph both ways is written in order (on a Redis Cluster each key's commands share one
//!   pipeline, so their order holds);
//! - for each (follower, followee) pair only the last change decides the feed: a follow backfills
//!   the followee's recent posts, an unfollow removes all of them;
//! - whether the followee is pulled on read is decided by its follower count after the batch.
//!
//! Every write is idempotent, so a batch applied again after a crash changes nothing.

use std::collections::{HashMap, HashSet};

use redis::{AsyncCommands, Cmd, FromRedisValue, RedisResult};

use crate::{
    events::{FollowAction, FollowChanged},
    graph::{feed_member, Graph, Trim},
};

/// What a batch did, for the fanout's metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FollowsApplied {
    pub follows: u64,
    pub unfollows: u64,
}

/// A followee's place in the push/pull split before and after the batch.
#[derive(Debug, Clone, Copy)]
struct Mode {
    was_celebrity: bool,
    is_celebrity: bool,
    followers: u64,
}

impl Graph {
    /// Applies a batch of follow changes (see the module comment for what "in order" means).
    pub async fn apply_follows(&self, changes: &[FollowChanged]) -> RedisResult<FollowsApplied> {
        let mut applied = FollowsApplied::default();
        if changes.is_empty() {
            return Ok(applied);
        }
        // Round trip 1: the graph both ways, in order.
        let mut graph_writes = Vec::with_capacity(changes.len() * 2);
        for change in changes {
            let verb = match change.action {
                FollowAction::Follow => {
                    applied.follows += 1;
                    "SADD"
                }
                FollowAction::Unfollow => {
                    applied.unfollows += 1;
                    "SREM"
                }
            };
            let followers = self.followers_key(&change.followee_id);
            let following = self.following_key(&change.follower_id);
            graph_writes.push((
                followers.clone(),
                command(verb, &followers, &change.follower_id),
            ));
            graph_writes.push((
                following.clone(),
                command(verb, &following, &change.followee_id),
            ));
        }
        self.connection().pipeline_by_key(graph_writes).await?;

        // The last change of each pair decides its feed; followees in first-seen order.
        let mut last: HashMap<(&str, &str), FollowAction> = HashMap::new();
        let mut followees: Vec<&str> = Vec::new();
        let mut seen = HashSet::new();
        for change in changes {
            last.insert(
                (change.follower_id.as_str(), change.followee_id.as_str()),
                change.action,
            );
            if seen.insert(change.followee_id.as_str()) {
                followees.push(change.followee_id.as_str());
            }
        }

        // Round trip 2: each followee's follower count, and which were pulled on read; and each
        // followee's follower version bumped, only now that the sets are written (on a cluster
        // they are in other slots), and before the backfills below read the followee's posts:
        // a post that fanned out from a follower list cached before this bump was listed before
        // it, so the backfill copies it.
        let modes = self.modes(&followees).await?;

        // Round trip 3: the posts each followee's changes need: the recent ones to backfill a
        // follow of a push author, all listed ones to clean up after an unfollow.
        let mut wanted: HashMap<&str, usize> = HashMap::new();
        for (&(_, followee), action) in &last {
            let n = match action {
                FollowAction::Follow if modes[followee].is_push_throughout() => {
                    self.config().backfill_posts
                }
                FollowAction::Follow => 0,
                FollowAction::Unfollow => self.config().author_posts_cap,
            };
            let entry = wanted.entry(followee).or_default();
            *entry = (*entry).max(n);
        }
        let posts = self.listed_posts(&wanted).await?;

        // Round trip 4: the feeds: backfills, cleanups, and every changed follower's cached read
        // dropped (they expect to see the change on their next read).
        let mut feed_writes: Vec<(String, Cmd)> = Vec::new();
        let mut cached_reads = HashSet::new();
        for (&(follower, followee), action) in &last {
            let feed = self.feed_key(follower);
            let listed = posts.get(followee).map(Vec::as_slice).unwrap_or_default();
            match action {
                FollowAction::Follow => {
                    let backfill = &listed[..listed.len().min(self.config().backfill_posts)];
                    if modes[followee].is_push_throughout() && !backfill.is_empty() {
                        self.add_to_feed(&feed, backfill, true, &mut feed_writes);
                    }
                }
                FollowAction::Unfollow if !listed.is_empty() => {
                    let mut remove = redis::cmd("ZREM");
                    remove.arg(&feed);
                    for (_, member) in listed {
                        remove.arg(member);
                    }
                    feed_writes.push((feed, remove));
                }
                FollowAction::Unfollow => {}
            }
            if cached_reads.insert(follower) && !self.config().feed_cache_ttl.is_zero() {
                let cache = self.feed_cache_key(follower);
                let mut drop = redis::cmd("EVAL");
                drop.arg(crate::read::INVALIDATE_CACHE)
                    .arg(1)
                    .arg(&cache)
                    .arg(self.config().feed_cache_ttl.as_millis() as u64);
                feed_writes.push((cache, drop));
            }
        }
        self.connection().pipeline_by_key(feed_writes).await?;

        for followee in followees {
            self.cross_threshold(followee, modes[followee]).await?;
        }
        Ok(applied)
    }

    /// Follower counts after the batch and celebrity flags before it; bumps each followee's
    /// follower version on the way.
    async fn modes<'a>(&self, followees: &[&'a str]) -> RedisResult<HashMap<&'a str, Mode>> {
        let mut queries: Vec<(String, Cmd)> = followees
            .iter()
            .map(|followee| {
                let key = self.followers_key(followee);
                let mut scard = redis::cmd("SCARD");
                scard.arg(&key);
                (key, scard)
            })
            .collect();
        for followee in followees {
            let key = self.followers_version_key(followee);
            let mut bump = redis::cmd("INCR");
            bump.arg(&key);
            queries.push((key, bump));
        }
        let mut flags = redis::cmd("SMISMEMBER");
        flags.arg(self.celebrities_key()).arg(followees);
        queries.push((self.celebrities_key(), flags));
        let mut answers = self.connection().pipeline_by_key(queries).await?;
        let flags: Vec<bool> =
            FromRedisValue::from_redis_value(&answers.pop().unwrap_or(redis::Value::Nil))?;
        let threshold = self.config().celebrity_threshold;
        let mut modes = HashMap::with_capacity(followees.len());
        for ((followee, count), was_celebrity) in followees.iter().zip(answers).zip(flags) {
            let followers: u64 = FromRedisValue::from_redis_value(&count)?;
            modes.insert(
                *followee,
                Mode {
                    was_celebrity,
                    is_celebrity: followers >= threshold,
                    followers,
                },
            );
        }
        Ok(modes)
    }

    /// The newest `n` listed posts of each author, as (score, feed member) pairs, newest first.
    async fn listed_posts<'a>(
        &self,
        wanted: &HashMap<&'a str, usize>,
    ) -> RedisResult<HashMap<&'a str, Vec<(i64, String)>>> {
        let authors: Vec<(&str, usize)> = wanted
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(author, n)| (*author, *n))
            .collect();
        let queries = authors
            .iter()
            .map(|(author, n)| self.newest_posts_query(author, *n))
            .collect();
        let answers = self.connection().pipeline_by_key(queries).await?;
        let mut posts = HashMap::with_capacity(authors.len());
        for ((author, _), answer) in authors.into_iter().zip(answers) {
            let listed: Vec<(String, i64)> = FromRedisValue::from_redis_value(&answer)?;
            posts.insert(
                author,
                listed
                    .into_iter()
                    .map(|(id, score)| (score, feed_member(&id, author)))
                    .collect(),
            );
        }
        Ok(posts)
    }

    /// Moves an author between push and pull when the batch took their follower count across
    /// the threshold.
    async fn cross_threshold(&self, followee: &str, mode: Mode) -> RedisResult<()> {
        let mut redis = self.connection();
        if mode.is_celebrity && !mode.was_celebrity {
            let _: () = redis.sadd(self.celebrities_key(), followee).await?;
            tracing::info!(author = %followee, followers = mode.followers, "author became a celebrity: pulled on read from now on");
        } else if !mode.is_celebrity && mode.was_celebrity {
            // Copied before leaving the pull set, so the author's posts never vanish from a
            // follower's read; copied again for what was listed meanwhile, because posts are
            // applied by their own consumer and one may have been judged pulled just before.
            let recent = self
                .recent_entries(followee, self.config().feed_cap)
                .await?;
            let stamp = self.follower_stamp(followee).await?;
            let copied = self
                .for_each_follower_batch(followee, stamp, |feeds| {
                    self.push_entries(feeds, &recent, Trim::Every)
                })
                .await?
                .feeds;
            let _: () = redis.srem(self.celebrities_key(), followee).await?;
            let copied_already: HashSet<&str> = recent.iter().map(|(_, m)| m.as_str()).collect();
            let late: Vec<(i64, String)> = self
                .recent_entries(followee, self.config().feed_cap)
                .await?
                .into_iter()
                .filter(|(_, member)| !copied_already.contains(member.as_str()))
                .collect();
            if !late.is_empty() {
                let stamp = self.follower_stamp(followee).await?;
                self.for_each_follower_batch(followee, stamp, |feeds| {
                    self.push_entries(feeds, &late, Trim::Every)
                })
                .await?;
            }
            tracing::info!(author = %followee, followers = mode.followers, feeds = copied, "author fell below the threshold: pushed on write from now on");
        }
        Ok(())
    }
}

impl Mode {
    /// Pushed on write before and after the batch: a new follower needs a backfill. (An author
    /// pulled after the batch is merged on read; one that left the pull set is copied to every
    /// follower, new ones included.)
    fn is_push_throughout(self) -> bool {
        !self.was_celebrity && !self.is_celebrity
    }
}

fn command(verb: &str, key: &str, member: &str) -> Cmd {
    let mut cmd = redis::cmd(verb);
    cmd.arg(key).arg(member);
    cmd
}
