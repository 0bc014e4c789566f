//! The overview: per kind and lane, what waits, how old it is, who works on it and how it
//! went lately; red where an alert rule of deploy/prometheus/alerts.yml would fire (read
//! without their `for:` durations: the console shows the state now).

use std::{collections::BTreeMap, time::Duration};

use axum::{extract::State, http::StatusCode, response::Response, Extension};
use maud::{html, Markup};
use sluice_core::{
    headers::now_millis,
    in_flight::{read_in_flight, InFlight},
    lanes::Priority,
    outcomes::{self, KindOutcomes, OutcomeSeries},
};
use sluice_stats::{KindStats, QueueStats, StatsError};

use super::{
    layout::{age, per_minute, respond, segment, shell},
    sparkline::{sparkline, Series},
    Session,
};
use crate::state::AppState;

/// Numbers older than this are read again when a page needs them.
const FRESH: Duration = Duration::from_secs(2);

/// The thresholds of the alert rules (deploy/prometheus/alerts.yml).
const PENDING_ALERT: i64 = 10_000;
const LAG_ALERT_SECONDS: f64 = 60.0;
/// SluiceHandlerErrorRatioHigh: over 10 % of 5 minutes' deliveries failing, at 0.1 jobs/s or more.
const ERROR_RATIO_ALERT: f64 = 0.10;
const ERROR_RATIO_MIN_FINISHED: u64 = 30;
/// The sparklines' span, in minutes.
const HISTORY_MINUTES: u32 = 60;

/// What Redis adds to Kafka's numbers: outcomes per minute and jobs in flight, per kind.
struct Activity {
    outcomes: BTreeMap<String, KindOutcomes>,
    in_flight: BTreeMap<String, InFlight>,
}

async fn activity(state: &AppState) -> Option<Activity> {
    let kinds = state.registry.names();
    let redis = state.status.connection();
    let prefix = &state.config.redis.key_prefix;
    let now = now_millis();
    let (outcomes, in_flight) = tokio::join!(
        outcomes::read(&redis, prefix, &kinds, HISTORY_MINUTES, now),
        read_in_flight(&redis, prefix, &kinds, now),
    );
    match (outcomes, in_flight) {
        (Ok(outcomes), Ok(in_flight)) => Some(Activity {
            outcomes,
            in_flight,
        }),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "reading job outcomes from Redis for the console failed");
            None
        }
    }
}

/// Queue health, read at most every `FRESH` (and by the metrics exporter in between).
pub async fn queue_stats(state: &AppState) -> Result<QueueStats, StatsError> {
    if let Some(stats) = state.queue_metrics.latest(FRESH) {
        return Ok(stats);
    }
    let stats = state.stats.collect().await?;
    state.queue_metrics.set(&stats);
    Ok(stats)
}

pub async fn page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
) -> Response {
    let (stats, activity) = tokio::join!(queue_stats(&state), activity(&state));
    if let Err(e) = &stats {
        tracing::warn!(error = %e, "reading queue health for the console failed");
    }
    let body = html! {
        h1 { "Overview" }
        // Replaced in place every 5 s by htmx; without JavaScript, reload the page.
        section #overview hx-get="/console" hx-trigger="every 5s" hx-select="#overview" hx-swap="outerHTML" {
            @match &stats {
                Ok(stats) => (kinds_table(&state, stats, activity.as_ref())),
                Err(_) => p.notice.bad role="alert" { "Queue health cannot be read from Kafka right now." },
            }
            @if activity.is_none() {
                p.notice.bad role="alert" { "Rates and jobs in flight cannot be read from Redis right now." }
            }
            p.refresh { "Rates per minute over the last 5 and 60 minutes; the line is the last hour (green succeeded, red retried or dead-lettered). Refreshed every 5 s. " a href="/console" { "Reload" } }
        }
    };
    respond(
        StatusCode::OK,
        shell("Overview", "/console", Some(&session), body),
    )
}

fn kinds_table(state: &AppState, stats: &QueueStats, activity: Option<&Activity>) -> Markup {
    let empty = OutcomeSeries::default();
    html! {
        table #kinds {
            thead { tr {
                th { "Kind" } th { "Lane" } th.num { "Pending" } th.num { "Oldest" } th.num { "In flight" }
                th.num { "Succeeded 5m / 60m" } th.num { "Retried 5m / 60m" } th.num { "Dead 5m / 60m" } th { "Last hour" }
                th.num { "Workers" } th { "Retry backlog" } th.num { "Dead letters" }
            } }
            tbody {
                @for (kind, k) in &stats.kinds {
                    @let outcomes = activity.and_then(|a| a.outcomes.get(kind));
                    @let in_flight = activity.and_then(|a| a.in_flight.get(kind));
                    @let failing = outcomes.is_some_and(error_ratio_high);
                    @for (i, lane) in Priority::ALL.iter().enumerate() {
                        @let pending = k.lanes.get(lane.as_str()).copied().unwrap_or(0);
                        @let oldest = stats.topics.get(&state.topics.lane(kind, *lane)).map_or(0.0, |t| t.lag_seconds);
                        @let series = outcomes.and_then(|o| o.lanes.get(lane)).unwrap_or(&empty);
                        tr data-kind=(kind) data-lane=(lane.as_str()) {
                            @if i == 0 {
                                th rowspan="3" { (kind) }
                            }
                            td { (lane.as_str()) }
                            td.num.pending.alert[pending > PENDING_ALERT] { (pending) }
                            td.num.alert[oldest > LAG_ALERT_SECONDS] { (age(oldest)) }
                            td.num.in-flight { @match in_flight { Some(f) => (f.lanes.get(lane).copied().unwrap_or(0)), None => "?" } }
                            @if activity.is_some() {
                                td.num.succeeded { (rates(&series.succeeded)) }
                                td.num.retried.alert[failing] { (rates(&series.retried)) }
                                td.num.dead.alert[failing] { (rates(&series.dead_lettered)) }
                                td { (sparkline(
                                    &format!("{kind} {}: last hour", lane.as_str()),
                                    &[
                                        Series { class: "succeeded", values: &series.succeeded },
                                        Series { class: "failed", values: &failed(series) },
                                    ],
                                )) }
                            } @else {
                                td.num { "?" } td.num { "?" } td.num { "?" } td {}
                            }
                            @if i == 0 {
                                td.num.alert[no_workers(k)] rowspan="3" { (k.workers) }
                                td rowspan="3" { (retry_backlog(k)) }
                                td.num.alert[k.failed > 0] rowspan="3" {
                                    a href={"/console/dead-letters/" (segment(kind))} { (k.failed) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `3.0/min / 0.4/min`: the last 5 minutes', then the last hour's.
fn rates(per_minute_counts: &[u64]) -> String {
    let last = |n: usize| per_minute_counts.iter().rev().take(n).sum::<u64>();
    format!(
        "{} / {}",
        per_minute(last(5), 5),
        per_minute(last(HISTORY_MINUTES as usize), u64::from(HISTORY_MINUTES))
    )
}

fn failed(series: &OutcomeSeries) -> Vec<u64> {
    series
        .retried
        .iter()
        .zip(&series.dead_lettered)
        .map(|(r, d)| r + d)
        .collect()
}

/// SluiceHandlerErrorRatioHigh, over the last 5 minutes.
fn error_ratio_high(outcomes: &KindOutcomes) -> bool {
    let last = outcomes.sum_last(5);
    let finished = last.total();
    finished >= ERROR_RATIO_MIN_FINISHED
        && (last.retried + last.dead_lettered) as f64 / finished as f64 > ERROR_RATIO_ALERT
}

/// SluiceNoActiveWorkers: jobs wait and nobody consumes them.
fn no_workers(k: &KindStats) -> bool {
    k.pending > 0 && k.workers == 0
}

fn retry_backlog(k: &KindStats) -> Markup {
    html! {
        @if k.retry_backlog.is_empty() {
            span.muted { "no tiers" }
        } @else {
            @for (i, tier) in k.retry_backlog.iter().enumerate() {
                @if i > 0 { ", " }
                span title={"retry tier " (tier.tier)} { (tier.tier) ": " (tier.backlog) }
            }
        }
    }
}
