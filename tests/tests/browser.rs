//! The browser harness the web console's tests use (tests/src/browser.rs), proven on a tiny site
//! served in-process: a login form whose `Secure; HttpOnly; SameSite=Strict` cookie must come
//! back over plain http://127.0.0.1, a confirm dialog, and an inline script that the
//! Content-Security-Policy must block and the browser's console must report.

use std::{net::SocketAddr, time::Duration};

use axum::{
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
    Router,
};
use sluice_tests::browser::Browser;
use tokio::net::TcpListener;

const CSP: &str = "default-src 'self'";

const LOGIN_PAGE: &str = r#"<!doctype html>
<title>login</title>
<form id="login" method="post" action="/login">
  <input id="user" name="user">
  <button type="submit">Log in</button>
</form>"#;

const CONFIRM_PAGE: &str = r#"<!doctype html>
<title>confirm</title>
<button id="delete">Delete</button>
<p id="result">untouched</p>
<script src="/app.js"></script>"#;

/// Allowed by `default-src 'self'`: a script from the page's own origin.
const APP_JS: &str = r#"document.getElementById("delete").addEventListener("click", () => {
  document.getElementById("result").textContent = confirm("Delete it?") ? "deleted" : "kept";
});"#;

/// Blocked by `default-src 'self'`: were it run, the title would say so.
const INLINE_PAGE: &str = r#"<!doctype html>
<title>untouched</title>
<p id="marker">inline</p>
<script>document.title = "inline script ran";</script>"#;

async fn serve() -> SocketAddr {
    let app = Router::new()
        .route("/", get(|| async { Html(LOGIN_PAGE) }))
        .route("/login", post(login))
        .route("/home", get(home))
        .route("/confirm", get(|| async { Html(CONFIRM_PAGE) }))
        .route(
            "/app.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], APP_JS) }),
        )
        .route("/inline", get(|| async { Html(INLINE_PAGE) }))
        // Chromium asks for it on every new origin; a 404 would be a console error of its own.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .layer(axum::middleware::map_response(with_csp));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn with_csp(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    response
}

async fn login() -> impl IntoResponse {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/home"),
            (
                header::SET_COOKIE,
                "s=1; HttpOnly; Secure; SameSite=Strict; Path=/",
            ),
        ],
    )
}

/// "logged in" only when the browser sent the cookie back.
async fn home(headers: HeaderMap) -> Html<String> {
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .map(str::trim)
        .collect::<Vec<_>>();
    let status = if cookies.contains(&"s=1") {
        "logged in"
    } else {
        "not logged in"
    };
    Html(format!(
        "<!doctype html><title>home</title><p id=\"status\">{status}</p>"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_login_keeps_a_secure_http_only_strict_cookie_over_http_loopback() {
    let addr = serve().await;
    let browser = Browser::start().await;

    browser.goto(&format!("http://{addr}/")).await;
    browser.fill("#user", "ada").await;
    browser.submit("#login").await;
    let status = browser
        .wait_for_text("#status", "logged in", Duration::from_secs(10))
        .await;
    assert_eq!(
        status, "logged in",
        "the Secure cookie set over http://127.0.0.1 came back"
    );
    assert_eq!(browser.current_url().await, format!("http://{addr}/home"));

    let cookie = browser
        .cookie("s")
        .await
        .expect("the session cookie is kept");
    assert_eq!(cookie.value(), "1");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(
        cookie.same_site().map(|same_site| same_site.to_string()),
        Some("Strict".into())
    );
    assert_eq!(cookie.path(), Some("/"));
    // HttpOnly: the page's scripts cannot read it.
    assert_eq!(browser.execute("return document.cookie;", vec![]).await, "");

    let png = browser.screenshot("harness-logged-in").await;
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is a PNG ({} bytes)",
        png.display(),
        bytes.len()
    );
    assert!(png.ends_with("target/console-screenshots/harness-logged-in.png"));

    // A clean page logs no errors, so the CSP check below measures something.
    assert_eq!(browser.console_errors().await.len(), 0);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirm_dialog_is_accepted_or_dismissed() {
    let addr = serve().await;
    let browser = Browser::start().await;

    browser.goto(&format!("http://{addr}/confirm")).await;
    browser.click("#delete").await;
    assert_eq!(browser.dismiss_dialog().await, "Delete it?");
    browser
        .wait_for_text("#result", "kept", Duration::from_secs(5))
        .await;
    browser.click("#delete").await;
    assert_eq!(browser.accept_dialog().await, "Delete it?");
    browser
        .wait_for_text("#result", "deleted", Duration::from_secs(5))
        .await;

    assert!(browser.console_errors().await.is_empty());
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_script_is_blocked_by_the_csp_and_reported_in_the_console() {
    let addr = serve().await;
    let browser = Browser::start().await;

    browser.goto(&format!("http://{addr}/inline")).await;
    assert_eq!(browser.text("#marker").await, "inline");
    assert_eq!(browser.client().title().await.unwrap(), "untouched");
    assert!(browser.page_source().await.contains("inline script ran"));

    let errors = browser.console_errors().await;
    let violation = errors
        .iter()
        .find(|entry| entry.message.contains("Content Security Policy"))
        .unwrap_or_else(|| panic!("no CSP violation among the console errors: {errors:?}"));
    assert!(
        violation.message.contains("inline script") && violation.message.contains(CSP),
        "{violation:?}"
    );
    browser.close().await;
}
