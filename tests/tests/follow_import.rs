//! A bulk import of follows, produced straight to `social.follows` as any Kafka client would:
//! applied in batches, complete and in order, and never holding back another author's posts.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use sluice_feed::events::{FollowAction, FollowChanged, PostCreated};
use sluice_tests::{eventually, TestEnv};

const IMPORTED: usize = 150_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follow_import_is_applied_in_batches_and_posts_overtake_it() {
    let env = TestEnv::new().await;
    let topics = env.topics();
    let graph = env.graph().await;
    let mut redis = env.redis().await;
    let fanout = env.start_fanout().await;

    // Both consumer groups joined before the import: one follow and one post through.
    let warm_follow = FollowChanged::new("reader", "writer", FollowAction::Follow).unwrap();
    env.produce_in_order(
        &topics.follows(),
        &[("writer".to_owned(), warm_follow.encode())],
    )
    .await;
    let warm_post = PostCreated::new("writer", "warm-up", &env.config.social).unwrap();
    env.produce_in_order(
        &topics.posts(),
        &[("writer".to_owned(), warm_post.encode())],
    )
    .await;
    let reader_feed = graph.feed_key("reader");
    eventually("the warm-up post", Duration::from_secs(60), || {
        let (mut redis, feed) = (redis.clone(), reader_feed.clone());
        async move { (redis.zcard::<_, u64>(feed).await.ok()? == 1).then_some(()) }
    })
    .await;

    // The import and the post wait in Kafka while the fanout is down, then both consumers start
    // together: the post must not wait for the import behind it.
    fanout.stop().await;

    // The import: every fan follows `idol`, and the first hundred unfollow and follow again
    // within the same run of records (the last change of a pair wins, as one by one).
    let mut records: Vec<(String, Vec<u8>)> = (0..IMPORTED)
        .map(|i| {
            let change =
                FollowChanged::new(&format!("fan{i}"), "idol", FollowAction::Follow).unwrap();
            ("idol".to_owned(), change.encode())
        })
        .collect();
    for i in 0..100 {
        for action in [FollowAction::Unfollow, FollowAction::Follow] {
            let change = FollowChanged::new(&format!("fan{i}"), "idol", action).unwrap();
            records.push(("idol".to_owned(), change.encode()));
        }
    }
    // fan0 ends unfollowed.
    let last = FollowChanged::new("fan0", "idol", FollowAction::Unfollow).unwrap();
    records.push(("idol".to_owned(), last.encode()));
    // In parts: librdkafka queues at most 100 000 records by default.
    for part in records.chunks(50_000) {
        env.produce_in_order(&topics.follows(), part).await;
    }

    let post = PostCreated::new("writer", "while the import runs", &env.config.social).unwrap();
    env.produce_in_order(&topics.posts(), &[("writer".to_owned(), post.encode())])
        .await;
    let sent = Instant::now();
    let fanout = env.start_fanout().await;
    let metrics = format!("http://{}/metrics", fanout.info);
    let followers_key = graph.followers_key("idol");
    let imported_when_delivered =
        eventually("the post in reader's feed", Duration::from_secs(60), || {
            let (mut redis, feed, followers) =
                (redis.clone(), reader_feed.clone(), followers_key.clone());
            async move {
                (redis.zcard::<_, u64>(feed).await.ok()? == 2).then_some(())?;
                redis.scard::<_, u64>(followers).await.ok()
            }
        })
        .await;
    let delivered_after = sent.elapsed(); // from the fanout's start

    eventually("the whole import applied", Duration::from_secs(120), || {
        let (mut redis, followers) = (redis.clone(), followers_key.clone());
        async move {
            (redis.scard::<_, u64>(followers).await.ok()? == IMPORTED as u64 - 1).then_some(())
        }
    })
    .await;
    let import_done_after = sent.elapsed();
    println!(
        "post delivered {delivered_after:?} after the fanout started, with {imported_when_delivered} of {IMPORTED} follows applied; import done after {import_done_after:?}"
    );
    assert!(
        imported_when_delivered < IMPORTED as u64 - 1,
        "the post waited for the whole import ({delivered_after:?}; import done after {import_done_after:?})"
    );

    // The graph both ways, and the last change of each pair decided it.
    let fan0_following: bool = redis
        .sismember(graph.following_key("fan0"), "idol")
        .await
        .unwrap();
    let fan1_following: bool = redis
        .sismember(graph.following_key("fan1"), "idol")
        .await
        .unwrap();
    assert!(!fan0_following && fan1_following);
    let celebrity: bool = redis
        .sismember(graph.celebrities_key(), "idol")
        .await
        .unwrap();
    assert!(
        celebrity,
        "150 000 followers make idol a celebrity (threshold 10 000)"
    );

    // Far fewer batches than changes: the import was not applied one change at a time.
    let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
    let batches = text
        .lines()
        .find(|l| l.starts_with("sluice_follow_batches_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .expect("sluice_follow_batches_total");
    let changes = records.len() as f64 + 1.0;
    println!("{changes} follow changes in {batches} batches");
    assert!(
        batches * 10.0 < changes,
        "{changes} changes took {batches} batches"
    );
    fanout.stop().await;
}
