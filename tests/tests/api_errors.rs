//! Bad input gets a clear JSON error with the right status, and nothing reaches Kafka.

use serde_json::Value;
use sluice_tests::TestEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_input_gets_its_status_and_a_message_and_nothing_is_enqueued() {
    let mut env = TestEnv::new().await;
    env.config.api.body_limit_bytes = 1024;
    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    let too_large = format!(r#"{{"payload":"{}"}}"#, "x".repeat(2048));

    let cases: &[(&str, &str, u16, &str)] = &[
        (
            "webhook",
            r#"{"event_type":"a","payload":"{}"}"#,
            400,
            "field `url`: missing",
        ),
        (
            "webhook",
            r#"{"url":5,"event_type":"a","payload":"{}"}"#,
            400,
            "field `url`: expected a string, got a number",
        ),
        (
            "webhook",
            r#"{"url":"ftp://x/y","event_type":"a","payload":"{}"}"#,
            400,
            "field `url`",
        ),
        (
            "webhook",
            r#"{"url":"http://x/y","event_type":"a","payload":"not json"}"#,
            400,
            "field `payload`",
        ),
        (
            "webhook",
            r#"{"url":"http://x/y","event_type":"a","payload":"{}","extra":1}"#,
            400,
            "field `extra`: unknown field",
        ),
        ("noop", "this is not json", 400, "not valid JSON"),
        ("noop", "[1,2]", 400, "expected a JSON object"),
        ("noop", r#"{"sleep_ms":"soon"}"#, 400, "field `sleep_ms`"),
        ("noop", r#"{"priority":"urgent"}"#, 400, "field `priority`"),
        ("noop", r#"{"key":17}"#, 400, "field `key`"),
        ("fax", "{}", 404, "unknown job kind `fax`"),
        (
            "email",
            r#"{"to":[],"subject":"x","text":"y"}"#,
            400,
            "field `to`",
        ),
        (
            "email",
            r#"{"to":["a@example.com"],"subject":"x\r\nBcc: b@example.com","text":"y"}"#,
            400,
            "field `subject`",
        ),
        (
            "email",
            r#"{"to":["a@example.com"],"template":"../../etc/passwd"}"#,
            400,
            "field `template`",
        ),
        (
            "noop",
            too_large.as_str(),
            413,
            "larger than the limit of 1024 bytes",
        ),
    ];
    for (kind, body, status, message) in cases {
        let response = http
            .post(format!("{base}/v1/jobs/{kind}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), *status, "{kind} {body:.60}");
        let error: Value = response.json().await.expect("error bodies are JSON");
        let text = error["error"].as_str().expect("an `error` string");
        assert!(
            text.contains(message),
            "{kind} {body:.60}: {text:?} lacks {message:?}"
        );
    }

    for kind in ["webhook", "noop"] {
        assert_eq!(
            env.record_count(&env.topics().jobs(kind)),
            0,
            "nothing reached jobs.{kind}"
        );
    }

    // The rest of the surface answers as documented.
    let unknown_job = http
        .get(format!("{base}/v1/jobs/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_job.status(), 404);
    let no_route = http.get(format!("{base}/v2/nothing")).send().await.unwrap();
    assert_eq!(no_route.status(), 404);
    assert!(no_route.json::<Value>().await.unwrap()["error"].is_string());
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = sluice_tests::get_text(&http, &format!("{base}/metrics")).await;
    assert!(
        metrics.contains(
            r#"sluice_http_requests_total{route="/v1/jobs/{kind_or_id}",status="400"} 13"#
        ),
        "{metrics}"
    );
    api.stop().await;
}
