//! The stored job status: each attempt's error kept across updates by the merge script (and only
//! for jobs that failed), lane and trace id, and what the api answers for a job it accepted.

use std::time::Duration;

use serde_json::json;
use sluice_core::{
    lanes::Priority,
    status::{Status, StatusStore, StatusUpdate, MAX_ERRORS},
};
use sluice_tests::TestEnv;

fn update(job_id: &str, status: Status, attempts: u32, error: Option<&str>) -> StatusUpdate {
    StatusUpdate {
        job_id: job_id.into(),
        kind: "noop".into(),
        status,
        attempts,
        error: error.map(Into::into),
        result: None,
        lane: Some(Priority::Low),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
    }
}

/// Writes `updates` in one pipeline, as the status writer does, `now` as their time.
async fn write(store: &StatusStore, updates: &[StatusUpdate], now: i64) {
    let mut pipe = redis::pipe();
    let mut scratch = Vec::new();
    for update in updates {
        store.add_to(&mut pipe, update, now, &mut scratch);
    }
    pipe.query_async::<()>(&mut store.connection())
        .await
        .expect("Redis takes the writes");
}

fn attempts_and_errors(status: &sluice_core::status::JobStatus) -> Vec<(u32, &str, i64)> {
    status
        .errors
        .iter()
        .map(|e| (e.attempt, e.error.as_str(), e.at))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_build_a_history_that_later_updates_keep_and_redeliveries_do_not_repeat() {
    let env = TestEnv::new().await;
    let store = env.status_store().await;
    let id = "history";
    write(&store, &[update(id, Status::Running, 1, None)], 1000).await;
    write(
        &store,
        &[update(id, Status::Retrying, 1, Some("first"))],
        2000,
    )
    .await;
    // The next attempt carries the previous error as `last_error`: kept, not added again.
    write(
        &store,
        &[update(id, Status::Running, 2, Some("first"))],
        3000,
    )
    .await;
    write(
        &store,
        &[
            update(id, Status::Retrying, 2, Some("second")),
            // Written again after a redelivery: still one entry for attempt 2.
            update(id, Status::Retrying, 2, Some("second")),
        ],
        4000,
    )
    .await;
    let mut done = update(id, Status::Succeeded, 3, Some("second"));
    // A result the script must not re-encode: cjson would round the number and turn `[]` into
    // `{}`.
    done.result = Some(json!({"big": 12345678901234567u64, "empty": [], "text": "a/b"}));
    write(&store, &[done.clone()], 5000).await;

    let status = store.get(id).await.unwrap().expect("stored");
    assert_eq!(status.status, Status::Succeeded);
    assert_eq!(status.attempts, 3);
    assert_eq!(
        attempts_and_errors(&status),
        vec![(1, "first", 2000), (2, "second", 4000)]
    );
    assert_eq!(status.last_error.as_deref(), Some("second"));
    assert_eq!(status.result, done.result, "the result byte for byte");
    assert_eq!(status.lane, Some(Priority::Low));
    assert_eq!(
        status.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );

    // Replayed from the dead letters, the job counts from attempt 1 again: a new history.
    write(
        &store,
        &[update(id, Status::Retrying, 1, Some("again"))],
        6000,
    )
    .await;
    let replayed = store.get(id).await.unwrap().unwrap();
    assert_eq!(attempts_and_errors(&replayed), vec![(1, "again", 6000)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_keeps_the_newest_errors_and_a_clean_job_stores_none() {
    let env = TestEnv::new().await;
    let store = env.status_store().await;
    for attempt in 1..=25u32 {
        let error = format!("failure {attempt}");
        write(
            &store,
            &[update("many", Status::Retrying, attempt, Some(&error))],
            i64::from(attempt),
        )
        .await;
    }
    let status = store.get("many").await.unwrap().unwrap();
    assert_eq!(status.errors.len(), MAX_ERRORS);
    assert_eq!(status.errors[0].attempt, 6);
    assert_eq!(status.errors[MAX_ERRORS - 1].error, "failure 25");

    // An attempt-1 success is one plain SET: no `errors` in the stored document at all.
    write(&store, &[update("clean", Status::Succeeded, 1, None)], 1).await;
    let mut redis = store.connection();
    let raw: String = redis::cmd("GET")
        .arg(format!("{}job:clean", env.config.redis.key_prefix))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(!raw.contains("errors"), "{raw}");
    assert!(store.get("clean").await.unwrap().unwrap().errors.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_history_written_by_lua_as_an_object_reads_as_none_and_merges() {
    let env = TestEnv::new().await;
    let store = env.status_store().await;
    let key = format!("{}job:odd", env.config.redis.key_prefix);
    let mut redis = store.connection();
    redis::cmd("SET")
        .arg(&key)
        .arg(r#"{"kind":"noop","status":"retrying","attempts":1,"updated_at":1,"errors":{}}"#)
        .query_async::<()>(&mut redis)
        .await
        .unwrap();
    assert!(store.get("odd").await.unwrap().unwrap().errors.is_empty());
    write(
        &store,
        &[update("odd", Status::DeadLettered, 2, Some("dead"))],
        7,
    )
    .await;
    let status = store.get("odd").await.unwrap().unwrap();
    assert_eq!(attempts_and_errors(&status), vec![(2, "dead", 7)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_and_restoring_keep_lane_trace_and_errors() {
    let env = TestEnv::new().await;
    let store = env.status_store().await;
    write(&store, &[update("c", Status::Retrying, 1, Some("boom"))], 9).await;
    let before = store.get("c").await.unwrap().unwrap();
    assert_eq!(
        store.cancel_if_waiting("c").await.unwrap(),
        Some(Status::Retrying)
    );
    let cancelled = store.get("c").await.unwrap().unwrap();
    assert_eq!(cancelled.status, Status::Cancelled);
    assert_eq!(cancelled.errors, before.errors);
    assert_eq!(cancelled.lane, Some(Priority::Low));
    assert_eq!(cancelled.trace_id, before.trace_id);
    store.restore(&before).await.unwrap();
    let restored = store.get("c").await.unwrap().unwrap();
    assert_eq!(restored.status, Status::Retrying);
    assert_eq!(restored.errors, before.errors);
    assert_eq!(restored.lane, before.lane);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_accepted_by_the_api_shows_its_lane_trace_and_each_attempts_error() {
    let env = TestEnv::with_config(|c| {
        c.retry.tiers = vec![sluice_core::retry::Delay(Duration::from_secs(1))];
        c.retry.jitter = false;
    })
    .await;
    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let accepted: serde_json::Value = http
        .post(format!("{base}/v1/jobs/noop"))
        .header("traceparent", traceparent)
        .json(&json!({"fail_attempts": 2, "priority": "high"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = accepted["job_id"].as_str().unwrap().to_owned();
    // Queued, before any worker: written by the api.
    let queued = sluice_tests::get_json(&http, &format!("{base}/v1/jobs/{id}")).await;
    assert_eq!(queued["status"], "queued", "{queued}");
    assert_eq!(queued["lane"], "high");
    assert_eq!(queued["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(queued["errors"], json!([]));

    let worker = env.start_worker(&["noop"]).await;
    let done = sluice_tests::get_json(&http, &format!("{base}/v1/jobs/{id}?wait=25s")).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 3);
    assert_eq!(done["lane"], "high", "a retry keeps its lane");
    assert_eq!(done["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    let errors = done["errors"].as_array().unwrap();
    let listed: Vec<(u64, &str)> = errors
        .iter()
        .map(|e| (e["attempt"].as_u64().unwrap(), e["error"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (1, "noop asked to fail attempt 1"),
            (2, "noop asked to fail attempt 2")
        ]
    );
    assert!(errors[0]["at"].as_i64().unwrap() <= errors[1]["at"].as_i64().unwrap());
    worker.stop().await;
    api.stop().await;
}
