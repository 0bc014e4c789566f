//! `sluice stats`: queue health in a terminal.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use sluice_core::Config;
use sluice_kinds::Registry;
use sluice_stats::{QueueStats, StatsReader};

pub async fn run(
    config: &Config,
    registry: Arc<Registry>,
    json: bool,
    watch: bool,
) -> anyhow::Result<()> {
    let reader = StatsReader::new(config, registry).context("connecting to Kafka")?;
    loop {
        let stats = reader.collect().await.context("reading queue health")?;
        if json {
            println!("{}", serde_json::to_string(&stats)?);
        } else {
            if watch {
                // Clear the screen and home the cursor, like `watch`.
                print!("\x1b[2J\x1b[H");
            }
            print_table(&stats);
        }
        if !watch {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

fn print_table(stats: &QueueStats) {
    println!(
        "pending {}   failed {}   workers {}",
        stats.pending, stats.failed, stats.workers
    );
    println!();
    println!(
        "{:<12} {:>9} {:>8} {:>8} {:>10}  retry backlog",
        "KIND", "PENDING", "FAILED", "WORKERS", "OLDEST"
    );
    for (kind, k) in &stats.kinds {
        let backlog: Vec<String> = k
            .retry_backlog
            .iter()
            .map(|t| format!("{}:{}", t.tier, t.backlog))
            .collect();
        println!(
            "{kind:<12} {:>9} {:>8} {:>8} {:>9.1}s  {}",
            k.pending,
            k.failed,
            k.workers,
            k.lag_seconds,
            backlog.join(" ")
        );
    }
    println!();
    println!(
        "{:<40} {:<32} {:>9} {:>10}",
        "TOPIC", "GROUP", "LAG", "OLDEST"
    );
    for (topic, t) in &stats.topics {
        println!(
            "{topic:<40} {:<32} {:>9} {:>9.1}s",
            t.group, t.lag, t.lag_seconds
        );
    }
}
