//! A custom worker binary with a typed Rust kind (`examples/typed-worker`), run as its own
//! process against the real broker: records arrive as the handler's struct, results are stored,
//! retries and dead letters work as for any kind, and a record that does not fit the struct is a
//! `decode` dead letter with its bytes intact.

use std::{path::PathBuf, process::Child, time::Duration};

use rdkafka::{message::Message, producer::FutureRecord};
use serde_json::json;
use sluice_core::{headers, status::Status};
use sluice_tests::{sluice_binary, TestEnv};

fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/typed-worker")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_typed_rust_kind_in_its_own_worker_binary_has_every_guarantee() {
    let env = TestEnv::with_config(|c| {
        c.schemas.dir = Some(example_dir().join("schemas"));
        let kind = c.kinds.entry("welcome_email".into()).or_default();
        kind.insert("handler".into(), "custom".into());
        kind.insert("max_attempts".into(), 3.into());
        kind.insert("tiers".into(), json!(["1s"]));
        kind.insert("jitter".into(), false.into());
    })
    .await;
    let binary = sluice_binary().with_file_name("typed-worker");
    let schemas = example_dir().join("schemas");
    let worker = Killed(
        std::process::Command::new(&binary)
            .envs(env.env_vars())
            .env("SLUICE__SCHEMAS__DIR", &schemas)
            .env("SLUICE__KINDS__WELCOME_EMAIL__HANDLER", "custom")
            .env("SLUICE__KINDS__WELCOME_EMAIL__MAX_ATTEMPTS", "3")
            .env("SLUICE__KINDS__WELCOME_EMAIL__TIERS", "1s")
            .env("SLUICE__KINDS__WELCOME_EMAIL__JITTER", "false")
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts (make test builds it): {e}", binary.display())),
    );

    let registry = env.registry();
    let producer = env.producer();
    let topic = env.topics().jobs("welcome_email");
    let mut ids = Vec::new();
    let mut nameless_bytes = Vec::new();
    for body in [
        r#"{"to": "ada@example.com", "name": "Ada"}"#,
        r#"{"to": "bob@flaky.example", "name": "Bob"}"#,
        r#"{"to": "not-an-address", "name": "Cy"}"#,
        r#"{"to": "dee@example.com"}"#,
    ] {
        let job = registry.prepare("welcome_email", body.as_bytes()).unwrap();
        if !body.contains("name") {
            nameless_bytes = job.value.clone();
        }
        producer
            .send(
                FutureRecord::to(&topic)
                    .key(&job.key)
                    .payload(&job.value)
                    .headers(headers::new_job(&job.job_id)),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        ids.push(job.job_id);
    }
    let store = env.status_store().await;
    let wait = Duration::from_secs(60);

    let ada = env
        .wait_for_status(&store, &ids[0], Status::Succeeded, wait)
        .await;
    assert_eq!(
        ada.result,
        Some(json!({"to": "ada@example.com", "subject": "Welcome, Ada!"}))
    );
    let bob = env
        .wait_for_status(&store, &ids[1], Status::Succeeded, wait)
        .await;
    assert_eq!(bob.attempts, 2, "retried once after a retryable failure");
    let cy = env
        .wait_for_status(&store, &ids[2], Status::DeadLettered, wait)
        .await;
    assert_eq!(cy.attempts, 1, "a fatal failure is not retried");
    let dee = env
        .wait_for_status(&store, &ids[3], Status::DeadLettered, wait)
        .await;
    assert_eq!(dee.attempts, 1);
    assert!(
        dee.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("WelcomeEmail"),
        "{dee:?}"
    );

    let dead = env.read_all(&env.topics().dead_letters("welcome_email"));
    let decode = dead
        .iter()
        .find(|m| headers::get(m.headers().unwrap(), headers::ERROR_CLASS) == Some("decode"))
        .expect("a decode dead letter");
    assert_eq!(
        decode.payload().unwrap(),
        nameless_bytes.as_slice(),
        "bytes intact"
    );
    drop(worker);
}
