//! The fan-out on a single Redis: feeds equal what the history says they should be, through
//! follows, unfollows, celebrities crossing the threshold both ways, the cap and the cache.
//! fanout_cluster.rs runs the same cases on a Redis Cluster.

use sluice_core::Config;
use sluice_tests::TestEnv;

async fn env_with(adjust: impl FnOnce(&mut Config)) -> TestEnv {
    TestEnv::with_config(adjust).await
}

include!("fanout_cases/mod.rs");
