//! Redis is stopped for 10 s in the middle of a run and started again: the fanout stops
//! consuming, retries, resumes, and every post ends up in every feed. This test stops the shared
//! Redis, so it lives alone in its own test binary.

use std::time::Duration;

use redis::AsyncCommands;
use sluice_feed::events::{FollowAction, FollowChanged, PostCreated};
use sluice_tests::{env_script, eventually, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn posts_written_during_a_redis_outage_all_reach_every_feed() {
    sluice_core::telemetry::init(&sluice_core::config::LogConfig::default());
    let env = TestEnv::new().await;
    let topics = env.topics();
    let authors = ["ana", "ben", "cy"];
    let readers: Vec<String> = (0..50).map(|i| format!("r{i}")).collect();
    let follows: Vec<_> = readers
        .iter()
        .flat_map(|r| {
            authors.iter().map(move |a| {
                (
                    a.to_string(),
                    FollowChanged::new(r, a, FollowAction::Follow)
                        .unwrap()
                        .encode(),
                )
            })
        })
        .collect();
    env.produce_in_order(&topics.follows(), &follows).await;
    let fanout = env.start_fanout().await;

    let mut posts = Vec::new();
    for round in 0..40 {
        if round == 10 {
            env_script("redis-stop");
        }
        if round == 30 {
            env_script("redis-start");
        }
        let author = authors[round % 3];
        let post = PostCreated::new(author, &format!("round {round}"), &env.config.social).unwrap();
        env.produce_in_order(&topics.posts(), &[(author.to_owned(), post.encode())])
            .await;
        posts.push(post);
        // 40 rounds over ~20 s: the outage (rounds 10 to 30) lasts about 10 s.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let graph = env.graph().await;
    let redis = env.redis().await;
    eventually(
        "every post in every reader's feed",
        Duration::from_secs(60),
        || {
            let (mut redis, graph, readers) = (redis.clone(), graph.clone(), readers.clone());
            async move {
                for reader in &readers {
                    let size: u64 = redis.zcard(graph.feed_key(reader)).await.ok()?;
                    if size != 40 {
                        return None;
                    }
                }
                Some(())
            }
        },
    )
    .await;
    fanout.stop().await;
}
