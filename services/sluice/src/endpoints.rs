//! `sluice endpoints list [--json]` and `sluice endpoints enable <url>`: the endpoints workers
//! disabled after a 410 Gone (`sluice_core::endpoints`).

use std::{
    process::ExitCode,
    time::{Duration, UNIX_EPOCH},
};

use anyhow::Context;
use sluice_core::{endpoints::EndpointStore, Config};

async fn store(config: &Config) -> anyhow::Result<EndpointStore> {
    let conn = sluice_core::redis_conn::connect(&config.redis)
        .await
        .with_context(|| {
            format!(
                "connecting to Redis at {}",
                sluice_core::redact::url(&config.redis.url)
            )
        })?;
    Ok(EndpointStore::new(conn, &config.redis.key_prefix))
}

pub async fn list(config: &Config, json: bool) -> anyhow::Result<()> {
    let entries = store(config)
        .await?
        .list()
        .await
        .context("reading disabled endpoints")?;
    if json {
        let rows: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "url": e.url, "kind": e.kind, "disabled_at": e.disabled_at,
                    "job_id": e.job_id, "error": e.error,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if entries.is_empty() {
        println!("no endpoint is disabled");
        return Ok(());
    }
    let url_width = entries
        .iter()
        .map(|e| e.url.chars().count())
        .max()
        .unwrap_or(0);
    let kind_width = entries
        .iter()
        .map(|e| e.kind.chars().count())
        .max()
        .unwrap_or(0);
    println!(
        "{:<url_width$}  {:<kind_width$}  {:<24}  job id",
        "url", "kind", "disabled at"
    );
    for e in &entries {
        let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(e.disabled_at).unwrap_or(0));
        println!(
            "{:<url_width$}  {:<kind_width$}  {:<24}  {}",
            e.url,
            e.kind,
            humantime::format_rfc3339_millis(at).to_string(),
            e.job_id
        );
    }
    Ok(())
}

/// Exits 1 when the URL was not disabled (a typo should not look like success).
pub async fn enable(config: &Config, url: &str) -> anyhow::Result<ExitCode> {
    let key = sluice_kinds::outgoing::endpoint_key(url);
    let enabled = store(config)
        .await?
        .enable(&key)
        .await
        .context("enabling the endpoint")?;
    if enabled {
        println!(
            "enabled {key}: workers call it again within {} s",
            sluice_core::endpoints::REFRESH_INTERVAL.as_secs()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{key} is not disabled (`sluice endpoints list` shows those that are)");
        Ok(ExitCode::FAILURE)
    }
}
