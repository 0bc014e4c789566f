//! Cancelling and expiring jobs, on the real broker and Redis: `DELETE /v1/jobs/{id}` stops a
//! job that has not started (queued, or waiting for a retry) and answers 409 for one that has;
//! a job with `expires_in`/`expires_at` that has not started in time is not run, before any
//! attempt. Skipped jobs are counted and their offsets committed.

use std::time::Duration;

use serde_json::{json, Value};
use sluice_core::retry::Delay;
use sluice_tests::{eventually, get_json, get_text, post_json, TestEnv};

async fn delete(http: &reqwest::Client, base: &str, job_id: &str) -> (u16, Value) {
    let response = http
        .delete(format!("{base}/v1/jobs/{job_id}"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn status_of(http: &reqwest::Client, base: &str, job_id: &str) -> Value {
    get_json(http, &format!("{base}/v1/jobs/{job_id}")).await
}

async fn wait_for(http: &reqwest::Client, base: &str, job_id: &str, wanted: &str) -> Value {
    eventually(
        &format!("job {job_id} to be {wanted}"),
        Duration::from_secs(30),
        || async {
            let status = status_of(http, base, job_id).await;
            (status["status"] == wanted).then_some(status)
        },
    )
    .await
}

/// `sluice_jobs_finished_total{kind="noop",outcome="<outcome>"}` of a worker.
async fn finished(http: &reqwest::Client, worker: std::net::SocketAddr, outcome: &str) -> u64 {
    let text = get_text(http, &format!("http://{worker}/metrics")).await;
    let prefix = format!("sluice_jobs_finished_total{{kind=\"noop\",outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_job_is_skipped_and_one_that_ran_cannot_be_cancelled() {
    let env = TestEnv::new().await;
    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    let jobs = format!("{base}/v1/jobs/noop");
    let cancelled = post_json(&http, &jobs, json!({"payload": "never"})).await;
    let kept = post_json(&http, &jobs, json!({"payload": "runs"})).await;
    let (cancelled, kept) = (
        cancelled["job_id"].as_str().unwrap().to_owned(),
        kept["job_id"].as_str().unwrap().to_owned(),
    );

    let (code, body) = delete(&http, &base, &cancelled).await;
    assert_eq!(
        (code, &body["status"]),
        (200, &json!("cancelled")),
        "{body}"
    );
    assert_eq!(
        status_of(&http, &base, &cancelled).await["status"],
        "cancelled"
    );
    let (again, _) = delete(&http, &base, &cancelled).await;
    assert_eq!(again, 200, "cancelling twice is not an error");

    // The worker starts after the cancellation: it reads it before taking any job.
    let worker = env.start_worker(&["noop"]).await;
    wait_for(&http, &base, &kept, "succeeded").await;
    eventually(
        "both offsets committed",
        Duration::from_secs(20),
        || async {
            let committed = env.committed_total(
                &env.topics().worker_group("noop"),
                &env.topics().jobs("noop"),
            );
            (committed == 2).then_some(())
        },
    )
    .await;
    let skipped = status_of(&http, &base, &cancelled).await;
    assert_eq!(skipped["status"], "cancelled", "{skipped}");
    assert_eq!(skipped["attempts"], 0, "never ran: {skipped}");
    assert_eq!(finished(&http, worker.info, "cancelled").await, 1);
    assert_eq!(finished(&http, worker.info, "success").await, 1);

    let (code, body) = delete(&http, &base, &kept).await;
    assert_eq!(code, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("succeeded"),
        "{body}"
    );
    let (code, _) = delete(&http, &base, "no-such-job").await;
    assert_eq!(code, 404);
    worker.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_waiting_for_its_retry_can_be_cancelled() {
    let env = TestEnv::with_config(|c| {
        c.retry.tiers = vec![Delay(Duration::from_secs(3))];
        c.retry.jitter = false;
    })
    .await;
    let api = env.start_api().await;
    let worker = env.start_worker(&["noop"]).await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    let accepted = post_json(
        &http,
        &format!("{base}/v1/jobs/noop"),
        json!({"fail_attempts": 3}),
    )
    .await;
    let job_id = accepted["job_id"].as_str().unwrap().to_owned();
    wait_for(&http, &base, &job_id, "retrying").await;
    let (code, body) = delete(&http, &base, &job_id).await;
    assert_eq!(code, 200, "{body}");

    // Its retry comes due after 3 s and is skipped, not run.
    eventually(
        "the retry to be skipped",
        Duration::from_secs(20),
        || async { (finished(&http, worker.info, "cancelled").await == 1).then_some(()) },
    )
    .await;
    let status = status_of(&http, &base, &job_id).await;
    assert_eq!(status["status"], "cancelled", "{status}");
    assert_eq!(
        status["attempts"], 1,
        "only the first attempt ran: {status}"
    );
    assert_eq!(finished(&http, worker.info, "retry").await, 1);
    worker.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_not_started_before_it_expires_is_not_run() {
    let env = TestEnv::with_config(|c| {
        c.retry.tiers = vec![Delay(Duration::from_secs(2))];
        c.retry.jitter = false;
    })
    .await;
    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    let jobs = format!("{base}/v1/jobs/noop");

    let refused = [
        (json!({"expires_in": "soon"}), "expires_in"),
        (json!({"expires_in": "0s"}), "expires_in"),
        (
            json!({"expires_in": "1m", "expires_at": 4102444800000i64}),
            "not both",
        ),
        (
            json!({"expires_at": "2020-01-01T00:00:00Z"}),
            "already past",
        ),
        (json!({"expires_at": "tomorrow"}), "RFC 3339"),
    ];
    for (body, words) in refused {
        let response = http.post(&jobs).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error"].as_str().unwrap().contains(words),
            "{body}: {error}"
        );
    }

    let expiring = post_json(&http, &jobs, json!({"expires_in": "1s"})).await;
    let later = post_json(
        &http,
        &jobs,
        json!({"expires_at": "2100-01-01T09:00:00+01:00"}),
    )
    .await;
    // Fails every attempt, retrying every 2 s, and expires before one of its retries.
    let retried = post_json(
        &http,
        &jobs,
        json!({"fail_attempts": 5, "expires_in": "5s"}),
    )
    .await;
    let id = |v: &Value| v["job_id"].as_str().unwrap().to_owned();
    let (expiring, later, retried) = (id(&expiring), id(&later), id(&retried));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let worker = env.start_worker(&["noop"]).await;
    let status = wait_for(&http, &base, &expiring, "expired").await;
    assert_eq!(status["attempts"], 0, "{status}");
    wait_for(&http, &base, &later, "succeeded").await;
    let status = wait_for(&http, &base, &retried, "expired").await;
    let attempts = status["attempts"].as_u64().unwrap();
    assert!(
        (1..=2).contains(&attempts),
        "it ran, then expired before a retry: {status}"
    );
    assert!(finished(&http, worker.info, "retry").await >= 1);
    assert_eq!(finished(&http, worker.info, "expired").await, 2);
    assert_eq!(
        env.record_count(&env.topics().dead_letters("noop")),
        0,
        "an expired job is not a dead letter"
    );
    worker.stop().await;
    api.stop().await;
}
