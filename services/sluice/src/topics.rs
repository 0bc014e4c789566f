//! `sluice topics ...`

use anyhow::Context;
use sluice_core::{topics::Topics, Config};

pub async fn ensure(config: &Config) -> anyhow::Result<()> {
    let names = Topics::new(&config.topics).all();
    let created = sluice_core::kafka::ensure_topics(&config.kafka, &config.topics, &names)
        .await
        .with_context(|| format!("creating topics on {}", config.kafka.bootstrap_servers))?;
    for name in &names {
        let state = if created.contains(name) {
            "created"
        } else {
            "exists"
        };
        println!("{state:>8}  {name}");
    }
    Ok(())
}

pub fn list(config: &Config) {
    for name in Topics::new(&config.topics).all() {
        println!("{name}");
    }
}
