//! Replay and purge from the console. Both are two steps: a GET that shows exactly what would
//! happen (a dry run of the same `sluice_dlq` call) and a POST that does it. The preview's
//! time travels in the form, so letters that die after it are not swept up with it.

use axum::{
    extract::{
        rejection::{FormRejection, QueryRejection},
        Path, Query, State,
    },
    http::StatusCode,
    response::Response,
    Extension, Form,
};
use maud::{html, Markup};
use sluice_core::headers::now_millis;
use sluice_dlq::{DeadLetter, Position, Selector};

use super::{
    dead_letters::{failure, LetterFilter},
    layout::{csrf_field, error_page, query, respond, segment, shell, time},
    parsed, Session,
};
use crate::state::AppState;

/// Letters listed in a preview; the count covers the rest.
const PREVIEW_ROWS: usize = 100;

/// What to replay: one letter by `offset`, or every waiting letter the filter matches and
/// that was dead before `until` (ms; the preview's time).
/// (Fields spelled out rather than a flattened `LetterFilter`: serde's flatten cannot read
/// numbers from a form.)
#[derive(serde::Deserialize, Default)]
pub struct Selection {
    #[serde(default)]
    offset: Option<String>,
    #[serde(default)]
    error_class: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: Option<i64>,
}

impl Selection {
    fn filter(&self) -> LetterFilter {
        LetterFilter {
            error_class: self.error_class.clone(),
            since: self.since.clone(),
            ..LetterFilter::default()
        }
    }

    fn selector(&self, until: i64) -> Result<Selector, String> {
        match self.offset.as_deref().filter(|o| !o.is_empty()) {
            Some(offset) => offset
                .parse::<Position>()
                .map(Selector::Position)
                .map_err(|e| format!("offset: {e}")),
            None => Ok(Selector::Matching {
                error_class: self.filter().error_class(),
                since_ms: self.filter().since_ms(),
                until_ms: Some(until),
            }),
        }
    }

    /// The hidden fields that carry the selection from the preview to the POST.
    fn hidden(&self, until: i64) -> Markup {
        html! {
            @if let Some(offset) = &self.offset {
                input type="hidden" name="offset" value=(offset);
            }
            input type="hidden" name="error_class" value=(self.error_class);
            input type="hidden" name="since" value=(self.since);
            input type="hidden" name="until" value=(until);
        }
    }
}

fn letters_table(letters: &[DeadLetter]) -> Markup {
    html! {
        table #preview {
            thead { tr { th { "Offset" } th { "Job id" } th { "Error class" } th { "Dead at" } } }
            tbody {
                @for d in letters.iter().take(PREVIEW_ROWS) {
                    tr { td { (d.position) } td { code { (d.job_id) } } td { (d.error_class) } td { (time(d.dead_at)) } }
                }
            }
        }
        @if letters.len() > PREVIEW_ROWS {
            p.muted { "… and " (letters.len() - PREVIEW_ROWS) " more." }
        }
    }
}

pub async fn preview(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(kind): Path<String>,
    selection: Result<Query<Selection>, QueryRejection>,
) -> Response {
    let selection = match parsed(selection, &session) {
        Ok(selection) => selection,
        Err(refusal) => return *refusal,
    };
    let until = now_millis();
    let selector = match selection.selector(until) {
        Ok(selector) => selector,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, Some(&session), &e),
    };
    let report = match state.dlq.replay(&kind, &selector, true, |_, _| {}).await {
        Ok(report) => report,
        Err(e) => return failure(&session, e),
    };
    let base = format!("/console/dead-letters/{}", segment(&kind));
    let count = report.replayed.len();
    let body = html! {
        h1 { "Replay dead letters of " code { (kind) } }
        p.notice #dry-run role="status" {
            "Dry run: " strong #replay-count { (count) } " dead letter(s) would be sent back to "
            code { "jobs." (kind) } " with their original key, bytes and lane, as first attempts."
        }
        (letters_table(&report.replayed))
        @if count > 0 {
            form method="post" action={(base) "/replay"} {
                (csrf_field(&session))
                (selection.hidden(until))
                button type="submit" { "Send " (count) " back" }
                " "
                a.button.secondary href=(base) { "Cancel" }
            }
        } @else {
            p { a href=(base) { "Back to the list" } }
        }
    };
    respond(
        StatusCode::OK,
        shell("Replay", "/console/dead-letters", Some(&session), body),
    )
}

pub async fn replay(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(kind): Path<String>,
    selection: Result<Form<Selection>, FormRejection>,
) -> Response {
    let Ok(Form(selection)) = selection else {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(&session),
            "The replay form is malformed.",
        );
    };
    let Some(until) = selection.until else {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(&session),
            "A replay is sent from its preview; open the preview first.",
        );
    };
    let selector = match selection.selector(until) {
        Ok(selector) => selector,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, Some(&session), &e),
    };
    let report = match state.dlq.replay(&kind, &selector, false, |_, _| {}).await {
        Ok(report) => report,
        Err(e) => return failure(&session, e),
    };
    crate::dlq::count_replayed(&state, &kind, report.replayed.len());
    tracing::info!(token = %session.caller.name, %kind, replayed = report.replayed.len(), "dead letters replayed from the console");
    let base = format!("/console/dead-letters/{}", segment(&kind));
    let body = html! {
        h1 { "Replayed" }
        p.notice #replayed role="status" {
            strong { (report.replayed.len()) } " dead letter(s) of " code { (kind) } " sent back. Follow each job:"
        }
        ul #replayed-jobs {
            @for d in report.replayed.iter().take(PREVIEW_ROWS) {
                li { a href={"/console/jobs?" (query(&[("id", &d.job_id)]))} { code { (d.job_id) } } }
            }
        }
        p { a href=(base) { "Back to the dead letters of " (kind) } }
    };
    respond(
        StatusCode::OK,
        shell("Replayed", "/console/dead-letters", Some(&session), body),
    )
}

pub async fn confirm_purge(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(kind): Path<String>,
) -> Response {
    let until = now_millis();
    let selector = Selector::Matching {
        error_class: None,
        since_ms: None,
        until_ms: Some(until),
    };
    let report = match state.dlq.replay(&kind, &selector, true, |_, _| {}).await {
        Ok(report) => report,
        Err(e) => return failure(&session, e),
    };
    let base = format!("/console/dead-letters/{}", segment(&kind));
    let count = report.replayed.len();
    let body = html! {
        h1 { "Purge dead letters of " code { (kind) } "?" }
        p.notice.bad role="alert" {
            strong { (count) } " waiting dead letter(s) would be marked purged: they stop counting as \
            failed and can no longer be replayed. Their records stay in Kafka until its retention \
            removes them."
        }
        (letters_table(&report.replayed))
        @if count > 0 {
            form method="post" action={(base) "/purge"} {
                (csrf_field(&session))
                input type="hidden" name="until" value=(until);
                button.danger type="submit" { "Purge " (count) }
                " "
                a.button.secondary href=(base) { "Keep them" }
            }
        }
    };
    respond(
        StatusCode::OK,
        shell("Purge", "/console/dead-letters", Some(&session), body),
    )
}

#[derive(serde::Deserialize)]
pub struct PurgeForm {
    until: i64,
}

pub async fn purge(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(kind): Path<String>,
    form: Result<Form<PurgeForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(&session),
            "The purge form is malformed.",
        );
    };
    let purged = match state.dlq.purge(&kind, Some(form.until)).await {
        Ok(purged) => purged,
        Err(e) => return failure(&session, e),
    };
    tracing::info!(token = %session.caller.name, %kind, purged, "dead letters purged from the console");
    let base = format!("/console/dead-letters/{}", segment(&kind));
    let body = html! {
        h1 { "Purged" }
        p.notice #purged role="status" { strong { (purged) } " dead letter(s) of " code { (kind) } " purged." }
        p { a href=(base) { "Back to the dead letters of " (kind) } }
    };
    respond(
        StatusCode::OK,
        shell("Purged", "/console/dead-letters", Some(&session), body),
    )
}
