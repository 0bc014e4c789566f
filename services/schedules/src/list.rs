//! What `sluice schedules` (and the console) shows: each schedule with its last fire and its
//! recent ones (from the fired-ticks topic), and its next tick.

use std::time::Duration;

use serde::Serialize;
use sluice_core::{headers::now_millis, topics::Topics, Config};
use sluice_kinds::Registry;

use crate::{
    fired::{self, Fired, FiredError},
    schedule::{self, ScheduleError, When},
    Ticks,
};

/// At most this many recent fires are listed per schedule.
pub const RECENT_FIRES: usize = 10;

/// One schedule, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleRow {
    pub name: String,
    /// `0 2 * * * (Europe/Paris)` or `every 5m`.
    pub schedule: String,
    pub kind: String,
    pub priority: Option<String>,
    pub missed: &'static str,
    pub last_fire: Option<Fire>,
    /// The schedule's fires the fired-ticks topic still holds, newest first, at most
    /// [`RECENT_FIRES`]. The topic is compacted by schedule name, so this is as many as
    /// compaction has left: at least the last fire (when there was one), often more.
    pub recent_fires: Vec<Fire>,
    /// The next tick, ms since the epoch.
    pub next_tick: Option<i64>,
    /// The same, as RFC 3339 in the schedule's zone.
    pub next_tick_at: Option<String>,
}

/// One fired tick of a schedule.
#[derive(Debug, Clone, Serialize)]
pub struct Fire {
    /// The tick, ms since the epoch.
    pub tick: i64,
    /// The same, as RFC 3339 in the schedule's zone.
    pub tick_at: String,
    pub job_id: String,
    /// When the leader committed it, ms since the epoch.
    pub fired_at: i64,
}

impl Fire {
    fn new(fired: &Fired, when: &When) -> Self {
        Fire {
            tick: fired.tick,
            tick_at: when.format(fired.tick),
            job_id: fired.job_id.clone(),
            fired_at: fired.fired_at,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error(transparent)]
    Fired(#[from] FiredError),
    #[error("reading the fired ticks: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Every configured schedule (checked as the scheduler would), in configuration order. Reads
/// the fired-ticks topic to its end (up to 15 s).
pub async fn rows(config: &Config, registry: &Registry) -> Result<Vec<ScheduleRow>, ListError> {
    let schedules = schedule::load(config, registry)?;
    let topics = Topics::new(&config.topics);
    let (kafka, group, topic) = (
        config.kafka.clone(),
        topics.scheduler_group(),
        topics.schedule_fires(),
    );
    let fired = tokio::task::spawn_blocking(move || {
        fired::read_recent(
            &kafka,
            &group,
            &topic,
            Duration::from_secs(15),
            RECENT_FIRES,
        )
    })
    .await??;
    let now = now_millis();
    Ok(schedules
        .iter()
        .map(|s| {
            let recent = fired.get(&s.name).map_or(&[][..], Vec::as_slice);
            let last = recent.first();
            let next = s.when.next_after(last.map_or(now, |f| f.tick.max(now)));
            ScheduleRow {
                name: s.name.clone(),
                schedule: s.when.describe(),
                kind: s.kind.clone(),
                priority: s.priority.map(|p| p.as_str().to_owned()),
                missed: s.missed.as_str(),
                last_fire: last.map(|f| Fire::new(f, &s.when)),
                recent_fires: recent.iter().map(|f| Fire::new(f, &s.when)).collect(),
                next_tick: next,
                next_tick_at: next.map(|t| s.when.format(t)),
            }
        })
        .collect())
}
