//! The leader's loop: while this replica leads, fire every due tick of every schedule, then
//! sleep until the next one.
//!
//! Each leadership term starts with a fresh transactional producer (`fire::Term`, fencing the
//! previous leader), then reads the fired ticks to learn where each schedule is, and only then
//! fires. Any transaction error ends the term: the next one starts over from what Kafka holds,
//! which is always correct, whereas this replica's memory may not be.

use std::{collections::HashMap, sync::Arc, time::Duration};

use rdkafka::message::OwnedHeaders;
use sluice_core::{
    headers::now_millis, kafka_stats::KafkaStats, status::StatusStore, topics::Topics, Config,
};
use sluice_kinds::Registry;
use tokio::sync::{watch, OnceCell};
use tokio_util::sync::CancellationToken;

use sluice_schedules::{
    fired::{self, Fired},
    schedule::Schedule,
};

use crate::{
    catch_up::{self, Ticks},
    fire::{FireError, Record, Term},
    metrics::SchedulerMetrics,
};

/// Ticks fired in one transaction at most: a long catch-up is committed in steps.
const MAX_TICKS_PER_TRANSACTION: usize = 100;
/// The longest sleep between checks, so a wall clock that jumps is noticed within a second.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// How long the fired ticks may take to read when a term starts.
const READ_BOUND: Duration = Duration::from_secs(30);
/// The pause before a new term after one failed.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// What the leader loop needs.
pub struct Scheduler {
    pub config: Arc<Config>,
    pub registry: Arc<Registry>,
    pub schedules: Vec<Schedule>,
    pub topics: Topics,
    pub metrics: SchedulerMetrics,
    pub kafka_stats: KafkaStats,
    /// Set once Redis answers; job status is written best-effort.
    pub status: Arc<OnceCell<StatusStore>>,
}

impl Scheduler {
    /// The one `transactional.id` of every replica (per topic prefix, so environments sharing a
    /// cluster do not fence each other).
    pub fn transactional_id(&self) -> String {
        format!("{}sluice-scheduler", self.config.topics.prefix)
    }
}

/// Fires while `leading` is true, until `shutdown`.
pub async fn run(
    scheduler: Arc<Scheduler>,
    mut leading: watch::Receiver<bool>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            became = leading.wait_for(|leading| *leading) => {
                if became.is_err() {
                    // The election ended (shutdown): there is nothing to lead.
                    return Ok(());
                }
            }
        }
        if let Err(error) = lead(&scheduler, &mut leading, &shutdown).await {
            tracing::warn!(error = %error, "scheduler term ended; starting a new one if still leader");
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(RETRY_PAUSE) => {}
            }
        }
    }
}

fn still_leading(leading: &watch::Receiver<bool>, shutdown: &CancellationToken) -> bool {
    *leading.borrow() && !shutdown.is_cancelled()
}

/// One leadership term: fence, read, fire until leadership or shutdown ends it.
async fn lead(
    scheduler: &Scheduler,
    leading: &mut watch::Receiver<bool>,
    shutdown: &CancellationToken,
) -> Result<(), FireError> {
    let config = &scheduler.config;
    let term = Term::begin(
        &config.kafka,
        &scheduler.transactional_id(),
        scheduler.kafka_stats.clone(),
    )
    .await?;
    let result = fire_while_leading(scheduler, &term, leading, shutdown).await;
    term.end().await;
    result
}

async fn fire_while_leading(
    scheduler: &Scheduler,
    term: &Term,
    leading: &mut watch::Receiver<bool>,
    shutdown: &CancellationToken,
) -> Result<(), FireError> {
    if !still_leading(leading, shutdown) {
        return Ok(());
    }
    let started = now_millis();
    let (kafka, group, topic) = (
        scheduler.config.kafka.clone(),
        scheduler.topics.scheduler_group(),
        scheduler.topics.schedule_fires(),
    );
    let fired =
        tokio::task::spawn_blocking(move || fired::read_all(&kafka, &group, &topic, READ_BOUND))
            .await
            .map_err(|_| FireError::Panicked)?;
    // Firing without knowing the last ticks could repeat them: a failed read ends the term.
    let fired = fired?;
    // Where each schedule is: its newest fired tick, or (never fired) now, so a new schedule
    // starts with its next tick rather than catching up from the epoch.
    let mut cursors: Vec<i64> = scheduler
        .schedules
        .iter()
        .map(|s| fired.get(&s.name).map_or(started, |f| f.tick))
        .collect();
    for schedule in &scheduler.schedules {
        if let Some(last) = fired.get(&schedule.name) {
            scheduler
                .metrics
                .last_fire
                .with_label_values(&[&schedule.name])
                .set(last.tick as f64 / 1000.0);
        }
    }
    tracing::info!(
        schedules = scheduler.schedules.len(),
        recorded = fired.len(),
        "leading: firing schedules"
    );

    while still_leading(leading, shutdown) {
        let now = now_millis();
        let batch = due_now(scheduler, &mut cursors, now);
        if !batch.is_empty() {
            fire(scheduler, term, &batch).await?;
            for tick in &batch {
                cursors[tick.schedule] = cursors[tick.schedule].max(tick.tick);
            }
            continue;
        }
        let next = scheduler
            .schedules
            .iter()
            .zip(&cursors)
            .filter_map(|(s, cursor)| s.when.next_after((*cursor).max(now)))
            .min();
        let wait = next.map_or(MAX_SLEEP, |at| {
            Duration::from_millis((at - now_millis()).max(0) as u64).min(MAX_SLEEP)
        });
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = leading.changed() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    Ok(())
}

/// A tick to fire, with its job made.
struct DueTick {
    schedule: usize,
    tick: i64,
    job_id: String,
    job: Record,
    /// The job's lane and `traceparent`, for its `queued` status.
    lane: sluice_core::lanes::Priority,
    traceparent: String,
}

/// The due ticks of every schedule (at most one transaction's worth), each made into its job.
/// Ticks passed over (policy `skip`, or a payload that no longer makes a valid job) move the
/// cursor at once.
fn due_now(scheduler: &Scheduler, cursors: &mut [i64], now: i64) -> Vec<DueTick> {
    let catch_up = scheduler.config.scheduler.catch_up;
    let mut batch = Vec::new();
    for (index, schedule) in scheduler.schedules.iter().enumerate() {
        let left = MAX_TICKS_PER_TRANSACTION - batch.len();
        let due = catch_up::due(
            &schedule.when,
            cursors[index],
            now,
            catch_up,
            schedule.missed,
            left,
        );
        if let Some(through) = due.skipped_through {
            tracing::warn!(
                schedule = %schedule.name,
                through = %schedule.when.format(through),
                "ticks older than scheduler.catch_up skipped (every replica was down)"
            );
            cursors[index] = cursors[index].max(through);
        }
        for tick in due.fire {
            let job_id = schedule.job_id(tick);
            match make_job(scheduler, schedule, &job_id) {
                Ok((job, lane, traceparent)) => batch.push(DueTick {
                    schedule: index,
                    tick,
                    job_id,
                    job,
                    lane,
                    traceparent,
                }),
                Err(error) => {
                    // Checked at start, so only a time-relative field (an `expires_at` now
                    // past) gets here: that tick cannot be a job.
                    tracing::error!(
                        schedule = %schedule.name,
                        tick = %schedule.when.format(tick),
                        error = %error,
                        "the schedule's payload is not a valid job any more; tick not fired"
                    );
                    cursors[index] = cursors[index].max(tick);
                }
            }
        }
        if batch.len() >= MAX_TICKS_PER_TRANSACTION {
            break;
        }
    }
    batch
}

fn make_job(
    scheduler: &Scheduler,
    schedule: &Schedule,
    job_id: &str,
) -> Result<(Record, sluice_core::lanes::Priority, String), sluice_kinds::JobError> {
    let mut job =
        scheduler
            .registry
            .prepare_as(&schedule.kind, &schedule.payload, job_id.to_owned())?;
    if let Some(priority) = schedule.priority {
        job.priority = priority;
    }
    let route = job.route(&scheduler.topics, &schedule.kind, None);
    let record = Record {
        topic: route.topic,
        key: job.key,
        value: job.value,
        headers: Some(route.headers),
    };
    Ok((record, job.priority, route.traceparent))
}

/// Commits `batch` with each schedule's newest tick in the fired-ticks topic, in one
/// transaction; then metrics and (best effort) `queued` statuses.
async fn fire(scheduler: &Scheduler, term: &Term, batch: &[DueTick]) -> Result<(), FireError> {
    let fired_at = now_millis();
    let mut newest: HashMap<usize, &DueTick> = HashMap::new();
    for tick in batch {
        let entry = newest.entry(tick.schedule).or_insert(tick);
        if tick.tick > entry.tick {
            *entry = tick;
        }
    }
    let fires_topic = scheduler.topics.schedule_fires();
    let mut records: Vec<Record> = batch
        .iter()
        .map(|tick| Record {
            topic: tick.job.topic.clone(),
            key: tick.job.key.clone(),
            value: tick.job.value.clone(),
            headers: tick.job.headers.clone(),
        })
        .collect();
    for tick in newest.values() {
        let record = Fired {
            tick: tick.tick,
            job_id: tick.job_id.clone(),
            fired_at,
        };
        records.push(Record {
            topic: fires_topic.clone(),
            key: scheduler.schedules[tick.schedule].name.clone(),
            value: record.to_json(),
            headers: None::<OwnedHeaders>,
        });
    }
    term.commit(records).await?;
    let committed = now_millis();
    for tick in batch {
        let schedule = &scheduler.schedules[tick.schedule];
        let name = [schedule.name.as_str()];
        scheduler.metrics.fires.with_label_values(&name).inc();
        scheduler
            .metrics
            .lateness
            .observe((committed - tick.tick).max(0) as f64 / 1000.0);
        scheduler
            .metrics
            .last_fire
            .with_label_values(&name)
            .set(tick.tick as f64 / 1000.0);
        tracing::debug!(schedule = %schedule.name, job_id = %tick.job_id, "tick fired");
    }
    if let Some(status) = scheduler.status.get() {
        let status = status.clone();
        let jobs: Vec<(String, String, sluice_core::lanes::Priority, String)> = batch
            .iter()
            .map(|t| {
                (
                    t.job_id.clone(),
                    scheduler.schedules[t.schedule].kind.clone(),
                    t.lane,
                    t.traceparent.clone(),
                )
            })
            .collect();
        // Status is for people (Kafka holds the job): never wait for it, never fail on it.
        tokio::spawn(async move {
            for (job_id, kind, lane, traceparent) in jobs {
                let accepted = sluice_core::status::Accepted {
                    kind: &kind,
                    lane,
                    traceparent: Some(&traceparent),
                };
                if let Err(error) = status.mark_queued(&job_id, &accepted).await {
                    tracing::debug!(error = %error, job_id, "queued status not written");
                    break;
                }
            }
        });
    }
    Ok(())
}
