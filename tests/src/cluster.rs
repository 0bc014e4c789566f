//! The local 3-broker Kafka cluster of `deploy/kafka-cluster.sh` (started by `make test`), for
//! tests of sluice on a replicated cluster.

use std::{path::PathBuf, process::Command, time::Duration};

use rdkafka::{
    admin::{AdminClient, AdminOptions, ResourceSpecifier},
    consumer::{BaseConsumer, Consumer},
};
use sluice_core::{kafka::QuietContext, Config};

use crate::TestEnv;

/// The cluster's brokers: node 1, 2 and 3 (node id = broker id).
pub const KAFKA_CLUSTER: &str = "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094";

/// Runs `deploy/kafka-cluster.sh <args>`; returns its standard output, panics if it fails.
pub fn cluster_script(args: &[&str]) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/kafka-cluster.sh");
    let output = Command::new(script)
        .args(args)
        .output()
        .expect("deploy/kafka-cluster.sh runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "deploy/kafka-cluster.sh {} failed: {stdout}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

impl TestEnv {
    /// A test environment on the 3-broker cluster; fails (never skips) when the cluster is not
    /// running with all three brokers.
    pub async fn on_kafka_cluster(adjust: impl FnOnce(&mut Config)) -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/kafka-cluster.sh");
        let status = Command::new(script)
            .arg("status")
            .output()
            .expect("deploy/kafka-cluster.sh runs");
        assert!(
            status.status.success(),
            "the 3-broker Kafka cluster is not running with all three brokers; start it with \
             `deploy/kafka-cluster.sh up` (make test does):\n{}",
            String::from_utf8_lossy(&status.stdout)
        );
        Self::with_config(|config| {
            config.kafka.bootstrap_servers = KAFKA_CLUSTER.into();
            adjust(config);
        })
        .await
    }

    /// The leader's broker id of each partition of `topic`, by partition id.
    pub fn partition_leaders(&self, topic: &str) -> Vec<(i32, i32)> {
        let consumer = self.reader("sluice-test-reader");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions())
            .map(|p| (p.id(), p.leader()))
            .collect()
    }

    /// Per partition of `topic`: its replicas and its in-sync replicas (broker ids, sorted).
    pub fn replicas_and_isr(&self, topic: &str) -> Vec<(Vec<i32>, Vec<i32>)> {
        let consumer: &BaseConsumer<QuietContext> = &self.reader("sluice-test-reader");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions())
            .map(|p| {
                let (mut replicas, mut isr) = (p.replicas().to_vec(), p.isr().to_vec());
                replicas.sort_unstable();
                isr.sort_unstable();
                (replicas, isr)
            })
            .collect()
    }

    /// A topic's configuration value as the brokers report it (its own or the default).
    pub async fn topic_config(&self, topic: &str, key: &str) -> Option<String> {
        let admin: AdminClient<QuietContext> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.config.kafka.bootstrap_servers)
            .create_with_context(QuietContext)
            .unwrap();
        let described = admin
            .describe_configs(
                &[ResourceSpecifier::Topic(topic)],
                &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .expect("DescribeConfigs answers");
        let resource = described
            .into_iter()
            .next()
            .expect("one resource")
            .expect("the topic's configuration");
        resource.get(key).and_then(|entry| entry.value.clone())
    }

    /// This test's partitions (`topic[partition]`) whose ISR does not list `broker`, from one
    /// metadata request.
    pub fn partitions_without_in_sync(&self, broker: i32) -> Vec<String> {
        let consumer = self.reader("sluice-test-reader");
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .expect("metadata");
        let mut lagging = Vec::new();
        for topic in metadata.topics() {
            if !topic.name().starts_with(&self.config.topics.prefix) {
                continue;
            }
            for partition in topic.partitions() {
                if !partition.isr().contains(&broker) {
                    lagging.push(format!("{}[{}]", topic.name(), partition.id()));
                }
            }
        }
        lagging
    }
}
