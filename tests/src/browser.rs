//! A real browser for the web console's tests: headless Chromium driven over WebDriver by its
//! own `chromedriver` (both installed by `deploy/chromium.sh`, which `make test` runs first).
//!
//! Every `Browser` starts its own chromedriver on a free loopback port, so tests run in parallel,
//! each with a fresh profile (no cookies shared between tests). The helpers panic with what they
//! were looking for, like the rest of this harness; `client()` is there for anything else.
//!
//! Secure cookies over plain http://127.0.0.1: Chromium stores them and sends them back.
//! Loopback is a "potentially trustworthy origin", which Chromium treats as secure for cookies,
//! so a `Secure; HttpOnly; SameSite=Strict` session cookie works in these tests and in local
//! development without TLS. Tried on Chromium 156: set by http://127.0.0.1, http://127.0.0.2 and
//! http://localhost, it was kept and sent back; set by the same server over this machine's
//! non-loopback address, it was silently dropped (any plain-http host that is not loopback, a
//! LAN address or a container's name, needs TLS for it). tests/tests/browser.rs checks the
//! 127.0.0.1 case on every run.
//!
//! The browser's console log (`console_log`, `console_errors`) comes from chromedriver's
//! `goog:loggingPrefs`: Content-Security-Policy violations are SEVERE entries there ("Refused to
//! execute inline script because it violates the following Content Security Policy directive").

mod console_log;
mod driver;

use std::{
    path::PathBuf,
    sync::Mutex,
    time::{Duration, Instant},
};

use fantoccini::{cookies::Cookie, elements::Element, Client, Locator};
use serde_json::Value;

pub use console_log::LogEntry;
use driver::Driver;

/// How long the helpers wait for an element to appear or a dialog to open (htmx swaps content in
/// after the response, so an element may come a moment after the action that asked for it).
pub const WAIT: Duration = Duration::from_secs(10);

/// A headless Chromium session; its chromedriver is killed (and the browser closed) on drop.
pub struct Browser {
    client: Client,
    driver: Driver,
    /// Everything read from the console log so far: chromedriver hands each entry out once.
    log: Mutex<Vec<LogEntry>>,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session. Panics, naming `deploy/chromium.sh`,
    /// if either program is not installed: these tests never skip.
    pub async fn start() -> Self {
        let (driver, client) = Driver::start().await;
        Self {
            client,
            driver,
            log: Mutex::new(Vec::new()),
        }
    }

    /// The underlying WebDriver client, for what the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and waits until the page has loaded.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|error| panic!("opening {url}: {error}"));
    }

    /// The address of the page shown now (after redirects).
    pub async fn current_url(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("the current URL")
            .to_string()
    }

    /// The first element matching `css`, waiting up to `WAIT` for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no element {css:?} within {WAIT:?}: {error}"))
    }

    /// Every element matching `css` now (possibly none).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("looking for {css:?}: {error}"))
    }

    /// Replaces the value of the input matching `css` with `text`, typed as a user would.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input
            .clear()
            .await
            .unwrap_or_else(|error| panic!("clearing {css:?}: {error}"));
        input
            .send_keys(text)
            .await
            .unwrap_or_else(|error| panic!("typing into {css:?}: {error}"));
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|error| panic!("clicking {css:?}: {error}"));
    }

    /// Submits the form matching `css` as its submit button would: `requestSubmit()` fires the
    /// `submit` event (which htmx listens to) and the form's validation, unlike `form.submit()`.
    /// What follows is asynchronous: wait for its result with `wait_for_text`.
    pub async fn submit(&self, form_css: &str) {
        let form = self.find(form_css).await;
        let form = serde_json::to_value(form).expect("an element serializes");
        self.client
            .execute("arguments[0].requestSubmit();", vec![form])
            .await
            .unwrap_or_else(|error| panic!("submitting {form_css:?}: {error}"));
    }

    /// The rendered text of the element matching `css` (waiting up to `WAIT` for it to appear).
    pub async fn text(&self, css: &str) -> String {
        self.find(css)
            .await
            .text()
            .await
            .unwrap_or_else(|error| panic!("reading the text of {css:?}: {error}"))
    }

    /// Polls until the element matching `css` exists and its text contains `needle`; returns
    /// that text. Panics after `timeout` with the last text seen.
    pub async fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut last_seen = None;
        loop {
            // Elements htmx swaps out go stale between the find and the read: just look again.
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                if let Ok(text) = element.text().await {
                    if text.contains(needle) {
                        return text;
                    }
                    last_seen = Some(text);
                }
            }
            if Instant::now() >= deadline {
                let url = self.current_url().await;
                match last_seen {
                    Some(text) => panic!(
                        "{css:?} on {url} did not show {needle:?} within {timeout:?}; it shows {text:?}"
                    ),
                    None => panic!("no element {css:?} on {url} within {timeout:?}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits up to `WAIT` for an `alert`/`confirm`/`prompt` dialog, accepts it ("OK") and
    /// returns its message.
    pub async fn accept_dialog(&self) -> String {
        let message = self.dialog_text().await;
        self.client
            .accept_alert()
            .await
            .expect("accepting the dialog");
        message
    }

    /// Waits up to `WAIT` for a dialog, dismisses it ("Cancel") and returns its message.
    pub async fn dismiss_dialog(&self) -> String {
        let message = self.dialog_text().await;
        self.client
            .dismiss_alert()
            .await
            .expect("dismissing the dialog");
        message
    }

    async fn dialog_text(&self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.client.get_alert_text().await {
                Ok(message) => return message,
                Err(error) if error.is_no_such_alert() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(error) => panic!("no dialog opened within {WAIT:?}: {error}"),
            }
        }
    }

    /// Saves a PNG of the viewport as `target/console-screenshots/<name>.png` and returns its
    /// path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|error| panic!("creating {}: {error}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)
            .unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
        path
    }

    /// Every cookie the browser holds for the current page, with its attributes (`http_only()`,
    /// `secure()`, `same_site()`, `path()`) as the browser stored them.
    pub async fn cookies(&self) -> Vec<Cookie<'static>> {
        self.client.get_all_cookies().await.expect("the cookies")
    }

    /// The cookie called `name` for the current page, if the browser holds one.
    pub async fn cookie(&self, name: &str) -> Option<Cookie<'static>> {
        self.cookies()
            .await
            .into_iter()
            .find(|cookie| cookie.name() == name)
    }

    /// The current DOM, serialized (after scripts and htmx swaps, unlike the server's response).
    pub async fn page_source(&self) -> String {
        self.client.source().await.expect("the page source")
    }

    /// Runs `script` in the page (its `arguments` are `args`) and returns what it returns.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|error| panic!("running {script:?}: {error}"))
    }

    /// Every console log entry since the session started.
    pub async fn console_log(&self) -> Vec<LogEntry> {
        let fresh = console_log::read_new_entries(&self.client).await;
        let mut log = self.log.lock().unwrap();
        log.extend(fresh);
        log.clone()
    }

    /// The SEVERE console entries since the session started: uncaught script errors, failed
    /// loads, and Content-Security-Policy violations. Chromium asks every origin for
    /// `/favicon.ico`, so a site without one gets a 404 entry here too.
    pub async fn console_errors(&self) -> Vec<LogEntry> {
        self.console_log()
            .await
            .into_iter()
            .filter(|entry| entry.level == "SEVERE")
            .collect()
    }

    /// Ends the session (Chromium quits) and stops chromedriver.
    pub async fn close(mut self) {
        if self.client.clone().close().await.is_ok() {
            self.driver.session_closed();
        }
    }
}

/// `target/console-screenshots`: the test binary is `target/debug/deps/<test>-<hash>`.
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the test binary lives in target/<profile>/deps");
    target.join("console-screenshots")
}
