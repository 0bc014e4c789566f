//! What `sluice schedules` shows: each schedule with its last fire (from the fired-ticks topic)
//! and its next tick.

use std::time::Duration;

use serde::Serialize;
use sluice_core::{headers::now_millis, topics::Topics, Config};
use sluice_kinds::Registry;

use crate::{catch_up::Ticks, fired, schedule};

/// One schedule, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleRow {
    pub name: String,
    /// `0 2 * * * (Europe/Paris)` or `every 5m`.
    pub schedule: String,
    pub kind: String,
    pub priority: Option<String>,
    pub missed: &'static str,
    pub last_fire: Option<LastFire>,
    /// The next tick, ms since the epoch.
    pub next_tick: Option<i64>,
    /// The same, as RFC 3339 in the schedule's zone.
    pub next_tick_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastFire {
    /// The tick, ms since the epoch.
    pub tick: i64,
    /// The same, as RFC 3339 in the schedule's zone.
    pub tick_at: String,
    pub job_id: String,
    /// When the leader committed it, ms since the epoch.
    pub fired_at: i64,
}

/// Every configured schedule (checked as the scheduler would), in configuration order.
pub async fn rows(config: &Config, registry: &Registry) -> anyhow::Result<Vec<ScheduleRow>> {
    let schedules = schedule::load(config, registry)?;
    let topics = Topics::new(&config.topics);
    let (kafka, group, topic) = (
        config.kafka.clone(),
        topics.scheduler_group(),
        topics.schedule_fires(),
    );
    let fired = tokio::task::spawn_blocking(move || {
        fired::read_all(&kafka, &group, &topic, Duration::from_secs(15))
    })
    .await??;
    let now = now_millis();
    Ok(schedules
        .iter()
        .map(|s| {
            let last = fired.get(&s.name);
            let next = s.when.next_after(last.map_or(now, |f| f.tick.max(now)));
            ScheduleRow {
                name: s.name.clone(),
                schedule: s.when.describe(),
                kind: s.kind.clone(),
                priority: s.priority.map(|p| p.as_str().to_owned()),
                missed: s.missed.as_str(),
                last_fire: last.map(|f| LastFire {
                    tick: f.tick,
                    tick_at: s.when.format(f.tick),
                    job_id: f.job_id.clone(),
                    fired_at: f.fired_at,
                }),
                next_tick: next,
                next_tick_at: next.map(|t| s.when.format(t)),
            }
        })
        .collect())
}
