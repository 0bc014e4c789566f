//! Dead letters: inspect them with `sluice dlq list/show`, replay them once (and only once) after
//! the cause is fixed, purge them; the same over HTTP.

use std::{process::Command, time::Duration};

use rdkafka::producer::FutureRecord;
use serde_json::{json, Value};
use sluice_core::{retry::Delay, status::Status};
use sluice_tests::{get_json, post_json, receiver::Receiver, sluice_binary, TestEnv};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_letter_is_listed_shown_replayed_once_and_succeeds() {
    let env = TestEnv::with_config(|c| {
        c.retry.tiers = vec![Delay(Duration::from_secs(1))];
        c.retry.max_attempts = 3;
        c.retry.jitter = false;
    })
    .await;
    // Three failures exhaust the attempts; after that the receiver has "recovered".
    let receiver = Receiver::start(vec![500, 500, 500]).await;
    let worker = env.start_worker(&["webhook"]).await;
    let job = format!(
        r#"{{"url":"{}","event_type":"order.shipped","payload":"{{\"order\":9}}"}}"#,
        receiver.url()
    );
    let ids = env.publish_jobs("webhook", [job]).await;
    let store = env.status_store().await;
    env.wait_for_status(
        &store,
        &ids[0],
        Status::DeadLettered,
        Duration::from_secs(30),
    )
    .await;

    let (ok, list) = sluice(&env, &["dlq", "list", "webhook"]);
    assert!(ok, "{list}");
    let row = list
        .lines()
        .find(|l| l.contains(&ids[0]))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(row.starts_with("0 "), "offset first: {row}");
    assert!(
        row.contains(" 3 ") && row.contains("retryable") && row.contains("receiver answered 500"),
        "{row}"
    );

    let (ok, show) = sluice(&env, &["dlq", "show", "webhook", "0"]);
    assert!(ok, "{show}");
    for expected in [
        format!("sluice-job-id: {}", ids[0]),
        "sluice-attempt: 3".to_owned(),
        "sluice-error-class: retryable".to_owned(),
        "sluice-dead-at: ".to_owned(),
        r#""event_type": "order.shipped""#.to_owned(),
        receiver.url(),
    ] {
        assert!(show.contains(&expected), "{expected:?} not in:\n{show}");
    }

    let (ok, replay) = sluice(&env, &["dlq", "replay", "webhook", "--job-id", &ids[0]]);
    assert!(
        ok && replay.contains("replayed 1 dead letter(s)"),
        "{replay}"
    );
    let status = env
        .wait_for_status(&store, &ids[0], Status::Succeeded, Duration::from_secs(30))
        .await;
    assert_eq!(status.attempts, 1, "the attempt count starts over");
    assert_eq!(receiver.requests().len(), 4);

    let (ok, again) = sluice(&env, &["dlq", "replay", "webhook", "--all"]);
    assert!(ok && again.contains("replayed 0 dead letter(s)"), "{again}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        receiver.requests().len(),
        4,
        "a second replay sends nothing"
    );
    assert_eq!(
        env.record_count(&env.topics().jobs("webhook")),
        2,
        "the job and its one replay"
    );

    let (_, pending) = sluice(&env, &["dlq", "list", "webhook"]);
    assert!(pending.contains("0 dead letter(s)"), "{pending}");
    let (_, everything) = sluice(&env, &["dlq", "list", "webhook", "--all"]);
    assert!(everything.contains("replayed"), "{everything}");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_over_http_and_purge() {
    let env = TestEnv::new().await;
    let producer = env.producer();
    let topic = env.topics().jobs("noop");
    for garbage in [&b"garbage one"[..], &b"garbage two"[..]] {
        producer
            .send(
                FutureRecord::<(), _>::to(&topic).payload(garbage),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let worker = env.start_worker(&["noop"]).await;
    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}/v1/dlq", api.info);

    let listed = sluice_tests::eventually("two dead letters", Duration::from_secs(30), || async {
        let body: Value = http
            .get(format!("{base}/noop"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (body["dead_letters"].as_array()?.len() == 2).then_some(body)
    })
    .await;
    let first = &listed["dead_letters"][0];
    assert_eq!(first["offset"], "0");
    assert_eq!(first["error_class"], "decode");
    assert_eq!(first["state"], "pending");

    let filtered: Value = get_json(&http, &format!("{base}/noop?error_class=fatal")).await;
    assert_eq!(filtered["dead_letters"].as_array().unwrap().len(), 0);

    let dry: Value = post_json(
        &http,
        &format!("{base}/noop/replay"),
        json!({"offset": "1", "dry_run": true}),
    )
    .await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["replayed"].as_array().unwrap().len(), 1);
    assert_eq!(env.record_count(&topic), 2, "a dry run sends nothing");

    let ambiguous = http
        .post(format!("{base}/noop/replay"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(ambiguous.status(), 400);
    let unknown = http.get(format!("{base}/fax")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);

    let (ok, shown) = sluice(&env, &["dlq", "show", "noop", "0"]);
    assert!(ok, "{shown}");
    assert!(shown.contains("payload does not decode"), "{shown}");
    assert!(
        shown.contains("67 61 72 62 61 67 65"),
        "raw bytes in hex: {shown}"
    );

    let (ok, purged) = sluice(&env, &["dlq", "purge", "noop"]);
    assert!(ok && purged.contains("purged 2 dead letter(s)"), "{purged}");
    let after: Value = get_json(&http, &format!("{base}/noop")).await;
    assert_eq!(
        after["dead_letters"].as_array().unwrap().len(),
        0,
        "purged ones are not pending"
    );
    let replay_purged: Value =
        post_json(&http, &format!("{base}/noop/replay"), json!({"all": true})).await;
    assert_eq!(replay_purged["replayed"].as_array().unwrap().len(), 0);
    api.stop().await;
    worker.stop().await;
}
