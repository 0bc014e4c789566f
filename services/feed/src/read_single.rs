//! The hybrid read on a single Redis, in one round trip: a Lua script merges the feed with the
//! celebrities' recent posts and fetches the bodies server-side. During a push burst every round
//! trip of a read may wait behind the push scripts already queued (~1 ms each), so one round
//! trip instead of three is most of a read's tail. A cluster keeps these keys in different
//! slots, so it reads in several round trips (`read.rs`).

use std::sync::LazyLock;

use redis::{RedisResult, Script};

use crate::graph::Graph;
use crate::read::FeedPost;

/// The merged read, with the same semantics as the cluster's several round trips:
/// - candidates: the feed's newest ARGV[2] entries (`<post_id>:<author_id>` by time), and the
///   newest ARGV[1] listed posts (key prefix ARGV[3]) of every followed author who is pulled on
///   read (KEYS[2] ∩ KEYS[3]);
/// - only authors followed now (KEYS[2]; an unfollow may race its cleanup);
/// - newest first, equal times by post id descending (bytewise, like Rust's `str` order: Lua's
///   own string comparison follows the server's locale), then in the order found — merged from
///   the sources, each already in that order, rather than sorted: a sort of every candidate
///   was half the script's time;
/// - each post id once (its first place in that order), at most ARGV[1];
/// - bodies from ARGV[4]<post_id>; a post whose body is gone is skipped.
///
/// Returns `{post_id, author_id, text, created_at}` arrays, `created_at` as Redis wrote the
/// score (an integer in decimal: ms timestamps are far below 2^53, exact as Lua doubles).
/// Keys built from the prefixes are not declared in KEYS, which a single Redis tolerates and a
/// cluster does not.
const READ_FEED: &str = r"
local limit = tonumber(ARGV[1])

local function bytes_greater(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end

-- A source is a flat list of (post id, score) pairs in the merged order, with its authors.
local function source(pairs, author, authors)
  local src = {pairs = pairs, pos = 1, author = author, authors = authors}
  src.score = tonumber(pairs[2])
  return src
end

-- The feed, filtered to authors followed now. Redis orders equal scores by the whole member
-- (`<post_id>:<author_id>`), which is the post id order unless one id is a prefix of another:
-- then the feed is sorted again, the rest merged as Redis gave it.
local followed = {}
local feed = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
local entries = {}
local in_order = true
for i = 1, #feed, 2 do
  local member = feed[i]
  local colon = string.find(member, ':', 1, true)
  if colon then
    local author = string.sub(member, colon + 1)
    if followed[author] == nil then
      followed[author] = redis.call('SISMEMBER', KEYS[2], author) == 1
    end
    if followed[author] then
      local entry = {tonumber(feed[i + 1]), string.sub(member, 1, colon - 1), author, feed[i + 1]}
      local last = entries[#entries]
      if last and last[1] == entry[1] and bytes_greater(entry[2], last[2]) then
        in_order = false
      end
      entries[#entries + 1] = entry
      entry[5] = #entries
    end
  end
end
if not in_order then
  table.sort(entries, function(a, b)
    if a[1] ~= b[1] then return a[1] > b[1] end
    if a[2] ~= b[2] then return bytes_greater(a[2], b[2]) end
    return a[5] < b[5]
  end)
end
local feed_pairs, feed_authors = {}, {}
for i, entry in ipairs(entries) do
  feed_pairs[2 * i - 1], feed_pairs[2 * i] = entry[2], entry[4]
  feed_authors[i] = entry[3]
end
local sources = {source(feed_pairs, nil, feed_authors)}
for _, celebrity in ipairs(redis.call('SINTER', KEYS[2], KEYS[3])) do
  local pairs = redis.call('ZREVRANGE', ARGV[3] .. celebrity, 0, limit - 1, 'WITHSCORES')
  sources[#sources + 1] = source(pairs, celebrity, nil)
end

-- Merged: the greatest (score, post id) head first, equal heads in source order (the order a
-- stable sort of all candidates would give).
local posts, seen, kept = {}, {}, 0
while kept < limit do
  local best
  for _, src in ipairs(sources) do
    if src.score and (best == nil or src.score > best.score or (src.score == best.score
        and bytes_greater(src.pairs[src.pos], best.pairs[best.pos]))) then
      best = src
    end
  end
  if best == nil then break end
  local post_id, score = best.pairs[best.pos], best.pairs[best.pos + 1]
  local author = best.author or best.authors[(best.pos + 1) / 2]
  best.pos = best.pos + 2
  best.score = tonumber(best.pairs[best.pos + 1])
  if not seen[post_id] then
    seen[post_id] = true
    kept = kept + 1
    local text = redis.call('HGET', ARGV[4] .. post_id, 'text')
    if text then
      posts[#posts + 1] = {post_id, author, text, score}
    end
  end
end
return posts";

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(READ_FEED));

/// `user`'s merged feed, newest first, at most `limit` posts, reading at most `feed_entries` of
/// the materialized feed.
pub(crate) async fn read_feed(
    graph: &Graph,
    user: &str,
    limit: usize,
    feed_entries: usize,
) -> RedisResult<Vec<FeedPost>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, String, String, i64)> = SCRIPT
        .key(graph.feed_key(user))
        .key(graph.following_key(user))
        .key(graph.celebrities_key())
        .arg(limit)
        .arg(feed_entries)
        .arg(graph.author_posts_key(""))
        .arg(graph.post_key(""))
        .invoke_async(&mut graph.connection())
        .await?;
    Ok(rows
        .into_iter()
        .map(|(post_id, author_id, text, created_at)| FeedPost {
            post_id,
            author_id,
            text,
            created_at,
        })
        .collect())
}
