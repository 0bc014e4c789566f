//! The worker's delivery guarantee: offsets, graceful drain, and failures that never block.

use std::time::Duration;

use rdkafka::producer::FutureRecord;
use sluice_core::{headers, status::Status};
use sluice_tests::{eventually, receiver::Receiver, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_n_jobs_from_empty_partitions_the_committed_offsets_add_up_to_n() {
    let env = TestEnv::new().await;
    let ids = env
        .publish_jobs(
            "noop",
            (0..50).map(|i| format!(r#"{{"payload":"count me {i}"}}"#)),
        )
        .await;
    let store = env.status_store().await;
    let worker = env.start_worker(&["noop"]).await;
    eventually("50 jobs to succeed", Duration::from_secs(30), || async {
        (env.count_with_status(&store, &ids, Status::Succeeded).await == 50).then_some(())
    })
    .await;
    worker.stop().await;
    let committed = env.committed_total(
        &env.topics().worker_group("noop"),
        &env.topics().jobs("noop"),
    );
    assert_eq!(committed, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_drains_in_flight_jobs_and_commits_them() {
    let env = TestEnv::new().await;
    let ids = env
        .publish_jobs("noop", (0..20).map(|_| r#"{"sleep_ms":1500}"#.to_owned()))
        .await;
    let store = env.status_store().await;
    let worker = env.start_worker(&["noop"]).await;
    eventually(
        "all 20 jobs to be running",
        Duration::from_secs(30),
        || async {
            (env.count_with_status(&store, &ids, Status::Running).await == 20).then_some(())
        },
    )
    .await;
    worker.stop().await;
    assert_eq!(
        env.count_with_status(&store, &ids, Status::Succeeded).await,
        20,
        "every in-flight job finished"
    );
    let committed = env.committed_total(
        &env.topics().worker_group("noop"),
        &env.topics().jobs("noop"),
    );
    assert_eq!(committed, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn undecodable_bytes_and_rejected_webhooks_are_dead_lettered_and_jobs_behind_them_run() {
    let env = TestEnv::new().await;
    let receiver = Receiver::start(vec![400]).await;
    let producer = env.producer();
    let noop_topic = env.topics().jobs("noop");
    // One partition key, so the good job sits behind the garbage in the same partition.
    for garbage in [&b"\x00\x01 definitely not avro"[..], &b""[..]] {
        producer
            .send(
                FutureRecord::to(&noop_topic).key("same").payload(garbage),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let good = env
        .registry()
        .prepare("noop", br#"{"key":"same"}"#)
        .unwrap();
    producer
        .send(
            FutureRecord::to(&noop_topic)
                .key("same")
                .payload(&good.value)
                .headers(headers::new_job(&good.job_id)),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let hook_job = format!(
        r#"{{"url":"{}","event_type":"e","payload":"{{}}"}}"#,
        receiver.url()
    );
    let hook = env.publish_jobs("webhook", [hook_job]).await;

    let worker = env.start_worker(&["noop", "webhook"]).await;
    let store = env.status_store().await;
    env.wait_for_status(
        &store,
        &good.job_id,
        Status::Succeeded,
        Duration::from_secs(30),
    )
    .await;
    let dead = env
        .wait_for_status(
            &store,
            &hook[0],
            Status::DeadLettered,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(dead.last_error.as_deref(), Some("receiver answered 400"));
    assert_eq!(
        receiver.requests().len(),
        1,
        "a fatal answer is not retried"
    );
    eventually("dead letters in Kafka", Duration::from_secs(10), || async {
        let noop_dlq = env.record_count(&env.topics().dead_letters("noop"));
        let webhook_dlq = env.record_count(&env.topics().dead_letters("webhook"));
        (noop_dlq == 2 && webhook_dlq == 1).then_some(())
    })
    .await;
    worker.stop().await;
    let committed = env.committed_total(&env.topics().worker_group("noop"), &noop_topic);
    assert_eq!(committed, 3, "the consumer moved past the garbage");
}
