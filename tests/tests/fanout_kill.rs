//! The fanout process is SIGKILLed in the middle of fanning out one post to 5000 followers and
//! restarted: every follower ends up with the post exactly once.
//!
//! What this proves, precisely: processing is at-least-once (the restarted fanout redoes the
//! whole post, since its offset was never stored) and the effect is exactly-once because a feed
//! write is idempotent (the same member with the same score). The restarted process's own
//! delivery counter is checked too, so a post fanned out twice within one process — a real
//! double delivery, not a redo after a crash — would show as 10 000 writes.

use std::time::Duration;

use redis::AsyncCommands;
use sluice_feed::events::{FollowAction, FollowChanged, PostCreated};
use sluice_tests::{eventually, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fanout_killed_mid_post_delivers_it_to_every_follower_exactly_once() {
    let env = TestEnv::with_config(|c| {
        // Small, throttled batches stretch the fan-out over ~2.5 s, so the kill lands inside it.
        c.social.batch_size = 100;
        c.social.batch_pause = Duration::from_millis(50);
    })
    .await;
    let topics = env.topics();
    let followers: Vec<String> = (0..5000).map(|i| format!("f{i}")).collect();
    let follows: Vec<_> = followers
        .iter()
        .map(|f| {
            (
                "idol".to_owned(),
                FollowChanged::new(f, "idol", FollowAction::Follow)
                    .unwrap()
                    .encode(),
            )
        })
        .collect();
    env.produce_in_order(&topics.follows(), &follows).await;
    let graph = env.graph().await;
    let mut redis = env.redis().await;

    let mut fanout = env.spawn_sluice(&["fanout"]);
    eventually("5000 follows applied", Duration::from_secs(120), || {
        let (mut redis, key) = (redis.clone(), graph.followers_key("idol"));
        async move { (redis.scard::<_, u64>(key).await.ok()? == 5000).then_some(()) }
    })
    .await;

    let post = PostCreated::new("idol", "to all of you", &env.config.social).unwrap();
    env.produce_in_order(&topics.posts(), &[("idol".to_owned(), post.encode())])
        .await;
    let member = format!("{}:idol", post.post_id);
    let delivered = |redis: sluice_core::redis_conn::RedisConn| {
        let (graph, followers, member) = (graph.clone(), followers.clone(), member.clone());
        async move {
            let mut pipe = redis::pipe();
            for f in &followers {
                pipe.zscore(graph.feed_key(f), &member);
            }
            let scores: Vec<Option<f64>> = pipe.query_async(&mut redis.clone()).await.unwrap();
            scores.iter().filter(|s| s.is_some()).count()
        }
    };
    eventually("the fan-out under way", Duration::from_secs(30), || {
        let redis = redis.clone();
        async move { (delivered(redis).await > 0).then_some(()) }
    })
    .await;
    fanout.kill().expect("SIGKILL the fanout");
    fanout.wait().unwrap();
    let at_kill = delivered(redis.clone()).await;
    assert!(
        at_kill < 5000,
        "the kill landed before the fan-out finished ({at_kill} delivered)"
    );

    let metrics_port = sluice_tests::free_port();
    let listen = format!("127.0.0.1:{metrics_port}");
    let mut restarted =
        env.spawn_sluice_with(&["fanout"], &[("SLUICE__SOCIAL__METRICS_LISTEN", &listen)]);
    eventually(
        "every follower to have the post",
        Duration::from_secs(120),
        || {
            let redis = redis.clone();
            async move { (delivered(redis).await == 5000).then_some(()) }
        },
    )
    .await;
    // The counter moves when the post's whole fan-out returns, a moment after its last feed is
    // written: wait for it, then check it stays there (no second fan-out of the same post).
    let http = reqwest::Client::new();
    let deliveries = || {
        let (http, url) = (http.clone(), format!("http://{listen}/metrics"));
        async move {
            sluice_tests::get_text(&http, &url)
                .await
                .lines()
                .find_map(|l| l.strip_prefix("sluice_fanout_deliveries_total "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        }
    };
    eventually(
        "the restarted fanout's delivery counter",
        Duration::from_secs(10),
        || async { (deliveries().await? >= 5000).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        deliveries().await,
        Some(5000),
        "the restarted fanout redid the post once, for every follower, and only once"
    );
    restarted.kill().unwrap();
    restarted.wait().unwrap();
    let mut pipe = redis::pipe();
    for f in &followers {
        pipe.zrange_withscores(graph.feed_key(f), 0, -1);
    }
    let feeds: Vec<Vec<(String, f64)>> = pipe.query_async(&mut redis).await.unwrap();
    let once = (member.clone(), post.created_at as f64);
    assert!(
        feeds.iter().all(|feed| feed == std::slice::from_ref(&once)),
        "every feed holds the post once, with its creation time, and nothing else"
    );
}
