//! The broker stops and starts in the middle of a 5000-job run with retries, and while delayed
//! jobs wait on the delay ladder: the worker and the ladder mover ride it out (their writes wait
//! for the broker) and every job is accounted for, no delayed one early. This test
//! stops the shared broker, so it lives alone in its own test binary.

use std::time::Duration;

use sluice_core::{retry::Delay, status::Status};
use sluice_tests::{env_script, eventually, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_restart_mid_run_loses_no_job() {
    let env = TestEnv::with_config(|c| {
        c.retry.tiers = vec![Delay(Duration::from_secs(1))];
    })
    .await;
    let bodies = (0..5000).map(|i| {
        let fail = i64::from(i % 3 == 0);
        format!(r#"{{"sleep_ms":40,"fail_attempts":{fail}}}"#)
    });
    let ids = env.publish_jobs("noop", bodies).await;
    // Every one of them is due no sooner than 6 s after this.
    let delayed_at = sluice_core::headers::now_millis() + 6000;
    let delayed = env
        .publish_jobs(
            "noop",
            (0..50).map(|i| format!(r#"{{"delay":"{}s"}}"#, 6 + i % 5)),
        )
        .await;
    let ladder = env.start_delay_ladder();
    let store = env.status_store().await;
    let settled = || async {
        let done = env.count_with_status(&store, &ids, Status::Succeeded).await;
        done + env
            .count_with_status(&store, &ids, Status::DeadLettered)
            .await
    };
    let worker = env.start_worker(&["noop"]).await;
    eventually("a fifth of the run", Duration::from_secs(120), || async {
        (settled().await >= 1000).then_some(())
    })
    .await;

    env_script("kafka-stop");
    tokio::time::sleep(Duration::from_secs(3)).await;
    env_script("kafka-start");

    eventually("every job to settle", Duration::from_secs(240), || async {
        (settled().await == ids.len()).then_some(())
    })
    .await;
    eventually(
        "every delayed job to run",
        Duration::from_secs(120),
        || async {
            let done = env
                .count_with_status(&store, &delayed, Status::Succeeded)
                .await;
            (done == delayed.len()).then_some(())
        },
    )
    .await;
    for id in &delayed {
        let status = env.job_status(&store, id).await.unwrap();
        assert!(
            status.updated_at >= delayed_at,
            "delayed job {id} ran before its time"
        );
    }
    ladder.stop().await;
    worker.stop().await;
    let dead = env
        .count_with_status(&store, &ids, Status::DeadLettered)
        .await;
    assert_eq!(dead, 0, "the outage is not the jobs' fault");
}
