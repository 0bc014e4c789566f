//! Harness for end-to-end tests against the real Kafka broker and Redis of `make env-up`.
//!
//! Every test gets its own namespace (topic prefix, consumer groups, Redis key prefix), so tests
//! run in parallel without seeing each other's records.

pub mod browser;
pub mod cluster;
pub mod receiver;
pub mod redis_cluster;
pub mod s3;
pub mod stuck_after_panic;

pub use redis_cluster::REDIS_CLUSTER_URL;

use std::{
    future::Future,
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    message::OwnedMessage,
    producer::{FutureProducer, FutureRecord},
};
use sluice_core::{
    kafka::{self, QuietContext},
    status::{JobStatus, Status, StatusStore},
    topics::Topics,
    Config,
};
use sluice_kinds::Registry;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// How long a helper waits for a topic created a moment ago to have leaders.
const KAFKA_WAIT: Duration = Duration::from_secs(30);

/// The signing secret tests configure, and the key it decodes to.
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The Standard Webhooks signature sluice sends with `WEBHOOK_SECRET` (`v1,<base64 HMAC>`).
pub fn webhook_signature(id: &str, timestamp: &str, body: &[u8]) -> String {
    use base64::{engine::general_purpose::STANDARD as BASE64, Engine};
    use hmac::{Hmac, Mac};
    let key = BASE64
        .decode(WEBHOOK_SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// The token every test's api accepts, with every scope (configured by `TestEnv` as
/// `[api.tokens.test]`, by its SHA-256 like any token); `api_client` sends it.
pub const TEST_TOKEN: &str = "sk_sluice_tests-only-token-with-every-scope-0000000";

/// A client for the api: sends `Authorization: Bearer TEST_TOKEN` on every request.
pub fn api_client() -> reqwest::Client {
    client_with_token(TEST_TOKEN)
}

/// A client that sends `token` as its bearer token.
pub fn client_with_token(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// One test's private slice of the shared broker and Redis.
pub struct TestEnv {
    pub id: String,
    pub config: Config,
    /// Every topic `ensure_topics` created, deleted on drop.
    created: std::sync::Mutex<Vec<String>>,
}

impl TestEnv {
    pub async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    /// A test environment whose configuration `adjust` changes before its topics are created.
    pub async fn with_config(adjust: impl FnOnce(&mut Config)) -> Self {
        stuck_after_panic::install();
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let mut config = Config::default();
        config.topics.prefix = format!("test-{id}.");
        config.topics.partitions = 3;
        config.redis.key_prefix = format!("sluice-test:{id}:");
        let webhook = config.kinds.entry("webhook".into()).or_default();
        webhook.insert("secret".into(), WEBHOOK_SECRET.into());
        webhook.insert("request_timeout".into(), "5s".into());
        // Test receivers listen on loopback, which the outgoing guard refuses unless allowed;
        // tests of the guard take this out.
        webhook.insert("allow_private".into(), true.into());
        config.api.listen = "127.0.0.1:0".parse().unwrap();
        config.api.tokens.insert(
            "test".into(),
            sluice_core::tokens::TokenConfig {
                sha256: sluice_core::tokens::sha256_hex(TEST_TOKEN),
                scopes: sluice_core::tokens::Scope::ALL.to_vec(),
                ..Default::default()
            },
        );
        config.worker.metrics_listen = "127.0.0.1:0".parse().unwrap();
        config.worker.commit_interval = Duration::from_millis(200);
        config.worker.drain_timeout = Duration::from_secs(10);
        config.storage.url = std::env::temp_dir()
            .join(format!("sluice-test-storage-{id}"))
            .display()
            .to_string();
        adjust(&mut config);
        let env = Self {
            id,
            config,
            created: Default::default(),
        };
        env.ensure_topics().await;
        env
    }

    pub fn topics(&self) -> Topics {
        Topics::new(&self.config.topics)
    }

    /// The kind registry of this configuration.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::new(Registry::load(&self.config).expect("the test configuration's kinds load"))
    }

    pub async fn ensure_topics(&self) {
        self.delete_topics_on_drop();
        let specs = self.registry().topic_specs(&self.config);
        sluice_core::topic_setup::ensure_topics(&self.config.kafka, &self.config.topics, &specs)
            .await
            .expect("topics are created on the test broker (is `make env-up` running?)");
    }

    /// Deletes on drop the topics of the configuration as it is now as well: for a test that
    /// changed the prefix and had them created some other way (`sluice topics ensure`).
    pub fn delete_topics_on_drop(&self) {
        let specs = self.registry().topic_specs(&self.config);
        self.created
            .lock()
            .unwrap()
            .extend(specs.into_iter().map(|spec| spec.name));
    }

    pub async fn status_store(&self) -> StatusStore {
        StatusStore::connect(&self.config.redis)
            .await
            .expect("Redis is up")
    }

    pub async fn start_api(&self) -> RunningRole<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = sluice_api::state(Arc::new(self.config.clone()), self.registry())
            .await
            .expect("api state");
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(sluice_api::serve(listener, state, shutdown.clone()));
        RunningRole {
            info: addr,
            shutdown,
            handle,
        }
    }

    pub async fn start_worker(&self, kinds: &[&str]) -> RunningRole<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let kinds = kinds.iter().map(|k| (*k).to_owned()).collect();
        let worker = sluice_worker::Worker::new(Arc::new(self.config.clone()), self.registry());
        let handle = tokio::spawn(worker.kinds(kinds).serve(listener, shutdown.clone()));
        RunningRole {
            info: addr,
            shutdown,
            handle,
        }
    }

    /// The delay-ladder mover (part of `sluice scheduler`); its metrics in `info`.
    pub fn start_delay_ladder(&self) -> RunningRole<prometheus::Registry> {
        let shutdown = CancellationToken::new();
        let registry = prometheus::Registry::new();
        let handle = tokio::spawn(sluice_scheduler::ladder::run(
            Arc::new(self.config.clone()),
            registry.clone(),
            shutdown.clone(),
        ));
        RunningRole {
            info: registry,
            shutdown,
            handle,
        }
    }

    pub async fn start_fanout(&self) -> RunningRole<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(sluice_fanout::serve(
            Arc::new(self.config.clone()),
            listener,
            shutdown.clone(),
        ));
        RunningRole {
            info: addr,
            shutdown,
            handle,
        }
    }

    /// A Redis connection for checking state directly.
    pub async fn redis(&self) -> sluice_core::redis_conn::RedisConn {
        sluice_core::redis_conn::connect(&self.config.redis)
            .await
            .expect("Redis is up")
    }

    /// The graph's key names for this test's prefix.
    pub async fn graph(&self) -> sluice_feed::graph::Graph {
        sluice_feed::graph::Graph::new(
            self.redis().await,
            &self.config.redis.key_prefix,
            &self.config.social,
        )
    }

    /// Produces records in order (one producer, acks=all, idempotent: order per key is kept).
    pub async fn produce_in_order(&self, topic: &str, records: &[(String, Vec<u8>)]) {
        let producer = self.producer();
        let sends: Vec<_> = records
            .iter()
            .map(|(key, value)| {
                producer
                    .send_result(FutureRecord::to(topic).key(key).payload(value))
                    .expect("queued")
            })
            .collect();
        for delivery in sends {
            delivery.await.expect("delivered").expect("acknowledged");
        }
    }

    /// The `SLUICE__…` variables that give a child `sluice` process this test's configuration.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let retry = &self.config.retry;
        let tiers: Vec<String> = retry
            .tiers
            .iter()
            .map(|d| format!("{}ms", d.0.as_millis()))
            .collect();
        let mut vars = vec![
            (
                "SLUICE__KAFKA__BOOTSTRAP_SERVERS".into(),
                self.config.kafka.bootstrap_servers.clone(),
            ),
            (
                "SLUICE__RETRY__MAX_ATTEMPTS".into(),
                retry.max_attempts.to_string(),
            ),
            ("SLUICE__RETRY__JITTER".into(), retry.jitter.to_string()),
            (
                "SLUICE__RETRY__TIMEOUT".into(),
                format!("{}ms", retry.timeout.as_millis()),
            ),
            (
                "SLUICE__TOPICS__PREFIX".into(),
                self.config.topics.prefix.clone(),
            ),
            (
                "SLUICE__REDIS__KEY_PREFIX".into(),
                self.config.redis.key_prefix.clone(),
            ),
            ("SLUICE__REDIS__URL".into(), self.config.redis.url.clone()),
            (
                "SLUICE__KINDS__WEBHOOK__SECRET".into(),
                WEBHOOK_SECRET.into(),
            ),
            (
                "SLUICE__WORKER__METRICS_LISTEN".into(),
                "127.0.0.1:0".into(),
            ),
            ("SLUICE__WORKER__COMMIT_INTERVAL".into(), "200ms".into()),
            (
                "SLUICE__STORAGE__URL".into(),
                self.config.storage.url.clone(),
            ),
            ("SLUICE__LOG__LEVEL".into(), "warn".into()),
            (
                "SLUICE__API__TOKENS__TEST__SHA256".into(),
                sluice_core::tokens::sha256_hex(TEST_TOKEN),
            ),
            (
                "SLUICE__API__TOKENS__TEST__SCOPES".into(),
                "publish,read,admin".into(),
            ),
            (
                "SLUICE__SOCIAL__METRICS_LISTEN".into(),
                "127.0.0.1:0".into(),
            ),
            (
                "SLUICE__SCHEDULER__METRICS_LISTEN".into(),
                "127.0.0.1:0".into(),
            ),
            (
                "SLUICE__SOCIAL__BATCH_SIZE".into(),
                self.config.social.batch_size.to_string(),
            ),
            (
                "SLUICE__SOCIAL__BATCH_PAUSE".into(),
                format!("{}ms", self.config.social.batch_pause.as_millis()),
            ),
            (
                "SLUICE__SOCIAL__CELEBRITY_THRESHOLD".into(),
                self.config.social.celebrity_threshold.to_string(),
            ),
        ];
        if !tiers.is_empty() {
            vars.push(("SLUICE__RETRY__TIERS".into(), tiers.join(",")));
        }
        let webhook = self.config.kinds.get("webhook");
        let allow_private = webhook
            .and_then(|w| w.get("allow_private"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        vars.push((
            "SLUICE__KINDS__WEBHOOK__ALLOW_PRIVATE".into(),
            allow_private.to_string(),
        ));
        vars
    }

    /// Starts the real `sluice` binary as a child process.
    pub fn spawn_sluice(&self, args: &[&str]) -> Child {
        self.spawn_sluice_with(args, &[])
    }

    /// Like `spawn_sluice`, with extra environment variables.
    pub fn spawn_sluice_with(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Child {
        Command::new(sluice_binary())
            .args(args)
            .envs(self.env_vars())
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .spawn()
            .expect("the sluice binary starts (make test builds it first)")
    }

    pub async fn job_status(&self, store: &StatusStore, job_id: &str) -> Option<JobStatus> {
        store.get(job_id).await.expect("Redis answers")
    }

    /// An acks=all idempotent producer, as the roles use.
    pub fn producer(&self) -> FutureProducer<QuietContext> {
        sluice_core::kafka::producer_config(&self.config.kafka, Duration::from_secs(10))
            .create_with_context(QuietContext)
            .unwrap()
    }

    /// A client that reads topics by assignment and `group`'s offsets, never joining it.
    pub fn reader(&self, group: &str) -> BaseConsumer<QuietContext> {
        kafka::reader_config(&self.config.kafka, group)
            .create_with_context(QuietContext)
            .unwrap()
    }

    /// Produces jobs the way the API does (one per body, concurrently); returns their ids.
    pub async fn publish_jobs(
        &self,
        kind: &str,
        bodies: impl IntoIterator<Item = String>,
    ) -> Vec<String> {
        let producer = self.producer();
        let topics = self.topics();
        let registry = self.registry();
        let sends = bodies.into_iter().map(|body| {
            let job = registry
                .prepare(kind, body.as_bytes())
                .expect("a valid job");
            // Its lane, or the delay ladder, as the api would send it.
            let route = job.route(&topics, kind, None);
            let producer = producer.clone();
            async move {
                let record = FutureRecord::to(&route.topic)
                    .key(&job.key)
                    .payload(&job.value)
                    .headers(route.headers);
                producer
                    .send(record, Duration::from_secs(10))
                    .await
                    .expect("Kafka acknowledges");
                job.job_id
            }
        });
        futures::future::join_all(sends).await
    }

    /// Waits until job `job_id` has status `wanted` and returns that status.
    pub async fn wait_for_status(
        &self,
        store: &StatusStore,
        job_id: &str,
        wanted: Status,
        timeout: Duration,
    ) -> JobStatus {
        let what = format!("job {job_id} to be {}", wanted.as_str());
        eventually(&what, timeout, || async {
            let status = store.get(job_id).await.expect("Redis answers");
            status.filter(|s| s.status == wanted)
        })
        .await
    }

    /// How many of `ids` currently have status `wanted`.
    pub async fn count_with_status(
        &self,
        store: &StatusStore,
        ids: &[String],
        wanted: Status,
    ) -> usize {
        let mut n = 0;
        for id in ids {
            if store
                .get(id)
                .await
                .expect("Redis answers")
                .is_some_and(|s| s.status == wanted)
            {
                n += 1;
            }
        }
        n
    }

    /// Records in a topic: the sum of its partitions' high watermarks.
    pub fn record_count(&self, topic: &str) -> i64 {
        let consumer = self.reader("sluice-test-reader");
        kafka::partitions(consumer.client(), topic, KAFKA_WAIT)
            .expect("metadata")
            .into_iter()
            .map(|p| {
                let (low, high) =
                    kafka::watermarks(consumer.client(), topic, p, KAFKA_WAIT).expect("watermarks");
                high - low
            })
            .sum()
    }

    /// Every record of a topic, in partition then offset order, read without a consumer group.
    pub fn read_all(&self, topic: &str) -> Vec<OwnedMessage> {
        // assign() needs a group id; nothing is committed under it.
        let consumer = self.reader("sluice-test-reader");
        let mut records = Vec::new();
        for partition in kafka::partitions(consumer.client(), topic, KAFKA_WAIT).unwrap() {
            let (low, high) =
                kafka::watermarks(consumer.client(), topic, partition, KAFKA_WAIT).unwrap();
            if high <= low {
                continue;
            }
            let mut list = rdkafka::TopicPartitionList::new();
            list.add_partition_offset(topic, partition, rdkafka::Offset::Offset(low))
                .unwrap();
            consumer.assign(&list).unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut read = 0;
            while read < high - low && Instant::now() < deadline {
                if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
                    records.push(message.detach());
                    read += 1;
                }
            }
        }
        records
    }

    /// The committed offsets of a group on a topic, summed over partitions (unset counts 0).
    pub fn committed_total(&self, group: &str, topic: &str) -> i64 {
        let consumer = self.reader(group);
        let mut list = rdkafka::TopicPartitionList::new();
        for partition in 0..self.config.topics.partitions {
            list.add_partition(topic, partition);
        }
        let committed = consumer
            .committed_offsets(list, Duration::from_secs(10))
            .expect("committed offsets");
        committed
            .elements()
            .iter()
            .map(|e| e.offset().to_raw().filter(|o| *o >= 0).unwrap_or(0))
            .sum()
    }
}

/// A test's topics are deleted when it ends: a broker holding every topic of every earlier run
/// (36 per test, ~4 000 partitions per `make test`) restarts slower with each run, and the
/// broker-restart test waits for that restart.
impl Drop for TestEnv {
    fn drop(&mut self) {
        // Named from the configuration as it was: a test may have removed its schemas by now.
        let mut names = std::mem::take(&mut *self.created.lock().unwrap());
        names.sort();
        names.dedup();
        let bootstrap = self.config.kafka.bootstrap_servers.clone();
        let (redis_url, key_prefix) = (
            self.config.redis.url.clone(),
            self.config.redis.key_prefix.clone(),
        );
        // Its own thread: Drop may run on a runtime thread, and the admin call is awaited here.
        let deleting = std::thread::spawn(move || {
            // Left behind, keys and topics of every run pile up on a developer's servers and
            // slow them down for the runs after (the dev Redis held 800 000 keys once).
            unlink_keys(&redis_url, &key_prefix);
            let admin: Result<rdkafka::admin::AdminClient<QuietContext>, _> =
                rdkafka::ClientConfig::new()
                    .set("bootstrap.servers", &bootstrap)
                    .create_with_context(QuietContext);
            let Ok(admin) = admin else { return };
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let options = rdkafka::admin::AdminOptions::new()
                .operation_timeout(Some(Duration::from_secs(10)));
            let _ = futures::executor::block_on(admin.delete_topics(&refs, &options));
        });
        let _ = deleting.join();
    }
}

/// Removes every key under `prefix` from the Redis (or each seed node of the Redis Cluster) at
/// `url`: one UNLINK per key, since a cluster node refuses keys of different slots in one.
fn unlink_keys(url: &str, prefix: &str) {
    let nodes = sluice_core::redis_conn::cluster_seeds(url).unwrap_or_else(|| vec![url.to_owned()]);
    for node in nodes {
        let Ok(mut redis) = redis::Client::open(node).and_then(|c| c.get_connection()) else {
            continue;
        };
        let mut cursor: u64 = 0;
        while let Ok((next, keys)) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query::<(u64, Vec<String>)>(&mut redis)
        {
            let mut unlink = redis::pipe();
            for key in &keys {
                unlink.cmd("UNLINK").arg(key).ignore();
            }
            let _: redis::RedisResult<()> = unlink.query(&mut redis);
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
}

/// A role started inside the test process.
pub struct RunningRole<T> {
    pub info: T,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<anyhow::Result<()>>,
}

impl<T> RunningRole<T> {
    /// Graceful stop; fails the test if the role returned an error.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("role stops within 30 s")
            .expect("role task did not panic")
            .expect("role ended without error");
    }
}

/// GETs `url` and parses the JSON answer; panics on transport errors or non-JSON.
pub async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// GETs `url` and returns the body as text (a `/metrics` page, say).
pub async fn get_text(http: &reqwest::Client, url: &str) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

/// POSTs `body` as JSON to `url` and parses the JSON answer.
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    http.post(url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A loopback port free right now, for a child process that must listen where the test knows.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `target/debug/sluice`, next to the test binary's `deps/` folder (or `$SLUICE_BIN`).
pub fn sluice_binary() -> PathBuf {
    if let Ok(path) = std::env::var("SLUICE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile_dir.join("sluice")
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `deploy/env.sh <command>` (tests that stop and start the broker).
pub fn env_script(command: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/env.sh");
    let status = Command::new(script)
        .arg(command)
        .status()
        .expect("env.sh runs");
    assert!(status.success(), "deploy/env.sh {command} failed");
}

/// The status code of one `GET` with exactly this target, over a raw socket, so that no client
/// library normalizes `..`, `//` or percent-escapes away first (path-traversal and auth tests).
pub fn raw_get_status(addr: std::net::SocketAddr, target: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer to {target}: {answer:?}"))
}
