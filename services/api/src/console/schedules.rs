//! Schedules: each schedule with its last and next fire, and its recent fires with how their
//! jobs went. Read by `sluice_schedules::list`, the code behind `sluice schedules`.

use axum::{extract::State, http::StatusCode, response::Response, Extension};
use maud::{html, Markup};
use sluice_core::status::JobStatus;
use sluice_schedules::list::{Fire, ScheduleRow};

use super::{
    layout::{query, respond, shell, time},
    Session,
};
use crate::state::AppState;

pub async fn page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
) -> Response {
    let rows = sluice_schedules::list::rows(&state.config, &state.registry).await;
    let body = match rows {
        Ok(rows) if rows.is_empty() => html! {
            h1 { "Schedules" }
            p.muted { "No schedules are configured (" code { "[[schedules]]" } " in the configuration)." }
        },
        Ok(rows) => {
            let mut sections = Vec::with_capacity(rows.len());
            for row in &rows {
                sections.push(schedule(
                    row,
                    &fire_statuses(&state, &row.recent_fires).await,
                ));
            }
            html! {
                h1 { "Schedules" }
                table #schedules {
                    thead { tr { th { "Name" } th { "When" } th { "Kind" } th { "Missed ticks" } th { "Last fire" } th { "Next fire" } } }
                    tbody {
                        @for row in &rows {
                            tr data-schedule=(row.name) {
                                td { (row.name) }
                                td { code { (row.schedule) } }
                                td { (row.kind) @if let Some(p) = &row.priority { " (" (p) ")" } }
                                td { (row.missed) }
                                td { @match &row.last_fire { Some(f) => (f.tick_at), None => span.muted { "never" } } }
                                td { (row.next_tick_at.as_deref().unwrap_or("–")) }
                            }
                        }
                    }
                }
                @for section in sections { (section) }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "listing schedules for the console failed");
            html! {
                h1 { "Schedules" }
                p.notice.bad role="alert" { "The schedules' fires cannot be read from Kafka right now." }
            }
        }
    };
    respond(
        StatusCode::OK,
        shell("Schedules", "/console/schedules", Some(&session), body),
    )
}

/// Each fire's job status, when Redis still has it.
async fn fire_statuses(state: &AppState, fires: &[Fire]) -> Vec<Option<JobStatus>> {
    let reads = fires.iter().map(|f| state.status.get(&f.job_id));
    futures::future::join_all(reads)
        .await
        .into_iter()
        .map(|r| r.ok().flatten())
        .collect()
}

fn schedule(row: &ScheduleRow, statuses: &[Option<JobStatus>]) -> Markup {
    html! {
        h2 { "Recent fires of " code { (row.name) } }
        @if row.recent_fires.is_empty() {
            p.muted { "Not fired yet." }
        } @else {
            table.fires {
                thead { tr { th { "Tick" } th { "Fired at" } th { "Job" } th { "Job status" } } }
                tbody {
                    @for (fire, status) in row.recent_fires.iter().zip(statuses) {
                        tr {
                            td { (fire.tick_at) }
                            td { (time(fire.fired_at)) }
                            td { a href={"/console/jobs?" (query(&[("id", &fire.job_id)]))} { code { (fire.job_id) } } }
                            td { @match status {
                                Some(s) => span.status.{"status-" (s.status.as_str())} { (s.status.as_str()) },
                                None => span.muted { "expired" },
                            } }
                        }
                    }
                }
            }
            p.muted { "As many fires as the compacted fires topic still holds; at least the last." }
        }
    }
}
