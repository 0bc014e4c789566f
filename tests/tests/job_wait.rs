//! `GET /v1/jobs/{id}?wait=`: the answer comes when the job is final, or when the wait is over,
//! whichever is first; a client needing the outcome does not poll.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_tests::{post_json, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiting_read_answers_when_the_job_is_final_or_the_wait_is_over() {
    let env = TestEnv::new().await;
    let api = env.start_api().await;
    let worker = env.start_worker(&["noop"]).await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    let submit = |sleep_ms: u64| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let body = post_json(
                &http,
                &format!("{base}/v1/jobs/noop"),
                json!({"sleep_ms": sleep_ms}),
            )
            .await;
            body["job_id"].as_str().unwrap().to_owned()
        }
    };
    let get = |id: String, wait: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let started = Instant::now();
            let response = http
                .get(format!("{base}/v1/jobs/{id}?wait={wait}"))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            (status, body, started.elapsed())
        }
    };

    // Final before the wait is over: the answer comes when the job finishes, not at 20 s.
    let quick = submit(1500).await;
    let (status, body, took) = get(quick, "20s").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "succeeded", "{body}");
    assert!(
        took >= Duration::from_millis(1000),
        "answered before the job could finish: {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "answered long after the job finished: {took:?}"
    );

    // Not final within the wait: the status of the moment, after about the wait.
    let slow = submit(6000).await;
    let (status, body, took) = get(slow.clone(), "1s").await;
    assert_eq!(status, 200);
    assert!(
        matches!(body["status"].as_str(), Some("queued" | "running")),
        "{body}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );

    // Without `wait`, at once.
    let (_, body, took) = get(slow, "0").await;
    assert!(
        took < Duration::from_secs(1) && body["status"] != "succeeded",
        "{body} {took:?}"
    );

    let (status, body, _) = get("no-such-job".into(), "5s").await;
    assert_eq!(status, 404, "{body}");
    let (status, body, _) = get("x".into(), "soon").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("wait"), "{body}");

    worker.stop().await;
    api.stop().await;
}
