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
    match (&args.json, &args.file) {
        (Some(json), _) => publish_one(config, &registry, &args.kind, json).await,
        (None, Some(path)) if path.as_os_str() != "-" => {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            publish_many(config, registry.clone(), args.kind, Box::new(file)).await
        }
        _ => {
            publish_many(
                config,
                registry.clone(),
                args.kind,
                Box::new(std::io::stdin()),
            )
            .await
        }
    }
}

async fn publish_one(
    config: &Config,
    registry: &Registry,
    kind: &str,
    json: &str,
) -> anyhow::Result<ExitCode> {
    let job = registry
        .prepare(kind, json.as_bytes())
        .context("invalid job")?;
    let producer: FutureProducer<QuietContext> =
        sluice_core::kafka::producer_config(&config.kafka, config.api.publish_timeout)
            .create_with_context(QuietContext)
            .context("creating the Kafka producer")?;
    let topic = Topics::new(&config.topics).jobs(kind);
    let record = FutureRecord::to(&topic)
        .key(&job.key)
        .payload(&job.value)
        .headers(job.headers(None).0);
    producer
        .send(record, Timeout::After(config.api.publish_timeout))
        .await
        .map_err(|(e, _)| e)
        .with_context(|| format!("Kafka did not acknowledge the job on {topic}"))?;
    println!(
        "{}",
        serde_json::json!({ "job_id": job.job_id, "status": "queued" })
    );
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
) -> anyhow::Result<ExitCode> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || publish_many_blocking(&config, &registry, &kind, input))
        .await?
}

fn publish_many_blocking(
    config: &Config,
    registry: &Registry,
    kind: &str,
    input: Box<dyn Read + Send>,
) -> anyhow::Result<ExitCode> {
    let deliveries = Arc::new(Deliveries::default());
    let producer: ThreadedProducer<CountingContext> =
        sluice_core::kafka::producer_config(&config.kafka, Duration::from_secs(60))
            .create_with_context(CountingContext(deliveries.clone()))
            .context("creating the Kafka producer")?;
    let topic = Topics::new(&config.topics).jobs(kind);
    let progress = progress_bar();
    let started = Instant::now();
    let (mut sent, mut invalid) = (0u64, 0u64);

    for (index, line) in BufReader::with_capacity(1 << 20, input).lines().enumerate() {
        let line = line.context("reading input")?;
        if line.trim().is_empty() {
            continue;
        }
        let job = match registry.prepare(kind, line.as_bytes()) {
            Ok(job) => job,
            Err(e) => {
                invalid += 1;
                if invalid <= 10 {
                    progress.suspend(|| eprintln!("line {}: {e}", index + 1));
                }
                continue;
            }
        };
        let mut record = BaseRecord::to(&topic)
            .key(&job.key)
            .payload(&job.value)
            .headers(job.headers(None).0);
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
        "published {acknowledged} {kind} jobs to {topic} in {:.2} s ({rate:.0} jobs/s); {failed} failed ({invalid} invalid)",
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
