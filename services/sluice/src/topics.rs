//! `sluice topics ...`

use anyhow::Context;
use sluice_core::Config;
use sluice_kinds::Registry;

pub async fn ensure(config: &Config, registry: &Registry) -> anyhow::Result<()> {
    let specs = registry.topic_specs(config);
    let ensured = sluice_core::topic_setup::ensure_topics(&config.kafka, &config.topics, &specs)
        .await
        .with_context(|| format!("creating topics on {}", config.kafka.bootstrap_servers))?;
    println!(
        "brokers up: {}; new topics get replication factor {}, min.insync.replicas {}",
        ensured.brokers, ensured.replication.factor, ensured.replication.min_insync
    );
    for spec in &specs {
        let state = if ensured.created.contains(&spec.name) {
            "created"
        } else {
            "exists"
        };
        println!("{state:>8}  {}", spec.name);
    }
    for (topic, replicas) in &ensured.under_replicated {
        println!(
            "warning: {topic} exists with {replicas} replicas, fewer than {}; existing topics are left alone",
            ensured.replication.factor
        );
    }
    Ok(())
}

pub fn list(config: &Config, registry: &Registry) {
    for spec in registry.topic_specs(config) {
        let compacted = if spec.compacted { ", compacted" } else { "" };
        println!("{}  ({} partitions{compacted})", spec.name, spec.partitions);
    }
}
