//! One user's place in the graph at a glance, for the console: how many follow them and whom
//! they follow, whether their posts are pulled on read (a celebrity), and their feed's size.

use redis::{Cmd, RedisResult};
use serde::Serialize;

use crate::graph::Graph;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserSummary {
    pub followers: u64,
    pub following: u64,
    /// At or over the celebrity threshold: posts are merged in on read, not pushed.
    pub celebrity: bool,
    /// Entries in the user's materialized feed (pushed posts only).
    pub feed_size: u64,
    /// Posts of theirs the recent-posts list holds.
    pub recent_posts: u64,
}

impl Graph {
    /// Five reads, one round trip on a single Redis (one per slot, in parallel, on a cluster).
    pub async fn user_summary(&self, user: &str) -> RedisResult<UserSummary> {
        let one = |name: &str, key: String, member: Option<&str>| {
            let mut cmd = Cmd::new();
            cmd.arg(name).arg(&key);
            if let Some(member) = member {
                cmd.arg(member);
            }
            (key, cmd)
        };
        let replies = self
            .connection()
            .pipeline_by_key(vec![
                one("SCARD", self.followers_key(user), None),
                one("SCARD", self.following_key(user), None),
                one("SISMEMBER", self.celebrities_key(), Some(user)),
                one("ZCARD", self.feed_key(user), None),
                one("ZCARD", self.author_posts_key(user), None),
            ])
            .await?;
        let number = |i: usize| -> RedisResult<u64> { redis::from_redis_value(&replies[i]) };
        Ok(UserSummary {
            followers: number(0)?,
            following: number(1)?,
            celebrity: number(2)? == 1,
            feed_size: number(3)?,
            recent_posts: number(4)?,
        })
    }
}
