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
        /// Comma-separated lanes to serve, e.g. `high` for a worker of urgent jobs only.
        /// Default: `worker.lanes`, else all three (high, normal, low).
        #[arg(long, value_delimiter = ',')]
        lanes: Vec<sluice_core::lanes::Priority>,
    },
    /// Run the fan-out stream processor: follower graph and feeds in Redis.
    Fanout,
    /// Run the scheduler: enqueue the jobs of `[[schedules]]`, each tick exactly once across
    /// every scheduler replica (one leads, elected through Kafka).
    Scheduler,
    /// List the schedules with their last fire (from Kafka) and next tick.
    Schedules {
        /// Print JSON (for scripts) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run every role in one process (api, a worker for every kind, fanout, scheduler), for
    /// local use.
    All,
    /// Publish jobs: one from --json, or many (JSON Lines) from --file or standard input.
    Publish(PublishArgs),
    /// Queue health: pending, failed, workers, per kind and per topic.
    Stats {
        /// Print JSON (for scripts) instead of a table.
        #[arg(long)]
        json: bool,
        /// Refresh every 2 s until interrupted.
        #[arg(long)]
        watch: bool,
    },
    /// Inspect, replay and purge dead letters.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Check the configuration (defaults, file, `SLUICE__…` variables) and print it as JSON;
    /// an unknown key or a bad value fails with its name.
    Config,
    /// Print every schema version sluice reads, with the fingerprint its records carry.
    Schemas,
    /// Make API tokens: every `/v1` call needs one (`Authorization: Bearer <token>`).
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Manage the topics sluice uses.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// Endpoints disabled because they answered 410 Gone: list them, enable one again.
    Endpoints {
        #[command(subcommand)]
        command: EndpointsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum EndpointsCommand {
    /// Every disabled endpoint: URL, kind, when, and the job that got the 410.
    List {
        /// Print JSON (for scripts) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Enable an endpoint again: workers call it again within a few seconds.
    Enable {
        /// The endpoint's URL, as `list` shows it.
        url: String,
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
    /// The lane of every job published (a job's own `"priority"` wins): high, normal, low.
    #[arg(long)]
    pub priority: Option<sluice_core::lanes::Priority>,
    /// Run every job this long from now (`90s`, `2h`; 1 s to 30 days), unless a job gives its
    /// own `run_at` or `delay`.
    #[arg(long, conflicts_with = "run_at")]
    pub delay: Option<String>,
    /// Run every job at this time (RFC 3339 or ms since the epoch), unless a job gives its own.
    #[arg(long)]
    pub run_at: Option<String>,
    /// Compress record batches on the wire and on the broker's disk (librdkafka's
    /// `compression.type`; wins over `kafka.properties`). Default: the configured one, none.
    #[arg(long, value_enum)]
    pub compression: Option<Compression>,
}

/// Codecs librdkafka is built with here.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// Its name as `compression.type` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Print a new random token, once, and the configuration (its SHA-256 and scopes) that
    /// makes the api accept it.
    New(NewTokenArgs),
}

#[derive(Debug, Args)]
pub struct NewTokenArgs {
    /// Its name in `[api.tokens.<name>]` (and in logs): a-z, 0-9, `_`, `-`.
    #[arg(long)]
    pub name: String,
    /// What it may do: publish, read, admin. Repeat it or separate with commas.
    #[arg(long = "scope", required = true, value_delimiter = ',')]
    pub scopes: Vec<sluice_core::tokens::Scope>,
    /// Requests per second it may make on average (429 beyond). Default: no limit.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Requests it may make at once before `--rate` applies. Default: `--rate`.
    #[arg(long, requires = "rate")]
    pub burst: Option<u32>,
    /// Print shell assignments instead: `SLUICE_TOKEN=…` and the `SLUICE__API__TOKENS__…`
    /// variables, for `eval` (`make run` does).
    #[arg(long)]
    pub env: bool,
}

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create every topic the configuration needs that does not exist yet.
    Ensure,
    /// Print the topic names the configuration needs.
    List,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// A table of pending dead letters: offset, job id, attempts, error class, error, dead-at.
    List {
        kind: String,
        /// At most this many rows.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Only this error class (retryable, fatal, decode, timeout, panic).
        #[arg(long)]
        error_class: Option<String>,
        /// Only dead since: a duration ago (`2h`) or a time (`2026-11-28T10:00:00Z`).
        #[arg(long, value_parser = parse_time)]
        since: Option<i64>,
        /// Include dead letters already replayed or purged.
        #[arg(long)]
        all: bool,
    },
    /// One dead letter: its headers and its payload as JSON (hex when it does not decode).
    Show {
        kind: String,
        /// The offset in the DLQ topic (`partition:offset` on a multi-partition DLQ).
        offset: sluice_dlq::Position,
    },
    /// Send pending dead letters back to the kind's main topic, attempt count reset.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["offset", "job_id", "error_class", "all"])))]
    Replay {
        kind: String,
        #[arg(long)]
        offset: Option<sluice_dlq::Position>,
        #[arg(long)]
        job_id: Option<String>,
        #[arg(long)]
        error_class: Option<String>,
        #[arg(long)]
        all: bool,
        /// Print what would be sent, send nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Mark pending dead letters as handled without replaying them.
    Purge {
        kind: String,
        /// Only those dead before: a duration ago (`7d`) or a time. Default: all.
        #[arg(long, value_parser = parse_time)]
        before: Option<i64>,
    },
}

/// A point in time as ms since the epoch: `2h` (that long ago) or an RFC 3339 time.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let now = sluice_core::headers::now_millis();
    if let Ok(ago) = humantime::parse_duration(s) {
        return Ok(now - ago.as_millis() as i64);
    }
    humantime::parse_rfc3339_weak(s)
        .map(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
        })
        .map_err(|_| {
            format!("`{s}` is neither a duration like `2h` nor a time like `2026-11-28T10:00:00Z`")
        })
}
