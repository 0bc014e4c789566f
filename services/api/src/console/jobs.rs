//! Jobs: look one up by id, see everything its status holds, cancel it while it waits.

use axum::{
    extract::{rejection::QueryRejection, Path, Query, State},
    http::StatusCode,
    response::Response,
    Extension,
};
use maud::{html, Markup};
use sluice_core::status::JobStatus;

use super::{
    layout::{api_error_page, csrf_field, query, respond, segment, shell, time},
    parsed, see_other, Session,
};
use crate::{error::ApiError, jobs::read_status, state::AppState};

#[derive(serde::Deserialize, Default)]
pub struct Lookup {
    #[serde(default)]
    id: String,
    /// Set after a cancellation, to say so on the job's page.
    #[serde(default)]
    cancelled: bool,
}

fn lookup_form(id: &str) -> Markup {
    html! {
        form.filters method="get" action="/console/jobs" {
            label { "Job id" input type="text" name="id" value=(id) placeholder="0193…" required; }
            button type="submit" { "Look up" }
        }
    }
}

async fn lookup_page(state: &AppState, session: &Session, lookup: Lookup) -> Response {
    let id = lookup.id.trim();
    if id.is_empty() {
        return respond(
            StatusCode::OK,
            shell(
                "Jobs",
                "/console/jobs",
                Some(session),
                html! { h1 { "Jobs" } (lookup_form("")) },
            ),
        );
    }
    let (status_code, body) = match read_status(state, id).await {
        Ok(job) => (StatusCode::OK, job_view(&job, lookup.cancelled)),
        Err(ApiError::NotFound(_)) => (
            StatusCode::NOT_FOUND,
            html! { p.notice.bad role="alert" { "No job " code { (id) } " is known: its status expired, or it never existed." } },
        ),
        Err(e) => (
            e.status(),
            html! { p.notice.bad role="alert" { (e.to_string()) } },
        ),
    };
    respond(
        status_code,
        shell(
            "Jobs",
            "/console/jobs",
            Some(session),
            html! { h1 { "Jobs" } (lookup_form(id)) (body) },
        ),
    )
}

pub async fn page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    lookup: Result<Query<Lookup>, QueryRejection>,
) -> Response {
    let lookup = match parsed(lookup, &session) {
        Ok(lookup) => lookup,
        Err(refusal) => return *refusal,
    };
    lookup_page(&state, &session, lookup).await
}

fn job_view(job: &JobStatus, just_cancelled: bool) -> Markup {
    let status = job.status.as_str();
    html! {
        @if just_cancelled {
            p.notice role="status" { "Cancelled: no worker will start this job." }
        }
        h2 { "Job " code { (job.job_id) } }
        // While the job can still change, htmx reloads these facts every 2 s.
        @let refresh = (!job.status.is_final()).then(|| format!("/console/jobs?{}", query(&[("id", &job.job_id)])));
        dl.facts #job hx-get=[refresh.as_deref()] hx-trigger=[refresh.as_ref().map(|_| "every 2s")] hx-select="#job" hx-swap="outerHTML" {
            dt { "Status" } dd { span.status.{"status-" (status)} #job-status { (status) } }
            dt { "Kind" } dd { (job.kind) }
            dt { "Lane" } dd { @match job.lane { Some(lane) => (lane.as_str()), None => span.muted { "not recorded" } } }
            dt { "Attempts" } dd #job-attempts { (job.attempts) }
            dt { "Trace id" } dd { @match &job.trace_id { Some(trace) => code #job-trace { (trace) }, None => span.muted { "not recorded" } } }
            @if let Some(run_at) = job.run_at {
                dt { "Due" } dd { (time(run_at)) }
            }
            dt { "Last change" } dd { (time(job.updated_at)) }
            dt { "Errors" } dd {
                @if job.errors.is_empty() {
                    @match &job.last_error {
                        Some(error) => pre.error { (error) },
                        None => span.muted { "none" },
                    }
                } @else {
                    table #job-errors {
                        thead { tr { th.num { "Attempt" } th { "At" } th { "Error" } } }
                        tbody {
                            @for e in &job.errors {
                                tr { td.num { (e.attempt) } td { (time(e.at)) } td { pre.error { (e.error) } } }
                            }
                        }
                    }
                }
            }
            dt { "Result" } dd {
                @match &job.result {
                    Some(result) => pre { (serde_json::to_string_pretty(result).unwrap_or_default()) },
                    None => span.muted { "none" },
                }
            }
        }
        @if job.status.is_waiting() {
            p { a.button.secondary href={"/console/jobs/" (segment(&job.job_id)) "/cancel"} { "Cancel this job…" } }
        }
    }
}

pub async fn confirm_cancel(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let job = match read_status(&state, &id).await {
        Ok(job) => job,
        Err(e) => return api_error_page(&session, &e),
    };
    let body = if job.status.is_waiting() {
        html! {
            h1 { "Cancel job " code { (job.job_id) } "?" }
            p { "It is " strong { (job.status.as_str()) } " (" (job.kind) "). Once cancelled, no worker starts it; a worker that already took it still finishes it." }
            form method="post" action={"/console/jobs/" (segment(&job.job_id)) "/cancel"} {
                (csrf_field(&session))
                button.danger type="submit" { "Yes, cancel it" }
                " "
                a.button.secondary href={"/console/jobs?" (query(&[("id", &job.job_id)]))} { "Keep it" }
            }
        }
    } else {
        html! {
            h1 { "Job " code { (job.job_id) } " cannot be cancelled" }
            p { "It is " strong { (job.status.as_str()) } ": only a job that has not started can be cancelled." }
        }
    };
    respond(
        StatusCode::OK,
        shell("Cancel job", "/console/jobs", Some(&session), body),
    )
}

pub async fn cancel(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    match crate::jobs::cancel_job(&state, &id).await {
        Ok(()) => {
            tracing::info!(token = %session.caller.name, job_id = %id, "job cancelled from the console");
            see_other(&format!(
                "/console/jobs?{}",
                query(&[("id", &id), ("cancelled", "true")])
            ))
        }
        Err(e) => api_error_page(&session, &e),
    }
}
