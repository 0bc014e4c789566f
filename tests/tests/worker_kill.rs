//! SIGKILL a worker process while 1000 jobs are in flight: after a restart, every job has been
//! processed at least once.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice_core::{headers, jobs, status::Status};
use sluice_tests::{eventually, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_with_1000_jobs_in_flight_loses_none_after_restart() {
    let env = TestEnv::new().await;
    let producer: FutureProducer =
        sluice_core::kafka::producer_config(&env.config.kafka, Duration::from_secs(10))
            .create()
            .unwrap();
    let topic = env.topics().jobs("noop");
    // Durations spread over 0.2–3 s: at the kill, some jobs are done and committed, most are
    // running, so both sides of the committed offset are exercised.
    let sends = (0..1000).map(|i| {
        let job = jobs::prepare(
            "noop",
            format!(r#"{{"sleep_ms":{}}}"#, 200 + (i * 37) % 2800).as_bytes(),
        )
        .unwrap();
        let (producer, topic) = (producer.clone(), topic.clone());
        async move {
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
            job.job_id
        }
    });
    let ids: Vec<String> = futures::future::join_all(sends).await;

    let store = env.status_store().await;
    let count = |wanted: Status| {
        let (store, ids) = (store.clone(), ids.clone());
        async move {
            let mut n = 0;
            for id in &ids {
                if store
                    .get(id)
                    .await
                    .unwrap()
                    .is_some_and(|s| s.status == wanted)
                {
                    n += 1;
                }
            }
            n
        }
    };

    let worker_args = ["worker", "--kinds", "noop"];
    let concurrency = ("SLUICE__WORKER__CONCURRENCY", "1000");
    let mut first = env.spawn_sluice_with(&worker_args, &[concurrency]);
    eventually(
        "hundreds of jobs in flight",
        Duration::from_secs(60),
        || async { (count(Status::Running).await >= 500).then_some(()) },
    )
    .await;
    first.kill().expect("SIGKILL the worker");
    first.wait().unwrap();
    let done_before_restart = count(Status::Succeeded).await;
    assert!(
        done_before_restart < 1000,
        "the kill happened while jobs were in flight"
    );

    let mut second = env.spawn_sluice_with(&worker_args, &[concurrency]);
    eventually(
        "every job to succeed after the restart",
        Duration::from_secs(120),
        || async { (count(Status::Succeeded).await == 1000).then_some(()) },
    )
    .await;
    second.kill().unwrap();
    second.wait().unwrap();
}
