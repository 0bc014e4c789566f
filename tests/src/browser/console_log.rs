//! The browser's console log, read from chromedriver (fantoccini has no command for it).

use fantoccini::{wd::WebDriverCompatibleCommand, Client};
// fantoccini's commands take `http::Method`, which reqwest re-exports (the same version).
use reqwest::Method;
use serde_json::Value;
use url::Url;

/// One entry of the browser's console log.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// `SEVERE`, `WARNING`, `INFO` or `DEBUG`.
    pub level: String,
    /// `javascript`, `network`, `security`, `console-api`, … (empty if chromedriver gave none).
    pub source: String,
    pub message: String,
}

/// The entries logged since the last read: chromedriver hands each one out once.
pub(super) async fn read_new_entries(client: &Client) -> Vec<LogEntry> {
    let entries = client
        .issue_cmd(BrowserLog)
        .await
        .expect("chromedriver's browser log");
    entries
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| LogEntry {
            level: field(entry, "level"),
            source: field(entry, "source"),
            message: field(entry, "message"),
        })
        .collect()
}

/// `POST /session/{id}/se/log {"type": "browser"}`, chromedriver's log endpoint; it answers only
/// for sessions opened with `goog:loggingPrefs`.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base_url: &Url, session_id: Option<&str>) -> Result<Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &Url) -> (Method, Option<String>) {
        (Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

fn field(entry: &Value, name: &str) -> String {
    entry[name].as_str().unwrap_or_default().to_owned()
}
