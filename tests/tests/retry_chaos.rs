//! SIGKILL a worker, twice, during a 2000-job run in which a third of the jobs fail once: every
//! job still ends `succeeded` (or `dead_lettered`), none is missing. A kill can land between
//! producing a retry record and storing the failed record's offset; the job then runs again,
//! which at-least-once allows, but it is never lost.

use std::time::Duration;

use sluice_core::{retry::Delay, status::Status};
use sluice_tests::{eventually, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_workers_during_a_run_with_retries_loses_no_job() {
    let env = TestEnv::with_config(|c| {
        c.retry.tiers = vec![Delay(Duration::from_secs(1))];
    })
    .await;
    let bodies = (0..2000).map(|i| {
        let fail = i64::from(i % 3 == 0);
        format!(r#"{{"sleep_ms":{},"fail_attempts":{fail}}}"#, 5 + i % 20)
    });
    let ids = env.publish_jobs("noop", bodies).await;
    let store = env.status_store().await;
    let settled = || async {
        let done = env.count_with_status(&store, &ids, Status::Succeeded).await;
        done + env
            .count_with_status(&store, &ids, Status::DeadLettered)
            .await
    };

    let worker_args = ["worker", "--kinds", "noop"];
    for kill_after in [400, 1200] {
        let mut worker = env.spawn_sluice(&worker_args);
        eventually(
            "progress before the kill",
            Duration::from_secs(90),
            || async { (settled().await >= kill_after).then_some(()) },
        )
        .await;
        worker.kill().expect("SIGKILL the worker");
        worker.wait().unwrap();
    }
    let mut last = env.spawn_sluice(&worker_args);
    eventually("every job to settle", Duration::from_secs(180), || async {
        (settled().await == ids.len()).then_some(())
    })
    .await;
    last.kill().unwrap();
    last.wait().unwrap();
    let dead = env
        .count_with_status(&store, &ids, Status::DeadLettered)
        .await;
    assert_eq!(dead, 0, "a job that fails once succeeds on its retry");
}
