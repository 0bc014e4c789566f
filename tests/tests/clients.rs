//! Every Kafka client the binary creates is built by `sluice_core::kafka` (so `kafka.properties`,
//! where SASL and TLS settings go, reaches all of them), and a healthy start is quiet: no ERROR
//! line and no librdkafka statistics in the logs.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use sluice_tests::{sluice_binary, TestEnv};

/// Runs `sluice <args>` with extra environment; returns (exited successfully, stdout + stderr).
fn run(env: &TestEnv, args: &[&str], extra: &[(&str, &str)], timeout: Duration) -> (bool, String) {
    let mut child = Command::new(sluice_binary())
        .args(args)
        .envs(env.env_vars())
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!(
                "`sluice {}` still running after {timeout:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    (status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_kafka_property_makes_every_command_fail_at_start_naming_it() {
    let env = TestEnv::new().await;
    // `debug` takes a list of contexts; this value is none, so librdkafka refuses the client.
    let bad = [
        ("SLUICE__KAFKA__PROPERTIES__DEBUG", "no-such-context"),
        ("SLUICE__API__LISTEN", "127.0.0.1:0"),
    ];
    let commands: &[&[&str]] = &[
        &["api"],
        &["worker", "--kinds", "noop"],
        &["fanout"],
        &["scheduler"],
        &["schedules"],
        &["all"],
        &["stats"],
        &["stats", "--json"],
        &["dlq", "list", "noop"],
        &["dlq", "show", "noop", "0"],
        &["dlq", "replay", "noop", "--all"],
        &["dlq", "purge", "noop"],
        &["publish", "noop", "--json", r#"{"payload":"x"}"#],
        &["topics", "ensure"],
    ];
    for args in commands {
        let (ok, output) = run(&env, args, &bad, Duration::from_secs(60));
        assert!(
            !ok,
            "`sluice {}` started despite the bad property:\n{output}",
            args.join(" ")
        );
        assert!(
            output.contains("\"debug\""),
            "`sluice {}` does not name the property:\n{output}",
            args.join(" ")
        );
    }
    // The bulk publisher reads its input first, then creates its producer.
    let mut child = Command::new(sluice_binary())
        .args(["publish", "noop"])
        .envs(env.env_vars())
        .envs(bad)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && text.contains("\"debug\""),
        "{text}"
    );
}

/// The structural half of the guarantee above: a client built from `ClientConfig::new()`
/// anywhere but the one builder would skip `kafka.properties` — and only fail on a cluster that
/// needs them, which no test here has.
#[test]
fn no_kafka_client_is_configured_outside_the_one_builder() {
    let services = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../services");
    let builder = services.join("core/src/kafka.rs");
    let mut offenders = Vec::new();
    visit(&services, &mut |path| {
        if path.extension().is_some_and(|e| e == "rs") && path != builder {
            let text = std::fs::read_to_string(path).unwrap();
            if text.contains("ClientConfig::new(") {
                offenders.push(path.display().to_string());
            }
        }
    });
    assert!(
        offenders.is_empty(),
        "Kafka clients configured by hand: {offenders:?}"
    );
}

fn visit(dir: &Path, found: &mut impl FnMut(&Path)) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            visit(&path, found);
        } else {
            found(&path);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_start_logs_no_error_and_no_client_statistics() {
    // Topics created the moment before, as `make run` does with `sluice topics ensure`.
    let env = TestEnv::new().await;
    // Statistics every 500 ms, so a client that would log them does so within the run.
    let dir = std::env::temp_dir().join(format!("sluice-quiet-{}", env.id));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sluice.toml");
    std::fs::write(
        &config,
        "[kafka.properties]\n\"statistics.interval.ms\" = \"500\"\n",
    )
    .unwrap();
    let (ok, logs) = run_then_stop(
        &env,
        &["--config", config.to_str().unwrap(), "all"],
        &[("SLUICE__API__LISTEN", "127.0.0.1:0")],
        Duration::from_secs(5),
    )
    .await;
    assert!(ok, "{logs}");
    assert!(
        logs.contains("worker consuming"),
        "the roles started:\n{logs}"
    );
    let errors: Vec<&str> = logs.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(
        errors.is_empty(),
        "ERROR lines on a healthy start:\n{}",
        errors.join("\n")
    );
    let stats: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("Client stats"))
        .collect();
    assert!(
        stats.is_empty(),
        "librdkafka statistics logged:\n{}",
        stats.join("\n")
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_still_missing_after_the_wait_is_one_loud_error_naming_it() {
    let env = TestEnv::new().await;
    let (_, logs) = run_then_stop(
        &env,
        &["worker", "--kinds", "noop"],
        &[
            ("SLUICE__KAFKA__TOPIC_WAIT", "1s"),
            // A prefix nobody created topics for.
            ("SLUICE__TOPICS__PREFIX", "missing-topics-test."),
        ],
        Duration::from_secs(4),
    )
    .await;
    let loud: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(" ERROR ") && l.contains("missing-topics-test.jobs.noop"))
        .collect();
    assert!(
        !loud.is_empty(),
        "no error names the missing topic:\n{logs}"
    );
    assert!(loud[0].contains("sluice topics ensure"), "{}", loud[0]);
}

/// Runs `sluice <args>` at log level info for `running`, then SIGTERM; returns whether it exited
/// successfully, and its logs.
async fn run_then_stop(
    env: &TestEnv,
    args: &[&str],
    extra: &[(&str, &str)],
    running: Duration,
) -> (bool, String) {
    let child = Command::new(sluice_binary())
        .args(args)
        .envs(env.env_vars())
        .env("SLUICE__LOG__LEVEL", "info")
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(running).await;
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
