//! The outgoing-address guard, end to end through real workers: a webhook or `http` job aimed at
//! loopback (as an IP literal, in its IPv4-mapped IPv6 spelling, or as a host name that resolves
//! there) or at the cloud metadata address is dead-lettered at once, `fatal`, with an error
//! naming the address, and nothing is called; with `allow_private` the same receiver gets its
//! webhook; a redirect is never followed; an `http` kind whose `url` is a refused IP literal
//! does not start.

use std::{path::PathBuf, time::Duration};

use axum::{http::StatusCode, routing::post, Router};
use rdkafka::message::{Headers, Message};
use serde_json::json;
use sluice_core::status::{JobStatus, Status};
use sluice_tests::{receiver::Receiver, TestEnv, WEBHOOK_SECRET};

const WAIT: Duration = Duration::from_secs(30);

/// A test environment whose webhook kind has the default guard (the harness allows loopback).
async fn strict_env(adjust: impl FnOnce(&mut sluice_core::Config)) -> TestEnv {
    TestEnv::with_config(|c| {
        c.kinds.get_mut("webhook").unwrap().remove("allow_private");
        // Several attempts allowed: "dead-lettered at once" must come from the class.
        c.retry.max_attempts = 4;
        adjust(c);
    })
    .await
}

fn webhook(url: &str) -> String {
    json!({"url": url, "event_type": "guard.test", "payload": "{}"}).to_string()
}

/// The `sluice-error-class` of every dead letter of `kind`, by job id.
fn dead_letter_classes(env: &TestEnv, kind: &str) -> Vec<(String, String)> {
    env.read_all(&env.topics().dead_letters(kind))
        .iter()
        .map(|m| {
            let header = |name: &str| {
                m.headers()
                    .and_then(|h| h.iter().find(|h| h.key == name))
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            (header("sluice-job-id"), header("sluice-error-class"))
        })
        .collect()
}

async fn dead(env: &TestEnv, job_id: &str) -> JobStatus {
    let store = env.status_store().await;
    env.wait_for_status(&store, job_id, Status::DeadLettered, WAIT)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_to_loopback_and_metadata_are_refused_at_once_unless_allowed() {
    let receiver = Receiver::start(vec![]).await;
    let port = receiver.addr.unwrap().port();
    let env = strict_env(|_| {}).await;
    let worker = env.start_worker(&["webhook"]).await;

    let targets = [
        (receiver.url(), "127.0.0.1 is a loopback address"),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/hook"),
            "::ffff:127.0.0.1 is a loopback address",
        ),
        // A host name: refused by the resolver, so the address connected to is never loopback.
        (
            format!("http://localhost:{port}/hook"),
            "is a loopback address",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "169.254.169.254 is the cloud metadata service",
        ),
    ];
    let ids = env
        .publish_jobs("webhook", targets.iter().map(|(url, _)| webhook(url)))
        .await;
    for (id, (url, expected)) in ids.iter().zip(&targets) {
        let status = dead(&env, id).await;
        let error = status.last_error.unwrap_or_default();
        assert_eq!(status.attempts, 1, "{url}: dead-lettered at once");
        assert!(error.starts_with("target refused: "), "{url}: {error}");
        assert!(error.contains(expected), "{url}: {error}");
        assert!(
            error.contains("allow_"),
            "{url}: says how to allow it: {error}"
        );
    }
    let classes = dead_letter_classes(&env, "webhook");
    for id in &ids {
        let class = classes
            .iter()
            .find(|(job, _)| job == id)
            .map(|(_, c)| c.as_str());
        assert_eq!(class, Some("fatal"), "{id}");
    }
    assert!(
        receiver.requests().is_empty(),
        "nothing reached the receiver"
    );
    worker.stop().await;

    // The same receiver, with the development exception: delivered.
    let allowed = TestEnv::new().await;
    let worker = allowed.start_worker(&["webhook"]).await;
    let ids = allowed
        .publish_jobs("webhook", [webhook(&receiver.url())])
        .await;
    let store = allowed.status_store().await;
    allowed
        .wait_for_status(&store, &ids[0], Status::Succeeded, WAIT)
        .await;
    assert_eq!(receiver.requests().len(), 1);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn allow_cidrs_opens_only_its_networks() {
    let receiver = Receiver::start(vec![]).await;
    let port = receiver.addr.unwrap().port();
    let env = strict_env(|c| {
        let webhook = c.kinds.get_mut("webhook").unwrap();
        webhook.insert("allow_cidrs".into(), json!(["127.0.0.0/8"]));
    })
    .await;
    let worker = env.start_worker(&["webhook"]).await;
    let ids = env
        .publish_jobs(
            "webhook",
            [
                webhook(&receiver.url()),
                webhook(&format!("http://[::1]:{port}/hook")),
            ],
        )
        .await;
    let store = env.status_store().await;
    env.wait_for_status(&store, &ids[0], Status::Succeeded, WAIT)
        .await;
    let refused = dead(&env, &ids[1]).await.last_error.unwrap_or_default();
    assert!(refused.contains("::1 is a loopback address"), "{refused}");
    assert_eq!(receiver.requests().len(), 1);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redirect_is_never_followed() {
    let receiver = Receiver::start(vec![]).await;
    // Answers every POST with a redirect to the receiver (allowed, so following it would show).
    let to = receiver.url();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirecting = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/hook",
        post(move || {
            let to = to.clone();
            async move { (StatusCode::TEMPORARY_REDIRECT, [("location", to)]) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let env = TestEnv::with_config(|c| c.retry.max_attempts = 4).await;
    let worker = env.start_worker(&["webhook"]).await;
    let ids = env.publish_jobs("webhook", [webhook(&redirecting)]).await;
    let status = dead(&env, &ids[0]).await;
    let error = status.last_error.unwrap_or_default();
    let origin = format!("http://{}", receiver.addr.unwrap());
    assert_eq!(
        error,
        format!("receiver answered 307, a redirect to {origin}; redirects are never followed")
    );
    assert_eq!(status.attempts, 1, "fatal: not retried");
    assert!(
        receiver.requests().is_empty(),
        "the redirect was not followed"
    );
    worker.stop().await;
}

/// A temporary `schemas.dir` holding the example's `greet` schema.
fn greet_schemas() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-guard-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("greet")).unwrap();
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/http-consumer/schemas/greet/v1.avsc"),
        dir.join("greet/v1.avsc"),
    )
    .unwrap();
    dir
}

fn greet_kind(config: &mut sluice_core::Config, dir: PathBuf, url: &str) {
    config.schemas.dir = Some(dir);
    let greet = config.kinds.entry("greet".into()).or_default();
    greet.insert("handler".into(), "http".into());
    greet.insert("url".into(), url.into());
    greet.insert("secret".into(), WEBHOOK_SECRET.into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_http_kind_is_guarded_too() {
    let receiver = Receiver::start(vec![]).await;
    let port = receiver.addr.unwrap().port();

    // An IP literal the guard refuses is a configuration error: every role refuses to start.
    let mut literal = sluice_core::Config::default();
    greet_kind(&mut literal, greet_schemas(), &receiver.url());
    let error = match sluice_kinds::Registry::load(&literal) {
        Ok(_) => panic!("a loopback url loaded"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.starts_with("kinds.greet.url: ") && error.contains("127.0.0.1 is a loopback address"),
        "{error}"
    );

    // A host name can only be checked when it is called: each job is refused, fatal.
    let dir = greet_schemas();
    let url = format!("http://localhost:{port}/hook");
    let env = TestEnv::with_config(|c| {
        c.retry.max_attempts = 4;
        greet_kind(c, dir, &url);
    })
    .await;
    let worker = env.start_worker(&["greet"]).await;
    let ids = env
        .publish_jobs("greet", [json!({"name": "Ada"}).to_string()])
        .await;
    let status = dead(&env, &ids[0]).await;
    let error = status.last_error.unwrap_or_default();
    assert_eq!(status.attempts, 1);
    assert!(
        error.starts_with("target refused: ") && error.contains("is a loopback address"),
        "{error}"
    );
    assert_eq!(
        dead_letter_classes(&env, "greet"),
        [(ids[0].clone(), "fatal".to_owned())]
    );
    assert!(receiver.requests().is_empty());
    worker.stop().await;
}
