//! Metrics a real Prometheus can use: every role's exposition parses (promtool), follows the
//! naming rules, is scraped by a real Prometheus, and tells the queue's story (lag, pending,
//! dead letters) as it happens. And one job's log lines share its trace id across roles.

use std::{
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use sluice_core::{retry::Delay, status::Status};
use sluice_tests::{eventually, get_json, receiver::Receiver, TestEnv};

/// Label names allowed on sluice metrics: small fixed sets, never ids or error text.
const LABELS: &[&str] = &[
    "kind",
    "outcome",
    "route",
    "status",
    "reason",
    "tier",
    "error_class",
    "mode",
    "group",
    "topic",
    "partition",
    "role",
    "version",
    "event",
    "action",
    "broker",
    "le",
    "lane",
    "rung",
    "to",
    "schedule",
];

fn check_naming(role: &str, text: &str) {
    let mut types = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            types.insert(name.to_owned(), kind.to_owned());
        }
    }
    assert!(!types.is_empty(), "{role} exposes metrics");
    for (name, kind) in &types {
        assert!(
            name.starts_with("sluice_") || name.starts_with("process_"),
            "{role}: {name} lacks the sluice_ prefix"
        );
        match kind.as_str() {
            "counter" => assert!(
                name.ends_with("_total"),
                "{role}: counter {name} must end in _total"
            ),
            "histogram" => assert!(
                name.ends_with("_seconds"),
                "{role}: histogram {name} must be in _seconds"
            ),
            _ => assert!(
                !name.ends_with("_total"),
                "{role}: {name} ends in _total but is a {kind}"
            ),
        }
        if name.contains("duration") || name.contains("latency") || name.contains("lateness") {
            assert!(
                name.ends_with("_seconds"),
                "{role}: {name} is a duration in seconds"
            );
        }
    }
    for line in text
        .lines()
        .filter(|l| l.starts_with("sluice_") && l.contains('{'))
    {
        let labels = &line[line.find('{').unwrap() + 1..line.rfind('}').unwrap()];
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let label = pair.split('=').next().unwrap().trim();
            assert!(LABELS.contains(&label), "{role}: label `{label}` in {line}");
        }
    }
}

fn promtool_parses(role: &str, text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (make test runs deploy/check-monitoring.sh first)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // promtool lints too; a parse error or a naming lint on our metrics fails the test. The
    // process collector's metrics are the Prometheus client's own and are left out.
    let ours: Vec<&str> = complaints
        .lines()
        .filter(|l| l.contains("sluice_") || l.contains("error"))
        .collect();
    assert!(ours.is_empty(), "{role}: promtool says:\n{complaints}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The series a PromQL query returns; none while Prometheus is still starting.
async fn prometheus_query(http: &reqwest::Client, base: &str, query: &str) -> Vec<Value> {
    let Ok(response) = http
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
    else {
        return Vec::new();
    };
    let body: Value = response.json().await.unwrap_or_default();
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_prometheus_scrapes_every_role_and_sees_jobs_lag_and_dead_letters() {
    let env = TestEnv::with_config(|c| {
        c.api.queue_stats_interval = Duration::from_secs(1);
        c.retry.max_attempts = 1;
        c.kafka
            .properties
            .insert("statistics.interval.ms".into(), "1000".into());
    })
    .await;
    let receiver = Receiver::start(vec![410]).await;
    let api = env.start_api().await;
    let worker = env.start_worker(&["webhook", "noop"]).await;
    let fanout = env.start_fanout().await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    for body in [r#"{"payload":"one"}"#, r#"{"payload":"two"}"#] {
        assert_eq!(
            http.post(format!("{base}/v1/jobs/noop"))
                .body(body)
                .send()
                .await
                .unwrap()
                .status(),
            202
        );
    }
    let hook = format!(
        r#"{{"url":"{}","event_type":"gone","payload":"{{}}"}}"#,
        receiver.url()
    );
    let dead = http
        .post(format!("{base}/v1/jobs/webhook"))
        .body(hook)
        .send()
        .await
        .unwrap();
    let dead_id = dead.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let store = env.status_store().await;
    env.wait_for_status(
        &store,
        &dead_id,
        Status::DeadLettered,
        Duration::from_secs(30),
    )
    .await;

    let targets = [
        ("sluice-api", api.info),
        ("sluice-worker", worker.info),
        ("sluice-fanout", fanout.info),
    ];
    for (role, addr) in targets {
        let text = sluice_tests::get_text(&http, &format!("http://{addr}/metrics")).await;
        check_naming(role, &text);
        promtool_parses(role, &text);
    }

    let dir = std::env::temp_dir().join(format!("sluice-prometheus-{}", env.id));
    std::fs::create_dir_all(&dir).unwrap();
    let scrape: String = targets
        .iter()
        .map(|(job, addr)| {
            format!("  - job_name: {job}\n    static_configs:\n      - targets: ['{addr}']\n")
        })
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{scrape}"
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let mut prometheus = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus is installed (make test runs deploy/check-monitoring.sh first)");
    let prom = format!("http://127.0.0.1:{port}");
    let result = std::panic::AssertUnwindSafe(async {
        for (query, what) in [
            (r#"up{job=~"sluice-.*"} == 1"#.to_owned(), "every role up"),
            (
                r#"sluice_jobs_finished_total{kind="noop",outcome="success"} >= 2"#.to_owned(),
                "job counters",
            ),
            (
                r#"sluice_jobs_published_total{kind="noop"} >= 2"#.to_owned(),
                "published counter",
            ),
            (
                format!(
                    r#"sluice_consumer_lag_records{{group="{}"}}"#,
                    env.topics().worker_group("noop")
                ),
                "a lag series",
            ),
            (
                r#"sluice_dlq_pending_jobs{kind="webhook"} == 1"#.to_owned(),
                "the DLQ depth",
            ),
            (
                r#"sluice_dead_letters_total{kind="webhook",error_class="fatal"} == 1"#.to_owned(),
                "dead letters",
            ),
            (
                r#"sluice_kafka_broker_rtt_seconds > 0"#.to_owned(),
                "librdkafka statistics",
            ),
        ] {
            let needed = if what == "every role up" { 3 } else { 1 };
            eventually(what, Duration::from_secs(40), || async {
                (prometheus_query(&http, &prom, &query).await.len() >= needed).then_some(())
            })
            .await;
        }
    });
    let outcome = futures::FutureExt::catch_unwind(result).await;
    prometheus.kill().unwrap();
    prometheus.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    fanout.stop().await;
    worker.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pending_and_lag_rise_while_workers_are_stopped_and_fall_when_they_return() {
    let env = TestEnv::with_config(|c| c.api.queue_stats_interval = Duration::from_secs(1)).await;
    // A worker runs once, so the group exists and has committed offsets.
    let worker = env.start_worker(&["noop"]).await;
    let first = env.publish_jobs("noop", ["{}".to_owned()]).await;
    let store = env.status_store().await;
    env.wait_for_status(
        &store,
        &first[0],
        Status::Succeeded,
        Duration::from_secs(30),
    )
    .await;
    worker.stop().await;

    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let stats_url = format!("http://{}/v1/queue/stats", api.info);
    let ids = env
        .publish_jobs("noop", (0..50).map(|i| format!(r#"{{"payload":"{i}"}}"#)))
        .await;
    let stats = eventually("workers gone", Duration::from_secs(30), || async {
        let stats = get_json(&http, &stats_url).await;
        (stats["kinds"]["noop"]["workers"] == 0).then_some(stats)
    })
    .await;
    assert_eq!(stats["kinds"]["noop"]["pending"], 50);
    assert_eq!(stats["pending"], 50);
    let lag = &stats["topics"][env.topics().jobs("noop")];
    assert_eq!(lag["lag"], 50);
    assert!(
        lag["lag_seconds"].as_f64().unwrap() > 0.0,
        "the oldest pending job has an age"
    );
    let metrics_url = format!("http://{}/metrics", api.info);
    let pending_metric_is = |wanted: f64| {
        let (http, url) = (http.clone(), metrics_url.clone());
        async move {
            let text = http.get(&url).send().await.ok()?.text().await.ok()?;
            let value = text
                .lines()
                .find(|l| l.starts_with(r#"sluice_queue_pending_jobs{kind="noop"}"#))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())?;
            (value == wanted).then_some(())
        }
    };
    eventually("the pending metric at 50", Duration::from_secs(10), || {
        pending_metric_is(50.0)
    })
    .await;

    let worker = env.start_worker(&["noop"]).await;
    eventually("every job done", Duration::from_secs(30), || async {
        (env.count_with_status(&store, &ids, Status::Succeeded).await == 50).then_some(())
    })
    .await;
    let drained = eventually("pending back to 0", Duration::from_secs(30), || async {
        let stats = get_json(&http, &stats_url).await;
        (stats["kinds"]["noop"]["pending"] == 0).then_some(stats)
    })
    .await;
    assert_eq!(drained["kinds"]["noop"]["workers"], 1);
    assert_eq!(
        drained["topics"][env.topics().jobs("noop")]["lag_seconds"],
        0.0
    );
    eventually("the pending metric at 0", Duration::from_secs(10), || {
        pending_metric_is(0.0)
    })
    .await;
    worker.stop().await;
    api.stop().await;
}

/// One job's log lines, across the api and the worker and through a retry, share the trace id
/// the caller started (W3C `traceparent`), which also travels in the Kafka headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_jobs_log_lines_share_its_trace_id_across_roles_and_retries() {
    let env = TestEnv::with_config(|c| {
        c.retry.tiers = vec![Delay(Duration::from_secs(1))];
        c.retry.jitter = false;
    })
    .await;
    let port = free_port();
    let all = Command::new(sluice_tests::sluice_binary())
        .arg("all")
        .envs(env.env_vars())
        .env("SLUICE__API__LISTEN", format!("127.0.0.1:{port}"))
        .env("SLUICE__LOG__FORMAT", "json")
        .env("RUST_LOG", "warn,sluice_api=debug,sluice_worker=debug")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http = sluice_tests::api_client();
    let base = format!("http://127.0.0.1:{port}");
    eventually("the api up", Duration::from_secs(30), || async {
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = http
        .post(format!("{base}/v1/jobs/noop"))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .body(r#"{"fail_attempts":1}"#)
        .send()
        .await
        .unwrap();
    let returned = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        returned.contains(trace),
        "the job continues the caller's trace: {returned}"
    );
    let job_id = response.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let store = env.status_store().await;
    let status = env
        .wait_for_status(&store, &job_id, Status::Succeeded, Duration::from_secs(30))
        .await;
    assert_eq!(status.attempts, 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    Command::new("kill")
        .args(["-TERM", &all.id().to_string()])
        .status()
        .unwrap();
    let output = tokio::task::spawn_blocking(move || all.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let logs = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l.to_string().contains(&job_id))
        .collect();
    let with_trace = |target: &str, message: &str| {
        lines
            .iter()
            .filter(|l| {
                l["target"].as_str().is_some_and(|t| t.starts_with(target))
                    && l["message"] == message
            })
            .filter(|l| l.to_string().contains(trace))
            .count()
    };
    assert_eq!(
        with_trace("sluice_api", "job accepted"),
        1,
        "api line:\n{logs}"
    );
    assert_eq!(
        with_trace("sluice_worker", "job started"),
        2,
        "both attempts:\n{logs}"
    );
    assert_eq!(with_trace("sluice_worker", "job succeeded"), 1);
}
