//! The page every console view sits in, and the small formatting helpers the views share.
//!
//! maud escapes every value it interpolates; nothing here builds HTML from strings by hand.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{Html, IntoResponse, Response},
};
use maud::{html, Markup, DOCTYPE};

use super::session::Session;

/// The sections, in the navigation's order: (path, title).
const SECTIONS: [(&str, &str); 6] = [
    ("/console", "Overview"),
    ("/console/jobs", "Jobs"),
    ("/console/dead-letters", "Dead letters"),
    ("/console/schedules", "Schedules"),
    ("/console/consumers", "Consumers"),
    ("/console/feeds", "Feeds"),
];

/// A whole page. `section` is the navigation entry to mark as current.
pub fn shell(title: &str, section: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // htmx must not inject its indicator <style> (the CSP allows no inline style)
                // nor evaluate attributes as code.
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}"#;
                title { (title) " · sluice" }
                link rel="stylesheet" href="/console/assets/console.css";
                // Without it the browser asks for /favicon.ico, outside the console.
                link rel="icon" href="/console/assets/favicon.svg" type="image/svg+xml";
                script src="/console/assets/htmx.min.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/console" { "sluice" }
                    @if let Some(session) = session {
                        nav {
                            @for (path, name) in SECTIONS {
                                @if path == section {
                                    a.current href=(path) aria-current="page" { (name) }
                                } @else {
                                    a href=(path) { (name) }
                                }
                            }
                        }
                        form.logout method="post" action="/console/logout" {
                            (csrf_field(session))
                            span.who { (session.caller.name) }
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The hidden field every form that changes something carries.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="_csrf" value=(session.csrf()); }
}

/// A rendered page with the console's headers.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, Html(markup.into_string())).into_response();
    security_headers(response.headers_mut());
    response
}

/// Set on every console answer, pages, redirects and assets alike.
pub fn security_headers(headers: &mut axum::http::HeaderMap) {
    // No inline script or style anywhere: a payload that slips into a page cannot run.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: under it browsers send `Origin: null` with a form's POST, which the
    // same-origin check must then refuse.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// A page that says what went wrong, with the status that says it to machines.
pub fn error_page(status: StatusCode, session: Option<&Session>, message: &str) -> Response {
    respond(
        status,
        shell(
            "Error",
            "",
            session,
            html! {
                h1 { "Something went wrong" }
                p.error role="alert" { (message) }
                p { a href="/console" { "Back to the overview" } }
            },
        ),
    )
}

/// `text` as one path segment of a link (a job id or kind the user typed may hold `/` or `?`).
pub fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A query string from pairs (`a=1&b=x%20y`), without the `?`.
pub fn query(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// The page of an error the JSON API would answer with: its status and message.
pub fn api_error_page(session: &Session, e: &crate::error::ApiError) -> Response {
    error_page(e.status(), Some(session), &e.to_string())
}

/// `2026-12-05 06:01:02 UTC` from milliseconds since the epoch.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// `3m 12s`: whole seconds, the way people read an age.
pub fn age(seconds: f64) -> String {
    if seconds <= 0.0 {
        return "–".to_owned();
    }
    humantime::format_duration(std::time::Duration::from_secs(seconds.round() as u64)).to_string()
}

/// `1.5/min` per minute, from a count over `minutes`.
pub fn per_minute(count: u64, minutes: u64) -> String {
    let rate = count as f64 / minutes.max(1) as f64;
    if rate == 0.0 {
        "0".to_owned()
    } else if rate < 1.0 {
        format!("{rate:.2}/min")
    } else if rate < 10.0 {
        format!("{rate:.1}/min")
    } else {
        format!("{rate:.0}/min")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_in_pages() {
        let hostile = "<script>alert(1)</script>";
        let rendered = shell(hostile, "", None, html! { p { (hostile) } }).into_string();
        assert!(!rendered.contains(hostile), "{rendered}");
        assert!(rendered.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn times_and_ages_read_like_people_write_them() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(age(192.4), "3m 12s");
        assert_eq!(age(0.0), "–");
        assert_eq!(per_minute(15, 5), "3.0/min");
        assert_eq!(per_minute(2, 60), "0.03/min");
        assert_eq!(per_minute(0, 60), "0");
    }
}
