//! Dead letters: the kinds with letters waiting, one kind's letters filtered and paged, one
//! letter whole. Everything is read by `sluice_dlq`, the code behind `sluice dlq` and
//! `/v1/dlq`. A letter's payload and headers are whatever a producer sent: hostile input,
//! shown escaped (maud) and as JSON only after decoding with the kind's schema, else as hex.

use axum::{
    extract::{rejection::QueryRejection, Path, Query, State},
    http::StatusCode,
    response::Response,
    Extension,
};
use maud::{html, Markup};
use sluice_dlq::{DeadLetter, DlqError, Filter, Position, State as LetterState};

use super::{
    layout::{api_error_page, error_page, query, respond, segment, shell, time},
    parsed, Session,
};
use crate::state::AppState;

const PAGE_SIZE: usize = 50;

/// How far back the time filter looks: (value, label, seconds).
pub const SINCE_CHOICES: [(&str, &str, i64); 4] = [
    ("", "any time", 0),
    ("1h", "last hour", 3_600),
    ("24h", "last 24 hours", 86_400),
    ("7d", "last 7 days", 604_800),
];

/// The filter of a dead-letter list, as the URL carries it (and the replay preview too).
#[derive(serde::Deserialize, Default, Clone)]
pub struct LetterFilter {
    #[serde(default)]
    pub error_class: String,
    #[serde(default)]
    pub since: String,
    /// Include letters already replayed or purged.
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub page: usize,
}

impl LetterFilter {
    pub fn since_ms(&self) -> Option<i64> {
        let (_, _, seconds) = SINCE_CHOICES.iter().find(|(v, _, _)| *v == self.since)?;
        (*seconds > 0).then(|| sluice_core::headers::now_millis() - seconds * 1000)
    }

    pub fn error_class(&self) -> Option<String> {
        let class = self.error_class.trim();
        (!class.is_empty()).then(|| class.to_owned())
    }

    fn dlq_filter(&self) -> Filter {
        Filter {
            error_class: self.error_class(),
            since_ms: self.since_ms(),
            include_handled: self.all,
            limit: None,
        }
    }

    /// The filter's query string (without the page).
    pub fn query(&self) -> String {
        let all = if self.all { "true" } else { "false" };
        query(&[
            ("error_class", &self.error_class),
            ("since", &self.since),
            ("all", all),
        ])
    }
}

/// What a dead-letter failure looks like on a page: the JSON API's status and message.
pub fn failure(session: &Session, e: DlqError) -> Response {
    api_error_page(session, &crate::dlq::api_error(e))
}

pub async fn kinds(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
) -> Response {
    let counts = super::overview::queue_stats(&state).await;
    let body = html! {
        h1 { "Dead letters" }
        p.muted { "Jobs that failed every attempt, kept with their bytes and headers until a person replays or purges them." }
        table {
            thead { tr { th { "Kind" } th.num { "Waiting" } } }
            tbody {
                @for kind in state.registry.names() {
                    @let waiting = counts.as_ref().ok().and_then(|s| s.kinds.get(&kind)).map(|k| k.failed);
                    tr.alert[waiting.unwrap_or(0) > 0] {
                        td { a href={"/console/dead-letters/" (segment(&kind))} { (kind) } }
                        td.num { @match waiting { Some(n) => (n), None => span.muted { "?" } } }
                    }
                }
            }
        }
        @if let Err(e) = &counts {
            p.notice.bad { "Counts unavailable: " (e) }
        }
    };
    respond(
        StatusCode::OK,
        shell(
            "Dead letters",
            "/console/dead-letters",
            Some(&session),
            body,
        ),
    )
}

pub async fn list(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(kind): Path<String>,
    filter: Result<Query<LetterFilter>, QueryRejection>,
) -> Response {
    let filter = match parsed(filter, &session) {
        Ok(filter) => filter,
        Err(refusal) => return *refusal,
    };
    let letters = match state.dlq.list(&kind, &filter.dlq_filter()).await {
        Ok(letters) => letters,
        Err(e) => return failure(&session, e),
    };
    let pending = letters
        .iter()
        .filter(|d| d.state == LetterState::Pending)
        .count();
    let pages = letters.len().div_ceil(PAGE_SIZE).max(1);
    let page_no = filter.page.min(pages - 1);
    let shown = letters.iter().skip(page_no * PAGE_SIZE).take(PAGE_SIZE);
    let base = format!("/console/dead-letters/{}", segment(&kind));
    let page_link = |n: usize| format!("{base}?{}&page={n}", filter.query());
    let body = html! {
        h1 { "Dead letters of " code { (kind) } }
        (filter_form(&base, &filter))
        p #letter-count {
            (letters.len()) " dead letter(s) match, " (pending) " waiting."
            @if pending > 0 {
                " "
                a.button href={(base) "/replay?" (filter.query())} { "Replay these " (pending) "…" }
                " "
                a.button.secondary href={(base) "/purge?" (filter.query())} { "Purge…" }
            }
        }
        table #letters {
            thead { tr {
                th { "Offset" } th { "Job id" } th.num { "Attempts" } th { "Error class" }
                th { "Error" } th { "Dead at" } th { "State" }
            } }
            tbody {
                @for d in shown {
                    tr {
                        td { a href={(base) "/letters/" (d.position)} { (d.position) } }
                        td { code { (d.job_id) } }
                        td.num { (d.attempts) }
                        td { (d.error_class) }
                        td { (truncate(&d.error, 120)) }
                        td { (time(d.dead_at)) }
                        td { (state_name(d.state)) }
                    }
                }
            }
        }
        @if pages > 1 {
            nav.pager {
                @if page_no > 0 { a href=(page_link(page_no - 1)) { "← previous" } }
                span { "page " (page_no + 1) " of " (pages) }
                @if page_no + 1 < pages { a href=(page_link(page_no + 1)) { "next →" } }
            }
        }
    };
    respond(
        StatusCode::OK,
        shell(
            "Dead letters",
            "/console/dead-letters",
            Some(&session),
            body,
        ),
    )
}

fn filter_form(action: &str, filter: &LetterFilter) -> Markup {
    html! {
        form.filters method="get" action=(action) {
            label { "Error class" input type="text" name="error_class" value=(filter.error_class) placeholder="any"; }
            label { "Dead since"
                select name="since" {
                    @for (value, label, _) in SINCE_CHOICES {
                        option value=(value) selected[value == filter.since] { (label) }
                    }
                }
            }
            label { "Replayed and purged too"
                input type="checkbox" name="all" value="true" checked[filter.all];
            }
            button type="submit" { "Filter" }
        }
    }
}

pub fn state_name(state: LetterState) -> &'static str {
    match state {
        LetterState::Pending => "waiting",
        LetterState::Replayed => "replayed",
        LetterState::Purged => "purged",
    }
}

fn truncate(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

pub async fn show(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path((kind, position)): Path<(String, String)>,
) -> Response {
    let Ok(position) = position.parse::<Position>() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(&session),
            "A dead letter is named by its offset (`17`, or `partition:offset`).",
        );
    };
    let letter = match state.dlq.show(&kind, position).await {
        Ok(letter) => letter,
        Err(e) => return failure(&session, e),
    };
    let base = format!("/console/dead-letters/{}", segment(&kind));
    let body = html! {
        p { a href=(base) { "← all dead letters of " (kind) } }
        h1 { "Dead letter " (letter.position) " of " code { (kind) } }
        dl.facts {
            dt { "Job id" } dd { a href={"/console/jobs?" (query(&[("id", &letter.job_id)]))} { code { (letter.job_id) } } }
            dt { "State" } dd #letter-state { (state_name(letter.state)) }
            dt { "Attempts" } dd { (letter.attempts) }
            dt { "Error class" } dd { (letter.error_class) }
            dt { "Error" } dd { pre.error { (letter.error) } }
            dt { "Dead at" } dd { (time(letter.dead_at)) }
            dt { "Key" } dd { code { (letter.key.as_deref().map(String::from_utf8_lossy).unwrap_or_default()) } }
        }
        @if letter.state == LetterState::Pending {
            p { a.button href={(base) "/replay?" (query(&[("offset", &letter.position.to_string())]))} { "Replay this letter…" } }
        }
        h2 { "Headers" }
        table #headers {
            tbody {
                @for (name, value) in &letter.headers {
                    tr { th { (name) } td { code { (value.as_deref().map(String::from_utf8_lossy).unwrap_or_default()) } } }
                }
            }
        }
        h2 { "Payload" }
        (payload(&state, &kind, &letter))
    };
    respond(
        StatusCode::OK,
        shell("Dead letter", "/console/dead-letters", Some(&session), body),
    )
}

fn payload(state: &AppState, kind: &str, letter: &DeadLetter) -> Markup {
    match state.registry.decode(kind, &letter.payload) {
        Ok(decoded) => {
            let json = sluice_core::json::avro_to_json(decoded.value);
            html! {
                p.muted { "Decoded with schema version " (decoded.writer.version) "." }
                pre #payload { (serde_json::to_string_pretty(&json).unwrap_or_default()) }
            }
        }
        Err(e) => html! {
            p.muted { "Does not decode with the kind's schema (" (e) "); " (letter.payload.len()) " bytes:" }
            pre #payload { (hex_dump(&letter.payload)) }
        },
    }
}

/// 16 bytes a line, hex then the printable ASCII.
fn hex_dump(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(line, chunk)| {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            let text: String = chunk
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            format!("{:06x}  {:<47}  {text}", line * 16, hex.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hex_dump_shows_offsets_bytes_and_text() {
        let dump = hex_dump(b"<script>alert(1)</script>");
        let first = dump.lines().next().unwrap();
        assert!(first.starts_with("000000  3c 73 63 72"), "{first}");
        assert!(first.ends_with("<script>alert(1)"), "{first}");
        assert_eq!(dump.lines().count(), 2);
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("ok", 5), "ok");
    }
}
