//! `sluice schedules [--json]`

use anyhow::Context;
use sluice_core::Config;
use sluice_kinds::Registry;

pub async fn run(config: &Config, registry: &Registry, json: bool) -> anyhow::Result<()> {
    let rows = sluice_schedules::list::rows(config, registry)
        .await
        .with_context(|| format!("reading schedules from {}", config.kafka.bootstrap_servers))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no schedules configured ([[schedules]] in the configuration)");
        return Ok(());
    }
    let table: Vec<[String; 7]> = rows
        .iter()
        .map(|row| {
            let kind = match &row.priority {
                Some(priority) => format!("{} ({priority})", row.kind),
                None => row.kind.clone(),
            };
            [
                row.name.clone(),
                row.schedule.clone(),
                kind,
                row.missed.to_owned(),
                row.last_fire
                    .as_ref()
                    .map_or_else(|| "never".to_owned(), |f| f.tick_at.clone()),
                row.recent_fires.len().to_string(),
                row.next_tick_at.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    let header = [
        "name",
        "schedule",
        "kind",
        "missed",
        "last fire",
        // How many recent fires the compacted fired-ticks topic still holds (at most 10).
        "recent",
        "next fire",
    ];
    let mut widths = header.map(str::len);
    for row in &table {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&header.map(String::from));
    for row in &table {
        line(row);
    }
    Ok(())
}
