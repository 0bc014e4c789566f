//! `sluice dlq ...`: dead letters in a terminal.

use std::{io::IsTerminal, process::ExitCode, time::UNIX_EPOCH};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Arc;

use sluice_core::{json::avro_to_json, Config};
use sluice_dlq::{DeadLetter, Dlq, Filter, Selector};
use sluice_kinds::Registry;

use crate::cli::DlqCommand;

pub async fn run(
    config: &Config,
    registry: Arc<Registry>,
    command: DlqCommand,
) -> anyhow::Result<ExitCode> {
    let dlq = Dlq::new(config, registry.clone()).context("connecting to Kafka")?;
    match command {
        DlqCommand::List {
            kind,
            limit,
            error_class,
            since,
            all,
        } => {
            let filter = Filter {
                error_class,
                since_ms: since,
                include_handled: all,
                limit: Some(limit),
            };
            print_table(&dlq.list(&kind, &filter).await?, all);
        }
        DlqCommand::Show { kind, offset } => {
            print_one(&registry, &kind, &dlq.show(&kind, offset).await?)
        }
        DlqCommand::Replay {
            kind,
            offset,
            job_id,
            error_class,
            all,
            dry_run,
        } => {
            let selector = match (offset, job_id, error_class, all) {
                (Some(p), ..) => Selector::Position(p),
                (_, Some(id), ..) => Selector::JobId(id),
                (_, _, Some(class), _) => Selector::ErrorClass(class),
                _ => Selector::All,
            };
            let bar = progress_bar();
            let report = dlq
                .replay(&kind, &selector, dry_run, |done, total| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                })
                .await?;
            bar.finish_and_clear();
            for d in &report.replayed {
                println!("{}  {}  {}", d.position, d.job_id, d.error_class);
            }
            let verb = if dry_run { "would replay" } else { "replayed" };
            println!(
                "{verb} {} dead letter(s) to {}",
                report.replayed.len(),
                kind
            );
        }
        DlqCommand::Purge { kind, before } => {
            let purged = dlq.purge(&kind, before).await?;
            println!("purged {purged} dead letter(s) of {kind}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn time(ms: i64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn print_table(letters: &[DeadLetter], with_state: bool) {
    println!(
        "{:<8} {:<36} {:>8} {:<10} {:<20} {:<40}{}",
        "OFFSET",
        "JOB ID",
        "ATTEMPTS",
        "CLASS",
        "DEAD AT",
        "ERROR",
        if with_state { " STATE" } else { "" }
    );
    for d in letters {
        let error: String = d.error.chars().take(40).collect();
        let state = if with_state {
            format!(" {:?}", d.state).to_lowercase()
        } else {
            String::new()
        };
        println!(
            "{:<8} {:<36} {:>8} {:<10} {:<20} {:<40}{state}",
            d.position.to_string(),
            d.job_id,
            d.attempts,
            d.error_class,
            time(d.dead_at),
            error
        );
    }
    println!("{} dead letter(s)", letters.len());
}

fn print_one(registry: &Registry, kind: &str, d: &DeadLetter) {
    println!("offset:    {}", d.position);
    println!("job id:    {}", d.job_id);
    println!("state:     {:?}", d.state);
    println!("dead at:   {}", time(d.dead_at));
    println!(
        "key:       {}",
        d.key
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default()
    );
    println!("headers:");
    for (key, value) in &d.headers {
        let value = value
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        println!("  {key}: {value}");
    }
    match registry.decode(kind, &d.payload) {
        Ok(decoded) => {
            let json = avro_to_json(decoded.value);
            println!("payload (v{}):", decoded.writer.version);
            println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
        }
        Err(e) => {
            println!("payload does not decode ({e}); {} bytes:", d.payload.len());
            let hex: Vec<String> = d.payload.iter().map(|b| format!("{b:02x}")).collect();
            for line in hex.chunks(32) {
                println!("  {}", line.join(" "));
            }
        }
    }
}

fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} replayed").expect("static template"),
    );
    bar
}
