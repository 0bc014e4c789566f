//! An endpoint answering 410 Gone is disabled for every worker, across restarts: the job that
//! got the 410 is dead-lettered, `sluice endpoints list` shows the endpoint, later jobs to it
//! dead-letter at once with "endpoint disabled" without a call (also in a worker started
//! afterwards), the metrics count it, and `sluice endpoints enable` lets the next job through.

use std::{process::Command, time::Duration};

use serde_json::{json, Value};
use sluice_core::status::Status;
use sluice_tests::{eventually, get_text, receiver::Receiver, sluice_binary, TestEnv};

const WAIT: Duration = Duration::from_secs(30);

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

fn webhook(url: &str) -> String {
    json!({"url": url, "event_type": "gone.test", "payload": "{}"}).to_string()
}

/// The value of an unlabelled or `kind="webhook"` series on a `/metrics` page.
fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_410_disables_the_endpoint_until_it_is_enabled_again() {
    // 410 to the first call, 200 after.
    let receiver = Receiver::start(vec![410]).await;
    let url = receiver.url();
    let env = TestEnv::with_config(|c| c.retry.max_attempts = 4).await;
    let store = env.status_store().await;
    let worker = env.start_worker(&["webhook"]).await;
    let http = reqwest::Client::new();
    let metrics_url = format!("http://{}/metrics", worker.info);

    let first = env.publish_jobs("webhook", [webhook(&url)]).await;
    let gone = env
        .wait_for_status(&store, &first[0], Status::DeadLettered, WAIT)
        .await;
    assert_eq!(gone.attempts, 1, "a 410 is fatal");
    assert_eq!(
        gone.last_error.as_deref(),
        Some("receiver answered 410; endpoint disabled")
    );

    // Listed by the CLI, with the job that got the 410.
    let (ok, listed) = sluice(&env, &["endpoints", "list", "--json"]);
    assert!(ok, "{listed}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["url"], url.as_str());
    assert_eq!(listed[0]["kind"], "webhook");
    assert_eq!(listed[0]["job_id"], first[0].as_str());
    let (ok, table) = sluice(&env, &["endpoints", "list"]);
    assert!(
        ok && table.contains(&url) && table.contains(&first[0]),
        "{table}"
    );

    // Later jobs to it dead-letter at once, without a call.
    let later = env
        .publish_jobs("webhook", [webhook(&url), webhook(&url)])
        .await;
    for id in &later {
        let status = env
            .wait_for_status(&store, id, Status::DeadLettered, WAIT)
            .await;
        assert_eq!(status.attempts, 1);
        assert!(
            status
                .last_error
                .unwrap_or_default()
                .starts_with("endpoint disabled: it answered 410 Gone before"),
            "{id}"
        );
    }
    assert_eq!(receiver.requests().len(), 1, "only the first job called it");
    let page = get_text(&http, &metrics_url).await;
    assert_eq!(metric(&page, "sluice_endpoints_disabled"), Some(1.0));
    assert_eq!(
        metric(&page, r#"sluice_endpoint_gone_total{kind="webhook"}"#),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &page,
            r#"sluice_endpoint_disabled_jobs_total{kind="webhook"}"#
        ),
        Some(2.0)
    );
    worker.stop().await;

    // Kept in Redis: a worker started afterwards (a restart, or another replica) refuses it
    // from its first job.
    let worker = env.start_worker(&["webhook"]).await;
    let after_restart = env.publish_jobs("webhook", [webhook(&url)]).await;
    let status = env
        .wait_for_status(&store, &after_restart[0], Status::DeadLettered, WAIT)
        .await;
    assert!(status
        .last_error
        .unwrap_or_default()
        .starts_with("endpoint disabled"));
    assert_eq!(receiver.requests().len(), 1);

    // Enabled again (the URL in another spelling of the same endpoint): the next job goes
    // through once the worker has re-read the set.
    let spelled = url.replace("http://", "HTTP://");
    let (ok, out) = sluice(&env, &["endpoints", "enable", &spelled]);
    assert!(ok && out.contains(&format!("enabled {url}")), "{out}");
    let (ok, out) = sluice(&env, &["endpoints", "enable", &url]);
    assert!(
        !ok && out.contains("is not disabled"),
        "a second enable fails: {out}"
    );
    let metrics_url = format!("http://{}/metrics", worker.info);
    eventually(
        "the worker to re-read the set",
        Duration::from_secs(10),
        || {
            let (http, metrics_url) = (http.clone(), metrics_url.clone());
            async move {
                let page = get_text(&http, &metrics_url).await;
                (metric(&page, "sluice_endpoints_disabled") == Some(0.0)).then_some(())
            }
        },
    )
    .await;
    let (ok, out) = sluice(&env, &["endpoints", "list"]);
    assert!(ok && out.contains("no endpoint is disabled"), "{out}");
    let enabled = env.publish_jobs("webhook", [webhook(&url)]).await;
    env.wait_for_status(&store, &enabled[0], Status::Succeeded, WAIT)
        .await;
    assert_eq!(receiver.requests().len(), 2);
    worker.stop().await;
}
