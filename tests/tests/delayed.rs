//! Delayed jobs on the real broker and Redis: `"delay"`/`"run_at"` put a job on the delay ladder,
//! its status is `scheduled` with its due time, the ladder mover walks it down to its lane and the
//! worker never starts it early; a scheduled job can be cancelled; a mover restarted mid-wait
//! loses nothing, nor do movers joining and leaving mid-run; the mover holds a bounded number of
//! records however many jobs wait.

use std::{process::Command, time::Duration};

use rdkafka::Message;
use serde_json::{json, Value};
use sluice_tests::{eventually, get_json, post_json, sluice_binary, TestEnv};

async fn status_of(http: &reqwest::Client, base: &str, job_id: &str) -> Value {
    get_json(http, &format!("{base}/v1/jobs/{job_id}")).await
}

async fn succeeded(http: &reqwest::Client, base: &str, job_id: &str) -> Value {
    eventually(
        &format!("job {job_id} to succeed"),
        Duration::from_secs(60),
        || async {
            let status = status_of(http, base, job_id).await;
            (status["status"] == "succeeded").then_some(status)
        },
    )
    .await
}

/// Waits (60 s at most) until `lane` holds `jobs` records, calling `each_turn` every 20 ms.
async fn until_all_reach(env: &TestEnv, lane: &str, jobs: usize, mut each_turn: impl FnMut()) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while env.record_count(lane) < jobs as i64 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {jobs} delayed jobs reached their lane",
            env.record_count(lane)
        );
        each_turn();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const SLEEP_MS: i64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delayed_jobs_are_scheduled_walk_the_ladder_and_never_start_early() {
    let env = TestEnv::new().await;
    let api = env.start_api().await;
    let worker = env.start_worker(&["noop"]).await;
    let ladder = env.start_delay_ladder();
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    let jobs = format!("{base}/v1/jobs/noop");

    // 2 s: the 1 s rung twice; 7 s: 5 s then 1 s twice; run_at 3.5 s away as RFC 3339.
    let run_at = chrono::Utc::now() + chrono::Duration::milliseconds(3500);
    let bodies = [
        json!({"sleep_ms": SLEEP_MS, "delay": "2s"}),
        json!({"sleep_ms": SLEEP_MS, "delay": 7}),
        json!({"sleep_ms": SLEEP_MS, "run_at": run_at.to_rfc3339(), "priority": "high"}),
    ];
    let mut accepted = Vec::new();
    for body in &bodies {
        let answer = post_json(&http, &jobs, body.clone()).await;
        assert_eq!(answer["status"], "scheduled", "{answer}");
        accepted.push((
            answer["job_id"].as_str().unwrap().to_owned(),
            answer["run_at"].as_i64().expect("run_at in the answer"),
        ));
    }
    let (first_id, first_due) = &accepted[0];
    let shown = status_of(&http, &base, first_id).await;
    assert_eq!(shown["status"], "scheduled", "{shown}");
    assert_eq!(shown["run_at"].as_i64(), Some(*first_due));
    assert!(
        (accepted[2].1 - run_at.timestamp_millis()).abs() <= 1,
        "run_at kept as given"
    );

    for (job_id, due) in &accepted {
        let done = succeeded(&http, &base, job_id).await;
        let finished = done["updated_at"].as_i64().unwrap();
        // Finishing takes the handler's sleep after its start: a start before run_at shows.
        assert!(
            finished >= due + SLEEP_MS,
            "job {job_id} finished at {finished}, due at {due}: started early"
        );
        assert!(
            finished - due - SLEEP_MS < 3000,
            "job {job_id} started {} ms late",
            finished - due - SLEEP_MS
        );
    }
    assert_eq!(
        env.record_count(
            &env.topics()
                .lane("noop", sluice_core::lanes::Priority::High)
        ),
        1,
        "the high job reached the high lane"
    );
    ladder.stop().await;
    worker.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scheduled_job_can_be_cancelled_and_a_restarted_mover_loses_nothing() {
    let env = TestEnv::new().await;
    let api = env.start_api().await;
    let worker = env.start_worker(&["noop"]).await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    let jobs = format!("{base}/v1/jobs/noop");

    let ladder = env.start_delay_ladder();
    let kept = post_json(&http, &jobs, json!({"delay": "6s"})).await;
    let dropped = post_json(&http, &jobs, json!({"delay": "3s"})).await;
    let (kept, dropped) = (
        kept["job_id"].as_str().unwrap().to_owned(),
        dropped["job_id"].as_str().unwrap().to_owned(),
    );
    let cancel = http
        .delete(format!("{base}/v1/jobs/{dropped}"))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);
    // The mover stops while both wait on their rungs and a new one takes over.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ladder.stop().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ladder = env.start_delay_ladder();

    succeeded(&http, &base, &kept).await;
    let lane = env.topics().jobs("noop");
    eventually(
        "the cancelled job to reach its lane",
        Duration::from_secs(20),
        || async { (env.record_count(&lane) >= 2).then_some(()) },
    )
    .await;
    // It reached the worker, which skipped it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        status_of(&http, &base, &dropped).await["status"],
        "cancelled"
    );
    ladder.stop().await;
    worker.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_mover_holds_a_bounded_number_of_records_however_many_jobs_wait() {
    let env = TestEnv::new().await;
    let jobs = 6000;
    env.publish_jobs("noop", (0..jobs).map(|_| r#"{"delay":"6s"}"#.to_owned()))
        .await;
    let ladder = env.start_delay_ladder();
    let metrics = ladder.info.clone();
    let held = move || {
        metrics
            .gather()
            .iter()
            .find(|f| f.name() == "sluice_delayed_jobs_held")
            .map_or(0.0, |f| f.get_metric()[0].get_gauge().get_value())
    };
    let lane = env.topics().jobs("noop");
    let mut most = 0.0f64;
    until_all_reach(&env, &lane, jobs, || most = most.max(held())).await;
    // Three partitions: at most 512 read ahead each, plus one fetch of 64 KiB and librdkafka's
    // short queue. Far fewer than the jobs waiting.
    assert!(most > 0.0, "the gauge moved");
    assert!(
        most <= (jobs / 2) as f64,
        "the mover held {most} of {jobs} records at once"
    );
    ladder.stop().await;
}

/// A second mover joins the group while the first holds hundreds of records per partition, then
/// leaves: two rebalances, each revoking partitions whose records are waiting or in flight. Every
/// job still reaches its lane (at least once), and no partition stays paused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn movers_joining_and_leaving_mid_run_lose_no_delayed_job() {
    let env = TestEnv::new().await;
    let jobs = 3000;
    let ids = env
        .publish_jobs("noop", (0..jobs).map(|_| r#"{"delay":"6s"}"#.to_owned()))
        .await;
    let first = env.start_delay_ladder();
    let lane = env.topics().jobs("noop");
    // The first mover has read ahead and is moving when the second joins.
    eventually(
        "the first mover to start moving",
        Duration::from_secs(30),
        || async { (env.record_count(&lane) > 0).then_some(()) },
    )
    .await;
    let second = env.start_delay_ladder();
    tokio::time::sleep(Duration::from_secs(3)).await;
    second.stop().await;
    until_all_reach(&env, &lane, jobs, || {}).await;
    let reached: std::collections::HashSet<String> = env
        .read_all(&lane)
        .iter()
        .filter_map(|record| record.key())
        .map(|key| String::from_utf8_lossy(key).into_owned())
        .collect();
    let missing = ids.iter().filter(|id| !reached.contains(*id)).count();
    assert_eq!(
        missing, 0,
        "{missing} of {jobs} jobs never reached their lane"
    );
    first.stop().await;
}

#[tokio::test]
async fn bad_delays_are_refused_naming_the_field_and_the_cli_schedules_too() {
    let env = TestEnv::new().await;
    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let jobs = format!("http://{}/v1/jobs/noop", api.info);
    let far = chrono::Utc::now() + chrono::Duration::days(31);
    for (body, field) in [
        (json!({"delay": "0s"}), "delay"),
        (json!({"delay": "31d"}), "delay"),
        (json!({"delay": "soon"}), "delay"),
        (json!({"run_at": far.to_rfc3339()}), "run_at"),
        (json!({"run_at": "tomorrow"}), "run_at"),
        (json!({"run_at": 1, "delay": "5s"}), "run_at"),
        (json!({"delay": "1h", "expires_in": "10m"}), "expires_at"),
    ] {
        let response = http.post(&jobs).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        let message = error["error"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message}");
    }
    // A run_at already past runs now.
    let now = post_json(&http, &jobs, json!({"run_at": 1_000})).await;
    assert_eq!(now["status"], "queued");

    let output = Command::new(sluice_binary())
        .args([
            "publish",
            "noop",
            "--json",
            "{}",
            "--delay",
            "90s",
            "--priority",
            "low",
        ])
        .envs(env.env_vars())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["status"], "scheduled");
    let rung = env.topics().delay_rung(Duration::from_secs(30));
    let records = env.read_all(&rung);
    assert_eq!(records.len(), 1, "90 s starts on the 30 s rung");
    let header = |name: &str| {
        use rdkafka::message::{Headers, Message};
        records[0]
            .headers()
            .and_then(|h| h.iter().find(|x| x.key == name))
            .and_then(|x| x.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(
        header("sluice-target-topic").as_deref(),
        Some(
            env.topics()
                .lane("noop", sluice_core::lanes::Priority::Low)
                .as_str()
        )
    );
    assert_eq!(header("sluice-priority").as_deref(), Some("low"));
    api.stop().await;
}

#[tokio::test]
async fn a_job_for_next_tuesday_at_nine_in_paris_is_scheduled_and_can_be_cancelled() {
    use chrono::{Datelike, TimeZone};
    let env = TestEnv::new().await;
    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);

    let paris = chrono_tz::Europe::Paris;
    let today = chrono::Utc::now().with_timezone(&paris).date_naive();
    let ahead = (7 + chrono::Weekday::Tue.num_days_from_monday()
        - today.weekday().num_days_from_monday())
        % 7;
    let tuesday = today + chrono::Days::new(u64::from(if ahead == 0 { 7 } else { ahead }));
    let at = paris
        .from_local_datetime(&tuesday.and_hms_opt(9, 0, 0).unwrap())
        .single()
        .unwrap();
    let answer = post_json(
        &http,
        &format!("{base}/v1/jobs/noop"),
        json!({"payload": "weekly report", "run_at": at.to_rfc3339()}),
    )
    .await;
    assert_eq!(answer["status"], "scheduled", "{answer}");
    assert_eq!(answer["run_at"].as_i64(), Some(at.timestamp_millis()));
    let job_id = answer["job_id"].as_str().unwrap();
    let shown = status_of(&http, &base, job_id).await;
    assert_eq!(
        (shown["status"].as_str(), shown["run_at"].as_i64()),
        (Some("scheduled"), Some(at.timestamp_millis()))
    );
    // It waits on the longest rung that does not pass its time.
    let remaining =
        Duration::from_millis((at.timestamp_millis() - sluice_core::headers::now_millis()) as u64);
    let rung = sluice_core::delays::next_rung(remaining).unwrap();
    assert_eq!(env.record_count(&env.topics().delay_rung(rung)), 1);

    let cancelled = http
        .delete(format!("{base}/v1/jobs/{job_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    assert_eq!(status_of(&http, &base, job_id).await["status"], "cancelled");
    api.stop().await;
}
