//! sluice on a real 3-master Redis Cluster (`deploy/redis-cluster.sh up`, `redis.url =
//! "redis+cluster://…"`), end to end: job status over HTTP, `?wait=` woken through pub/sub,
//! cancelling a delayed job (a Lua script), retries, a large status batch split by hash slot
//! whose keys land on every master, incoming-webhook claims, the dead-letter replay lease, and
//! the disabled-endpoint hash read by the worker and `sluice endpoints`.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
    time::{Duration, Instant},
};

use futures::StreamExt;
use hmac::{Hmac, Mac};
use rdkafka::Message;
use redis::AsyncCommands;
use serde_json::{json, Value};
use sluice_core::{
    hooks::{HookConfig, Secrets},
    in_flight::read_in_flight,
    lanes::Priority,
    outcomes,
    retry::Delay,
    status::Status,
};
use sluice_tests::{
    eventually, get_json, post_json,
    receiver::Receiver,
    redis_cluster::{keys_per_node, REDIS_CLUSTER_NODES},
    sluice_binary, TestEnv,
};

const WAIT: Duration = Duration::from_secs(30);
const GITHUB_SECRET: &str = "cluster-hook-secret";

fn sluice(env: &TestEnv, args: &[&str]) -> (bool, String) {
    let output = Command::new(sluice_binary())
        .args(args)
        .envs(env.env_vars())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

async fn submit(http: &reqwest::Client, base: &str, body: Value) -> String {
    let answer = post_json(http, &format!("{base}/v1/jobs/noop"), body).await;
    answer["job_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no job id: {answer}"))
        .to_owned()
}

async fn wait_for(http: &reqwest::Client, base: &str, job_id: &str, wanted: &str) -> Value {
    eventually(&format!("job {job_id} to be {wanted}"), WAIT, || async {
        let status = get_json(http, &format!("{base}/v1/jobs/{job_id}")).await;
        (status["status"] == wanted).then_some(status)
    })
    .await
}

async fn delete(http: &reqwest::Client, base: &str, job_id: &str) -> (u16, Value) {
    let response = http
        .delete(format!("{base}/v1/jobs/{job_id}"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn job_status_waits_cancels_and_retries_work_on_a_redis_cluster() {
    let env = TestEnv::on_redis_cluster_with(|c| {
        c.retry.tiers = vec![Delay(Duration::from_secs(1))];
        c.retry.jitter = false;
    })
    .await;
    let api = env.start_api().await;
    let worker = env.start_worker(&["noop"]).await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);

    // Readiness PINGs every master.
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);

    let plain = submit(&http, &base, json!({})).await;
    let status = wait_for(&http, &base, &plain, "succeeded").await;
    assert_eq!(status["attempts"], 1, "{status}");

    // The final notices are PUBLISHed through the cluster; a subscriber on the last master (the
    // api listens on the first seed) hears them too.
    let channel = format!("{}job-final", env.config.redis.key_prefix);
    let subscriber = redis::Client::open(REDIS_CLUSTER_NODES[2]).unwrap();
    let mut pubsub = subscriber.get_async_pubsub().await.unwrap();
    pubsub.subscribe(&channel).await.unwrap();
    let heard = tokio::spawn(async move {
        let mut ids = BTreeSet::new();
        let mut messages = pubsub.on_message();
        let deadline = tokio::time::Instant::now() + WAIT;
        while let Ok(Some(message)) = tokio::time::timeout_at(deadline, messages.next()).await {
            let payload: String = message.get_payload().unwrap();
            ids.extend(payload.split('\n').map(str::to_owned));
            if ids.len() >= 8 {
                break;
            }
        }
        ids
    });

    // Waiting reads answer when the job is final: woken by the notice, not the once-a-second
    // re-check (which would leave most of them hundreds of ms behind the final write).
    let waits = (0..8u64).map(|i| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let id = submit(&http, &base, json!({"sleep_ms": 400 + 150 * i})).await;
            let started = Instant::now();
            let body = get_json(&http, &format!("{base}/v1/jobs/{id}?wait=20s")).await;
            (id, body, started.elapsed(), now_ms())
        }
    });
    let answers = futures::future::join_all(waits).await;
    let mut prompt = 0;
    for (id, body, took, answered_at) in &answers {
        assert_eq!(body["status"], "succeeded", "{id}: {body}");
        assert!(
            *took < Duration::from_secs(10),
            "{id} answered after {took:?}"
        );
        let behind = answered_at - body["updated_at"].as_i64().unwrap();
        if behind < 300 {
            prompt += 1;
        }
    }
    println!("{prompt} of 8 waits answered within 300 ms of the final status");
    assert!(
        prompt >= 6,
        "only {prompt} of 8 waits answered within 300 ms of the final status: {answers:?}"
    );
    let heard = heard.await.unwrap();
    for (id, ..) in &answers {
        assert!(
            heard.contains(id),
            "{id} not announced on node 3: {heard:?}"
        );
    }

    // A delayed job is cancelled by the status script, atomically on its key's master.
    let answer = post_json(
        &http,
        &format!("{base}/v1/jobs/noop"),
        json!({"delay": "60s"}),
    )
    .await;
    assert_eq!(answer["status"], "scheduled", "{answer}");
    let delayed = answer["job_id"].as_str().unwrap().to_owned();
    let status = get_json(&http, &format!("{base}/v1/jobs/{delayed}")).await;
    assert_eq!(status["status"], "scheduled");
    assert!(status["run_at"].as_i64().unwrap() > now_ms() + 50_000);
    let (code, body) = delete(&http, &base, &delayed).await;
    assert_eq!(
        (code, &body["status"]),
        (200, &json!("cancelled")),
        "{body}"
    );
    let status = get_json(&http, &format!("{base}/v1/jobs/{delayed}")).await;
    assert_eq!(status["status"], "cancelled");
    assert_eq!(
        delete(&http, &base, &delayed).await.0,
        200,
        "twice: still 200"
    );
    let (code, body) = delete(&http, &base, &plain).await;
    assert_eq!(code, 409, "a finished job is not cancelled: {body}");
    assert!(
        body["error"].as_str().unwrap().contains("succeeded"),
        "{body}"
    );
    let (code, _) = delete(&http, &base, "no-such-job").await;
    assert_eq!(code, 404);

    // Retried twice through the 1 s tier: every attempt's status reaches the cluster.
    let retried = submit(&http, &base, json!({"fail_attempts": 2})).await;
    let status = wait_for(&http, &base, &retried, "succeeded").await;
    assert_eq!(status["attempts"], 3, "{status}");
    // Each failure's error kept by the status script, on the key's own master.
    let attempts: Vec<u64> = status["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, vec![1, 2], "{status}");
    assert_eq!(status["lane"], "normal");
    assert_eq!(
        status["trace_id"].as_str().map(str::len),
        Some(32),
        "{status}"
    );

    // Outcome counters and in-flight reports live in other slots than the statuses: written
    // and read per slot. 10 succeeded (1 + 8 waits + the retried one), 2 retries.
    let redis = env.redis().await;
    let prefix = env.config.redis.key_prefix.clone();
    let kinds = vec!["noop".to_owned()];
    eventually("the outcome counts on the cluster", WAIT, || async {
        let read = outcomes::read(&redis, &prefix, &kinds, 5, now_ms())
            .await
            .unwrap();
        let counted = read["noop"].sum_last(5);
        (counted.succeeded == 10 && counted.retried == 2 && counted.dead_lettered == 0)
            .then_some(())
    })
    .await;
    let in_flight = read_in_flight(&redis, &prefix, &kinds, now_ms())
        .await
        .unwrap();
    assert_eq!(in_flight["noop"].workers, 1, "{in_flight:?}");

    worker.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_status_batch_is_split_by_slot_and_lands_on_every_master() {
    const JOBS: usize = 600;
    let env = TestEnv::on_redis_cluster().await;
    // All enqueued before the worker starts, so it reads them in large batches and the status
    // writer's batches hold keys of many slots on all three masters.
    let ids = env
        .publish_jobs("noop", (0..JOBS).map(|i| format!(r#"{{"payload":"{i}"}}"#)))
        .await;
    let started = Instant::now();
    let worker = env.start_worker(&["noop"]).await;
    let store = env.status_store().await;
    eventually("every job succeeded", Duration::from_secs(60), || async {
        let done = env.count_with_status(&store, &ids, Status::Succeeded).await;
        (done == JOBS).then_some(())
    })
    .await;
    println!(
        "{JOBS} jobs run and their statuses written in {:?}",
        started.elapsed()
    );

    let per_node = keys_per_node(&format!("{}job:", env.config.redis.key_prefix)).await;
    assert_eq!(per_node.iter().sum::<usize>(), JOBS, "{per_node:?}");
    assert!(
        per_node.iter().all(|&n| n > JOBS / 6),
        "status keys spread by slot over the three masters: {per_node:?}"
    );
    worker.stop().await;
}

fn github_headers(delivery: &str, body: &str) -> Vec<(&'static str, String)> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(GITHUB_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    vec![
        ("X-Hub-Signature-256", format!("sha256={signature}")),
        ("X-GitHub-Delivery", delivery.to_owned()),
        ("X-GitHub-Event", "push".to_owned()),
        ("Content-Type", "application/json".to_owned()),
    ]
}

async fn post_hook(http: &reqwest::Client, url: &str, delivery: &str, body: &str) -> (u16, Value) {
    let mut request = http.post(url).body(body.to_owned());
    for (name, value) in github_headers(delivery, body) {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hook_claims_and_the_dead_letter_lease_work_on_a_redis_cluster() {
    let env = TestEnv::on_redis_cluster_with(|c| {
        c.hooks.insert(
            "gh".into(),
            HookConfig {
                scheme: "github".into(),
                secret: Secrets::One(GITHUB_SECRET.into()),
                ..HookConfig::default()
            },
        );
        c.retry.max_attempts = 1;
    })
    .await;
    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    let hook_url = format!("{base}/v1/hooks/gh");

    // Each event is claimed once: a repeat and twelve concurrent copies of another are answered
    // without a second record.
    let body = r#"{"ref":"refs/heads/main"}"#;
    for expected in ["accepted", "duplicate"] {
        let (status, answer) = post_hook(&http, &hook_url, "d-1", body).await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (200, Some(expected)),
            "{answer}"
        );
    }
    let copies = (0..12).map(|_| post_hook(&http, &hook_url, "d-2", body));
    let answers = futures::future::join_all(copies).await;
    let accepted = answers
        .iter()
        .filter(|(status, answer)| *status == 200 && answer["status"] == "accepted")
        .count();
    assert_eq!(accepted, 1, "{answers:?}");
    eventually("a repeat of d-2 to be a duplicate", WAIT, || async {
        let (status, answer) = post_hook(&http, &hook_url, "d-2", body).await;
        (status == 200 && answer["status"] == "duplicate").then_some(())
    })
    .await;
    let mut redis = env.redis().await;
    let claim: Option<String> = redis
        .get(format!("{}hook:gh:d-1", env.config.redis.key_prefix))
        .await
        .unwrap();
    assert_eq!(claim.as_deref(), Some("done"));
    let mut records: BTreeMap<String, usize> = BTreeMap::new();
    for record in env.read_all(&env.topics().lane("hook", Priority::Normal)) {
        let key = String::from_utf8(record.key().unwrap().to_vec()).unwrap();
        *records.entry(key).or_default() += 1;
    }
    assert_eq!(
        records,
        BTreeMap::from([("hook-gh-d-1".into(), 1), ("hook-gh-d-2".into(), 1)])
    );

    // A dead letter, replayed only while nobody else holds the kind's lease.
    let worker = env.start_worker(&["noop"]).await;
    let dead = submit(&http, &base, json!({"fail_attempts": 1})).await;
    wait_for(&http, &base, &dead, "dead_lettered").await;
    let lease = format!("{}dlq:lease:noop", env.config.redis.key_prefix);
    let _: () = redis
        .set_ex(&lease, "token@elsewhere pid 7", 30)
        .await
        .unwrap();
    let response = http
        .post(format!("{base}/v1/dlq/noop/replay"))
        .json(&json!({"all": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let refused: Value = response.json().await.unwrap();
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("elsewhere pid 7"),
        "{refused}"
    );
    let (ok, out) = sluice(&env, &["dlq", "replay", "noop", "--all"]);
    assert!(!ok && out.contains("already running"), "{out}");

    let _: () = redis.del(&lease).await.unwrap();
    let (ok, out) = sluice(&env, &["dlq", "replay", "noop", "--all"]);
    assert!(ok && out.contains("replayed 1 dead letter(s)"), "{out}");
    let held: Option<String> = redis.get(&lease).await.unwrap();
    assert_eq!(held, None, "the lease is given back");
    // Recorded as replayed: not sent again (the replay itself fails and dead-letters anew, at
    // the next offset).
    let again: Value = post_json(
        &http,
        &format!("{base}/v1/dlq/noop/replay"),
        json!({"offset": "0"}),
    )
    .await;
    assert_eq!(again["replayed"].as_array().unwrap().len(), 0, "{again}");

    worker.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disabled_endpoint_is_kept_in_the_cluster_and_listed_by_the_cli() {
    // 410 to the first call, 200 after.
    let receiver = Receiver::start(vec![410]).await;
    let url = receiver.url();
    let env = TestEnv::on_redis_cluster().await;
    let store = env.status_store().await;
    let worker = env.start_worker(&["webhook"]).await;
    let job = json!({"url": url, "event_type": "gone.test", "payload": "{}"}).to_string();

    let first = env.publish_jobs("webhook", [job.clone()]).await;
    env.wait_for_status(&store, &first[0], Status::DeadLettered, WAIT)
        .await;
    let (ok, listed) = sluice(&env, &["endpoints", "list", "--json"]);
    assert!(ok, "{listed}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["url"], url.as_str());
    assert_eq!(listed[0]["job_id"], first[0].as_str());

    let later = env.publish_jobs("webhook", [job.clone()]).await;
    let status = env
        .wait_for_status(&store, &later[0], Status::DeadLettered, WAIT)
        .await;
    assert!(
        status
            .last_error
            .unwrap_or_default()
            .starts_with("endpoint disabled"),
        "refused without a call"
    );
    assert_eq!(receiver.requests().len(), 1);

    let (ok, out) = sluice(&env, &["endpoints", "enable", &url]);
    assert!(ok && out.contains(&format!("enabled {url}")), "{out}");
    let (ok, out) = sluice(&env, &["endpoints", "list"]);
    assert!(ok && out.contains("no endpoint is disabled"), "{out}");
    // The worker re-reads the set every 2 s; then the endpoint is called again.
    eventually("a job to reach the endpoint again", WAIT, || async {
        let ids = env.publish_jobs("webhook", [job.clone()]).await;
        let done = eventually("the job to finish", WAIT, || async {
            env.job_status(&store, &ids[0])
                .await
                .filter(|s| s.status.is_final())
        })
        .await;
        (done.status == Status::Succeeded).then_some(())
    })
    .await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_grouped_by_node_land_on_their_masters_even_with_a_stale_slot_map() {
    use sluice_core::redis_conn::{connect, slot_of, RedisConn};
    const KEYS: usize = 300;
    let env = TestEnv::on_redis_cluster().await;
    let prefix = format!("{}bynode:", env.config.redis.key_prefix);
    let keys: Vec<String> = (0..KEYS).map(|i| format!("{prefix}{i}")).collect();
    let conn = connect(&env.config.redis).await.unwrap();
    let RedisConn::Cluster(_, owners) = &conn else {
        panic!("redis.url names the cluster")
    };
    let sets = |value: &str, group: &[usize]| -> Vec<(String, redis::Cmd)> {
        group
            .iter()
            .map(|&i| {
                let mut set = redis::cmd("SET");
                set.arg(&keys[i]).arg(value);
                (keys[i].clone(), set)
            })
            .collect()
    };

    // With the cluster's own map: one group per master, each sent as one pipeline that its
    // node takes whole (a refusal would have made the connection forget the map).
    let groups = conn
        .node_groups(0..KEYS, |&i| slot_of(&keys[i]))
        .await
        .unwrap();
    assert_eq!(groups.len(), 3, "300 keys spread over the three masters");
    for group in &groups {
        conn.pipeline_on_node(sets("first", group)).await.unwrap();
        assert!(
            owners.fresh().is_some(),
            "no command of a node's group was refused"
        );
    }
    let mut per_node: Vec<usize> = keys_per_node(&prefix).await;
    let mut sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
    per_node.sort_unstable();
    sizes.sort_unstable();
    assert_eq!(per_node, sizes, "each group's keys live on one master");

    // A map that says one master serves every slot (as after a resharding it missed): the one
    // pipeline is refused in part, sent again by slot, and the map is read again next time.
    owners.store(vec![0u16; 16_384].into());
    let groups = conn
        .node_groups(0..KEYS, |&i| slot_of(&keys[i]))
        .await
        .unwrap();
    assert_eq!(groups.len(), 1);
    conn.pipeline_on_node(sets("second", &groups[0]))
        .await
        .unwrap();
    assert!(owners.fresh().is_none(), "the stale map was dropped");
    let mut reader = conn.clone();
    for key in &keys {
        let value: String = reader.get(key).await.unwrap();
        assert_eq!(value, "second", "{key}");
    }
    assert_eq!(
        conn.node_groups(0..KEYS, |&i| slot_of(&keys[i]))
            .await
            .unwrap()
            .len(),
        3,
        "the map read again"
    );

    // Calls grouped by node (the feed read's): answers in the call's order, with the cluster's
    // map and with a stale one.
    let by_index = |command: &str, order: &[usize]| -> Vec<(String, redis::Cmd)> {
        order
            .iter()
            .map(|&i| {
                let mut cmd = redis::cmd(command);
                cmd.arg(&keys[i]);
                if command == "SET" {
                    cmd.arg(i);
                }
                (keys[i].clone(), cmd)
            })
            .collect()
    };
    let reversed: Vec<usize> = (0..KEYS).rev().collect();
    conn.pipeline_by_node(by_index("SET", &(0..KEYS).collect::<Vec<_>>()))
        .await
        .unwrap();
    for stale in [false, true] {
        if stale {
            owners.store(vec![0u16; 16_384].into());
        }
        let answers = conn
            .pipeline_by_node(by_index("GET", &reversed))
            .await
            .unwrap();
        let values: Vec<String> = answers
            .iter()
            .map(|v| redis::from_redis_value(v).unwrap())
            .collect();
        let expected: Vec<String> = reversed.iter().map(usize::to_string).collect();
        assert_eq!(values, expected, "stale map: {stale}");
    }
}
