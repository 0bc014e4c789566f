//! One connection type for a single Redis and for a Redis Cluster, and the one rule that differs
//! between them: a cluster refuses a pipeline, transaction or script whose keys hash to different
//! slots (redis-rs refuses such a pipeline before sending it). Code that writes many keys at
//! once groups them with [`SlotGroups`]: one group on a single Redis (one round trip), one group
//! per hash slot on a cluster (sent all at once). Single-key commands to keys in thousands of
//! slots (a post's push) go by master instead: [`RedisConn::node_groups`] and
//! [`RedisConn::pipeline_on_node`].
//!
//! `redis.url` chooses: `redis://host:port` is a single Redis, `redis+cluster://h1:p1,h2:p2,…`
//! lists seed nodes of a cluster (any reachable one is enough; the rest of the topology is
//! discovered and followed through MOVED/ASK redirections and failovers).

use std::collections::HashMap;
use std::sync::Arc;

use redis::{
    aio::{ConnectionLike, ConnectionManager},
    cluster_async::ClusterConnection,
    cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr},
    Cmd, Pipeline, RedisFuture, RedisResult, Value,
};

use crate::config::RedisConfig;
use crate::redis_slot_owners::{parse_cluster_slots, SlotOwners, NO_NODE};

/// The URL scheme that names a Redis Cluster's seed nodes.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

/// A self-healing connection with bounded waits, to a single Redis or a Redis Cluster. Cheap to
/// clone: clones share the underlying connection(s).
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    /// With the slot owners last read, shared by clones (see [`RedisConn::node_groups`]).
    Cluster(ClusterConnection, Arc<SlotOwners>),
}

/// The seed nodes of a `redis+cluster://` URL, as `redis://` URLs; `None` for a single Redis.
/// Credentials written once before the hosts (`redis+cluster://user:pass@h1:p1,h2:p2`) apply to
/// every node.
pub fn cluster_seeds(url: &str) -> Option<Vec<String>> {
    let rest = url.strip_prefix(CLUSTER_SCHEME)?;
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), rest),
    };
    let hosts = hosts.split('/').next().unwrap_or_default();
    Some(
        hosts
            .split(',')
            .map(str::trim)
            .filter(|seed| !seed.is_empty())
            .map(|seed| format!("redis://{auth}{seed}"))
            .collect(),
    )
}

/// Connects as `redis.url` says. Commands and connection attempts time out after
/// `redis.timeout`, and a lost connection is re-established on a later command.
pub async fn connect(config: &RedisConfig) -> RedisResult<RedisConn> {
    if let Some(seeds) = cluster_seeds(&config.url) {
        let client = redis::cluster::ClusterClientBuilder::new(seeds)
            .connection_timeout(config.timeout)
            .response_timeout(config.timeout)
            // Redirections and reconnects within one command are retried briefly; callers retry
            // longer outages themselves.
            .retries(3)
            .max_retry_wait(1000)
            .build()?;
        return Ok(RedisConn::Cluster(
            client.get_async_connection().await?,
            Arc::default(),
        ));
    }
    let client = redis::Client::open(config.url.as_str())?;
    let settings = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(config.timeout)
        .set_response_timeout(config.timeout)
        // Reconnect attempts within one command: 2, 4 ms apart... capped at 1 s; callers retry.
        .set_number_of_retries(3)
        .set_max_delay(1000);
    Ok(RedisConn::Single(
        ConnectionManager::new_with_config(client, settings).await?,
    ))
}

impl RedisConn {
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(..))
    }

    /// Sends commands that each touch a single key: one pipeline on a single Redis, one pipeline
    /// per hash slot on a cluster, all in flight at once. Answers come back in command order.
    pub async fn pipeline_by_key(&self, commands: Vec<(String, Cmd)>) -> RedisResult<Vec<Value>> {
        let count = commands.len();
        let groups = SlotGroups::new(
            self.is_cluster(),
            commands.into_iter().enumerate(),
            |(_, (key, _))| slot_of(key),
        );
        side_by_side(count, groups.groups, |commands| {
            let mut pipe = Pipeline::with_capacity(commands.len());
            for (_, cmd) in commands {
                pipe.add_command(cmd);
            }
            let mut conn = self.clone();
            async move { pipe.query_async::<Vec<Value>>(&mut conn).await }
        })
        .await
    }

    /// Sends commands that each touch a single key and are safe to send twice (reads, or writes
    /// that set a value): one pipeline on a single Redis, one pipeline per master on a cluster,
    /// all in flight at once (see [`RedisConn::pipeline_on_node`]). Answers come back in command
    /// order. Where a call's keys spread over many slots, per-master pipelines make three
    /// requests of what per-slot ones make dozens.
    pub async fn pipeline_by_node(&self, commands: Vec<(String, Cmd)>) -> RedisResult<Vec<Value>> {
        if !self.is_cluster() {
            return self.pipeline_by_key(commands).await;
        }
        let count = commands.len();
        let groups = self
            .node_groups(commands.into_iter().enumerate(), |(_, (key, _))| {
                slot_of(key)
            })
            .await?;
        side_by_side(count, groups, |commands| self.pipeline_on_node(commands)).await
    }

    /// Groups items by the node that serves their keys (`slot` gives an item's [`slot_of`]):
    /// one group on a single Redis, one per master on a cluster, by the slot owners `CLUSTER
    /// SLOTS` gave at most seconds ago (items whose slot no master served then form their own
    /// group). Order within a group is the order the items were given in.
    pub async fn node_groups<K>(
        &self,
        items: impl IntoIterator<Item = K>,
        slot: impl Fn(&K) -> u16,
    ) -> RedisResult<Vec<Vec<K>>> {
        let RedisConn::Cluster(conn, owners) = self else {
            return Ok(SlotGroups::new(false, items, |_| 0).groups);
        };
        let map = match owners.fresh() {
            Some(map) => map,
            None => {
                let reply = conn
                    .clone()
                    .req_packed_command(&redis::cmd("CLUSTER").arg("SLOTS").clone())
                    .await?;
                let map = parse_cluster_slots(&reply)?;
                owners.store(map.clone());
                map
            }
        };
        let mut by_node: HashMap<u16, Vec<K>> = HashMap::new();
        for item in items {
            let node = map.get(slot(&item) as usize).copied().unwrap_or(NO_NODE);
            by_node.entry(node).or_default().push(item);
        }
        Ok(by_node.into_values().collect())
    }

    /// Sends commands that each touch a single key, all of whose keys one node serves (part of
    /// a group from [`RedisConn::node_groups`]), as one pipeline. On a cluster, if the node
    /// refuses any of them (slots moved, a failover), the slot owners are read again next time
    /// and all of them are sent again through [`RedisConn::pipeline_by_key`], which follows
    /// redirections: so each command must be safe to apply twice.
    pub async fn pipeline_on_node(&self, commands: Vec<(String, Cmd)>) -> RedisResult<Vec<Value>> {
        let RedisConn::Cluster(conn, owners) = self else {
            return self.pipeline_by_key(commands).await;
        };
        let Some((first_key, _)) = commands.first() else {
            return Ok(Vec::new());
        };
        let node =
            SingleNodeRoutingInfo::SpecificNode(Route::new(slot_of(first_key), SlotAddr::Master));
        let count = commands.len();
        let mut keys = Vec::with_capacity(count);
        let mut pipe = Pipeline::with_capacity(count);
        for (key, cmd) in commands {
            keys.push(key);
            pipe.add_command(cmd);
        }
        match conn.clone().route_pipeline(&pipe, 0, count, node).await {
            Ok(values) => Ok(values),
            Err(error) => {
                tracing::debug!(%error, "a node refused part of a pipeline; sending it again by slot");
                owners.forget();
                let again = keys.into_iter().zip(pipe.cmd_iter().cloned()).collect();
                self.pipeline_by_key(again).await
            }
        }
    }
}

/// Sends each group of a call's commands (each with its position in the call) with `send`, all
/// groups at once, and puts the answers back in the call's order.
async fn side_by_side<F, Fut>(
    count: usize,
    groups: Vec<Vec<(usize, (String, Cmd))>>,
    send: F,
) -> RedisResult<Vec<Value>>
where
    F: Fn(Vec<(String, Cmd)>) -> Fut,
    Fut: std::future::Future<Output = RedisResult<Vec<Value>>>,
{
    let sent = groups.into_iter().map(|group| {
        let (positions, commands): (Vec<usize>, Vec<(String, Cmd)>) = group.into_iter().unzip();
        let answers = send(commands);
        async move { Ok::<_, redis::RedisError>((positions, answers.await?)) }
    });
    let mut ordered = vec![Value::Nil; count];
    for (positions, values) in futures::future::try_join_all(sent).await? {
        for (position, value) in positions.into_iter().zip(values) {
            ordered[position] = value;
        }
    }
    Ok(ordered)
}

/// Keys grouped for multi-key calls: everything in one group on a single Redis, one group per
/// hash slot on a cluster. Order within a group is the order the keys were given in.
pub struct SlotGroups<K> {
    pub groups: Vec<Vec<K>>,
}

impl<K> SlotGroups<K> {
    /// Groups `items` by the slot `slot` gives for each (see [`slot_of`]).
    pub fn new(cluster: bool, keys: impl IntoIterator<Item = K>, slot: impl Fn(&K) -> u16) -> Self {
        if !cluster {
            let all: Vec<K> = keys.into_iter().collect();
            return Self {
                groups: if all.is_empty() {
                    Vec::new()
                } else {
                    vec![all]
                },
            };
        }
        let mut by_slot: HashMap<u16, Vec<K>> = HashMap::new();
        for key in keys {
            by_slot.entry(slot(&key)).or_default().push(key);
        }
        Self {
            groups: by_slot.into_values().collect(),
        }
    }
}

/// The hash slot of a key given as a string.
pub fn slot_of(key: &str) -> u16 {
    hash_slot(key.as_bytes())
}

/// Redis Cluster's slot of a key: CRC16 (XMODEM) of the key, or of its `{hash tag}` when it has
/// a non-empty one, modulo 16 384.
pub fn hash_slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tagged) % 16_384
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(conn) => conn.req_packed_command(cmd),
            RedisConn::Cluster(conn, _) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            RedisConn::Cluster(conn, _) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(conn) => conn.get_db(),
            RedisConn::Cluster(conn, _) => conn.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_the_cluster_spec() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(hash_slot(b"123456789"), 0x31C3);
        assert_eq!(hash_slot(b"foo"), 12182);
        assert_eq!(hash_slot(b"{user1000}.following"), hash_slot(b"user1000"));
        assert_eq!(hash_slot(b"foo{}{bar}"), hash_slot(b"foo{}{bar}"));
        assert_ne!(hash_slot(b"foo{}{bar}"), hash_slot(b"bar"));
        assert_eq!(hash_slot(b"foo{{bar}}zap"), hash_slot(b"{bar"));
    }

    #[test]
    fn cluster_urls_list_their_seeds() {
        assert_eq!(cluster_seeds("redis://127.0.0.1:6379"), None);
        assert_eq!(
            cluster_seeds("redis+cluster://127.0.0.1:7001,127.0.0.1:7002/"),
            Some(vec![
                "redis://127.0.0.1:7001".to_owned(),
                "redis://127.0.0.1:7002".to_owned()
            ])
        );
        assert_eq!(
            cluster_seeds("redis+cluster://app:s3cret@10.0.0.1:6379,10.0.0.2:6379"),
            Some(vec![
                "redis://app:s3cret@10.0.0.1:6379".to_owned(),
                "redis://app:s3cret@10.0.0.2:6379".to_owned()
            ])
        );
    }

    #[test]
    fn a_single_redis_takes_every_key_in_one_group() {
        let groups = SlotGroups::new(false, ["a", "b", "c"], |k| slot_of(k));
        assert_eq!(groups.groups, vec![vec!["a", "b", "c"]]);
        let groups = SlotGroups::new(true, ["{x}a", "b", "{x}c"], |k| slot_of(k));
        assert_eq!(groups.groups.len(), 2);
        assert!(groups.groups.contains(&vec!["{x}a", "{x}c"]));
    }
}
