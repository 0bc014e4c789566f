//! Configuration of every role, layered lowest first: built-in defaults → a TOML file
//! (`--config` or `SLUICE_CONFIG`) → environment variables `SLUICE__<SECTION>__<KEY>`
//! (e.g. `SLUICE__API__LISTEN=0.0.0.0:8080`). Unknown keys are errors, so a typo fails at start
//! with the key's name instead of being silently ignored.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::{
    lanes::{LaneWeights, Priority},
    replication::Replicas,
    retry::RetryConfig,
};

/// One `[kinds.<kind>]` table as written: `handler`, `concurrency`, retry keys and the handler's
/// own settings. The kind registry splits and checks it (unknown keys are errors there).
pub type KindTable = BTreeMap<String, serde_json::Value>;

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub redis: RedisConfig,
    pub topics: TopicsConfig,
    pub api: ApiConfig,
    pub worker: WorkerConfig,
    pub social: SocialConfig,
    /// The retry policy of every kind (see `retry`).
    pub retry: RetryConfig,
    /// Job kinds: settings of the built-in ones (`[kinds.webhook] secret = "whsec_…"`), and the
    /// kinds users define (`[kinds.resize] handler = "http"`, with a schema in `schemas.dir`).
    /// Any retry key (`max_attempts`, `tiers`, …) overrides `[retry]` for that kind.
    pub kinds: BTreeMap<String, KindTable>,
    pub schemas: SchemasConfig,
    pub storage: StorageConfig,
    pub log: LogConfig,
    /// Periodic jobs: `[[schedules]]`, each a kind, its payload and a cron or a period; the
    /// scheduler role fires them (see `schedules`). Default: none.
    pub schedules: Vec<crate::schedules::ScheduleConfig>,
    /// The scheduler role (see `schedules`).
    pub scheduler: crate::schedules::SchedulerConfig,
    /// Incoming webhooks: `[hooks.<source>]` tables, each served at `POST /v1/hooks/<source>`
    /// (see `hooks`). Default: none.
    pub hooks: BTreeMap<String, crate::hooks::HookConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SchemasConfig {
    /// A folder of `<kind>/v<N>.avsc` loaded at start on top of the built-in schemas: the
    /// schemas of kinds defined in `[kinds]`. Default: `schemas/` next to the configuration
    /// file when there is one, else none.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list. Default: the local broker of `make env-up`.
    pub bootstrap_servers: String,
    /// Reported to the broker in logs and quotas. Default `sluice`.
    pub client_id: String,
    /// Extra librdkafka properties applied to every client, last (so they win), e.g.
    /// `{ "linger.ms" = "10" }`. Default: none.
    pub properties: BTreeMap<String, String>,
    /// How long a consumer waits at start for its topics to exist (created a moment ago by
    /// `sluice topics ensure`, say) before it reports the missing ones as an error. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub topic_wait: Duration,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".into(),
            client_id: "sluice".into(),
            properties: BTreeMap::new(),
            topic_wait: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// A single Redis, `redis://[user:pass@]host:port[/db]`, or a Redis Cluster,
    /// `redis+cluster://[user:pass@]host1:port1,host2:port2,…`: seed nodes (any reachable one is
    /// enough; the rest is discovered, and credentials apply to every node). Default: the local
    /// Redis of `make env-up`.
    pub url: String,
    /// Prepended to every key sluice writes, so several deployments (or tests) share one Redis.
    /// Default `sluice:`.
    pub key_prefix: String,
    /// How long a job's status is kept after its last change. Default 7 days, like Sidekiq's
    /// dead-job retention.
    #[serde(with = "humantime_serde")]
    pub status_ttl: Duration,
    /// A Redis command (or connection attempt) taking longer fails, so a Redis that hangs or
    /// vanishes is noticed and retried instead of blocking forever. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "sluice:".into(),
            status_ttl: Duration::from_secs(7 * 24 * 3600),
            timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicsConfig {
    /// Prepended to every topic and consumer-group name (`<prefix>jobs.webhook`), so several
    /// environments or test runs share one cluster without touching each other. Default empty.
    pub prefix: String,
    /// Partitions of each topic `sluice topics ensure` creates: the most consumers a kind can
    /// scale to. Default 6.
    pub partitions: i32,
    /// Copies of each topic `sluice topics ensure` creates: a number, or `auto` (the default):
    /// as many as the cluster has brokers up, at most 3 — 1 on the single local broker, 3 on a
    /// cluster. Give 3 explicitly in production, so a broker that happens to be down while
    /// topics are created cannot lower it. Existing topics are left as they are.
    pub replication_factor: Replicas,
    /// `min.insync.replicas` of the topics it creates: how many replicas must have a record
    /// before the broker acknowledges it (producers use acks=all). A number, or `auto` (the
    /// default): a majority of the replicas from a factor of 3 on (2 of 3), else 1.
    pub min_insync_replicas: Replicas,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            prefix: String::new(),
            partitions: 6,
            replication_factor: Replicas::Auto,
            min_insync_replicas: Replicas::Auto,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Default `127.0.0.1:8080` (docs/architecture.md §2).
    pub listen: SocketAddr,
    /// Larger request bodies get 413. Default 1 MiB.
    pub body_limit_bytes: usize,
    /// Larger uploads (`POST /v1/uploads/images`) get 413; they are streamed to storage, never
    /// held whole in memory. Default 25 MiB.
    pub upload_limit_bytes: u64,
    /// The longest a POST waits for Kafka to acknowledge before answering 503. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub publish_timeout: Duration,
    /// How often the api reads queue health (lag, pending, dead letters, workers) for its
    /// metrics. Default 15 s, one Prometheus scrape interval.
    #[serde(with = "humantime_serde")]
    pub queue_stats_interval: Duration,
    /// Where the api serves `/metrics` (and `/healthz`) instead of on `listen`: a port only
    /// Prometheus can reach, since `/metrics` needs no token and tells about the traffic.
    /// Default: none, `/metrics` on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// The bearer tokens every `/v1` call needs, by name: `[api.tokens.<name>]` with the
    /// token's `sha256`, its `scopes` and an optional `rate`/`burst` (see `tokens`); `sluice
    /// tokens new` makes one. Default: none, and then every `/v1` call answers 401.
    pub tokens: BTreeMap<String, crate::tokens::TokenConfig>,
    /// How long a console login lasts without use: each page viewed extends it. Sessions are
    /// kept in Redis, so every api replica knows them. Default 8 h.
    #[serde(with = "humantime_serde")]
    pub console_session_ttl: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 1024 * 1024,
            upload_limit_bytes: 25 * 1024 * 1024,
            publish_timeout: Duration::from_secs(5),
            queue_stats_interval: Duration::from_secs(15),
            metrics_listen: None,
            tokens: BTreeMap::new(),
            console_session_ttl: Duration::from_secs(8 * 3600),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Kinds this worker consumes when `--kinds` is not given. Default: every job kind.
    pub kinds: Vec<String>,
    /// Jobs in flight per kind per worker process, unless `[kinds.<kind>] concurrency` says
    /// otherwise. Each kind has its own slots, so one whose jobs hang never blocks another.
    /// Default 32.
    pub concurrency: usize,
    /// Where the worker serves `/metrics`, `/healthz`. Default `127.0.0.1:9101`.
    pub metrics_listen: SocketAddr,
    /// On shutdown or revocation, how long in-flight jobs may take to finish before the worker
    /// gives up on them (they are redelivered: at-least-once). Default 30 s.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// How often stored offsets are committed. Default 1 s: a crash redoes at most ~1 s of work.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// Retries not yet due that one retry-tier partition may hold in memory before it is paused.
    /// Holding them (rather than pausing at the first) keeps a retry due sooner from waiting
    /// behind one due later. Default 1000.
    pub max_held_retries: usize,
    /// The lanes this worker serves when `--lanes` is not given: `high`, `normal`, `low`.
    /// A worker serving `normal` also runs every lane's retries (they share the retry tiers),
    /// each still in its own lane's turn. Default all three.
    pub lanes: Vec<Priority>,
    /// How slots are shared between lanes with jobs waiting, unless `[kinds.<kind>]
    /// lane_weights` says otherwise. Default `{ high = 8, normal = 4, low = 1 }`.
    pub lane_weights: LaneWeights,
    /// The longest a job waits for a slot behind other lanes' jobs: one waiting longer is
    /// started next whatever the weights say, so a low lane never starves. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub lane_max_wait: Duration,
    /// Jobs read ahead per partition while they wait for a slot; a partition holding this many
    /// is paused until half have started, so memory stays bounded while another lane's jobs
    /// can still be read and preferred. Default 64.
    pub read_ahead: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            kinds: Vec::new(),
            concurrency: 32,
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9101)),
            drain_timeout: Duration::from_secs(30),
            commit_interval: Duration::from_secs(1),
            max_held_retries: 1000,
            lanes: Priority::ALL.to_vec(),
            lane_weights: LaneWeights::default(),
            lane_max_wait: Duration::from_secs(10),
            read_ahead: 64,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocialConfig {
    /// Authors with at least this many followers are pulled on read instead of pushed on write.
    /// Default 10 000 (docs/architecture.md §2).
    pub celebrity_threshold: u64,
    /// Entries a materialized feed keeps (the newest). Default 1000. A post's push trims only
    /// about one feed in 16 (a stable hash of post and feed), so between trims a feed holds up
    /// to the posts pushed since its last trim beyond this (15 on average); reads never look
    /// past the newest `feed_cap`.
    pub feed_cap: usize,
    /// Recent posts kept per author (pull source, follow backfill, unfollow cleanup). Default 1000.
    pub author_posts_cap: usize,
    /// Posts of a push author copied into a new follower's feed. Default 20.
    pub backfill_posts: usize,
    /// Followers written per Redis round trip (one Lua script; on a Redis Cluster one pipeline
    /// to the master that serves their feeds). Default 125: a script blocks
    /// Redis while it runs, and a feed read waits behind up to two of them; 125 keys (~0.5 ms
    /// here) kept feed reads near 5 ms at p99 during a 500 000-delivery burst where 250 gave
    /// 7–10 ms, and a 10 000-follower post was no slower (see `make bench-fanout`).
    pub batch_size: usize,
    /// A pause between follower batches, to cap the write rate one huge fan-out puts on Redis.
    /// Default 0 (none).
    #[serde(with = "humantime_serde")]
    pub batch_pause: Duration,
    /// How long a merged feed read is cached. Default 30 s; 0 turns the cache off.
    #[serde(with = "humantime_serde")]
    pub feed_cache_ttl: Duration,
    /// Follower feeds the fanout keeps in memory, across the authors with more than two
    /// batches of followers, so their next post needs no SSCAN of the follower set: about 70
    /// bytes each. Default 500 000; 0 turns the cache off. A cached list is used only while the
    /// author's follow-change version and follower count in Redis still match it.
    pub follower_cache_followers: usize,
    /// How long a cached follower list may be used: the bound on staleness after a follower
    /// set is edited in Redis by hand without changing its size. Default 5 min.
    #[serde(with = "humantime_serde")]
    pub follower_cache_ttl: Duration,
    /// Longest post text, in characters. Default 5000.
    pub max_post_chars: usize,
    /// Where the fanout role serves `/metrics` and `/healthz`. Default `127.0.0.1:9102`.
    pub metrics_listen: SocketAddr,
}

impl Default for SocialConfig {
    fn default() -> Self {
        Self {
            celebrity_threshold: 10_000,
            feed_cap: 1000,
            author_posts_cap: 1000,
            backfill_posts: 20,
            batch_size: 125,
            batch_pause: Duration::ZERO,
            feed_cache_ttl: Duration::from_secs(30),
            follower_cache_followers: 500_000,
            follower_cache_ttl: Duration::from_secs(300),
            max_post_chars: 5000,
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9102)),
        }
    }
}

/// Object storage: uploads and what jobs make of them (thumbnails).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// A directory (`data/storage`, the default, created when missing; or `file:///abs/dir`),
    /// or `s3://bucket/prefix` for any S3-compatible store, whose credentials, region and
    /// endpoint come from the usual variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`) and `options`.
    pub url: String,
    /// object_store client settings, over the environment's, e.g.
    /// `{ aws_endpoint = "http://127.0.0.1:9000", aws_allow_http = "true" }` for a local S3
    /// server. Put secrets in the environment, not here. Default: none.
    pub options: BTreeMap<String, String>,
    /// The base of the URLs that job results give for stored objects: `/files` (the default,
    /// the api's read-only file route, for any store) or a CDN or bucket URL.
    pub public_url: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            url: "data/storage".into(),
            options: BTreeMap::new(),
            public_url: "/files".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` filter directives, e.g. `info,sluice_worker=debug`. `RUST_LOG` wins when set.
    /// Default `info`.
    pub level: String,
    /// `text` for people, `json` for log pipelines. Default `text`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {problem}")]
    Invalid {
        key: std::borrow::Cow<'static, str>,
        problem: String,
    },
}

impl Config {
    /// Loads defaults, then `file` (if any), then `SLUICE__…` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("SLUICE")
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("worker.kinds")
                .with_list_parse_key("retry.tiers")
                .try_parsing(true),
        );
        let mut config: Config = builder.build()?.try_deserialize()?;
        if config.schemas.dir.is_none() {
            let beside = file.and_then(Path::parent).map(|dir| dir.join("schemas"));
            config.schemas.dir = beside.filter(|dir| dir.is_dir());
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML document over the defaults (tests and examples).
    pub fn from_toml(toml: &str) -> Result<Self, ConfigError> {
        let config: Config = config::Config::builder()
            .add_source(config::File::from_str(toml, config::FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: &str| {
            Err(ConfigError::Invalid {
                key: std::borrow::Cow::Borrowed(key),
                problem: problem.to_owned(),
            })
        };
        if self.kafka.bootstrap_servers.trim().is_empty() {
            return invalid("kafka.bootstrap_servers", "must not be empty");
        }
        if crate::redis_conn::cluster_seeds(&self.redis.url).is_some_and(|s| s.is_empty()) {
            return invalid(
                "redis.url",
                "a redis+cluster:// URL lists at least one seed node, host:port",
            );
        }
        if self.topics.partitions < 1 {
            return invalid("topics.partitions", "must be at least 1");
        }
        if self.topics.replication_factor.is_invalid() {
            return invalid("topics.replication_factor", "must be auto or at least 1");
        }
        if self.topics.min_insync_replicas.is_invalid() {
            return invalid("topics.min_insync_replicas", "must be auto or at least 1");
        }
        if let (Replicas::Fixed(factor), Replicas::Fixed(isr)) = (
            self.topics.replication_factor,
            self.topics.min_insync_replicas,
        ) {
            if isr > factor {
                return invalid(
                    "topics.min_insync_replicas",
                    "must not be more than topics.replication_factor (every write would be refused)",
                );
            }
        }
        if self.worker.max_held_retries == 0 {
            return invalid("worker.max_held_retries", "must be at least 1");
        }
        if let Some(problem) = self.worker.lane_weights.problem() {
            return invalid("worker.lane_weights", problem);
        }
        if self.worker.lanes.is_empty() {
            return invalid("worker.lanes", "name at least one of high, normal, low");
        }
        // A lane not read for longer than max.poll.interval.ms (300 s) would drop the worker
        // from its group.
        if self.worker.lane_max_wait.is_zero()
            || self.worker.lane_max_wait > Duration::from_secs(120)
        {
            return invalid(
                "worker.lane_max_wait",
                "must be more than 0 and at most 120s",
            );
        }
        if self.worker.read_ahead == 0 {
            return invalid("worker.read_ahead", "must be at least 1");
        }
        if self.worker.concurrency == 0 {
            return invalid("worker.concurrency", "must be at least 1");
        }
        if self.api.body_limit_bytes == 0 {
            return invalid("api.body_limit_bytes", "must be at least 1");
        }
        if self.api.upload_limit_bytes == 0 {
            return invalid("api.upload_limit_bytes", "must be at least 1");
        }
        if let Some((key, problem)) = crate::tokens::problem(&self.api.tokens) {
            return Err(ConfigError::Invalid {
                key: key.into(),
                problem,
            });
        }
        if self.storage.url.trim().is_empty() {
            return invalid("storage.url", "must not be empty");
        }
        if self.social.feed_cap == 0
            || self.social.author_posts_cap == 0
            || self.social.batch_size == 0
        {
            return invalid(
                "social",
                "feed_cap, author_posts_cap and batch_size must be at least 1",
            );
        }
        if self.social.celebrity_threshold == 0 {
            return invalid("social.celebrity_threshold", "must be at least 1");
        }
        if !(1.0..=100.0).contains(&self.retry.factor) {
            return invalid("retry.factor", "must be between 1 and 100");
        }
        let plan = crate::retry::RetryPlan::resolve(&self.retry, &Default::default());
        if let Some((key, problem)) = plan.problem() {
            return Err(ConfigError::Invalid {
                key: if key == "tiers" {
                    "retry.tiers".into()
                } else {
                    "retry.timeout".into()
                },
                problem: problem.to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config.topics.partitions, 6);
        assert_eq!(config.worker.concurrency, 32);
        assert_eq!(config.api.body_limit_bytes, 1 << 20);
        assert_eq!(config.api.publish_timeout, Duration::from_secs(5));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_naming_the_key() {
        let unknown = Config::from_toml("[api]\nlisten_addr = \"x\"").unwrap_err();
        assert!(unknown.to_string().contains("listen_addr"), "{unknown}");
        let bad = Config::from_toml("[topics]\npartitions = 0").unwrap_err();
        assert!(bad.to_string().contains("topics.partitions"), "{bad}");
    }

    #[test]
    fn a_cluster_url_needs_a_seed() {
        let config =
            Config::from_toml("[redis]\nurl = \"redis+cluster://10.0.0.1:6379,10.0.0.2:6379\"")
                .unwrap();
        assert!(config.redis.url.starts_with("redis+cluster://"));
        let empty = Config::from_toml("[redis]\nurl = \"redis+cluster:// , \"").unwrap_err();
        assert!(empty.to_string().contains("redis.url"), "{empty}");
    }

    #[test]
    fn kind_tables_are_kept_for_the_registry() {
        let config = Config::from_toml(
            "[kinds.webhook]\nmax_attempts = 8\nsecret = \"whsec_x\"\n[kinds.resize]\nhandler = \"http\"",
        )
        .unwrap();
        assert_eq!(config.kinds["webhook"]["max_attempts"], 8);
        assert_eq!(config.kinds["resize"]["handler"], "http");
    }

    #[test]
    fn environment_variables_override_and_parse_lists() {
        // The only test touching these variables, so parallel tests do not see them.
        std::env::set_var("SLUICE__RETRY__TIERS", "1s,5s");
        std::env::set_var("SLUICE__RETRY__JITTER", "false");
        std::env::set_var("SLUICE__WORKER__CONCURRENCY", "7");
        std::env::set_var("SLUICE__TOPICS__REPLICATION_FACTOR", "3");
        let hash = crate::tokens::sha256_hex("sk_sluice_env");
        std::env::set_var("SLUICE__API__TOKENS__CI__SHA256", &hash);
        std::env::set_var("SLUICE__API__TOKENS__CI__SCOPES", "publish,read");
        std::env::set_var("SLUICE__API__TOKENS__CI__RATE", "20");
        // Not a configuration key: the CLI's token, beside the `SLUICE__` prefix.
        std::env::set_var("SLUICE_TOKEN", "sk_sluice_env");
        let config = Config::load(None);
        for key in [
            "SLUICE__RETRY__TIERS",
            "SLUICE__RETRY__JITTER",
            "SLUICE__WORKER__CONCURRENCY",
            "SLUICE__TOPICS__REPLICATION_FACTOR",
            "SLUICE__API__TOKENS__CI__SHA256",
            "SLUICE__API__TOKENS__CI__SCOPES",
            "SLUICE__API__TOKENS__CI__RATE",
            "SLUICE_TOKEN",
        ] {
            std::env::remove_var(key);
        }
        let config = config.unwrap();
        assert_eq!(
            config.retry.tiers,
            vec![
                crate::retry::Delay(Duration::from_secs(1)),
                crate::retry::Delay(Duration::from_secs(5))
            ]
        );
        assert!(!config.retry.jitter);
        assert_eq!(config.worker.concurrency, 7);
        assert_eq!(config.topics.replication_factor, Replicas::Fixed(3));
        let ci = &config.api.tokens["ci"];
        assert_eq!(ci.sha256, hash);
        assert_eq!(
            ci.scopes,
            vec![crate::tokens::Scope::Publish, crate::tokens::Scope::Read]
        );
        assert_eq!(ci.rate, Some(20));
    }

    #[test]
    fn token_tables_are_checked_at_start_naming_the_key() {
        let hash = crate::tokens::sha256_hex("sk_sluice_x");
        let config = Config::from_toml(&format!(
            "[api.tokens.ci]\nsha256 = \"{hash}\"\nscopes = [\"publish\", \"admin\"]\nrate = 5\nburst = 10"
        ))
        .unwrap();
        assert_eq!(config.api.tokens["ci"].burst, Some(10));
        let bad_hex =
            Config::from_toml("[api.tokens.ci]\nsha256 = \"xyz\"\nscopes = \"read\"").unwrap_err();
        assert!(
            bad_hex.to_string().contains("api.tokens.ci.sha256"),
            "{bad_hex}"
        );
        let bad_scope = Config::from_toml(&format!(
            "[api.tokens.ci]\nsha256 = \"{hash}\"\nscopes = \"read,root\""
        ))
        .unwrap_err()
        .to_string();
        assert!(
            bad_scope.contains("unknown scope `root`") && bad_scope.contains("api.tokens.ci"),
            "{bad_scope}"
        );
    }

    #[test]
    fn replication_is_auto_by_default_and_checked_when_given() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config.topics.replication_factor, Replicas::Auto);
        assert_eq!(config.topics.min_insync_replicas, Replicas::Auto);
        let given =
            Config::from_toml("[topics]\nreplication_factor = 3\nmin_insync_replicas = 2").unwrap();
        assert_eq!(given.topics.replication_factor, Replicas::Fixed(3));
        assert_eq!(given.topics.min_insync_replicas, Replicas::Fixed(2));
        let zero = Config::from_toml("[topics]\nreplication_factor = 0").unwrap_err();
        assert!(
            zero.to_string().contains("topics.replication_factor"),
            "{zero}"
        );
        let above = Config::from_toml("[topics]\nreplication_factor = 3\nmin_insync_replicas = 4")
            .unwrap_err();
        assert!(
            above.to_string().contains("topics.min_insync_replicas"),
            "{above}"
        );
        let word = Config::from_toml("[topics]\nmin_insync_replicas = \"most\"").unwrap_err();
        assert!(word.to_string().contains("min_insync_replicas"), "{word}");
    }

    #[test]
    fn durations_read_as_human_text() {
        let config = Config::from_toml("[api]\npublish_timeout = \"250ms\"").unwrap();
        assert_eq!(config.api.publish_timeout, Duration::from_millis(250));
    }
}
