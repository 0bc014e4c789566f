//! The scheduler role as separate processes: three replicas of `sluice scheduler` fire a
//! once-a-second schedule while the leader is SIGKILLed twice; every tick from the first fired
//! to the last appears exactly once on the lane topic (read committed), under its derived id,
//! the ticks missed during each failover fired late by the next leader; `sluice schedules
//! --json` lists the last fire and the recent ones, newest first. And a bad cron
//! expression stops the start, naming the schedule.

use std::{
    collections::{BTreeSet, HashMap},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    message::OwnedMessage,
    Message, Offset, TopicPartitionList,
};
use sluice_core::{
    headers,
    kafka::{self, QuietContext},
};
use sluice_tests::{free_port, get_text, sluice_binary, TestEnv};

const SCHEDULE: &str = "every-second";
const JOB_PREFIX: &str = "schedule-every-second-";

/// A `sluice scheduler` child process, SIGKILLed when dropped (a failing test leaves none).
struct Replica {
    child: Child,
    metrics: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(env: &TestEnv, toml: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-scheduler-{}", env.id));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sluice.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn start_replica(env: &TestEnv, config: &std::path::Path) -> Replica {
    let listen = format!("127.0.0.1:{}", free_port());
    let child = env.spawn_sluice_with(
        &["--config", config.to_str().unwrap(), "scheduler"],
        &[("SLUICE__SCHEDULER__METRICS_LISTEN", &listen)],
    );
    Replica {
        child,
        metrics: format!("http://{listen}/metrics"),
    }
}

/// The value of an unlabelled sample (`name 1`) in a metrics page.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The index of the one replica reporting `sluice_scheduler_leader 1`, once there is one.
async fn leader(http: &reqwest::Client, replicas: &[Replica], timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let mut leading = Vec::new();
        for (i, replica) in replicas.iter().enumerate() {
            if let Ok(response) = http.get(&replica.metrics).send().await {
                let text = response.text().await.unwrap_or_default();
                if sample(&text, "sluice_scheduler_leader") == Some(1.0) {
                    leading.push(i);
                }
            }
        }
        if let [one] = leading[..] {
            return one;
        }
        assert!(
            Instant::now() < deadline,
            "no single leader after {timeout:?} (leading: {leading:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many ticks `replica` has fired (its `sluice_schedule_fires_total`).
async fn fires(http: &reqwest::Client, replica: &Replica) -> f64 {
    let text = get_text(http, &replica.metrics).await;
    sample(
        &text,
        &format!("sluice_schedule_fires_total{{schedule=\"{SCHEDULE}\"}}"),
    )
    .unwrap_or(0.0)
}

/// Waits until a new leader's catch-up is done, then until it has fired `n` more ticks on
/// time.
async fn let_it_fire(http: &reqwest::Client, replica: &Replica, n: f64) {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let wanted = fires(http, replica).await + n;
    let deadline = Instant::now() + Duration::from_secs(30);
    while fires(http, replica).await < wanted {
        assert!(
            Instant::now() < deadline,
            "the leader fired fewer than {n} ticks in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every committed record of `topic` (aborted transactions are invisible), read to the end of
/// each partition. The harness's `read_all` counts up to the high watermark, which transaction
/// markers make unreachable, so this one stops at the end-of-partition events.
fn read_committed(env: &TestEnv, topic: &str) -> Vec<OwnedMessage> {
    let mut config = kafka::reader_config(&env.config.kafka, "sluice-test-reader");
    config
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer<QuietContext> = config.create_with_context(QuietContext).unwrap();
    let wait = Duration::from_secs(30);
    let mut list = TopicPartitionList::new();
    for partition in kafka::partitions(consumer.client(), topic, wait).unwrap() {
        let (low, high) = kafka::watermarks(consumer.client(), topic, partition, wait).unwrap();
        if high > low {
            list.add_partition_offset(topic, partition, Offset::Beginning)
                .unwrap();
        }
    }
    let mut open = list.count();
    let mut records = Vec::new();
    if open == 0 {
        return records;
    }
    consumer.assign(&list).unwrap();
    let deadline = Instant::now() + wait;
    while open > 0 {
        assert!(
            Instant::now() < deadline,
            "{topic} not read to its end in {wait:?}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => records.push(message.detach()),
            Some(Err(KafkaError::PartitionEOF(_))) => open -= 1,
            Some(Err(error)) => panic!("reading {topic}: {error}"),
            None => {}
        }
    }
    records
}

fn header(message: &OwnedMessage, key: &str) -> Option<String> {
    message
        .headers()
        .and_then(|h| headers::get(h, key).map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_fire_every_tick_exactly_once_while_the_leader_is_killed_twice() {
    let env = TestEnv::new().await;
    let config = write_config(
        &env,
        &format!(
            "[[schedules]]\nname = \"{SCHEDULE}\"\nevery = \"1s\"\nkind = \"noop\"\n\
             payload = {{ payload = \"from-schedule\" }}\n"
        ),
    );
    let started = headers::now_millis();
    let mut replicas: Vec<Replica> = (0..3).map(|_| start_replica(&env, &config)).collect();
    let http = reqwest::Client::new();

    let mut kills = Vec::new();
    for _ in 0..2 {
        let current = leader(&http, &replicas, Duration::from_secs(30)).await;
        let_it_fire(&http, &replicas[current], 4.0).await;
        let mut killed = replicas.remove(current);
        killed.child.kill().expect("SIGKILL the leader");
        killed.child.wait().unwrap();
        kills.push(headers::now_millis());
    }
    let last = leader(&http, &replicas, Duration::from_secs(30)).await;
    let_it_fire(&http, &replicas[last], 4.0).await;
    let metrics = get_text(&http, &replicas[last].metrics).await;
    // SIGTERM: the leader leaves the group and exits cleanly.
    let mut survivors = replicas;
    let stopping = survivors.remove(last);
    let term = Command::new("kill")
        .args(["-TERM", &stopping.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let mut stopping = stopping;
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(status) = stopping.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the scheduler did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "the scheduler exited with {exit}");
    drop(survivors);

    for line in [
        format!("sluice_schedule_last_fire_timestamp_seconds{{schedule=\"{SCHEDULE}\"}}"),
        "sluice_schedule_lateness_seconds_bucket".to_owned(),
        "sluice_build_info{role=\"scheduler\"".to_owned(),
    ] {
        assert!(
            metrics.contains(&line),
            "the leader's metrics lack {line}:\n{metrics}"
        );
    }

    let topics = env.topics();
    let jobs = read_committed(&env, &topics.jobs("noop"));
    let expected_value = env
        .registry()
        .prepare_as("noop", br#"{"payload":"from-schedule"}"#, "x".into())
        .unwrap()
        .value;
    let mut ticks = BTreeSet::new();
    let mut lateness = HashMap::new();
    for job in &jobs {
        let id = header(job, headers::JOB_ID).expect("every job has an id");
        let tick: i64 = id
            .strip_prefix(JOB_PREFIX)
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("job id {id} is not {JOB_PREFIX}<tick ms>"));
        assert_eq!(job.key(), Some(id.as_bytes()), "keyed by its id");
        assert_eq!(
            job.payload(),
            Some(&expected_value[..]),
            "{id}: the schedule's payload"
        );
        assert_eq!(
            tick % 1000,
            0,
            "{id}: ticks are whole seconds since the epoch"
        );
        assert!(ticks.insert(tick), "tick {tick} enqueued twice");
        let enqueued: i64 = header(job, headers::ENQUEUED_AT).unwrap().parse().unwrap();
        lateness.insert(tick, enqueued - tick);
    }
    let (first, last) = (*ticks.first().unwrap(), *ticks.last().unwrap());
    let missing: Vec<i64> = (first / 1000..=last / 1000)
        .map(|s| s * 1000)
        .filter(|t| !ticks.contains(t))
        .collect();
    assert!(missing.is_empty(), "ticks never enqueued: {missing:?}");
    assert!(
        first > started,
        "the first tick ({first}) comes after the start ({started}), not from the epoch"
    );
    assert!(ticks.len() >= 15, "only {} ticks", ticks.len());
    // Between failovers a tick is enqueued the moment it is due (the commit follows).
    let prompt = lateness.values().filter(|late| **late < 500).count();
    assert!(
        prompt >= 10,
        "only {prompt} ticks enqueued within 0.5 s: {lateness:?}"
    );
    let mut late: Vec<i64> = lateness.values().copied().collect();
    late.sort_unstable();
    eprintln!(
        "{} ticks, contiguous, none twice; {prompt} enqueued within 0.5 s; median {} ms, worst {} ms",
        ticks.len(),
        late[late.len() / 2],
        late[late.len() - 1]
    );
    // Each failover takes at least the 6 s session timeout: the ticks in between were fired by
    // the next leader, late, rather than lost.
    for kill in &kills {
        let caught_up = lateness
            .iter()
            .filter(|(tick, late)| **tick > *kill - 1000 && **tick < kill + 4000 && **late > 2000)
            .count();
        assert!(
            caught_up >= 3,
            "the ticks after the kill at {kill} were caught up late by the next leader: {:?}",
            lateness
                .iter()
                .filter(|(t, _)| **t > kill - 2000 && **t < kill + 10_000)
                .collect::<std::collections::BTreeMap<_, _>>()
        );
    }

    // The fired-ticks record says the last tick, with its job, and `sluice schedules` shows it.
    let fired = read_committed(&env, &topics.schedule_fires());
    let newest = fired
        .iter()
        .rev()
        .find(|m| m.key() == Some(SCHEDULE.as_bytes()))
        .expect("a fired-tick record");
    let record: serde_json::Value = serde_json::from_slice(newest.payload().unwrap()).unwrap();
    assert_eq!(record["tick"], last);
    assert_eq!(record["job_id"], format!("{JOB_PREFIX}{last}"));
    let listed = Command::new(sluice_binary())
        .args(["--config", config.to_str().unwrap(), "schedules", "--json"])
        .envs(env.env_vars())
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(rows[0]["name"], SCHEDULE);
    assert_eq!(rows[0]["last_fire"]["tick"], last);
    assert_eq!(rows[0]["schedule"], "every 1s");
    assert!(rows[0]["next_tick"].as_i64().unwrap() > last);
    // The recent fires: what the compacted topic still holds (its active segment is never
    // compacted, so here all of them, capped at 10), newest first, each its own job.
    let recent = rows[0]["recent_fires"].as_array().expect("recent_fires");
    assert!(
        recent.len() > 1 && recent.len() <= 10,
        "{} recent fires: {recent:?}",
        recent.len()
    );
    assert_eq!(
        recent[0], rows[0]["last_fire"],
        "the newest is the last fire"
    );
    let recent_ticks: Vec<i64> = recent.iter().map(|f| f["tick"].as_i64().unwrap()).collect();
    assert!(
        recent_ticks.windows(2).all(|w| w[0] > w[1]),
        "newest first: {recent_ticks:?}"
    );
    let job_ids: BTreeSet<&str> = recent
        .iter()
        .map(|f| f["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(job_ids.len(), recent.len(), "distinct jobs: {recent:?}");
    for fire in recent {
        let tick = fire["tick"].as_i64().unwrap();
        assert_eq!(fire["job_id"], format!("{JOB_PREFIX}{tick}"));
        assert!(ticks.contains(&tick), "fire {tick} is a tick enqueued");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_cron_expression_stops_the_scheduler_naming_the_schedule() {
    let env = TestEnv::new().await;
    let config = write_config(
        &env,
        "[[schedules]]\nname = \"nightly-cleanup\"\ncron = \"61 2 * * *\"\nkind = \"noop\"\n",
    );
    let child = Command::new(sluice_binary())
        .args(["--config", config.to_str().unwrap(), "scheduler"])
        .envs(env.env_vars())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .expect("the scheduler exits at once")
    .unwrap()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "exited 0: {stderr}");
    assert!(
        stderr.contains("schedules.nightly-cleanup.cron: `61 2 * * *`"),
        "the error names the schedule and its key: {stderr}"
    );
}
