//! `sluice topics ...`

use anyhow::Context;
use sluice_core::Config;
use sluice_kinds::Registry;

pub async fn ensure(config: &Config, registry: &Registry) -> anyhow::Result<()> {
    let specs = registry.topic_specs(config);
    let created =
        sluice_core::kafka::ensure_topics(&config.kafka, config.topics.replication_factor, &specs)
            .await
            .with_context(|| format!("creating topics on {}", config.kafka.bootstrap_servers))?;
    for spec in &specs {
        let state = if created.contains(&spec.name) {
            "created"
        } else {
            "exists"
        };
        println!("{state:>8}  {}", spec.name);
    }
    Ok(())
}

pub fn list(config: &Config, registry: &Registry) {
    for spec in registry.topic_specs(config) {
        let compacted = if spec.compacted { ", compacted" } else { "" };
        println!("{}  ({} partitions{compacted})", spec.name, spec.partitions);
    }
}
