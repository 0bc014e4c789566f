//! Incoming webhooks (`POST /v1/hooks/{source}`) on the real broker and Redis: events signed by
//! the senders' own libraries (PyPI `stripe` and `standardwebhooks`, pinned in
//! deploy/pytools.sh) and GitHub's documented scheme are enqueued exactly once each — repeats,
//! concurrent repeats included, answered 200 without a second record — while forged, tampered,
//! expired, unsigned and malformed requests, unknown sources and oversized bodies get their
//! status and enqueue nothing; with Kafka unreachable the answer is 503 and the event's claim is
//! released, so the sender's retry is accepted; with `[kinds.hook] url` the worker forwards an
//! event to an endpoint, raw body intact.

use std::{
    collections::BTreeMap,
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use base64::{engine::general_purpose::STANDARD as BASE64, Engine};
use hmac::{Hmac, Mac};
use rdkafka::Message;
use serde_json::{json, Value};
use sluice_core::{
    hooks::{HookConfig, Secrets},
    lanes::Priority,
    Config,
};
use sluice_tests::TestEnv;

const STRIPE_NEW: &str = "whsec_stripe_new_3b9f";
const STRIPE_OLD: &str = "whsec_stripe_old_77a1";
const STANDARD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const GITHUB: &str = "It's a Secret to Everybody";

fn hook(scheme: &str, secrets: &[&str]) -> HookConfig {
    HookConfig {
        scheme: scheme.into(),
        secret: Secrets::Several(secrets.iter().map(|s| (*s).to_owned()).collect()),
        ..HookConfig::default()
    }
}

fn declare_sources(config: &mut Config) {
    config
        .hooks
        .insert("stripe".into(), hook("stripe", &[STRIPE_NEW, STRIPE_OLD]));
    config
        .hooks
        .insert("std".into(), hook("standard", &[STANDARD]));
    config.hooks.insert("gh".into(), hook("github", &[GITHUB]));
    config.api.body_limit_bytes = 64 * 1024;
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Header maps from tests/python/sign_hooks.py: the senders' libraries sign each item.
fn sign_with_libraries(items: &Value) -> Vec<BTreeMap<String, String>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".cache/pytools/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run deploy/pytools.sh (make test does)",
        python.display()
    );
    let mut child = Command::new(python)
        .arg(root.join("tests/python/sign_hooks.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(items.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "sign_hooks.py failed");
    serde_json::from_slice(&output.stdout).unwrap()
}

fn stripe_body(id: &str) -> String {
    json!({"id": id, "object": "event", "type": "invoice.paid", "data": {"object": {"id": "in_1"}}})
        .to_string()
}

fn github_headers(delivery: &str, body: &str, secret: &str) -> BTreeMap<String, String> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    [
        ("X-Hub-Signature-256", format!("sha256={signature}")),
        ("X-GitHub-Delivery", delivery.to_owned()),
        ("X-GitHub-Event", "push".to_owned()),
        ("Content-Type", "application/json".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    headers: &BTreeMap<String, String>,
    body: &str,
) -> (u16, Value, Option<String>) {
    let mut request = http.post(url).body(body.to_owned());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        retry_after,
    )
}

/// The hook records in `jobs.hook`, decoded, by job id.
fn enqueued(env: &TestEnv) -> BTreeMap<String, Vec<Value>> {
    let registry = env.registry();
    let mut by_id: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for record in env.read_all(&env.topics().lane("hook", Priority::Normal)) {
        let key = String::from_utf8(record.key().unwrap().to_vec()).unwrap();
        let decoded = registry.decode("hook", record.payload().unwrap()).unwrap();
        by_id
            .entry(key)
            .or_default()
            .push(sluice_core::json::record_to_json(&decoded.value));
    }
    by_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_events_are_enqueued_exactly_once_and_bad_requests_enqueue_nothing() {
    let env = TestEnv::with_config(declare_sources).await;
    let api = env.start_api().await;
    let http = reqwest::Client::new();
    let url = |source: &str| format!("http://{}/v1/hooks/{source}", api.info);
    let t = now();

    let bodies = [
        stripe_body("evt_new"),
        stripe_body("evt_old"),
        stripe_body("evt_expired"),
        stripe_body("evt_forged"),
        stripe_body("evt_race"),
        stripe_body(&"e".repeat(300)),
    ];
    let standard_body = r#"{"type":"user.created","data":{"id":"u_1"}}"#;
    let signed = sign_with_libraries(&json!([
        {"scheme": "stripe", "secret": STRIPE_NEW, "body": bodies[0], "timestamp": t},
        {"scheme": "stripe", "secret": STRIPE_OLD, "body": bodies[1], "timestamp": t},
        {"scheme": "stripe", "secret": STRIPE_NEW, "body": bodies[2], "timestamp": t - 3600},
        {"scheme": "stripe", "secret": "whsec_guessed", "body": bodies[3], "timestamp": t},
        {"scheme": "stripe", "secret": STRIPE_NEW, "body": bodies[4], "timestamp": t},
        {"scheme": "standard", "secret": STANDARD, "body": standard_body, "timestamp": t, "id": "msg_1"},
        {"scheme": "standard", "secret": STANDARD, "body": standard_body, "timestamp": t - 600, "id": "msg_old"},
        {"scheme": "stripe", "secret": STRIPE_NEW, "body": bodies[5], "timestamp": t},
    ]));

    // Accepted, then a repeat: 200 both times, one record.
    let (status, first, _) = post(&http, &url("stripe"), &signed[0], &bodies[0]).await;
    assert_eq!((status, first["status"].as_str()), (200, Some("accepted")));
    assert_eq!(first["job_id"], "hook-stripe-evt_new");
    let (status, again, _) = post(&http, &url("stripe"), &signed[0], &bodies[0]).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(again["job_id"], first["job_id"]);
    // Signed with the secret being rotated out.
    let (status, _, _) = post(&http, &url("stripe"), &signed[1], &bodies[1]).await;
    assert_eq!(status, 200);
    let (status, body, _) = post(&http, &url("std"), &signed[5], standard_body).await;
    assert_eq!(
        (status, body["job_id"].as_str()),
        (200, Some("hook-std-msg_1"))
    );
    let (status, body, _) = post(&http, &url("std"), &signed[5], standard_body).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("duplicate")));
    let github_body = r#"{"ref":"refs/heads/main"}"#;
    let github = github_headers("d-1", github_body, GITHUB);
    for expected in ["accepted", "duplicate"] {
        let (status, body, _) = post(&http, &url("gh"), &github, github_body).await;
        assert_eq!((status, body["status"].as_str()), (200, Some(expected)));
    }

    // Twenty copies of one event at once: each is answered 200, or 503 with Retry-After while
    // another copy is being produced; a sender's retry of those finds it done.
    let stripe_url = url("stripe");
    let race = (0..20).map(|_| post(&http, &stripe_url, &signed[4], &bodies[4]));
    let answers = futures::future::join_all(race).await;
    let mut accepted = 0;
    for (status, body, retry_after) in &answers {
        match status {
            200 => accepted += usize::from(body["status"] == "accepted"),
            503 => assert_eq!(retry_after.as_deref(), Some("5")),
            other => panic!("a concurrent repeat got {other}: {body}"),
        }
    }
    assert!(accepted <= 1, "{answers:?}");
    let (status, _, _) = post(&http, &url("stripe"), &signed[4], &bodies[4]).await;
    assert_eq!(status, 200);

    // Refused: nothing of these may reach Kafka.
    let tampered = bodies[0].replace("invoice.paid", "invoice.void");
    let stale_std = &signed[6];
    let mut no_signature = signed[0].clone();
    no_signature.remove("Stripe-Signature");
    let mut malformed = signed[0].clone();
    malformed.insert("Stripe-Signature".into(), "t=yesterday,v1=00".into());
    let forged_github = github_headers("d-2", github_body, "not the secret");
    let mut no_delivery = github_headers("d-3", github_body, GITHUB);
    no_delivery.remove("X-GitHub-Delivery");
    let oversized = stripe_body(&"x".repeat(70 * 1024));
    // (source, headers, body, status, part of the error)
    type Case<'a> = (&'a str, &'a BTreeMap<String, String>, &'a str, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("stripe", &signed[3], &bodies[3], 401, "invalid signature"),
        ("stripe", &signed[0], &tampered, 401, "invalid signature"),
        (
            "stripe",
            &no_signature,
            &bodies[0],
            401,
            "invalid signature",
        ),
        (
            "stripe",
            &signed[2],
            &bodies[2],
            401,
            "outside the tolerance",
        ),
        ("stripe", &malformed, &bodies[0], 400, "Unix time"),
        (
            "stripe",
            &signed[7],
            &bodies[5],
            400,
            "event id must be 1-256 bytes",
        ),
        (
            "std",
            stale_std,
            standard_body,
            401,
            "outside the tolerance",
        ),
        // A Stripe signature is no good at another source.
        ("std", &signed[0], &bodies[0], 401, "invalid signature"),
        ("gh", &forged_github, github_body, 401, "invalid signature"),
        ("gh", &no_delivery, github_body, 400, "x-github-delivery"),
        (
            "paypal",
            &signed[0],
            &bodies[0],
            404,
            "unknown webhook source",
        ),
        (
            "stripe",
            &signed[0],
            &oversized,
            413,
            "larger than the limit",
        ),
    ];
    for (source, headers, body, status, message) in cases {
        let (got, answer, _) = post(&http, &url(source), headers, body).await;
        let error = answer["error"].as_str().unwrap_or_default();
        assert_eq!(got, status, "{source}: {answer}");
        assert!(error.contains(message), "{source}: {error}");
    }

    // Exactly once each on the topic, with the raw body and the headers that matter.
    let records = enqueued(&env);
    let ids: Vec<&str> = records.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "hook-gh-d-1",
            "hook-std-msg_1",
            "hook-stripe-evt_new",
            "hook-stripe-evt_old",
            "hook-stripe-evt_race"
        ]
    );
    assert!(
        records.values().all(|copies| copies.len() == 1),
        "{records:?}"
    );
    let event = &records["hook-stripe-evt_new"][0];
    assert_eq!(event["source"], "stripe");
    assert_eq!(event["scheme"], "stripe");
    assert_eq!(event["event_id"], "evt_new");
    let body = BASE64.decode(event["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, bodies[0].as_bytes());
    assert_eq!(
        event["headers"]["stripe-signature"],
        signed[0]["Stripe-Signature"]
    );
    assert_eq!(
        records["hook-gh-d-1"][0]["headers"]["x-github-event"],
        "push"
    );

    let metrics = sluice_tests::get_text(&http, &format!("http://{}/metrics", api.info)).await;
    for line in [
        r#"sluice_hooks_received_total{outcome="accepted",source="stripe"} 3"#,
        r#"sluice_hooks_received_total{outcome="invalid_signature",source="stripe"} 3"#,
        r#"sluice_hooks_received_total{outcome="expired",source="std"} 1"#,
        r#"sluice_hooks_received_total{outcome="duplicate",source="gh"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line}");
    }
    api.stop().await;
}

/// An api on `config` (not necessarily the environment's own).
async fn start_api_with(
    config: Config,
    registry: std::sync::Arc<sluice_kinds::Registry>,
) -> sluice_tests::RunningRole<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = sluice_api::state(std::sync::Arc::new(config), registry)
        .await
        .expect("api state");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let handle = tokio::spawn(sluice_api::serve(listener, state, shutdown.clone()));
    sluice_tests::RunningRole {
        info: addr,
        shutdown,
        handle,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_unreachable_gives_503_and_the_senders_retry_is_accepted() {
    let env = TestEnv::with_config(declare_sources).await;
    let mut dead = env.config.clone();
    // Nothing listens on port 1: the producer never gets an acknowledgement.
    dead.kafka.bootstrap_servers = "127.0.0.1:1".into();
    dead.api.publish_timeout = Duration::from_secs(1);
    let broken = start_api_with(dead, env.registry()).await;
    let healthy = env.start_api().await;
    let http = reqwest::Client::new();
    let body = stripe_body("evt_outage");
    let signed = sign_with_libraries(&json!([
        {"scheme": "stripe", "secret": STRIPE_NEW, "body": body, "timestamp": now()},
    ]));

    let started = std::time::Instant::now();
    let url = format!("http://{}/v1/hooks/stripe", broken.info);
    let (status, answer, retry_after) = post(&http, &url, &signed[0], &body).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(retry_after.as_deref(), Some("5"));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // The claim was released: the retry (to any replica) enqueues it, once.
    let url = format!("http://{}/v1/hooks/stripe", healthy.info);
    let (status, answer, _) = post(&http, &url, &signed[0], &body).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("accepted")));
    let records = enqueued(&env);
    assert_eq!(
        records.keys().collect::<Vec<_>>(),
        ["hook-stripe-evt_outage"]
    );
    assert_eq!(records["hook-stripe-evt_outage"].len(), 1);
    // Its producer cannot flush anything to a broker that is not there; only the healthy one's
    // stop is checked.
    broken.shutdown.cancel();
    healthy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_hooks_table_stops_the_start_naming_the_key() {
    let mut config = Config::default();
    config.hooks.insert(
        "stripe".into(),
        HookConfig {
            kind: "noop".into(),
            ..hook("stripe", &[STRIPE_NEW])
        },
    );
    let registry = std::sync::Arc::new(sluice_kinds::Registry::load(&config).unwrap());
    let error = sluice_api::state(std::sync::Arc::new(config), registry)
        .await
        .err()
        .expect("the start fails");
    let message = format!("{error:#}");
    assert!(message.contains("hooks.stripe.kind"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stripe_event_reaches_your_endpoint_through_the_hook_kind() {
    let receiver = sluice_tests::receiver::Receiver::start(vec![]).await;
    let url = receiver.url();
    let env = TestEnv::with_config(|config| {
        declare_sources(config);
        let hook = config.kinds.entry("hook".into()).or_default();
        hook.insert("url".into(), url.into());
        hook.insert("secret".into(), sluice_tests::WEBHOOK_SECRET.into());
        // The endpoint is on loopback: the outgoing guard refuses it unless allowed.
        hook.insert("allow_private".into(), true.into());
    })
    .await;
    let api = env.start_api().await;
    let worker = env.start_worker(&["hook"]).await;
    let http = reqwest::Client::new();
    let body = stripe_body("evt_forwarded");
    let signed = sign_with_libraries(&json!([
        {"scheme": "stripe", "secret": STRIPE_OLD, "body": body, "timestamp": now()},
    ]));
    let hooks_url = format!("http://{}/v1/hooks/stripe", api.info);
    let (status, _, _) = post(&http, &hooks_url, &signed[0], &body).await;
    assert_eq!(status, 200);

    let request =
        sluice_tests::eventually("the event at the endpoint", Duration::from_secs(30), || {
            let requests = receiver.requests();
            async move { requests.into_iter().next() }
        })
        .await;
    let header = |name: &str| request.headers[name].to_str().unwrap().to_owned();
    // Signed by sluice with the kind's own secret: the endpoint never needs Stripe's.
    let expected = sluice_tests::webhook_signature(
        "hook-stripe-evt_forwarded",
        &header("webhook-timestamp"),
        &request.body,
    );
    assert_eq!(header("webhook-signature"), expected);
    let job: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(job["job_id"], "hook-stripe-evt_forwarded");
    assert_eq!(job["kind"], "hook");
    let record = &job["record"];
    assert_eq!(record["source"], "stripe");
    assert_eq!(record["event_id"], "evt_forwarded");
    let raw = BASE64.decode(record["body"].as_str().unwrap()).unwrap();
    assert_eq!(raw, body.as_bytes());
    assert_eq!(
        record["headers"]["stripe-signature"],
        signed[0]["Stripe-Signature"]
    );
    worker.stop().await;
    api.stop().await;
}
