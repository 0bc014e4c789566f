//! The single sluice binary: one subcommand per role, plus the operator CLI.

mod cli;
mod dlq;
mod endpoints;
mod publish;
mod schedules;
mod stats;
mod tokens;
mod topics;

use std::{process::ExitCode, sync::Arc};

use anyhow::Context;
use clap::Parser;
use sluice_core::Config;
use sluice_kinds::Registry;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command, EndpointsCommand, TokensCommand, TopicsCommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Arc::new(Config::load(cli.config.as_deref()).context("loading configuration")?);
    let registry = Arc::new(Registry::load(&config).context("loading job kinds")?);
    sluice_core::telemetry::init(&config.log);
    let shutdown = CancellationToken::new();
    match cli.command {
        Command::Api => {
            sluice_core::shutdown::cancel_on_signals(shutdown.clone());
            sluice_api::run(config, registry, shutdown).await?;
        }
        Command::Worker { kinds, lanes } => {
            sluice_core::shutdown::cancel_on_signals(shutdown.clone());
            sluice_worker::run(config, registry, kinds, lanes, shutdown).await?;
        }
        Command::Fanout => {
            sluice_core::shutdown::cancel_on_signals(shutdown.clone());
            sluice_fanout::run(config, shutdown).await?;
        }
        Command::Scheduler => {
            sluice_core::shutdown::cancel_on_signals(shutdown.clone());
            sluice_scheduler::run(config, registry, shutdown).await?;
        }
        Command::Schedules { json } => schedules::run(&config, &registry, json).await?,
        Command::All => {
            sluice_core::shutdown::cancel_on_signals(shutdown.clone());
            let api = tokio::spawn(sluice_api::run(
                config.clone(),
                registry.clone(),
                shutdown.clone(),
            ));
            let scheduler = tokio::spawn(sluice_scheduler::run(
                config.clone(),
                registry.clone(),
                shutdown.clone(),
            ));
            let worker = tokio::spawn(sluice_worker::run(
                config.clone(),
                registry,
                Vec::new(),
                Vec::new(),
                shutdown.clone(),
            ));
            let fanout = tokio::spawn(sluice_fanout::run(config, shutdown.clone()));
            let (api, worker, fanout, scheduler) = tokio::join!(
                cancel_on_exit(api, shutdown.clone()),
                cancel_on_exit(worker, shutdown.clone()),
                cancel_on_exit(fanout, shutdown.clone()),
                cancel_on_exit(scheduler, shutdown)
            );
            api.context("api")?;
            worker.context("worker")?;
            fanout.context("fanout")?;
            scheduler.context("scheduler")?;
        }
        Command::Publish(args) => return publish::run(&config, registry, args).await,
        Command::Schemas => print_schemas(&registry),
        // Loading already validated it; show what the process would run with.
        Command::Config => {
            // Secrets (URL passwords, `secret`/`password` settings) print as `***`.
            let mut shown = serde_json::to_value(&*config)?;
            sluice_core::redact::json(&mut shown);
            println!("{}", serde_json::to_string_pretty(&shown)?)
        }
        Command::Dlq { command } => return dlq::run(&config, registry, command).await,
        Command::Stats { json, watch } => stats::run(&config, registry, json, watch).await?,
        Command::Tokens {
            command: TokensCommand::New(args),
        } => tokens::new(&args)?,
        Command::Topics {
            command: TopicsCommand::Ensure,
        } => topics::ensure(&config, &registry).await?,
        Command::Topics {
            command: TopicsCommand::List,
        } => topics::list(&config, &registry),
        Command::Endpoints {
            command: EndpointsCommand::List { json },
        } => endpoints::list(&config, json).await?,
        Command::Endpoints {
            command: EndpointsCommand::Enable { url },
        } => return endpoints::enable(&config, &url).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// The table a producer in another language needs: which fingerprint to put in the header.
fn print_schemas(registry: &Registry) {
    let registry = registry.schemas();
    println!(
        "{:<14} {:>7}  {:<18}  header bytes (C3 01 + fingerprint, little-endian)",
        "type", "version", "fingerprint"
    );
    for name in registry.type_names() {
        for version in registry.versions(name) {
            let header: Vec<String> = version
                .header()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            println!(
                "{name:<14} {:>7}  {:016x}  {}",
                version.version,
                version.fingerprint,
                header.join(" ")
            );
        }
    }
}

/// Awaits a role; when it ends (failed or not) the others are told to stop too.
async fn cancel_on_exit(
    role: tokio::task::JoinHandle<anyhow::Result<()>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let result = role.await.context("role panicked").and_then(|r| r);
    shutdown.cancel();
    result
}
