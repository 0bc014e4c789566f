//! The follower graph and the feeds in Redis, and every write the fan-out makes to them.
//!
//! Keys, under `redis.key_prefix`:
//! - `social:followers:<user>`, `social:following:<user>`: sets, the graph both ways.
//! - `social:followersversion:<user>`: a counter the follow path bumps after every change to
//!   the user's follower set, so the fanout knows when its cached copy is out of date.
//! - `social:celebrities`: set of authors at or over the threshold (pulled on read).
//! - `social:post:<post_id>`: hash with the post's body.
//! - `social:posts:<author>`: sorted set of the author's recent post ids, scored by time.
//! - `social:feed:<user>`: sorted set of `<post_id>:<author_id>`, scored by time, the newest
//!   `feed_cap` kept, give or take the few posts pushed since the feed's last trim (see
//!   [`trims_on_push`]); reads never look past the newest `feed_cap`.
//! - `social:feedcache:<user>`: hash of cached merged reads, one field per limit.
//!
//! Every write is idempotent (set adds, sorted-set adds of the same member and score, trims), so
//! re-processing an event after a crash changes nothing: at-least-once delivery, exactly-once
//! effect.

use futures::{StreamExt, TryStreamExt};
use redis::{AsyncCommands, RedisResult, Script};
use sluice_core::config::SocialConfig;
use sluice_core::redis_conn::RedisConn;

use crate::events::PostCreated;
use crate::follower_cache::{FollowerCache, Stamp};

/// Adds entries (score, member pairs in ARGV[3..]) to each feed in KEYS, and trims the first
/// ARGV[2] of them to ARGV[1] entries: one round trip for a batch of feeds. The trim check
/// (ZCARD, and ZREMRANGEBYRANK when over) would double the Redis calls of a push, so a post's
/// push trims only some feeds (see [`trims_on_push`]). On a Redis Cluster every call's keys
/// share one hash slot.
const PUSH_TO_FEEDS: &str = r"
local cap = tonumber(ARGV[1])
local trimmed = tonumber(ARGV[2])
for k, key in ipairs(KEYS) do
  for i = 3, #ARGV, 2 do
    redis.call('ZADD', key, ARGV[i], ARGV[i + 1])
  end
  if k <= trimmed and redis.call('ZCARD', key) > cap then
    redis.call('ZREMRANGEBYRANK', key, 0, -(cap + 1))
  end
end
return #KEYS";

/// A post's push trims about one feed in this many (see [`trims_on_push`]).
pub const TRIM_ONE_PUSH_IN: u64 = 16;

/// Whether pushing `post_id` to `feed` also trims the feed to `feed_cap`: about one push in
/// [`TRIM_ONE_PUSH_IN`], chosen by a stable hash of both. Between trims a feed holds up to the
/// posts pushed since its last trim over the cap: 15 on average, more than 64 once in ~60
/// feeds, more than 256 once in ~15 million; a read never looks past the newest `feed_cap`, so
/// what it shows is the same. Hashing the pair rather than the post spreads every post's trims
/// evenly over its followers (a post that trimmed every feed would be the slow one), and a
/// redelivered post trims exactly the feeds it trimmed the first time.
pub fn trims_on_push(post_id: &str, feed: &str) -> bool {
    // FNV-1a, then a 64-bit finalizer (splitmix64's): written out because the choice must never
    // change with a crate's version, and a linear hash (a CRC) would split the feeds into 16
    // fixed classes, one trimmed per post, which leaves posts that trim no feed at all.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    // A separator no id contains, so ("ab", "c") and ("a", "bc") are different pairs.
    for byte in post_id.bytes().chain([b'\n']).chain(feed.bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    hash.is_multiple_of(TRIM_ONE_PUSH_IN)
}

/// Which feeds a push trims to the cap.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Trim<'a> {
    /// Every feed: copies of many posts at once (an author leaving the pull set).
    Every,
    /// The feeds [`trims_on_push`] picks for this post id.
    Sampled(&'a str),
}

/// Push calls in flight at once, across every post this process fans out, counted in full
/// batches of feeds (the permits): two hide the round trip between scripts, and a feed read waits
/// behind at most two scripts (~1 ms each) per round trip, however many posts are being fanned
/// out. On a Redis Cluster each master gets about that much.
const PUSHES_IN_FLIGHT: usize = 2;

/// Pages of followers being written at once by one push: enough that the next page's scripts
/// are queued before the last one's are done.
const PAGES_IN_FLIGHT: usize = 2;

/// Followers read per SSCAN when a whole follower list is loaded: ~0.7 ms of Redis here, a
/// fraction of what a feed read may wait.
const LOAD_PAGE: usize = 1000;

/// What writing to every follower of an author did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Feeds written.
    pub feeds: u64,
    /// Whether the follower list came from the fanout's cache (no SSCAN).
    pub cached_followers: bool,
}

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
    /// One permit per feed being written, `PUSHES_IN_FLIGHT` batches' worth. Shared by clones:
    /// the in-flight limit is per process, not per post.
    push_permits: std::sync::Arc<tokio::sync::Semaphore>,
    /// Shared by clones, like the permits.
    follower_cache: std::sync::Arc<FollowerCache>,
    prefix: String,
    config: SocialConfig,
}

impl Graph {
    pub fn new(redis: RedisConn, key_prefix: &str, config: &SocialConfig) -> Self {
        Self {
            redis,
            prefix: format!("{key_prefix}social:"),
            config: config.clone(),
            push_permits: std::sync::Arc::new(tokio::sync::Semaphore::new(feeds_in_flight(config))),
            follower_cache: std::sync::Arc::new(FollowerCache::new(
                config.follower_cache_followers,
                config.follower_cache_ttl,
            )),
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
    pub fn followers_version_key(&self, user: &str) -> String {
        format!("{}followersversion:{user}", self.prefix)
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
    /// feed unless the author is a celebrity. Returns the mode and what the push did.
    pub async fn apply_post(&self, post: &PostCreated) -> RedisResult<(Mode, Delivery)> {
        let author_posts = self.author_posts_key(&post.author_id);
        let mut body = redis::cmd("HSET");
        body.arg(self.post_key(&post.post_id))
            .arg("post_id")
            .arg(&post.post_id)
            .arg("author_id")
            .arg(&post.author_id)
            .arg("text")
            .arg(&post.text)
            .arg("created_at")
            .arg(post.created_at);
        let mut listed = redis::cmd("ZADD");
        listed
            .arg(&author_posts)
            .arg(post.created_at)
            .arg(&post.post_id);
        let mut trimmed = redis::cmd("ZREMRANGEBYRANK");
        trimmed
            .arg(&author_posts)
            .arg(0)
            .arg(-(self.config.author_posts_cap as i64) - 1);
        self.redis
            .pipeline_by_key(vec![
                (self.post_key(&post.post_id), body),
                (author_posts.clone(), listed),
                (author_posts, trimmed),
            ])
            .await?;
        // Asked only once the post is listed (on a cluster the pipelines above run side by side):
        // an author leaving the pull set copies their listed posts after leaving it, so a post
        // that was judged pulled is always among those copied; and a follow whose version bump
        // is not seen here backfills the post, having read the author's posts after the bump.
        let mut is_celebrity = redis::cmd("SISMEMBER");
        is_celebrity
            .arg(self.celebrities_key())
            .arg(&post.author_id);
        let mut queries = self.stamp_queries(&post.author_id);
        queries.push((self.celebrities_key(), is_celebrity));
        let mut answers = self.redis.pipeline_by_key(queries).await?;
        let is_celebrity: bool =
            redis::from_redis_value(&answers.pop().unwrap_or(redis::Value::Nil))?;
        if is_celebrity {
            return Ok((Mode::Pull, Delivery::default()));
        }
        let stamp = parse_stamp(&answers)?;
        let entry = [(post.created_at, feed_member(&post.post_id, &post.author_id))];
        let trim = Trim::Sampled(&post.post_id);
        let delivered = self
            .for_each_follower_batch(&post.author_id, stamp, |feeds| {
                self.push_entries(feeds, &entry, trim)
            })
            .await?;
        Ok((Mode::Push, delivered))
    }

    /// The query for an author's newest `n` listed posts (ids with their times, newest first),
    /// keyed for `RedisConn::pipeline_by_key`.
    pub fn newest_posts_query(&self, author: &str, n: usize) -> (String, redis::Cmd) {
        let key = self.author_posts_key(author);
        let mut range = redis::cmd("ZREVRANGE");
        range.arg(&key).arg(0).arg(n as i64 - 1).arg("WITHSCORES");
        (key, range)
    }

    /// The newest `n` posts of an author as (score, feed member) pairs.
    pub(crate) async fn recent_entries(
        &self,
        author: &str,
        n: usize,
    ) -> RedisResult<Vec<(i64, String)>> {
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

    /// Adds `entries` to every feed in `feeds`, trimming those `trim` says to the cap,
    /// `batch_size` feeds per round trip, a few round trips in flight at once. On a single Redis
    /// a round trip is one script call. On a cluster, where a script's keys must share a hash
    /// slot (a post's followers spread over thousands), it is one pipeline of plain commands to
    /// one master: ZADD, and for a feed to trim ZREMRANGEBYRANK, a no-op on a feed within the
    /// cap. Returns the feeds written.
    pub(crate) async fn push_entries(
        &self,
        feeds: std::sync::Arc<[String]>,
        entries: &[(i64, String)],
        trim: Trim<'_>,
    ) -> RedisResult<u64> {
        if feeds.is_empty() || entries.is_empty() {
            return Ok(0);
        }
        let script = Script::new(PUSH_TO_FEEDS);
        let batch_size = self.config.batch_size.max(1);
        let cluster = self.redis.is_cluster();
        let trims = |i: usize| match trim {
            Trim::Every => true,
            Trim::Sampled(post_id) => trims_on_push(post_id, &feeds[i]),
        };
        // Indices into `feeds`, not references: a stream of closures over borrowed keys is not
        // `Send` to the compiler's satisfaction.
        let groups = self
            .redis
            .node_groups(0..feeds.len(), |&i| {
                sluice_core::redis_conn::slot_of(&feeds[i])
            })
            .await?;
        // The nodes of a cluster write side by side: each call takes its node's share of the
        // permits, so every node has about what a single Redis would in flight.
        let nodes = groups.len().max(1);
        // A script takes the entries once for all its feeds; plain commands repeat them in
        // every feed's ZADD, so a copy of many posts puts fewer feeds in each pipeline.
        let feeds_per_call = if cluster {
            (batch_size / entries.len()).max(1)
        } else {
            batch_size
        };
        let calls = calls_across_nodes(&groups, feeds_per_call);
        let written = futures::stream::iter(calls)
            .map(|keys| {
                let feeds_in_call = keys.len();
                let call = if cluster {
                    let mut commands = Vec::with_capacity(keys.len() + keys.len() / 8);
                    for &i in &keys {
                        self.add_to_feed(&feeds[i], entries, trims(i), &mut commands);
                    }
                    FeedCall::Commands(commands)
                } else {
                    // The script trims the first `trimmed` keys.
                    let (mut picked, rest): (Vec<_>, Vec<_>) =
                        keys.into_iter().partition(|&i| trims(i));
                    let trimmed = picked.len();
                    picked.extend(rest);
                    let mut invocation = script.prepare_invoke();
                    for &i in &picked {
                        invocation.key(&feeds[i]);
                    }
                    invocation.arg(self.config.feed_cap).arg(trimmed);
                    for (score, member) in entries {
                        invocation.arg(*score).arg(member);
                    }
                    FeedCall::Script(invocation)
                };
                let mut redis = self.redis.clone();
                let permits = self.push_permits.clone();
                // At most `batch_size` feeds (or feed entries): never more than there are permits.
                let share = if cluster {
                    (feeds_in_call * entries.len())
                        .min(batch_size)
                        .div_ceil(nodes)
                } else {
                    feeds_in_call
                };
                async move {
                    let _permits = permits
                        .acquire_many_owned(share as u32)
                        .await
                        .expect("never closed");
                    match call {
                        FeedCall::Script(invocation) => {
                            invocation.invoke_async::<u64>(&mut redis).await?;
                        }
                        FeedCall::Commands(commands) => {
                            redis.pipeline_on_node(commands).await?;
                        }
                    }
                    if !self.config.batch_pause.is_zero() {
                        tokio::time::sleep(self.config.batch_pause).await;
                    }
                    Ok::<u64, redis::RedisError>(feeds_in_call as u64)
                }
            })
            .buffer_unordered(if self.config.batch_pause.is_zero() {
                feeds_in_flight(&self.config)
            } else {
                1
            })
            .try_fold(0u64, |total, written| async move { Ok(total + written) })
            .await?;
        Ok(written)
    }

    /// Appends to `commands` the plain commands that add `entries` to `feed` (`ZADD`) and, if
    /// `trim`, cut it back to `feed_cap` (`ZREMRANGEBYRANK`, a no-op on a feed within the cap):
    /// both idempotent, so either may be sent twice.
    pub(crate) fn add_to_feed(
        &self,
        feed: &str,
        entries: &[(i64, String)],
        trim: bool,
        commands: &mut Vec<(String, redis::Cmd)>,
    ) {
        let mut add = redis::cmd("ZADD");
        add.arg(feed);
        for (score, member) in entries {
            add.arg(*score).arg(member);
        }
        commands.push((feed.to_owned(), add));
        if trim {
            let mut cut = redis::cmd("ZREMRANGEBYRANK");
            cut.arg(feed).arg(0).arg(-(self.config.feed_cap as i64) - 1);
            commands.push((feed.to_owned(), cut));
        }
    }

    /// The queries for an author's [`Stamp`] (version, then follower count), keyed for
    /// `RedisConn::pipeline_by_key`.
    fn stamp_queries(&self, author: &str) -> Vec<(String, redis::Cmd)> {
        let version = self.followers_version_key(author);
        let followers = self.followers_key(author);
        let mut get = redis::cmd("GET");
        get.arg(&version);
        let mut count = redis::cmd("SCARD");
        count.arg(&followers);
        vec![(version, get), (followers, count)]
    }

    /// The author's follower-set [`Stamp`] as Redis has it now.
    pub(crate) async fn follower_stamp(&self, author: &str) -> RedisResult<Stamp> {
        let answers = self
            .redis
            .pipeline_by_key(self.stamp_queries(author))
            .await?;
        parse_stamp(&answers)
    }

    /// Calls `write` with the feed keys of the author's followers (as of `stamp`, read before).
    /// From the follower cache when it holds them under that stamp; otherwise, when the list
    /// fits the cache, read whole first (a few big SSCAN pages: the writes then run back to
    /// back, as on a hit) and cached if longer than two batches; a list too big for the cache is
    /// written a page at a time as SSCAN reads it, so it is never held whole.
    pub(crate) async fn for_each_follower_batch<'a, F, Fut>(
        &self,
        author: &str,
        stamp: Stamp,
        write: F,
    ) -> RedisResult<Delivery>
    where
        F: Fn(std::sync::Arc<[String]>) -> Fut,
        Fut: std::future::Future<Output = RedisResult<u64>> + 'a,
    {
        if let Some(feeds) = self.follower_cache.get(author, stamp) {
            return Ok(Delivery {
                feeds: write(feeds).await?,
                cached_followers: true,
            });
        }
        let page_size = self.config.batch_size.max(1) * PUSHES_IN_FLIGHT;
        if stamp.followers > self.config.follower_cache_followers as u64 {
            return Ok(Delivery {
                feeds: self
                    .for_each_follower_page(author, page_size, write)
                    .await?,
                cached_followers: false,
            });
        }
        let mut feeds = Vec::with_capacity(stamp.followers as usize);
        self.for_each_follower_page(author, LOAD_PAGE.max(page_size), |page| {
            feeds.extend(page.iter().cloned());
            std::future::ready(Ok(0))
        })
        .await?;
        let feeds: std::sync::Arc<[String]> = feeds.into();
        if feeds.len() > 2 * page_size {
            self.follower_cache.put(author, stamp, feeds.clone());
        }
        Ok(Delivery {
            feeds: write(feeds).await?,
            cached_followers: false,
        })
    }

    async fn for_each_follower_page<'a, F, Fut>(
        &self,
        author: &str,
        page_size: usize,
        mut write: F,
    ) -> RedisResult<u64>
    where
        F: FnMut(std::sync::Arc<[String]>) -> Fut,
        Fut: std::future::Future<Output = RedisResult<u64>> + 'a,
    {
        let key = self.followers_key(author);
        let scan = |cursor: u64| {
            let mut redis = self.redis.clone();
            let key = key.clone();
            async move {
                redis::cmd("SSCAN")
                    .arg(&key)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(page_size)
                    .query_async::<(u64, Vec<String>)>(&mut redis)
                    .await
            }
        };
        // A page's writes overlap the next page's: waiting for a page to finish before the next
        // one's scripts were built and sent left Redis idle ~40 % of a 10 000-follower push.
        // The push permits still bound the scripts in flight; this bounds the pages in memory.
        let mut writing = futures::stream::FuturesUnordered::new();
        let (mut cursor, mut followers) = scan(0).await?;
        let mut written = 0;
        loop {
            let feeds: std::sync::Arc<[String]> =
                followers.iter().map(|f| self.feed_key(f)).collect();
            writing.push(write(feeds));
            if cursor == 0 {
                break;
            }
            let next_page = scan(cursor);
            tokio::pin!(next_page);
            let next = loop {
                tokio::select! {
                    page = &mut next_page => break page?,
                    Some(wrote) = writing.next() => written += wrote?,
                }
            };
            while writing.len() >= PAGES_IN_FLIGHT {
                written += writing.next().await.expect("not empty")?;
            }
            (cursor, followers) = next;
        }
        while let Some(wrote) = writing.next().await {
            written += wrote?;
        }
        Ok(written)
    }
}

/// One round trip of a push: a script call on a single Redis, plain commands to one master on a
/// cluster.
enum FeedCall<'a> {
    Script(redis::ScriptInvocation<'a>),
    Commands(Vec<(String, redis::Cmd)>),
}

/// Cuts each node's feeds into calls of `per_call` and orders them one node after the other,
/// round by round (first call of every node, then the second, ...): the calls in flight are
/// then spread over every master of a cluster, where node by node would keep all of them on one
/// master at a time while the others idle.
fn calls_across_nodes(groups: &[Vec<usize>], per_call: usize) -> Vec<Vec<usize>> {
    let mut per_node: Vec<_> = groups
        .iter()
        .map(|group| group.chunks(per_call.max(1)))
        .collect();
    let mut calls = Vec::new();
    loop {
        let before = calls.len();
        calls.extend(
            per_node
                .iter_mut()
                .filter_map(|chunks| chunks.next().map(<[usize]>::to_vec)),
        );
        if calls.len() == before {
            return calls;
        }
    }
}

/// Feeds being written at once by one fanout process (the push permits).
fn feeds_in_flight(config: &SocialConfig) -> usize {
    config.batch_size.max(1) * PUSHES_IN_FLIGHT
}

/// Reads the answers of [`Graph::stamp_queries`]; an author never followed through the follow
/// path has version 0.
fn parse_stamp(answers: &[redis::Value]) -> RedisResult<Stamp> {
    let [version, followers, ..] = answers else {
        return Err((redis::ErrorKind::TypeError, "missing stamp answers").into());
    };
    let version: Option<u64> = redis::from_redis_value(version)?;
    Ok(Stamp {
        version: version.unwrap_or(0),
        followers: redis::from_redis_value(followers)?,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_choice_never_changes() {
        // Pinned: a redelivery (or a newer sluice) must trim the same feeds.
        let picked: Vec<bool> = (0..64)
            .map(|n| trims_on_push("post-1", &format!("social:feed:user-{n}")))
            .collect();
        let picked: Vec<usize> = picked
            .iter()
            .enumerate()
            .filter(|(_, trims)| **trims)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(picked, [0, 8, 29, 38, 55]);
    }

    #[test]
    fn about_one_feed_in_sixteen_is_trimmed_per_post() {
        for post in ["0190c1a2-7c3e-7000-8000-000000000001", "p", "post-42"] {
            let trimmed = (0..16_000)
                .filter(|n| trims_on_push(post, &format!("pfx:social:feed:user-{n}")))
                .count();
            assert!(
                (800..1200).contains(&trimmed),
                "{post}: {trimmed} of 16 000"
            );
        }
    }

    #[test]
    fn calls_take_the_nodes_in_turn_so_every_master_has_some_in_flight() {
        let groups = vec![(0..5).collect(), (5..7).collect(), (7..10).collect()];
        assert_eq!(
            calls_across_nodes(&groups, 2),
            vec![
                vec![0, 1],
                vec![5, 6],
                vec![7, 8],
                vec![2, 3],
                vec![9],
                vec![4],
            ]
        );
        // One Redis: one group, cut in order.
        assert_eq!(
            calls_across_nodes(&[(0..5).collect()], 2),
            vec![vec![0, 1], vec![2, 3], vec![4]]
        );
        assert!(calls_across_nodes(&[], 2).is_empty());
    }

    #[test]
    fn every_post_trims_its_share() {
        // No post may trim none of its followers' feeds (or many): the trims of one post are
        // what makes it slow.
        for n in 0..200 {
            let post = format!("0190c1a2-7c3e-7000-8000-{n:012}");
            let trimmed = (0..1000)
                .filter(|user| trims_on_push(&post, &format!("social:feed:{user}")))
                .count();
            assert!((30..100).contains(&trimmed), "{post}: {trimmed} of 1 000");
        }
    }

    #[test]
    fn every_feed_is_trimmed_now_and_then() {
        // The other way round: one feed, many posts. The longest run without a trim bounds how
        // far over the cap the feed went.
        for feed in ["social:feed:alice", "x:social:feed:user-9998"] {
            let mut longest = 0;
            let mut run = 0;
            let mut trimmed = 0;
            for n in 0..16_000 {
                if trims_on_push(&format!("post-{n}"), feed) {
                    trimmed += 1;
                    run = 0;
                } else {
                    run += 1;
                    longest = longest.max(run);
                }
            }
            assert!((800..1200).contains(&trimmed), "{feed}: {trimmed}");
            assert!(longest < 250, "{feed}: {longest} pushes without a trim");
        }
    }

    #[test]
    fn the_pair_decides_not_its_concatenation() {
        let differs = (0..256).any(|n| {
            let post = format!("p{n}");
            trims_on_push(&format!("{post}a"), "feed") != trims_on_push(&post, "afeed")
        });
        assert!(differs);
    }
}
