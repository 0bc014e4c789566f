//! `sluice publish`: one job from `--json`, or many from JSON Lines (`bulk`).

mod bulk;
mod chunks;

use std::{
    io::{IsTerminal, Read},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::{
    producer::{FutureProducer, FutureRecord},
    util::Timeout,
};
use sluice_core::{kafka::QuietContext, topics::Topics, Config};
use sluice_kinds::Registry;

use crate::cli::{Compression, PublishArgs};

pub async fn run(
    config: &Config,
    registry: Arc<Registry>,
    args: PublishArgs,
) -> anyhow::Result<ExitCode> {
    registry.kind(&args.kind)?;
    let defaults = Defaults::of(&args);
    match (&args.json, &args.file) {
        (Some(json), _) => publish_one(config, &registry, &args, json, &defaults).await,
        (None, Some(path)) if path.as_os_str() != "-" => {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            publish_many(config, registry.clone(), args, Box::new(file), defaults).await
        }
        _ => {
            let stdin = Box::new(std::io::stdin());
            publish_many(config, registry.clone(), args, stdin, defaults).await
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
    args: &PublishArgs,
    json: &str,
    defaults: &Defaults,
) -> anyhow::Result<ExitCode> {
    let kind = args.kind.as_str();
    let job = registry
        .prepare(kind, &defaults.apply(json))
        .context("invalid job")?;
    let mut producer_config =
        sluice_core::kafka::producer_config(&config.kafka, config.api.publish_timeout);
    if let Some(codec) = args.compression {
        producer_config.set("compression.type", codec.as_str());
    }
    let producer: FutureProducer<QuietContext> = producer_config
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

async fn publish_many(
    config: &Config,
    registry: Arc<Registry>,
    args: PublishArgs,
    input: Box<dyn Read + Send>,
    defaults: Defaults,
) -> anyhow::Result<ExitCode> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let compression = args.compression.map(Compression::as_str);
        bulk::publish(
            &config,
            &registry,
            &args.kind,
            input,
            &defaults,
            compression,
        )
    })
    .await?
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
