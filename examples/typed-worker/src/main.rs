//! A custom sluice worker binary with one typed job kind: the record arrives as a Rust struct,
//! the handler returns a result or a classified failure, and the stock worker's guarantees —
//! retries, dead letters, offsets, drain, metrics — come with `sluice_worker::Worker`.
//!
//! ```text
//! cargo run -p typed-worker -- --config examples/typed-worker/sluice.toml
//! ```

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sluice_core::Config;
use sluice_kinds::{typed, ErrorClass, JobFailure, Registry, TypedJob};
use sluice_worker::Worker;
use tokio_util::sync::CancellationToken;

/// The record of `welcome_email` (schemas/welcome_email/v1.avsc), as this handler wants it. The
/// schema allows a null `name`; this struct does not, so such a record is a `decode` failure:
/// dead-lettered at once, bytes intact.
#[derive(Debug, Deserialize)]
struct WelcomeEmail {
    to: String,
    name: String,
}

/// What the job leaves behind, returned by `GET /v1/jobs/{id}` as `result`.
#[derive(Debug, Serialize)]
struct Sent {
    to: String,
    subject: String,
}

async fn welcome(job: TypedJob<WelcomeEmail>) -> Result<Sent, JobFailure> {
    let WelcomeEmail { to, name } = job.record;
    if !to.contains('@') {
        // Will never succeed as sent: dead-letter it now rather than retry.
        return Err(JobFailure::new(
            ErrorClass::Fatal,
            format!("`{to}` is not an address"),
        ));
    }
    if to.ends_with("@flaky.example") && job.attempt == 1 {
        return Err(JobFailure::new(ErrorClass::Retryable, "mail server busy"));
    }
    // A real handler sends the email here, with `job.id` as its idempotency key.
    Ok(Sent {
        to,
        subject: format!("Welcome, {name}!"),
    })
}

fn config_path() -> Option<PathBuf> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
    }
    std::env::var_os("SLUICE_CONFIG").map(PathBuf::from)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let config = Arc::new(Config::load(config_path().as_deref()).context("loading configuration")?);
    let registry = Arc::new(Registry::load(&config).context("loading job kinds")?);
    sluice_core::telemetry::init(&config.log);
    let shutdown = CancellationToken::new();
    sluice_core::shutdown::cancel_on_signals(shutdown.clone());
    Worker::new(config, registry)
        .kinds(vec!["welcome_email".into()])
        .handler("welcome_email", typed(welcome))
        .run(shutdown)
        .await
}
