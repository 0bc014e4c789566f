//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "Event-streaming and background-job pipeline on Apache Kafka"
)]
pub struct Cli {
    /// TOML configuration file; `SLUICE__SECTION__KEY` environment variables override it.
    #[arg(long, global = true, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (POST /v1/jobs/{kind}, GET /v1/jobs/{id}, /metrics).
    Api,
    /// Run a worker for some job kinds: one consumer group per kind.
    Worker {
        /// Comma-separated kinds, e.g. `webhook,noop`. Default: `worker.kinds`, else every kind.
        #[arg(long, value_delimiter = ',')]
        kinds: Vec<String>,
    },
    /// Run every role in one process (the api and a worker for every kind), for local use.
    All,
    /// Publish jobs: one from --json, or many (JSON Lines) from --file or standard input.
    Publish(PublishArgs),
    /// Print every schema version sluice reads, with the fingerprint its records carry.
    Schemas,
    /// Manage the topics sluice uses.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The job kind, e.g. `webhook`.
    pub kind: String,
    /// One job as a JSON object.
    #[arg(long, conflicts_with = "file")]
    pub json: Option<String>,
    /// A JSON Lines file, one job per line; `-` or no --json/--file reads standard input.
    #[arg(long)]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create every topic the configuration needs that does not exist yet.
    Ensure,
    /// Print the topic names the configuration needs.
    List,
}
