// The fan-out and feed cases, included by fanout.rs (a single Redis) and fanout_cluster.rs (a
// Redis Cluster); each of those defines `env_with`, which makes the TestEnv on its Redis.

use std::{
    collections::{BTreeSet, HashMap},
    time::Duration,
};

use redis::AsyncCommands;
use serde_json::{json, Value};
use sluice_feed::events::{FollowAction, FollowChanged, PostCreated};
use sluice_tests::{eventually, get_json, post_json};

/// A small deterministic generator, so a failing scenario can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

async fn feed_ids(http: &reqwest::Client, base: &str, user: &str, limit: usize) -> Vec<String> {
    let body = get_json(http, &format!("{base}/v1/feed/{user}?limit={limit}")).await;
    body["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["post_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_feed_equals_a_direct_computation_from_the_history() {
    let env = env_with(|c| {
        c.social.celebrity_threshold = 8;
        // The model below is "every post of every author followed now": a backfill as long as
        // the longest author history makes the system promise exactly that.
        c.social.backfill_posts = 1000;
        c.social.feed_cache_ttl = Duration::ZERO;
    })
    .await;
    let users: Vec<String> = (0..200).map(|i| format!("u{i}")).collect();
    let mut rng = Lcg(7);
    let mut following: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut posts: Vec<PostCreated> = Vec::new();
    let (mut follow_records, mut post_records) = (Vec::new(), Vec::new());
    // Which authors crossed the threshold upwards, and which of those came back down.
    let (mut promoted, mut demoted) = (BTreeSet::<String>::new(), BTreeSet::<String>::new());
    let follower_count = |following: &HashMap<String, BTreeSet<String>>, author: &str| {
        following.values().filter(|f| f.contains(author)).count() as u64
    };
    for step in 0..3000 {
        let user = users[rng.next(200) as usize].clone();
        // A few authors attract most follows, so they cross the threshold; some fall back.
        let author = if rng.next(3) == 0 {
            users[rng.next(4) as usize].clone()
        } else {
            users[rng.next(200) as usize].clone()
        };
        match rng.next(10) {
            0..=4 if user != author => {
                following
                    .entry(user.clone())
                    .or_default()
                    .insert(author.clone());
                if follower_count(&following, &author) >= env.config.social.celebrity_threshold {
                    promoted.insert(author.clone());
                }
                let change = FollowChanged::new(&user, &author, FollowAction::Follow).unwrap();
                follow_records.push((author.clone(), change.encode()));
            }
            5..=6 if user != author => {
                following.entry(user.clone()).or_default().remove(&author);
                if promoted.contains(&author)
                    && follower_count(&following, &author) < env.config.social.celebrity_threshold
                {
                    demoted.insert(author.clone());
                }
                let change = FollowChanged::new(&user, &author, FollowAction::Unfollow).unwrap();
                follow_records.push((author.clone(), change.encode()));
            }
            _ => {
                let mut post =
                    PostCreated::new(&author, &format!("post {step}"), &env.config.social).unwrap();
                // Distinct, increasing times, as a real clock over a real history would give.
                post.created_at = 1_700_000_000_000 + step;
                post_records.push((author.clone(), post.encode()));
                posts.push(post);
            }
        }
    }
    // Then the hot authors lose most of their followers, falling back under the threshold, and
    // post again: those posts are pushed to the followers they still have.
    let threshold = env.config.social.celebrity_threshold;
    for (n, author) in users.iter().take(4).enumerate() {
        let mut fans: Vec<String> = following
            .iter()
            .filter(|(_, followed)| followed.contains(author))
            .map(|(fan, _)| fan.clone())
            .collect();
        fans.sort();
        for fan in fans.iter().skip(threshold as usize - 3) {
            following.get_mut(fan).unwrap().remove(author);
            let change = FollowChanged::new(fan, author, FollowAction::Unfollow).unwrap();
            follow_records.push((author.clone(), change.encode()));
        }
        if promoted.contains(author) && follower_count(&following, author) < threshold {
            demoted.insert(author.clone());
        }
        let mut post =
            PostCreated::new(author, &format!("back to push {n}"), &env.config.social).unwrap();
        post.created_at = 1_700_000_000_000 + 3000 + n as i64;
        post_records.push((author.clone(), post.encode()));
        posts.push(post);
    }
    let topics = env.topics();
    env.produce_in_order(&topics.follows(), &follow_records)
        .await;
    env.produce_in_order(&topics.posts(), &post_records).await;

    let expected = |user: &str, limit: usize| -> Vec<String> {
        let followed = following.get(user).cloned().unwrap_or_default();
        let mut mine: Vec<&PostCreated> = posts
            .iter()
            .filter(|p| followed.contains(&p.author_id))
            .collect();
        mine.sort_by_key(|p| std::cmp::Reverse(p.created_at));
        mine.iter().take(limit).map(|p| p.post_id.clone()).collect()
    };
    let fanout = env.start_fanout().await;
    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    // Poll until every feed matches; on timeout, name the first user whose feed does not.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let mut mismatch = None;
        for user in &users {
            let got = feed_ids(&http, &base, user, 50).await;
            if got != expected(user, 50) {
                mismatch = Some(format!(
                    "{user}: got {got:?}, expected {:?}",
                    expected(user, 50)
                ));
                break;
            }
        }
        match mismatch {
            None => break,
            Some(m) if std::time::Instant::now() > deadline => panic!("feeds never matched: {m}"),
            Some(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    for user in users.iter().take(20) {
        assert_eq!(
            feed_ids(&http, &base, user, 200).await,
            expected(user, 200),
            "{user}, limit 200"
        );
    }
    // The scenario really crosses the threshold both ways, and the fanout's celebrity set ends
    // as the history says: exactly the authors with at least `threshold` followers now.
    assert!(
        !promoted.is_empty(),
        "an author crossed the threshold upwards"
    );
    assert!(
        !demoted.is_empty(),
        "a celebrity fell back under the threshold: {promoted:?}"
    );
    let mut redis = env.redis().await;
    let celebrities: BTreeSet<String> = redis
        .smembers(env.graph().await.celebrities_key())
        .await
        .unwrap();
    let expected_celebrities: BTreeSet<String> = users
        .iter()
        .filter(|u| follower_count(&following, u) >= env.config.social.celebrity_threshold)
        .cloned()
        .collect();
    assert_eq!(celebrities, expected_celebrities);
    api.stop().await;
    fanout.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follow_then_post_through_the_api_lands_in_the_feed_and_unfollow_removes_it() {
    // Posts and follows are applied by consumers of their own, so a read may fall between the
    // follow and the post and be cached for 30 s without it (as designed: a new post shows within
    // the cache's lifetime). The cache has its own test below; this one reads past it.
    let env = env_with(|c| c.social.feed_cache_ttl = Duration::ZERO).await;
    let fanout = env.start_fanout().await;
    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    let follow = http
        .post(format!("{base}/v1/follows"))
        .json(&json!({"follower_id": "reader", "followee_id": "writer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(follow.status(), 202);
    let posted = post_json(
        &http,
        &format!("{base}/v1/posts"),
        json!({"author_id": "writer", "text": "hello, reader"}),
    )
    .await;
    let post_id = posted["post_id"].as_str().unwrap().to_owned();
    eventually(
        "the post in the follower's feed",
        Duration::from_secs(30),
        || async {
            let body = get_json(&http, &format!("{base}/v1/feed/reader")).await;
            let first = body["posts"].get(0)?;
            (first["post_id"] == post_id.as_str()).then_some(())
        },
    )
    .await;
    let body = get_json(&http, &format!("{base}/v1/feed/reader")).await;
    assert_eq!(body["posts"][0]["text"], "hello, reader");
    assert_eq!(body["posts"][0]["author_id"], "writer");

    let unfollow = http
        .delete(format!("{base}/v1/follows"))
        .json(&json!({"follower_id": "reader", "followee_id": "writer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unfollow.status(), 202);
    eventually(
        "the post gone after the unfollow",
        Duration::from_secs(30),
        || async {
            let body = get_json(&http, &format!("{base}/v1/feed/reader")).await;
            body["posts"].as_array()?.is_empty().then_some(())
        },
    )
    .await;
    api.stop().await;
    fanout.stop().await;
}

/// `n` posts by `author`, 1 ms apart, in order.
fn posts_by(author: &str, n: i64, config: &sluice_core::config::SocialConfig) -> Vec<PostCreated> {
    (0..n)
        .map(|i| {
            let mut post = PostCreated::new(author, &format!("#{i}"), config).unwrap();
            post.created_at = 1_700_000_000_000 + i;
            post
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_1200_posts_a_feed_holds_the_newest_1000_and_those_since_its_last_trim() {
    let env = env_with(|_| {}).await;
    let topics = env.topics();
    let follow = FollowChanged::new("fan", "prolific", FollowAction::Follow).unwrap();
    env.produce_in_order(
        &topics.follows(),
        &[("prolific".to_owned(), follow.encode())],
    )
    .await;
    let fanout = env.start_fanout().await;
    let graph = env.graph().await;
    let redis = env.redis().await;
    eventually("the follow applied", Duration::from_secs(30), || {
        let (mut redis, key) = (redis.clone(), graph.followers_key("prolific"));
        async move { (redis.scard::<_, u64>(key).await.ok()? == 1).then_some(()) }
    })
    .await;
    let posts = posts_by("prolific", 1200, &env.config.social);
    let records: Vec<_> = posts
        .iter()
        .map(|p| ("prolific".to_owned(), p.encode()))
        .collect();
    env.produce_in_order(&topics.posts(), &records).await;
    let feed_key = graph.feed_key("fan");
    let member = |p: &PostCreated| format!("{}:prolific", p.post_id);
    // Done when the feed is the newest posts, the last one included, at least the cap of them.
    let members: Vec<String> = eventually(
        "the newest posts in the feed",
        Duration::from_secs(60),
        || {
            let (mut redis, key) = (redis.clone(), feed_key.clone());
            let posts = &posts;
            async move {
                let members: Vec<String> = redis.zrange(key, 0, -1).await.ok()?;
                let newest: Vec<String> = posts[1200 - members.len().min(1200)..]
                    .iter()
                    .map(member)
                    .collect();
                (members.len() >= 1000 && members == newest).then_some(members)
            }
        },
    )
    .await;
    // A push trims a feed only when `trims_on_push` picks the pair: after the last such post
    // over the cap, the feed holds the cap and what came later (plus the posts still in flight
    // around that trim: the fanout applies up to 8 at once).
    let last_trim = (1000..1200)
        .rev()
        .find(|&i| sluice_feed::graph::trims_on_push(&posts[i].post_id, &feed_key))
        .unwrap_or(1000);
    assert!(
        members.len() <= 1000 + (1199 - last_trim) + 8,
        "{} entries, the last trimming post #{last_trim}",
        members.len()
    );
    // Reads never look past the cap.
    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    let newest_200: Vec<String> = posts[1000..].iter().rev().map(|p| p.post_id.clone()).collect();
    assert_eq!(feed_ids(&http, &base, "fan", 200).await, newest_200);
    api.stop().await;
    fanout.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_shows_only_the_newest_feed_cap_pushed_posts() {
    // Between trims a feed holds more than the cap; a read must not show them.
    let env = env_with(|c| {
        c.social.feed_cap = 3;
        c.social.feed_cache_ttl = Duration::ZERO;
    })
    .await;
    let topics = env.topics();
    let follow = FollowChanged::new("fan", "writer", FollowAction::Follow).unwrap();
    env.produce_in_order(&topics.follows(), &[("writer".to_owned(), follow.encode())])
        .await;
    let fanout = env.start_fanout().await;
    let graph = env.graph().await;
    let mut redis = env.redis().await;
    eventually("the follow applied", Duration::from_secs(30), || {
        let (mut redis, key) = (redis.clone(), graph.followers_key("writer"));
        async move { (redis.scard::<_, u64>(key).await.ok()? == 1).then_some(()) }
    })
    .await;
    let feed_key = graph.feed_key("fan");
    // The last 16 posts trim nothing (ids drawn again until so), so however the fanout's 8
    // posts in flight interleave, the feed ends over its cap.
    let mut posts = posts_by("writer", 40, &env.config.social);
    for post in &mut posts[24..] {
        while sluice_feed::graph::trims_on_push(&post.post_id, &feed_key) {
            let created_at = post.created_at;
            *post = PostCreated::new("writer", &post.text, &env.config.social).unwrap();
            post.created_at = created_at;
        }
    }
    let records: Vec<_> = posts
        .iter()
        .map(|p| ("writer".to_owned(), p.encode()))
        .collect();
    env.produce_in_order(&topics.posts(), &records).await;
    let newest = format!("{}:writer", posts[39].post_id);
    eventually("the last post in the feed", Duration::from_secs(60), || {
        let (mut redis, key, newest) = (redis.clone(), feed_key.clone(), newest.clone());
        async move {
            redis
                .zscore::<_, _, Option<f64>>(key, newest)
                .await
                .ok()?
                .map(|_| ())
        }
    })
    .await;
    let held: u64 = redis.zcard(&feed_key).await.unwrap();
    assert!(held > 3, "the feed is over its cap: {held} entries");
    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    let newest_3: Vec<String> = posts[37..].iter().rev().map(|p| p.post_id.clone()).collect();
    eventually("the newest 3", Duration::from_secs(30), || async {
        (feed_ids(&http, &base, "fan", 50).await == newest_3).then_some(())
    })
    .await;
    api.stop().await;
    fanout.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_drops_unfollowed_authors_shows_a_post_once_and_orders_ties_by_id() {
    // The stored state written directly: a feed entry of an author no longer followed (an
    // unfollow racing its cleanup), a celebrity's post both pushed (before it became one) and
    // pulled, and equal times.
    let env = env_with(|c| c.social.feed_cache_ttl = Duration::ZERO).await;
    let graph = env.graph().await;
    let mut redis = env.redis().await;
    let _: () = redis
        .sadd(graph.following_key("reader"), &["pushed", "star"])
        .await
        .unwrap();
    let _: () = redis.sadd(graph.celebrities_key(), "star").await.unwrap();
    let _: () = redis
        .zadd_multiple(
            graph.author_posts_key("star"),
            &[(1000, "s1"), (2000, "dup"), (3000, "s2")],
        )
        .await
        .unwrap();
    let _: () = redis
        .zadd_multiple(
            graph.feed_key("reader"),
            &[
                (1000, "p1:pushed"),
                (2000, "dup:star"),
                (4000, "gone:left"),
                (5000, "tieB:pushed"),
                (5000, "tiea:pushed"),
                // Redis orders these by member, "1:…" after "10:…"; by id, "10" comes first.
                (6000, "1:pushed"),
                (6000, "10:pushed"),
            ],
        )
        .await
        .unwrap();
    for (id, author) in [
        ("p1", "pushed"),
        ("dup", "star"),
        ("gone", "left"),
        ("tieB", "pushed"),
        ("tiea", "pushed"),
        ("s1", "star"),
        ("s2", "star"),
        ("1", "pushed"),
        ("10", "pushed"),
    ] {
        let _: () = redis
            .hset_multiple(
                graph.post_key(id),
                &[("post_id", id), ("author_id", author), ("text", &format!("text {id}"))],
            )
            .await
            .unwrap();
    }
    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    // Equal times by id descending, bytewise ("10" > "1", 'a' > 'B', and "s1" > "p1").
    assert_eq!(
        feed_ids(&http, &base, "reader", 50).await,
        ["10", "1", "tiea", "tieB", "s2", "dup", "s1", "p1"]
    );
    assert_eq!(
        feed_ids(&http, &base, "reader", 3).await,
        ["10", "1", "tiea"]
    );
    let body = get_json(&http, &format!("{base}/v1/feed/reader?limit=6")).await;
    assert_eq!(
        body["posts"][5],
        json!({"post_id": "dup", "author_id": "star", "text": "text dup", "created_at": 2000})
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_social_input_gets_400_and_nothing_is_produced() {
    let env = env_with(|c| c.social.max_post_chars = 10).await;
    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    let cases: &[(&str, &str, Value, &str)] = &[
        (
            "POST",
            "/v1/posts",
            json!({"text": "hi"}),
            "field `author_id`: missing",
        ),
        (
            "POST",
            "/v1/posts",
            json!({"author_id": "a", "text": ""}),
            "field `text`: must not be empty",
        ),
        (
            "POST",
            "/v1/posts",
            json!({"author_id": "a", "text": "far too long text"}),
            "the limit is 10",
        ),
        (
            "POST",
            "/v1/posts",
            json!({"author_id": "a b", "text": "x"}),
            "field `author_id`",
        ),
        (
            "POST",
            "/v1/follows",
            json!({"follower_id": "a"}),
            "field `followee_id`: missing",
        ),
        (
            "POST",
            "/v1/follows",
            json!({"follower_id": "a", "followee_id": "a"}),
            "cannot follow themselves",
        ),
        (
            "DELETE",
            "/v1/follows",
            json!({"followee_id": "a"}),
            "field `follower_id`: missing",
        ),
        (
            "POST",
            "/v1/follows",
            json!({"follower_id": "a", "followee_id": "b", "x": 1}),
            "unknown field",
        ),
    ];
    for (method, path, body, message) in cases {
        let request = match *method {
            "POST" => http.post(format!("{base}{path}")),
            _ => http.delete(format!("{base}{path}")),
        };
        let response = request.json(body).send().await.unwrap();
        assert_eq!(response.status(), 400, "{method} {path} {body}");
        let error: Value = response.json().await.unwrap();
        let text = error["error"].as_str().unwrap();
        assert!(text.contains(message), "{method} {path} {body}: {text}");
    }
    for limit in ["0", "201", "ten"] {
        let response = http
            .get(format!("{base}/v1/feed/a?limit={limit}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "limit={limit}");
    }
    let topics = env.topics();
    assert_eq!(env.record_count(&topics.posts()), 0);
    assert_eq!(env.record_count(&topics.follows()), 0);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn feed_reads_are_cached_and_a_follow_change_invalidates_the_cache() {
    let env = env_with(|_| {}).await;
    let topics = env.topics();
    let mut post = PostCreated::new("star", "cached", &env.config.social).unwrap();
    post.created_at = 1_700_000_000_000;
    let follow = FollowChanged::new("viewer", "star", FollowAction::Follow).unwrap();
    env.produce_in_order(&topics.follows(), &[("star".to_owned(), follow.encode())])
        .await;
    env.produce_in_order(&topics.posts(), &[("star".to_owned(), post.encode())])
        .await;
    let fanout = env.start_fanout().await;
    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    // Posts and follows have consumers of their own: a read before the post is pushed would be
    // cached without it for the whole TTL (new posts do not invalidate), so the first read waits
    // until the fanout has written it.
    let (graph, redis) = (env.graph().await, env.redis().await);
    eventually("the post pushed", Duration::from_secs(30), || {
        let (mut redis, feed) = (redis.clone(), graph.feed_key("viewer"));
        async move { (redis.zcard::<_, u64>(feed).await.ok()? == 1).then_some(()) }
    })
    .await;
    eventually("the post in the feed", Duration::from_secs(30), || async {
        (feed_ids(&http, &base, "viewer", 50).await == [post.post_id.clone()]).then_some(())
    })
    .await;
    let metrics = || async {
        let text = sluice_tests::get_text(&http, &format!("{base}/metrics")).await;
        let hits = text
            .lines()
            .find(|l| l.starts_with("sluice_feed_cache_hits_total"))
            .unwrap()
            .to_owned();
        hits.split(' ').nth(1).unwrap().parse::<u64>().unwrap()
    };
    let hits_before = metrics().await;
    assert_eq!(
        feed_ids(&http, &base, "viewer", 50).await,
        [post.post_id.clone()]
    );
    assert_eq!(
        metrics().await,
        hits_before + 1,
        "the second read is a cache hit"
    );

    let unfollow = FollowChanged::new("viewer", "star", FollowAction::Unfollow).unwrap();
    env.produce_in_order(&topics.follows(), &[("star".to_owned(), unfollow.encode())])
        .await;
    eventually(
        "the unfollow visible despite the 30 s cache",
        Duration::from_secs(10),
        || async {
            feed_ids(&http, &base, "viewer", 50)
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await;
    api.stop().await;
    fanout.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_post_whose_body_is_gone_is_skipped_not_an_error() {
    let env = env_with(|c| c.social.feed_cache_ttl = Duration::ZERO).await;
    let topics = env.topics();
    let follow = FollowChanged::new("reader", "author", FollowAction::Follow).unwrap();
    env.produce_in_order(&topics.follows(), &[("author".to_owned(), follow.encode())])
        .await;
    let posts: Vec<PostCreated> = (0..2)
        .map(|i| PostCreated::new("author", &format!("#{i}"), &env.config.social).unwrap())
        .collect();
    let records: Vec<_> = posts
        .iter()
        .map(|p| ("author".to_owned(), p.encode()))
        .collect();
    env.produce_in_order(&topics.posts(), &records).await;
    let fanout = env.start_fanout().await;
    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    eventually(
        "both posts in the feed",
        Duration::from_secs(30),
        || async { (feed_ids(&http, &base, "reader", 50).await.len() == 2).then_some(()) },
    )
    .await;
    let mut redis = env.redis().await;
    let graph = env.graph().await;
    let _: () = redis.del(graph.post_key(&posts[0].post_id)).await.unwrap();
    assert_eq!(
        feed_ids(&http, &base, "reader", 50).await,
        [posts[1].post_id.clone()]
    );
    api.stop().await;
    fanout.stop().await;
}

/// Whether each of `users`' feeds holds `post`.
async fn feeds_holding(
    redis: &sluice_core::redis_conn::RedisConn,
    graph: &sluice_feed::graph::Graph,
    users: &[String],
    post: &PostCreated,
) -> Vec<bool> {
    let member = sluice_feed::graph::feed_member(&post.post_id, &post.author_id);
    let mut held = Vec::with_capacity(users.len());
    for user in users {
        let score: Option<f64> = redis
            .clone()
            .zscore(graph.feed_key(user), &member)
            .await
            .unwrap();
        held.push(score.is_some());
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cached_follower_list_is_used_only_while_the_set_is_unchanged() {
    // Two batches of 10 per page: lists of more than 40 followers are cached.
    let env = env_with(|c| c.social.batch_size = 10).await;
    let redis = env.redis().await;
    // Two fanout instances (each its own cache) and the follow path, all on one Redis.
    let (fanout_a, fanout_b) = (env.graph().await, env.graph().await);
    let follow = |follower: &str, action| FollowChanged::new(follower, "host", action).unwrap();
    let followers: Vec<String> = (0..60).map(|i| format!("guest-{i}")).collect();
    let changes: Vec<_> = followers
        .iter()
        .map(|f| follow(f, FollowAction::Follow))
        .collect();
    fanout_b.apply_follows(&changes).await.unwrap();
    let post = |text: &str| PostCreated::new("host", text, &env.config.social).unwrap();

    let first = post("read from Redis");
    let (_, delivery) = fanout_a.apply_post(&first).await.unwrap();
    assert_eq!((delivery.feeds, delivery.cached_followers), (60, false));
    let second = post("read from the cache");
    let (_, delivery) = fanout_a.apply_post(&second).await.unwrap();
    assert_eq!((delivery.feeds, delivery.cached_followers), (60, true));
    assert!(feeds_holding(&redis, &fanout_a, &followers, &second)
        .await
        .iter()
        .all(|held| *held));

    // Another instance applies a follow and an unfollow (the count stays 60): the cached list
    // is stale, and the version bump says so.
    fanout_b
        .apply_follows(&[
            follow("newcomer", FollowAction::Follow),
            follow("guest-0", FollowAction::Unfollow),
        ])
        .await
        .unwrap();
    let third = post("after a follow and an unfollow elsewhere");
    let (_, delivery) = fanout_a.apply_post(&third).await.unwrap();
    assert_eq!((delivery.feeds, delivery.cached_followers), (60, false));
    let users = ["newcomer".to_owned(), "guest-0".to_owned()];
    assert_eq!(
        feeds_holding(&redis, &fanout_a, &users, &third).await,
        [true, false]
    );

    // A set edited by hand, without the follow path's version bump: the count gives it away.
    let _: () = redis
        .clone()
        .sadd(fanout_a.followers_key("host"), "by-hand")
        .await
        .unwrap();
    let fourth = post("after an edit by hand");
    let (_, delivery) = fanout_a.apply_post(&fourth).await.unwrap();
    assert_eq!((delivery.feeds, delivery.cached_followers), (61, false));
    assert_eq!(
        feeds_holding(&redis, &fanout_a, &["by-hand".to_owned()], &fourth).await,
        [true]
    );

    // With the cache off, the list is written a page at a time as SSCAN reads it.
    let uncached = {
        let mut social = env.config.social.clone();
        social.follower_cache_followers = 0;
        sluice_feed::graph::Graph::new(redis.clone(), &env.config.redis.key_prefix, &social)
    };
    let fifth = post("never cached");
    for _ in 0..2 {
        let (_, delivery) = uncached.apply_post(&fifth).await.unwrap();
        assert_eq!((delivery.feeds, delivery.cached_followers), (61, false));
    }
    let mut everyone = followers[1..].to_vec();
    everyone.extend(["newcomer".to_owned(), "by-hand".to_owned()]);
    assert!(feeds_holding(&redis, &uncached, &everyone, &fifth)
        .await
        .iter()
        .all(|held| *held));
}
