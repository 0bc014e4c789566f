//! Priority lanes on the real broker: high jobs go past a low backlog, a worker serves only the
//! lanes it is given, and a retry keeps its lane.

use std::{sync::Arc, time::Duration};

use rdkafka::message::{Headers, Message};
use serde_json::{json, Value};
use sluice_core::{lanes::Priority, status::Status};
use sluice_tests::{eventually, get_json, post_json, TestEnv};
use tokio::net::TcpListener;

async fn enqueue(http: &reqwest::Client, jobs: &str, body: Value) -> String {
    post_json(http, jobs, body).await["job_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// When each job finished (ms), once all have.
async fn finish_times(http: &reqwest::Client, base: &str, ids: &[String]) -> Vec<i64> {
    let mut times = Vec::new();
    for id in ids {
        let status = eventually(
            &format!("job {id} to succeed"),
            Duration::from_secs(90),
            || async {
                let status = get_json(http, &format!("{base}/v1/jobs/{id}")).await;
                (status["status"] == "succeeded").then_some(status)
            },
        )
        .await;
        times.push(status["updated_at"].as_i64().unwrap());
    }
    times
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn high_jobs_go_past_a_low_backlog_and_low_jobs_still_move() {
    let env = TestEnv::with_config(|c| c.worker.concurrency = 2).await;
    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    let jobs = format!("{base}/v1/jobs/noop");

    // A backlog of low jobs (each holds a slot 20 ms), queued before any worker runs.
    let low = env
        .publish_jobs(
            "noop",
            (0..300).map(|_| r#"{"sleep_ms":20,"priority":"low"}"#.to_owned()),
        )
        .await;
    let worker = env.start_worker(&["noop"]).await;
    let store = env.status_store().await;
    eventually(
        "the worker to start on the backlog",
        Duration::from_secs(30),
        || async {
            let done = env.count_with_status(&store, &low, Status::Succeeded).await;
            (done >= 20).then_some(())
        },
    )
    .await;

    // Now high and normal jobs arrive while the low backlog is far from drained.
    let mut high = Vec::new();
    let mut normal = Vec::new();
    for _ in 0..5 {
        high.push(enqueue(&http, &jobs, json!({"sleep_ms": 20, "priority": "high"})).await);
        normal.push(enqueue(&http, &jobs, json!({"sleep_ms": 20})).await);
    }
    let high_done = finish_times(&http, &base, &high).await;
    let low_left = low.len() - env.count_with_status(&store, &low, Status::Succeeded).await;
    assert!(
        low_left >= 100,
        "the high jobs finished only once {} of {} low jobs had run",
        low.len() - low_left,
        low.len()
    );
    let normal_done = finish_times(&http, &base, &normal).await;
    let low_done = finish_times(&http, &base, &low).await;
    let last_low = *low_done.iter().max().unwrap();
    assert!(
        normal_done.iter().all(|t| *t < last_low),
        "normal jobs wait behind no low backlog"
    );
    assert!(high_done.iter().all(|t| *t < last_low));
    worker.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_serves_only_its_lanes_and_a_retry_keeps_its_lane() {
    let env = TestEnv::with_config(|c| {
        c.retry.tiers = vec![sluice_core::retry::Delay(Duration::from_millis(300))];
        c.retry.max_attempts = 3;
    })
    .await;
    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    let jobs = format!("{base}/v1/jobs/noop");

    // A worker for the high lane only.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let fast = tokio::spawn(
        sluice_worker::Worker::new(Arc::new(env.config.clone()), env.registry())
            .kinds(vec!["noop".into()])
            .lanes(vec![Priority::High])
            .serve(listener, shutdown.clone()),
    );
    let urgent = enqueue(&http, &jobs, json!({"priority": "high"})).await;
    let later = enqueue(&http, &jobs, json!({"priority": "low"})).await;
    finish_times(&http, &base, &[urgent]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting = get_json(&http, &format!("{base}/v1/jobs/{later}")).await;
    assert_eq!(
        waiting["status"], "queued",
        "a high-lane worker leaves low jobs alone"
    );

    // The default worker (every lane, and the retry tiers) takes the rest; a failing high job's
    // retry carries its lane.
    let all = env.start_worker(&["noop"]).await;
    let flaky = enqueue(
        &http,
        &jobs,
        json!({"priority": "high", "fail_attempts": 1}),
    )
    .await;
    finish_times(&http, &base, &[later, flaky.clone()]).await;
    let tier = env.topics().retry("noop", Duration::from_millis(300));
    let retries = env.read_all(&tier);
    let retry = retries
        .iter()
        .find(|r| {
            r.headers()
                .and_then(|h| h.iter().find(|x| x.key == "sluice-job-id"))
                .and_then(|x| x.value)
                == Some(flaky.as_bytes())
        })
        .expect("the retry record");
    let lane = retry
        .headers()
        .and_then(|h| h.iter().find(|x| x.key == "sluice-priority"))
        .and_then(|x| x.value);
    assert_eq!(lane, Some(&b"high"[..]));
    let stats = get_json(&http, &format!("{base}/v1/queue/stats")).await;
    assert!(
        stats["kinds"]["noop"]["lanes"]["high"].is_i64(),
        "stats show each lane: {stats}"
    );

    shutdown.cancel();
    fast.await.unwrap().unwrap();
    all.stop().await;
    api.stop().await;
}
