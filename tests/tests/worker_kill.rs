//! SIGKILL a worker process while 1000 jobs are in flight: after a restart, every job has been
//! processed at least once.

use std::time::Duration;

use sluice_core::status::Status;
use sluice_tests::{eventually, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_with_1000_jobs_in_flight_loses_none_after_restart() {
    let env = TestEnv::new().await;
    // Durations spread over 0.2–3 s: at the kill, some jobs are done and committed, most are
    // running, so both sides of the committed offset are exercised.
    let bodies = (0..1000).map(|i| format!(r#"{{"sleep_ms":{}}}"#, 200 + (i * 37) % 2800));
    let ids = env.publish_jobs("noop", bodies).await;
    let store = env.status_store().await;
    let count = |wanted: Status| {
        let (env, store, ids) = (&env, store.clone(), ids.clone());
        async move { env.count_with_status(&store, &ids, wanted).await }
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

/// SIGTERM (what `docker stop` and Kubernetes send) drains in-flight jobs and commits before the
/// process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_in_flight_jobs_commits_and_exits_cleanly() {
    let env = TestEnv::new().await;
    let ids = env
        .publish_jobs("noop", (0..30).map(|_| r#"{"sleep_ms":2000}"#.to_owned()))
        .await;
    let store = env.status_store().await;
    let mut worker = env.spawn_sluice(&["worker", "--kinds", "noop"]);
    eventually("30 jobs in flight", Duration::from_secs(60), || async {
        (env.count_with_status(&store, &ids, Status::Running).await == 30).then_some(())
    })
    .await;
    let term = std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exit = tokio::task::spawn_blocking(move || worker.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "worker exited with {exit}");
    assert_eq!(
        env.count_with_status(&store, &ids, Status::Succeeded).await,
        30
    );
    let topics = env.topics();
    assert_eq!(
        env.committed_total(&topics.worker_group("noop"), &topics.jobs("noop")),
        30
    );
}
