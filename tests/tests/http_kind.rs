//! A kind defined at run time, with no rebuild: a schema file in a temporary `schemas.dir`, a
//! `[kinds.greet]` table with `handler = "http"`, and the example consumer of
//! `examples/http-consumer` (plain Python) as its endpoint. Its jobs succeed (with a result),
//! retry (503 + Retry-After) and dead-letter (422), through the api, the CLI and the worker.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{json, Value};
use sluice_core::status::Status;
use sluice_tests::{eventually, free_port, post_json, sluice_binary, TestEnv, WEBHOOK_SECRET};

fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/http-consumer")
}

/// The example consumer on `port`; killed when dropped.
struct Consumer(Child);

impl Consumer {
    async fn start(port: u16) -> Self {
        let child = Command::new("python3")
            .arg(example_dir().join("consumer.py"))
            .env("SLUICE_SECRET", WEBHOOK_SECRET)
            .env("PORT", port.to_string())
            .env("BIND_LOCAL", "1")
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 runs the example consumer");
        eventually(
            "the consumer listening",
            Duration::from_secs(10),
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
        Self(child)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kind_defined_at_run_time_succeeds_retries_and_dead_letters_through_its_container() {
    let port = free_port();
    let consumer = Consumer::start(port).await;
    // A schemas.dir of its own, holding only the user's kind.
    let dir = std::env::temp_dir().join(format!("sluice-http-kind-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("greet")).unwrap();
    std::fs::copy(
        example_dir().join("schemas/greet/v1.avsc"),
        dir.join("greet/v1.avsc"),
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{port}/jobs");
    let schemas_dir = dir.clone();
    let env = TestEnv::with_config(move |c| {
        c.schemas.dir = Some(schemas_dir);
        let greet = c.kinds.entry("greet".into()).or_default();
        greet.insert("handler".into(), "http".into());
        greet.insert("url".into(), url.into());
        greet.insert("secret".into(), WEBHOOK_SECRET.into());
        // The example consumer runs on loopback, which the outgoing guard refuses by default.
        greet.insert("allow_private".into(), true.into());
        greet.insert("tiers".into(), json!(["1s"]));
        greet.insert("max_attempts".into(), 3.into());
        greet.insert("jitter".into(), false.into());
    })
    .await;
    assert!(
        env.registry().get("greet").is_some(),
        "the kind is in the registry"
    );
    let api = env.start_api().await;
    let worker = env.start_worker(&["greet"]).await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    let submit = |name: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let body = post_json(
                &http,
                &format!("{base}/v1/jobs/greet"),
                json!({"name": name}),
            )
            .await;
            body["job_id"]
                .as_str()
                .expect("202 with a job id")
                .to_owned()
        }
    };
    let (ada, busy, bad) = (
        submit("ada").await,
        submit("busy").await,
        submit("bad").await,
    );
    let store = env.status_store().await;
    let timeout = Duration::from_secs(30);

    let done = env
        .wait_for_status(&store, &ada, Status::Succeeded, timeout)
        .await;
    assert_eq!(done.attempts, 1);
    let shown: Value = http
        .get(format!("{base}/v1/jobs/{ada}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        shown["result"],
        json!({"greeting": "hello ada", "attempt": 1})
    );

    let retried = env
        .wait_for_status(&store, &busy, Status::Succeeded, timeout)
        .await;
    assert_eq!(
        retried.attempts, 2,
        "503 on the first attempt, success on the second"
    );

    let dead = env
        .wait_for_status(&store, &bad, Status::DeadLettered, timeout)
        .await;
    assert_eq!(dead.attempts, 1, "a 4xx is fatal: no retries");
    let error = dead.last_error.unwrap_or_default();
    assert!(
        error.contains("422") && error.contains("nobody is called bad"),
        "{error}"
    );
    assert_eq!(env.record_count(&env.topics().dead_letters("greet")), 1);

    // The CLI publishes the user's kind too, from the same configuration.
    let output = Command::new(sluice_binary())
        .args(["publish", "greet", "--json", r#"{"name":"cli"}"#])
        .envs(env.env_vars())
        .env("SLUICE__SCHEMAS__DIR", &dir)
        .env("SLUICE__KINDS__GREET__HANDLER", "http")
        .env(
            "SLUICE__KINDS__GREET__URL",
            format!("http://127.0.0.1:{port}/jobs"),
        )
        .env("SLUICE__KINDS__GREET__SECRET", WEBHOOK_SECRET)
        .env("SLUICE__KINDS__GREET__ALLOW_PRIVATE", "true")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let cli = printed["job_id"].as_str().unwrap();
    env.wait_for_status(&store, cli, Status::Succeeded, timeout)
        .await;

    // The consumer checks that calls come from sluice.
    let forged = http
        .post(format!("http://127.0.0.1:{port}/jobs"))
        .header("webhook-id", "x")
        .header("webhook-timestamp", "1")
        .header("webhook-signature", "v1,AAAA")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);

    worker.stop().await;
    api.stop().await;
    drop(consumer);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kind_whose_endpoint_hangs_never_holds_up_another_kind() {
    // An endpoint that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jobs", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let dir = std::env::temp_dir().join(format!("sluice-hang-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("greet")).unwrap();
    std::fs::copy(
        example_dir().join("schemas/greet/v1.avsc"),
        dir.join("greet/v1.avsc"),
    )
    .unwrap();
    let schemas_dir = dir.clone();
    let env = TestEnv::with_config(move |c| {
        c.schemas.dir = Some(schemas_dir);
        c.worker.concurrency = 4;
        let greet = c.kinds.entry("greet".into()).or_default();
        greet.insert("handler".into(), "http".into());
        greet.insert("url".into(), url.into());
        greet.insert("secret".into(), WEBHOOK_SECRET.into());
        // The example consumer runs on loopback, which the outgoing guard refuses by default.
        greet.insert("allow_private".into(), true.into());
        greet.insert("request_timeout".into(), "60s".into());
    })
    .await;
    let worker = env.start_worker(&["greet", "noop"]).await;
    let greets = env
        .publish_jobs("greet", (0..20).map(|i| format!(r#"{{"name":"n{i}"}}"#)))
        .await;
    // The hanging kind has taken all of its slots before the other kind's jobs arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let noops = env
        .publish_jobs("noop", (0..50).map(|_| "{}".to_owned()))
        .await;
    let store = env.status_store().await;
    eventually(
        "every noop job done while greet hangs",
        Duration::from_secs(20),
        || async {
            (env.count_with_status(&store, &noops, Status::Succeeded)
                .await
                == noops.len())
            .then_some(())
        },
    )
    .await;
    assert_eq!(
        env.count_with_status(&store, &greets, Status::Succeeded)
            .await,
        0,
        "the greet endpoint never answered"
    );
    held.abort();
    // Its jobs are redelivered to the next worker (at-least-once): the drain gives up on them.
    worker.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
