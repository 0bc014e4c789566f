//! The fan-out cases of fanout.rs on a 3-master Redis Cluster (`deploy/redis-cluster.sh up`):
//! every batch of feed and graph writes is split by hash slot, and the feeds still equal what the
//! history says.

use sluice_core::Config;
use sluice_tests::TestEnv;

async fn env_with(adjust: impl FnOnce(&mut Config)) -> TestEnv {
    TestEnv::on_redis_cluster_with(adjust).await
}

include!("fanout_cases/mod.rs");
