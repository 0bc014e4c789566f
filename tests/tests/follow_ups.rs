//! Follow-up jobs: a handler that succeeds may ask for more jobs (the seed's "notify when done").
//! An `http` kind's endpoint answers with the outcome envelope; the follow-up is produced under
//! the id `<parent>.1` before the parent's offset is stored, and runs as a job of its own kind.
//! A follow-up that is not a valid job dead-letters the parent, naming it.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use axum::{http::header::CONTENT_TYPE, routing::post, Json, Router};
use rdkafka::message::Message;
use serde_json::{json, Value};
use sluice_core::{headers, status::Status};
use sluice_tests::{post_json, TestEnv, WEBHOOK_SECRET};

/// Answers each job with a follow-up noop job carrying its name; `"bad"` asks for one that
/// does not fit the noop schema.
async fn endpoint() -> SocketAddr {
    let app = Router::new().route(
        "/jobs",
        post(|Json(call): Json<Value>| async move {
            let name = call["record"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let job = if name == "bad" {
                json!({"sleep_ms": "soon"})
            } else {
                json!({"payload": format!("after {name}")})
            };
            let envelope = json!({
                "result": {"greeted": name},
                "enqueue": [{"kind": "noop", "job": job}],
            });
            (
                [(CONTENT_TYPE, "application/vnd.sluice.outcome+json")],
                envelope.to_string(),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_succeeded_job_enqueues_its_follow_up_under_a_derived_id() {
    let addr = endpoint().await;
    let dir = std::env::temp_dir().join(format!("sluice-follow-ups-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("greet")).unwrap();
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/http-consumer/schemas/greet/v1.avsc"),
        dir.join("greet/v1.avsc"),
    )
    .unwrap();
    let schemas_dir = dir.clone();
    let env = TestEnv::with_config(move |c| {
        c.schemas.dir = Some(schemas_dir);
        let greet = c.kinds.entry("greet".into()).or_default();
        greet.insert("handler".into(), "http".into());
        greet.insert("url".into(), format!("http://{addr}/jobs").into());
        greet.insert("secret".into(), WEBHOOK_SECRET.into());
        greet.insert("allow_private".into(), true.into());
    })
    .await;
    let api = env.start_api().await;
    let worker = env.start_worker(&["greet", "noop"]).await;
    let http = sluice_tests::api_client();
    let submit = |name: &'static str| {
        let (http, url) = (http.clone(), format!("http://{}/v1/jobs/greet", api.info));
        async move {
            let body = post_json(&http, &url, json!({"name": name})).await;
            body["job_id"].as_str().unwrap().to_owned()
        }
    };
    let (ada, bad) = (submit("ada").await, submit("bad").await);
    let store = env.status_store().await;
    let timeout = Duration::from_secs(30);

    let parent = env
        .wait_for_status(&store, &ada, Status::Succeeded, timeout)
        .await;
    assert_eq!(parent.result, Some(json!({"greeted": "ada"})));
    let child_id = format!("{ada}.1");
    let child = env
        .wait_for_status(&store, &child_id, Status::Succeeded, timeout)
        .await;
    assert_eq!(child.kind, "noop");
    let noop_records = env.read_all(&env.topics().jobs("noop"));
    let ids: Vec<String> = noop_records
        .iter()
        .filter_map(|m| {
            m.headers()
                .and_then(|h| headers::get(h, headers::JOB_ID))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(ids, [child_id], "one follow-up, under the derived id");

    let dead = env
        .wait_for_status(&store, &bad, Status::DeadLettered, timeout)
        .await;
    let error = dead.last_error.unwrap_or_default();
    assert!(
        error.contains("follow-up 1 (noop)") && error.contains("sleep_ms"),
        "{error}"
    );
    assert_eq!(
        env.record_count(&env.topics().jobs("noop")),
        1,
        "an invalid follow-up is never produced"
    );
    worker.stop().await;
    api.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
