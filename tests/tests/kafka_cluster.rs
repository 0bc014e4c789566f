//! sluice on the 3-broker Kafka cluster of `deploy/kafka-cluster.sh` (make test starts it):
//! topics get replication factor 3 and min.insync.replicas 2, and a broker leading a partition
//! of the jobs topic is SIGKILLed in the middle of a 5 000-job run — jobs published over HTTP and
//! with `sluice publish`, a worker consuming, every tenth job failing once so retry tiers are in
//! play. Every job that got a 202 or an acknowledgement is processed, the api, CLI and worker
//! processes carry on unrestarted, duplicates are counted, and the restarted broker rejoins the
//! ISR of every topic. This test kills and restarts a broker, so it has a test binary of its own.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures::StreamExt;
use rdkafka::message::{Headers, Message};
use sluice_core::{
    codec::SchemaRegistry, headers, json::string_field, retry::Delay, status::Status,
};
use sluice_tests::{
    api_client, cluster::cluster_script, eventually, free_port, get_text, sluice_binary, TestEnv,
};

const HTTP_JOBS: usize = 2_500;
const CLI_JOBS: usize = 2_500;
/// Both publishers spread their jobs over this long; the broker dies `KILL_AFTER` into it.
const PUBLISH_SPAN: Duration = Duration::from_secs(12);
const KILL_AFTER: Duration = Duration::from_secs(4);
/// Every this-many-th job fails its first attempt, so it goes through a retry tier.
const FAILING_EVERY: usize = 10;

/// A child process killed when the test ends, whichever way it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the killed broker again if the test ends before it did: later tests need all three.
struct RestartOnDrop(Option<i32>);

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        if let Some(node) = self.0.take() {
            let _ =
                Command::new(env!("CARGO_MANIFEST_DIR").to_owned() + "/../deploy/kafka-cluster.sh")
                    .args(["start", &node.to_string()])
                    .status();
        }
    }
}

/// Starts `sluice <args>` with its log in a file (named in the test's output): the WARN lines
/// of a broker dying would drown the test's own output.
fn spawn_logged(env: &TestEnv, role: &str, args: &[&str], extra_env: &[(&str, &str)]) -> Child {
    let path = log_path(env, role);
    println!("{role} log: {}", path.display());
    let log = std::fs::File::create(&path).unwrap();
    Command::new(sluice_binary())
        .args(args)
        .envs(env.env_vars())
        .envs(extra_env.iter().copied())
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the sluice binary starts")
}

/// Where `spawn_logged` writes a role's log (removed when the test passes).
fn log_path(env: &TestEnv, role: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("sluice-kafka-cluster-{}-{role}.log", env.id))
}

/// The broker coordinating `group`: the leader of its `__consumer_offsets` partition, which is
/// Java's `String.hashCode` of the group id, made non-negative, modulo the topic's 50 partitions.
fn group_coordinator(env: &TestEnv, group: &str) -> Option<i32> {
    let hash = group.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    let partition = (hash & 0x7fff_ffff) % 50;
    env.partition_leaders("__consumer_offsets")
        .into_iter()
        .find(|(p, _)| *p == partition)
        .map(|(_, leader)| leader)
}

fn job_body(source: &str, i: usize) -> String {
    let fail = usize::from(i.is_multiple_of(FAILING_EVERY));
    format!(r#"{{"payload":"{source}-{i}","fail_attempts":{fail}}}"#)
}

/// Every job record in `topic`: payload by job id, how many records repeated a job (by
/// publisher: `cli` or `http`), and the record count. A bulk (`cli`) record carries no id: the
/// worker names it after its place, so a repeat of one is a second record of the same payload.
fn read_jobs(
    env: &TestEnv,
    topic: &str,
) -> (
    BTreeMap<String, String>,
    BTreeMap<&'static str, usize>,
    usize,
) {
    let mut payload_of = BTreeMap::new();
    let mut twice: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut cli_payloads = std::collections::HashSet::new();
    let records = env.read_all(topic);
    for record in &records {
        let id = record
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == headers::JOB_ID))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| {
                format!(
                    "{}-{}-{}",
                    record.topic(),
                    record.partition(),
                    record.offset()
                )
            });
        let value = SchemaRegistry::embedded()
            .decode("noop", record.payload().unwrap())
            .unwrap()
            .value;
        let payload = string_field(&value, "payload").unwrap().to_owned();
        let source = if payload.starts_with("cli-") {
            "cli"
        } else {
            "http"
        };
        let repeated = if source == "cli" {
            !cli_payloads.insert(payload.clone())
        } else {
            payload_of.contains_key(&id)
        };
        if repeated {
            *twice.entry(source).or_default() += 1;
        }
        payload_of.insert(id, payload);
    }
    (payload_of, twice, records.len())
}

/// `name{kind="noop",outcome="success"} 12` → 12 (0 if the line is not there yet).
fn counter(metrics: &str, name: &str, outcome: &str) -> u64 {
    let wanted = format!(r#"{name}{{kind="noop",outcome="{outcome}"}} "#);
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&wanted))
        .map_or(0, |n| n.trim().parse().expect("a counter value"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partition_leader_killed_mid_run_loses_no_accepted_job() {
    let started = Instant::now();
    let env = TestEnv::on_kafka_cluster(|c| {
        c.retry.tiers = vec![Delay(Duration::from_secs(1)), Delay(Duration::from_secs(2))];
    })
    .await;
    let topics = env.topics();
    let jobs_topic = topics.jobs("noop");

    // Topics on a 3-broker cluster: three replicas, two of which must have every write.
    for (replicas, isr) in env.replicas_and_isr(&jobs_topic) {
        assert_eq!(
            replicas,
            vec![1, 2, 3],
            "every partition on all three brokers"
        );
        assert_eq!(isr, vec![1, 2, 3]);
    }
    assert_eq!(
        env.topic_config(&jobs_topic, "min.insync.replicas")
            .await
            .as_deref(),
        Some("2")
    );

    let worker_metrics = format!("127.0.0.1:{}", free_port());
    let logs = [log_path(&env, "worker"), log_path(&env, "api")];
    let mut worker = Reaped(spawn_logged(
        &env,
        "worker",
        &["worker", "--kinds", "noop"],
        &[
            ("SLUICE__WORKER__METRICS_LISTEN", worker_metrics.as_str()),
            ("SLUICE__LOG__LEVEL", "info,sluice_worker=debug"),
        ],
    ));
    let api_addr = format!("127.0.0.1:{}", free_port());
    // A publish bound above the cluster's failover time (6 s to fence a dead broker, then a
    // leader election): a request to a partition whose leader just died waits for the new
    // leader instead of answering 503.
    let mut api = Reaped(spawn_logged(
        &env,
        "api",
        &["api"],
        &[
            ("SLUICE__API__LISTEN", api_addr.as_str()),
            ("SLUICE__API__PUBLISH_TIMEOUT", "10s"),
        ],
    ));
    let http = api_client();
    eventually("the api to be ready", Duration::from_secs(30), || async {
        let ready = http.get(format!("http://{api_addr}/readyz")).send().await;
        ready.ok().filter(|r| r.status() == 200).map(|_| ())
    })
    .await;

    // The CLI reads JSON Lines from standard input for the whole run: one process, one producer.
    let mut cli = Reaped(
        Command::new(sluice_binary())
            .args(["publish", "noop"])
            .envs(env.env_vars())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sluice publish starts"),
    );
    let mut stdin = cli.0.stdin.take().unwrap();
    // Read while it runs: a full pipe (its warnings while a broker is down) would stall it.
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let cli_stdout = drain(Box::new(cli.0.stdout.take().unwrap()));
    let cli_stderr = drain(Box::new(cli.0.stderr.take().unwrap()));
    let run_start = Instant::now();
    let cli_feed = std::thread::spawn(move || {
        const BATCH: usize = 50;
        for batch in 0..CLI_JOBS / BATCH {
            let due = run_start + PUBLISH_SPAN * (batch * BATCH) as u32 / CLI_JOBS as u32;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let lines: String = (batch * BATCH..(batch + 1) * BATCH)
                .map(|i| job_body("cli", i) + "\n")
                .collect();
            stdin
                .write_all(lines.as_bytes())
                .expect("the CLI reads its input");
        }
        // Dropping stdin is the end of input: the CLI waits for the last acknowledgements.
    });

    let url = format!("http://{api_addr}/v1/jobs/noop");
    let http_run = tokio::spawn({
        let http = http.clone();
        async move {
            futures::stream::iter(0..HTTP_JOBS)
                .map(|i| {
                    let (http, url) = (http.clone(), url.clone());
                    async move {
                        let due = run_start + PUBLISH_SPAN * i as u32 / HTTP_JOBS as u32;
                        tokio::time::sleep_until(due.into()).await;
                        let response = http.post(&url).body(job_body("http", i)).send().await;
                        let response = response.expect("the api answers");
                        let status = response.status().as_u16();
                        let body: serde_json::Value = response.json().await.unwrap();
                        (status, body["job_id"].as_str().map(str::to_owned))
                    }
                })
                .buffer_unordered(256)
                .collect::<Vec<_>>()
                .await
        }
    });

    // Mid-run: SIGKILL a broker leading a partition of the jobs topic — the worker group's
    // coordinator if it leads one (the hardest case: offset commits and group membership move
    // too), else the leader of partition 0.
    tokio::time::sleep_until((run_start + KILL_AFTER).into()).await;
    let leaders = env.partition_leaders(&jobs_topic);
    // On a fresh cluster `__consumer_offsets` may still be electing leaders: asked again for a
    // few seconds, then partition 0's leader is the victim.
    let mut coordinator = None;
    for _ in 0..20 {
        coordinator = group_coordinator(&env, &topics.worker_group("noop"));
        if coordinator.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let victim = if let Some(coordinator) =
        coordinator.filter(|c| leaders.iter().any(|(_, leader)| leader == c))
    {
        coordinator
    } else {
        leaders
            .iter()
            .find(|(p, _)| *p == 0)
            .expect("partition 0 has a leader")
            .1
    };
    let mut restart_guard = RestartOnDrop(Some(victim));
    tokio::task::block_in_place(|| cluster_script(&["kill", &victim.to_string()]));
    let killed_at = Instant::now();
    println!(
        "killed broker {victim}, leading a partition of {jobs_topic} (the worker group's coordinator: {}), {:?} into the run",
        coordinator == Some(victim),
        killed_at - run_start
    );

    let answers = http_run.await.unwrap();
    cli_feed.join().unwrap();
    let cli_exit = tokio::task::block_in_place(|| cli.0.wait()).unwrap();
    let (cli_stdout, cli_stderr) = (cli_stdout.join().unwrap(), cli_stderr.join().unwrap());
    assert!(
        cli_exit.success(),
        "sluice publish rode out the broker's death: {cli_stdout} {cli_stderr}"
    );
    assert!(
        cli_stdout.contains(&format!("published {CLI_JOBS} noop jobs"))
            && cli_stdout.contains("; 0 failed"),
        "{cli_stdout}"
    );
    let accepted: BTreeSet<String> = answers
        .iter()
        .filter(|(status, _)| *status == 202)
        .map(|(_, id)| id.clone().expect("a 202 names its job"))
        .collect();
    let unavailable = answers.iter().filter(|(status, _)| *status == 503).count();
    let other: Vec<u16> = answers
        .iter()
        .map(|(status, _)| *status)
        .filter(|s| *s != 202 && *s != 503)
        .collect();
    assert!(
        other.is_empty(),
        "answers other than 202 and 503: {other:?}"
    );
    assert_eq!(accepted.len() + unavailable, HTTP_JOBS);
    println!(
        "http: {} accepted, {unavailable} answered 503; cli: {CLI_JOBS} acknowledged; publishing took {:?}",
        accepted.len(),
        run_start.elapsed()
    );

    // What reached the jobs topic: every accepted job. A record acknowledged by the dead leader
    // becomes readable from the new one only once its high watermark passed it again (when the
    // other follower caught up), so the topic is read until every accepted job is there, bounded.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (payload_of, twice, records) = loop {
        let read = read_jobs(&env, &jobs_topic);
        let (payload_of, _, _) = &read;
        let missing_http: Vec<&String> = accepted
            .iter()
            .filter(|id| !payload_of.contains_key(*id))
            .collect();
        let cli_found = payload_of
            .values()
            .filter(|p| p.starts_with("cli-"))
            .collect::<std::collections::HashSet<_>>()
            .len();
        if missing_http.is_empty() && cli_found == CLI_JOBS {
            break read;
        }
        assert!(
            Instant::now() < deadline,
            "accepted jobs not in {jobs_topic} 60 s after publishing: {} of the 202s, e.g. {:?}; {} of {CLI_JOBS} acknowledged CLI jobs found",
            missing_http.len(),
            &missing_http[..missing_http.len().min(5)],
            cli_found
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    println!(
        "{jobs_topic}: {records} records, {} jobs; records written twice: {twice:?}",
        payload_of.len()
    );

    // Every job in the topic is processed (the accepted ones, and any whose 503 came after the
    // record was written after all).
    let store = env.status_store().await;
    let mut pending: Vec<String> = payload_of.keys().cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pending.is_empty() {
        let mut still = Vec::new();
        for id in pending {
            // An error (a Redis restarted under the test) is asked again next round.
            let done = store
                .get(&id)
                .await
                .ok()
                .flatten()
                .is_some_and(|s| s.status == Status::Succeeded);
            if !done {
                still.push(id);
            }
        }
        pending = still;
        assert!(
            Instant::now() < deadline || pending.is_empty(),
            "{} jobs not succeeded 120 s after publishing, e.g. {:?}",
            pending.len(),
            pending.iter().take(5).collect::<Vec<_>>()
        );
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let jobs = payload_of.len() as u64;
    let failing = payload_of
        .values()
        .filter(|p| {
            p.rsplit('-')
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap()
                .is_multiple_of(FAILING_EVERY)
        })
        .count() as u64;
    println!(
        "all {jobs} jobs succeeded {:?} after the kill",
        killed_at.elapsed()
    );

    // Duplicates: deliveries beyond one success per job and one retry per failing job.
    let metrics = get_text(
        &reqwest::Client::new(),
        &format!("http://{worker_metrics}/metrics"),
    )
    .await;
    let successes = counter(&metrics, "sluice_jobs_finished_total", "success");
    let retries = counter(&metrics, "sluice_jobs_finished_total", "retry");
    assert!(
        successes >= jobs && retries >= failing,
        "{successes} successes, {retries} retries"
    );
    println!(
        "duplicates: {} (deliveries: {successes} successes for {jobs} jobs, {retries} retries for {failing} failing jobs)",
        (successes - jobs) + (retries - failing)
    );

    // The same processes carry on: the api accepts and the worker runs a new job.
    assert!(
        api.0.try_wait().unwrap().is_none(),
        "the api is still running"
    );
    assert!(
        worker.0.try_wait().unwrap().is_none(),
        "the worker is still running"
    );
    let after = http
        .post(format!("http://{api_addr}/v1/jobs/noop"))
        .body(r#"{"payload":"after"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 202);
    let after: serde_json::Value = after.json().await.unwrap();
    env.wait_for_status(
        &store,
        after["job_id"].as_str().unwrap(),
        Status::Succeeded,
        Duration::from_secs(30),
    )
    .await;

    // The killed broker comes back and catches up: in the ISR of every partition of every topic.
    let restart_at = Instant::now();
    let started_again =
        tokio::task::block_in_place(|| cluster_script(&["start", &victim.to_string()]));
    print!("{started_again}");
    restart_guard.0 = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lagging = env.partitions_without_in_sync(victim);
        if lagging.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "broker {victim} not back in the ISR of {} partitions 60 s after its start, e.g. {:?}",
            lagging.len(),
            &lagging[..lagging.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "broker {victim} back in every ISR {:?} after its restart began; test took {:?}",
        restart_at.elapsed(),
        started.elapsed()
    );
    for log in logs {
        let _ = std::fs::remove_file(log);
    }
}
