//! `sluice publish`: one job from `--json`, or many from JSON Lines.
//!
//! The bulk path never awaits records one by one: it hands every record to librdkafka's queue as
//! fast as it accepts them (waiting only when the queue is full) and counts delivery reports as
//! they arrive, the way Kafka's own producer benchmark does.

use std::{
    io::{BufRead, BufReader, IsTerminal, Read},
    process::ExitCode,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::{
    error::KafkaError,
    message::DeliveryResult,
    producer::{
        BaseRecord, FutureProducer, FutureRecord, Producer, ProducerContext, ThreadedProducer,
    },
    types::RDKafkaErrorCode,
    util::Timeout,
    ClientContext,
};
use sluice_core::{kafka::QuietContext, topics::Topics, Config};
use sluice_kinds::Registry;

use crate::cli::PublishArgs;

pub async fn run(
    config: &Config,
    registry: Arc<Registry>,
    args: PublishArgs,
) -> anyhow::Result<ExitCode> {
    registry.kind(&args.kind)?;
    let defaults = Defaults::of(&args);
    match (&args.json, &args.file) {
        (Some(json), _) => publish_one(config, &registry, &args.kind, json, &defaults).await,
        (None, Some(path)) if path.as_os_str() != "-" => {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            publish_many(
                config,
                registry.clone(),
                args.kind,
                Box::new(file),
                defaults,
            )
            .await
        }
        _ => {
            publish_many(
                config,
                registry.clone(),
                args.kind,
                Box::new(std::io::stdin()),
                defaults,
            )
            .await
        }
    }
}

/// Envelope fields from `--priority`, `--delay`, `--run-at`, added to every job that does not
/// give its own.
#[derive(Default)]
struct Defaults(serde_json::Map<String, serde_json::Value>);

impl Defaults {
    fn of(args: &PublishArgs) -> Self {
        let mut fields = serde_json::Map::new();
        if let Some(priority) = args.priority {
            fields.insert("priority".into(), priority.as_str().into());
        }
        if let Some(delay) = &args.delay {
            fields.insert("delay".into(), delay.as_str().into());
        }
        if let Some(at) = &args.run_at {
            let value = match at.trim().parse::<i64>() {
                Ok(ms) => ms.into(),
                Err(_) => at.as_str().into(),
            };
            fields.insert("run_at".into(), value);
        }
        Self(fields)
    }

    /// The job document with the defaults it lacks; as given when there are none (the common,
    /// fast path: no second parse).
    fn apply<'a>(&self, line: &'a str) -> std::borrow::Cow<'a, [u8]> {
        if self.0.is_empty() {
            return line.as_bytes().into();
        }
        let Ok(serde_json::Value::Object(mut job)) = serde_json::from_str(line) else {
            // Not an object: `prepare` explains what is wrong with it.
            return line.as_bytes().into();
        };
        // A job's own timing wins as a whole: its run_at is not mixed with --delay.
        let has_timing = job.contains_key("run_at") || job.contains_key("delay");
        for (key, value) in &self.0 {
            let timing = key == "run_at" || key == "delay";
            let given = job.contains_key(key) || (timing && has_timing);
            if !given {
                job.insert(key.clone(), value.clone());
            }
        }
        serde_json::to_vec(&job).unwrap_or_default().into()
    }
}

async fn publish_one(
    config: &Config,
    registry: &Registry,
    kind: &str,
    json: &str,
    defaults: &Defaults,
) -> anyhow::Result<ExitCode> {
    let job = registry
        .prepare(kind, &defaults.apply(json))
        .context("invalid job")?;
    let producer: FutureProducer<QuietContext> =
        sluice_core::kafka::producer_config(&config.kafka, config.api.publish_timeout)
            .create_with_context(QuietContext)
            .context("creating the Kafka producer")?;
    let route = job.route(&Topics::new(&config.topics), kind, None);
    let topic = route.topic;
    let record = FutureRecord::to(&topic)
        .key(&job.key)
        .payload(&job.value)
        .headers(route.headers);
    producer
        .send(record, Timeout::After(config.api.publish_timeout))
        .await
        .map_err(|(e, _)| e)
        .with_context(|| format!("Kafka did not acknowledge the job on {topic}"))?;
    let mut accepted = serde_json::json!({ "job_id": job.job_id, "status": "queued" });
    if let Some(at) = job.run_at {
        accepted["status"] = "scheduled".into();
        accepted["run_at"] = at.into();
    }
    println!("{accepted}");
    Ok(ExitCode::SUCCESS)
}

/// Counts delivery reports from librdkafka's polling thread.
#[derive(Default)]
struct Deliveries {
    acknowledged: AtomicU64,
    failed: AtomicU64,
}

struct CountingContext(Arc<Deliveries>);

impl ClientContext for CountingContext {
    fn stats(&self, _: rdkafka::statistics::Statistics) {}

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        sluice_core::kafka::log_client_error(&error, reason);
    }
}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.0.acknowledged.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.0.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

async fn publish_many(
    config: &Config,
    registry: Arc<Registry>,
    kind: String,
    input: Box<dyn Read + Send>,
    defaults: Defaults,
) -> anyhow::Result<ExitCode> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        publish_many_blocking(&config, &registry, &kind, input, &defaults)
    })
    .await?
}

fn publish_many_blocking(
    config: &Config,
    registry: &Registry,
    kind: &str,
    input: Box<dyn Read + Send>,
    defaults: &Defaults,
) -> anyhow::Result<ExitCode> {
    let deliveries = Arc::new(Deliveries::default());
    let producer: ThreadedProducer<CountingContext> =
        sluice_core::kafka::producer_config(&config.kafka, Duration::from_secs(60))
            .create_with_context(CountingContext(deliveries.clone()))
            .context("creating the Kafka producer")?;
    let topics = Topics::new(&config.topics);
    let progress = progress_bar();
    let started = Instant::now();
    let (mut sent, mut invalid) = (0u64, 0u64);

    for (index, line) in BufReader::with_capacity(1 << 20, input).lines().enumerate() {
        let line = line.context("reading input")?;
        if line.trim().is_empty() {
            continue;
        }
        let job = match registry.prepare(kind, &defaults.apply(&line)) {
            Ok(job) => job,
            Err(e) => {
                invalid += 1;
                if invalid <= 10 {
                    progress.suspend(|| eprintln!("line {}: {e}", index + 1));
                }
                continue;
            }
        };
        let route = job.route(&topics, kind, None);
        let mut record = BaseRecord::to(&route.topic)
            .key(&job.key)
            .payload(&job.value)
            .headers(route.headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                // librdkafka's queue is full: wait for deliveries to make room, then resend.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e).context("handing a record to librdkafka"),
            }
        }
        sent += 1;
        if sent % 1024 == 0 {
            progress.set_position(deliveries.acknowledged.load(Ordering::Relaxed));
            progress.set_length(sent);
        }
    }
    progress.set_length(sent);
    // Wait on the delivery count first: flush() alone always sleeps out a whole poll interval
    // (100 ms), a visible share of a sub-second run.
    let deadline = Instant::now() + Duration::from_secs(120);
    while deliveries.acknowledged.load(Ordering::Relaxed)
        + deliveries.failed.load(Ordering::Relaxed)
        < sent
        && Instant::now() < deadline
    {
        progress.set_position(deliveries.acknowledged.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_millis(1));
    }
    producer
        .flush(Timeout::After(Duration::from_secs(120)))
        .context("waiting for Kafka to acknowledge every record")?;
    let elapsed = started.elapsed();
    let acknowledged = deliveries.acknowledged.load(Ordering::Relaxed);
    // Anything handed over but not acknowledged by the end of the flush counts as failed.
    let failed = (sent - acknowledged) + invalid;
    progress.finish_and_clear();
    let rate = acknowledged as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
    println!(
        "published {acknowledged} {kind} jobs in {:.2} s ({rate:.0} jobs/s); {failed} failed ({invalid} invalid)",
        elapsed.as_secs_f64()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A bar on a terminal, nothing otherwise (scripts and CI read the summary line).
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {pos}/{len} acknowledged {per_sec} [{elapsed_precise}]",
        )
        .expect("static template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
