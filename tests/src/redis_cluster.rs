//! The local 3-master Redis Cluster of `deploy/redis-cluster.sh up` (`make test` starts it):
//! test environments whose `redis.url` points at it, and direct looks at its nodes.

use std::time::Duration;

use sluice_core::Config;

use crate::TestEnv;

/// `redis.url` of the local Redis Cluster: its three masters as seed nodes.
pub const REDIS_CLUSTER_URL: &str = "redis+cluster://127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003";

/// The masters of the local Redis Cluster, each as a plain single-node URL.
pub const REDIS_CLUSTER_NODES: [&str; 3] = [
    "redis://127.0.0.1:7001",
    "redis://127.0.0.1:7002",
    "redis://127.0.0.1:7003",
];

impl TestEnv {
    /// A test environment on the local Redis Cluster instead of the single Redis.
    pub async fn on_redis_cluster() -> Self {
        Self::on_redis_cluster_with(|_| {}).await
    }

    /// `on_redis_cluster` with the configuration changed by `adjust` (as `with_config`).
    pub async fn on_redis_cluster_with(adjust: impl FnOnce(&mut Config)) -> Self {
        require_redis_cluster().await;
        Self::with_config(|config| {
            config.redis.url = REDIS_CLUSTER_URL.into();
            adjust(config);
        })
        .await
    }
}

/// A plain connection to one node (no redirections followed).
pub async fn node_connection(node: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(node).unwrap();
    tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or_else(|| panic!("the Redis Cluster node {node} does not answer: {}", UP_HINT))
}

const UP_HINT: &str = "run deploy/redis-cluster.sh up (make test does)";

/// Panics, naming the script that starts it, unless every master answers and reports
/// `cluster_state:ok`. A test on the cluster never skips.
pub async fn require_redis_cluster() {
    for node in REDIS_CLUSTER_NODES {
        let mut conn = node_connection(node).await;
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{node} is not a Redis Cluster node ({e}): {UP_HINT}"));
        assert!(
            info.lines().any(|l| l.trim() == "cluster_state:ok"),
            "the Redis Cluster is not healthy at {node}:\n{info}\n{UP_HINT}"
        );
    }
}

/// How many keys starting with `prefix` each master holds, in `REDIS_CLUSTER_NODES` order.
pub async fn keys_per_node(prefix: &str) -> Vec<usize> {
    let mut counts = Vec::new();
    for node in REDIS_CLUSTER_NODES {
        let mut conn = node_connection(node).await;
        let mut cursor: u64 = 0;
        let mut count = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}*"))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .expect("SCAN answers");
            count += keys.len();
            if next == 0 {
                break;
            }
            cursor = next;
        }
        counts.push(count);
    }
    counts
}
