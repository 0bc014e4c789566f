//! The operator CLI against the real broker: `publish` (one job, and JSON Lines in bulk) and
//! `topics ensure`.

use std::{io::Write, process::Command};

use rdkafka::Message;
use sluice_tests::{sluice_binary, TestEnv};

fn sluice(env: &TestEnv, args: &[&str]) -> std::process::Output {
    Command::new(sluice_binary())
        .args(args)
        .envs(env.env_vars())
        .output()
        .expect("sluice runs")
}

fn jsonl(lines: impl IntoIterator<Item = String>) -> tempfile_path::TempFile {
    let file = tempfile_path::TempFile::new();
    let mut out = std::fs::File::create(&file.path).unwrap();
    for line in lines {
        writeln!(out, "{line}").unwrap();
    }
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_file_sends_every_line_and_reports_a_summary() {
    let env = TestEnv::new().await;
    let file = jsonl((0..500).map(|i| format!(r#"{{"payload":"job {i}"}}"#)));
    let output = sluice(
        &env,
        &["publish", "noop", "--file", file.path.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("published 500 noop jobs"), "{stdout}");
    assert!(stdout.contains("0 failed"), "{stdout}");
    assert_eq!(env.record_count(&env.topics().jobs("noop")), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_file_with_a_bad_line_names_it_and_exits_non_zero() {
    let env = TestEnv::new().await;
    let lines = vec![
        r#"{"payload":"ok"}"#.to_owned(),
        r#"{"payload":7}"#.to_owned(),
        r#"{"payload":"ok"}"#.to_owned(),
    ];
    let output = sluice(
        &env,
        &[
            "publish",
            "noop",
            "--file",
            jsonl(lines).path.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("line 2: field `payload`: expected a string"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("1 failed (1 invalid)"));
    assert_eq!(
        env.record_count(&env.topics().jobs("noop")),
        2,
        "the good lines were still sent"
    );
}

/// Enough lines for several chunks, encoded on several threads: what arrives is every line, each
/// key's jobs in the order of the file, compressed as asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_file_with_lz4_keeps_every_record_and_the_order_per_key() {
    let env = TestEnv::new().await;
    const LINES: usize = 20_000;
    const KEYS: usize = 7;
    let padding = "p".repeat(200);
    let file = jsonl(
        (0..LINES).map(|i| format!(r#"{{"key":"k{}","payload":"{i:06} {padding}"}}"#, i % KEYS)),
    );
    assert!(
        std::fs::metadata(&file.path).unwrap().len() > 4 << 20,
        "more than four 1 MiB chunks"
    );
    let output = sluice(
        &env,
        &[
            "publish",
            "noop",
            "--compression",
            "lz4",
            "--file",
            file.path.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("published {LINES} noop jobs")),
        "{stdout}"
    );

    let registry = env.registry();
    let mut per_key: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for record in env.read_all(&env.topics().jobs("noop")) {
        let key = String::from_utf8(record.key().unwrap().to_vec()).unwrap();
        let job = registry.decode("noop", record.payload().unwrap()).unwrap();
        let job = sluice_core::json::record_to_json(&job.value);
        let line: usize = job["payload"].as_str().unwrap()[..6].parse().unwrap();
        assert_eq!(key, format!("k{}", line % KEYS), "the line's own key");
        per_key.entry(key).or_default().push(line);
    }
    assert_eq!(per_key.len(), KEYS);
    for (key, lines) in &per_key {
        let in_file_order: Vec<usize> = (0..LINES)
            .filter(|i| format!("k{}", i % KEYS) == *key)
            .collect();
        assert_eq!(
            lines, &in_file_order,
            "key {key}: every job once, in file order"
        );
    }
}

/// A bad line deep in a big file is named by its number, the lines around it are still sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_file_names_a_bad_line_in_a_later_chunk() {
    let env = TestEnv::new().await;
    const LINES: usize = 12_000;
    const BAD: usize = 9_876; // 1-based, chunks past the first
    let padding = "p".repeat(200);
    let file = jsonl((1..=LINES).map(|n| match n {
        BAD => r#"{"payload":"ok","nope":1}"#.to_owned(),
        n if n == BAD + 1 => String::new(),
        n => format!(r#"{{"payload":"{n} {padding}"}}"#),
    }));
    let output = sluice(
        &env,
        &["publish", "noop", "--file", file.path.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(stderr.contains(&format!("line {BAD}: ")), "{stderr}");
    assert!(
        stderr.contains("nope"),
        "the message names the field: {stderr}"
    );
    assert_eq!(stderr.matches("line ").count(), 1, "one bad line: {stderr}");
    let sent = LINES - 2; // the bad one and the blank one after it
    assert!(
        stdout.contains(&format!("published {sent} noop jobs"))
            && stdout.contains("1 failed (1 invalid)"),
        "{stdout}"
    );
    assert_eq!(env.record_count(&env.topics().jobs("noop")), sent as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_json_prints_the_job_id_and_unknown_kinds_fail() {
    let env = TestEnv::new().await;
    let output = sluice(&env, &["publish", "noop", "--json", r#"{"payload":"one"}"#]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(printed["job_id"].as_str().is_some_and(|id| id.len() == 36));
    assert_eq!(env.record_count(&env.topics().jobs("noop")), 1);

    let unknown = sluice(&env, &["publish", "fax", "--json", "{}"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown job kind `fax`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_ensure_creates_what_is_missing_and_is_idempotent() {
    let mut env = TestEnv::new().await;
    // A fresh prefix whose topics TestEnv did not create.
    env.config.topics.prefix = format!("fresh-{}.", env.id);
    env.delete_topics_on_drop();
    let first = sluice(&env, &["topics", "ensure"]);
    let first = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(
        first.contains(&format!("created  fresh-{}.jobs.webhook", env.id)),
        "{first}"
    );
    assert!(first.contains("social.follows"));
    let second = sluice(&env, &["topics", "ensure"]);
    let second = String::from_utf8_lossy(&second.stdout).into_owned();
    let (summary, topics) = second.split_once('\n').unwrap();
    assert!(
        summary.starts_with("brokers up: 1; new topics get replication factor 1"),
        "{second}"
    );
    assert!(
        topics.lines().all(|l| l.trim_start().starts_with("exists")),
        "{second}"
    );
}

/// A file removed when the test ends.
mod tempfile_path {
    pub struct TempFile {
        pub path: std::path::PathBuf,
    }

    impl TempFile {
        pub fn new() -> Self {
            let path =
                std::env::temp_dir().join(format!("sluice-test-{}.jsonl", uuid::Uuid::new_v4()));
            Self { path }
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_prints_queue_health_as_a_table_and_as_json() {
    let env = TestEnv::new().await;
    let file = jsonl((0..7).map(|i| format!(r#"{{"payload":"{i}"}}"#)));
    assert!(sluice(
        &env,
        &["publish", "noop", "--file", file.path.to_str().unwrap()]
    )
    .status
    .success());
    let json = sluice(&env, &["stats", "--json"]);
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        stats["kinds"]["noop"]["pending"], 7,
        "no worker has run: all 7 pending"
    );
    assert_eq!(stats["kinds"]["noop"]["workers"], 0);
    assert_eq!(stats["pending"], 7);
    let table = sluice(&env, &["stats"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.starts_with("pending 7   failed 0   workers 0"),
        "{text}"
    );
    assert!(text.contains(&env.topics().jobs("noop")), "{text}");
}

/// `publish --file` sends lean records: no key unless the line names one, and of the headers
/// only the job id. The worker infers the rest (first attempt, enqueued at the record's
/// timestamp, a new trace) and a retry carries what it inferred, so the job keeps one trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bulk_records_are_lean_and_their_retries_keep_the_inferred_trace_and_enqueue_time() {
    use rdkafka::message::Headers;
    use sluice_core::{headers, retry::Delay, status::Status};
    let env = TestEnv::with_config(|c| {
        c.retry.tiers = vec![Delay(std::time::Duration::from_secs(1))];
        c.retry.jitter = false;
    })
    .await;
    let file = jsonl([
        r#"{"payload":"fails once","fail_attempts":1}"#.to_owned(),
        r#"{"key":"k1","payload":"keyed"}"#.to_owned(),
    ]);
    let output = sluice(
        &env,
        &["publish", "noop", "--file", file.path.to_str().unwrap()],
    );
    assert!(output.status.success(), "{output:?}");

    let records = env.read_all(&env.topics().jobs("noop"));
    assert_eq!(records.len(), 2);
    for record in &records {
        assert_eq!(record.headers().map_or(0, |h| h.count()), 0, "no headers");
    }
    let keys: std::collections::BTreeSet<Option<&[u8]>> = records.iter().map(|r| r.key()).collect();
    assert_eq!(keys, [None, Some(&b"k1"[..])].into_iter().collect());
    let failing = records.iter().find(|r| r.key().is_none()).unwrap();
    // The worker names a job without an id after its place in the lane.
    let job_id = format!(
        "{}-{}-{}",
        failing.topic(),
        failing.partition(),
        failing.offset()
    );
    let produced_at = failing.timestamp().to_millis().unwrap();

    let worker = env.start_worker(&["noop"]).await;
    let store = env.status_store().await;
    let status = env
        .wait_for_status(
            &store,
            &job_id,
            Status::Succeeded,
            std::time::Duration::from_secs(30),
        )
        .await;
    assert_eq!(status.attempts, 2);
    let trace_id = status.trace_id.clone().expect("the worker started a trace");
    assert_eq!(status.kind, "noop");
    assert_eq!(trace_id.len(), 32);

    let retries = env.read_all(
        &env.topics()
            .retry("noop", std::time::Duration::from_secs(1)),
    );
    assert_eq!(retries.len(), 1);
    let retry_headers = retries[0].headers().unwrap();
    assert_eq!(
        headers::get(retry_headers, headers::JOB_ID),
        Some(job_id.as_str()),
        "the retry keeps the name its first delivery gave the job"
    );
    assert_eq!(
        headers::get(retry_headers, headers::ENQUEUED_AT),
        Some(produced_at.to_string().as_str()),
        "the original record's timestamp"
    );
    assert_eq!(
        headers::get(retry_headers, headers::TRACEPARENT).and_then(headers::trace_id),
        Some(trace_id.as_str()),
        "the retry continues the trace its first attempt started"
    );
    worker.stop().await;
}

/// A bulk record carries a header only for what neither it nor its topic says: an expiry. A
/// delayed one keeps every header (an id included), since its hops rewrite its timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_records_carry_only_what_their_topic_and_timestamp_cannot_say() {
    use rdkafka::message::Headers;
    use sluice_core::{headers, lanes::Priority};
    let env = TestEnv::new().await;
    let file = jsonl([
        r#"{"payload":"expiring","expires_in":"1h"}"#.to_owned(),
        r#"{"payload":"urgent","priority":"high"}"#.to_owned(),
        r#"{"payload":"later","delay":"90s"}"#.to_owned(),
    ]);
    let output = sluice(
        &env,
        &["publish", "noop", "--file", file.path.to_str().unwrap()],
    );
    assert!(output.status.success(), "{output:?}");
    let names = |record: &rdkafka::message::OwnedMessage| -> Vec<String> {
        record
            .headers()
            .map(|h| h.iter().map(|h| h.key.to_owned()).collect())
            .unwrap_or_default()
    };

    let normal = env.read_all(&env.topics().jobs("noop"));
    assert_eq!(normal.len(), 1);
    assert_eq!(names(&normal[0]), [headers::EXPIRES_AT]);
    let expires_at: i64 = headers::get(normal[0].headers().unwrap(), headers::EXPIRES_AT)
        .unwrap()
        .parse()
        .unwrap();
    let produced_at = normal[0].timestamp().to_millis().unwrap();
    assert!((expires_at - produced_at - 3_600_000).abs() < 60_000);

    let high = env.read_all(&env.topics().lane("noop", Priority::High));
    assert_eq!(high.len(), 1);
    assert!(names(&high[0]).is_empty(), "the lane says the priority");

    let delayed = env.read_all(&env.topics().delay_rung(std::time::Duration::from_secs(30)));
    assert_eq!(delayed.len(), 1, "90 s starts on the 30 s rung");
    let delayed_headers = delayed[0].headers().unwrap();
    let job_id = headers::get(delayed_headers, headers::JOB_ID).expect("an id");
    assert!(uuid::Uuid::parse_str(job_id).is_ok(), "{job_id}");
    for name in [headers::ENQUEUED_AT, headers::TARGET_TOPIC, headers::RUN_AT] {
        assert!(headers::get(delayed_headers, name).is_some(), "{name}");
    }
    assert_eq!(delayed[0].key(), None, "no key when the line gives none");
}
