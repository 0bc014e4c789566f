//! The web console over plain HTTP, against a real api, Kafka and Redis: nobody without a
//! session of an `admin` token gets anything but the login form; the session cookie is
//! http-only, secure and strict; forms need the session's CSRF token and our origin; every
//! answer carries the CSP; a hostile dead letter is shown escaped. (tests/tests/console_browser.rs
//! drives the same console in Chromium.)

use std::time::Duration;

use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::FutureRecord,
};
use reqwest::{header, redirect::Policy, StatusCode};
use sluice_core::{
    headers,
    tokens::{sha256_hex, Scope, TokenConfig},
};
use sluice_tests::{TestEnv, TEST_TOKEN};

const READ_TOKEN: &str = "sk_sluice_tests-console-read-only-000000000000000000000";
const PUBLISH_READ_TOKEN: &str = "sk_sluice_tests-console-publish-read-0000000000000000";

/// Every page behind the login, with a method each.
const GUARDED: [(&str, &str); 14] = [
    ("GET", "/console"),
    ("GET", "/console/jobs"),
    ("GET", "/console/jobs/some-job/cancel"),
    ("POST", "/console/jobs/some-job/cancel"),
    ("GET", "/console/dead-letters"),
    ("GET", "/console/dead-letters/noop"),
    ("GET", "/console/dead-letters/noop/letters/0"),
    ("GET", "/console/dead-letters/noop/replay"),
    ("POST", "/console/dead-letters/noop/replay"),
    ("GET", "/console/dead-letters/noop/purge"),
    ("POST", "/console/dead-letters/noop/purge"),
    ("GET", "/console/schedules"),
    ("GET", "/console/consumers"),
    ("GET", "/console/feeds"),
];

async fn console_env() -> TestEnv {
    TestEnv::with_config(|c| {
        for (name, token, scopes) in [
            ("reader", READ_TOKEN, vec![Scope::Read]),
            (
                "publisher",
                PUBLISH_READ_TOKEN,
                vec![Scope::Publish, Scope::Read],
            ),
        ] {
            c.api.tokens.insert(
                name.into(),
                TokenConfig {
                    sha256: sha256_hex(token),
                    scopes,
                    ..Default::default()
                },
            );
        }
    })
    .await
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

fn assert_csp(response: &reqwest::Response, what: &str) {
    let csp = response
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"))
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{what}: {csp}"
    );
}

/// Logs in with `token`; returns the answer.
async fn login(http: &reqwest::Client, base: &str, token: &str) -> reqwest::Response {
    http.post(format!("{base}/console/login"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

/// The session cookie (`name=value`) of a successful login.
async fn session(http: &reqwest::Client, base: &str) -> String {
    let response = login(http, base, TEST_TOKEN).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .expect("a login sets the session cookie")
        .to_str()
        .unwrap()
        .to_owned();
    cookie.split(';').next().unwrap().to_owned()
}

/// The value of the page's first `name="_csrf"` field.
fn csrf_of(page: &str) -> String {
    let at = page.find(r#"name="_csrf" value=""#).expect("a CSRF field") + 20;
    page[at..at + 64].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_refuses_everyone_without_an_admin_session() {
    let env = console_env().await;
    let api = env.start_api().await;
    let base = format!("http://{}", api.info);
    let http = browser();

    for (method, path) in GUARDED {
        let request = match method {
            "GET" => http.get(format!("{base}{path}")),
            _ => http.post(format!("{base}{path}")).form(&[("_csrf", "x")]),
        };
        // Without a cookie, and with a made-up one.
        for cookie in [None, Some(format!("sluice_console={}", "ab".repeat(32)))] {
            let mut request = request.try_clone().unwrap();
            if let Some(cookie) = &cookie {
                request = request.header(header::COOKIE, cookie);
            }
            let response = request.send().await.unwrap();
            assert_csp(&response, path);
            let status = response.status();
            if method == "GET" {
                assert_eq!(status, StatusCode::SEE_OTHER, "{method} {path} {cookie:?}");
                assert_eq!(response.headers()[header::LOCATION], "/console/login");
            } else {
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} {cookie:?}"
                );
            }
        }
    }
    // An htmx refresh after the session ended sends the whole page to the login form.
    let refresh = http
        .get(format!("{base}/console"))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refresh.headers()["hx-redirect"], "/console/login");
    // A bearer token is not a session: the console only takes its own cookie.
    let with_bearer = http
        .get(format!("{base}/console"))
        .bearer_auth(TEST_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(with_bearer.status(), StatusCode::SEE_OTHER);

    for (token, expected, says) in [
        (READ_TOKEN, StatusCode::FORBIDDEN, "lacks the admin scope"),
        (
            PUBLISH_READ_TOKEN,
            StatusCode::FORBIDDEN,
            "lacks the admin scope",
        ),
        ("sk_not-a-token", StatusCode::UNAUTHORIZED, "Unknown token"),
        ("", StatusCode::BAD_REQUEST, "Enter a token"),
    ] {
        let response = login(&http, &base, token).await;
        assert_eq!(response.status(), expected, "{token}");
        assert!(response.headers().get(header::SET_COOKIE).is_none());
        assert_csp(&response, "login");
        let page = response.text().await.unwrap();
        assert!(page.contains(says), "{page}");
        if !token.is_empty() {
            assert!(!page.contains(token), "the page repeats no token");
        }
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_a_strict_http_only_cookie_and_forms_need_its_csrf_token() {
    let env = console_env().await;
    let api = env.start_api().await;
    let base = format!("http://{}", api.info);
    let http = browser();

    let response = login(&http, &base, TEST_TOKEN).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/console");
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains(TEST_TOKEN),
        "the token itself is not the cookie"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    for (method, path) in GUARDED.iter().filter(|(m, _)| *m == "GET") {
        let response = http
            .get(format!("{base}{path}"))
            .header(header::COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_csp(&response, path);
        let status = response.status();
        let page = response.text().await.unwrap();
        assert!(
            status.is_success() || status == StatusCode::NOT_FOUND,
            "{method} {path}: {status}\n{page}"
        );
        assert!(
            page.contains("<nav>"),
            "{path}: the page has the navigation"
        );
        assert!(!page.contains(TEST_TOKEN), "{path} shows no token");
        assert!(!page.contains("<script>"), "{path} has no inline script");
    }

    let overview = http
        .get(format!("{base}/console"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&overview);
    let purge = format!("{base}/console/dead-letters/noop/purge");
    let without = http
        .post(&purge)
        .header(header::COOKIE, &cookie)
        .form(&[("until", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), StatusCode::FORBIDDEN, "no CSRF token");
    let wrong = http
        .post(&purge)
        .header(header::COOKIE, &cookie)
        .form(&[("until", "1"), ("_csrf", &"0".repeat(64))])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN, "another CSRF token");
    let elsewhere = http
        .post(&purge)
        .header(header::COOKIE, &cookie)
        .header(header::ORIGIN, "https://attacker.example")
        .form(&[("until", "1"), ("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN, "another origin");
    let right = http
        .post(&purge)
        .header(header::COOKIE, &cookie)
        .form(&[("until", "1"), ("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        right.status(),
        StatusCode::OK,
        "the same form with its token"
    );

    // Logging out ends the session for every copy of the cookie.
    let out = http
        .post(format!("{base}/console/logout"))
        .header(header::COOKIE, &cookie)
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(out.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let after = http
        .get(format!("{base}/console"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    assert_eq!(after.headers()[header::LOCATION], "/console/login");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_dead_letter_is_shown_escaped() {
    let env = console_env().await;
    let api = env.start_api().await;
    let base = format!("http://{}", api.info);
    let http = browser();
    let cookie = session(&http, &base).await;

    let hostile = r#"<script>alert("dlq")</script>"#;
    let record_headers = OwnedHeaders::new()
        .insert(Header {
            key: headers::JOB_ID,
            value: Some(hostile),
        })
        .insert(Header {
            key: headers::ERROR,
            value: Some(r#"<img src=x onerror=alert(1)>"#),
        })
        .insert(Header {
            key: headers::ERROR_CLASS,
            value: Some("hostile"),
        })
        .insert(Header {
            key: headers::ATTEMPT,
            value: Some("3"),
        })
        .insert(Header {
            key: headers::DEAD_AT,
            value: Some(&sluice_core::headers::now_millis().to_string()),
        })
        .insert(Header {
            key: "x-<b>evil</b>",
            value: Some(hostile),
        });
    env.producer()
        .send(
            FutureRecord::to(&env.topics().dead_letters("noop"))
                .key(hostile)
                .payload(hostile)
                .headers(record_headers),
            Duration::from_secs(10),
        )
        .await
        .unwrap();

    for path in [
        "/console/dead-letters/noop",
        "/console/dead-letters/noop/letters/0",
        "/console/dead-letters/noop/replay?offset=0",
    ] {
        let response = http
            .get(format!("{base}{path}"))
            .header(header::COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_csp(&response, path);
        let page = response.text().await.unwrap();
        assert!(
            page.contains("&lt;script&gt;alert(&quot;dlq&quot;)&lt;/script&gt;")
                || page.contains("&lt;script&gt;alert(\"dlq\")&lt;/script&gt;"),
            "{path}: the payload is there, escaped:\n{page}"
        );
        for raw in [hostile, "<img src=x", "<b>evil</b>"] {
            assert!(!page.contains(raw), "{path}: {raw} unescaped:\n{page}");
        }
    }
    // The payload does not decode as a noop job: it is shown as hex (and its text).
    let shown = http
        .get(format!("{base}/console/dead-letters/noop/letters/0"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(shown.contains("3c 73 63 72 69 70 74 3e"), "{shown}");
    api.stop().await;
}

/// The value of the page's hidden field `name`.
fn hidden_of(page: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let at = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name}"))
        + marker.len();
    page[at..].split('"').next().unwrap().to_owned()
}

async fn get_page(http: &reqwest::Client, cookie: &str, url: &str) -> (StatusCode, String) {
    let response = http
        .get(url)
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn post_form(
    http: &reqwest::Client,
    cookie: &str,
    url: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    http.post(url)
        .header(header::COOKIE, cookie)
        .form(fields)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_job_is_cancelled_after_its_confirmation() {
    let env = console_env().await;
    let api = env.start_api().await;
    let base = format!("http://{}", api.info);
    let http = browser();
    let cookie = session(&http, &base).await;
    let accepted = sluice_tests::post_json(
        &sluice_tests::api_client(),
        &format!("{base}/v1/jobs/noop"),
        serde_json::json!({"delay": "1h"}),
    )
    .await;
    assert_eq!(accepted["status"], "scheduled", "{accepted}");
    let id = accepted["job_id"].as_str().unwrap();

    let (status, job) = get_page(&http, &cookie, &format!("{base}/console/jobs?id={id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(job.contains(">scheduled<") && job.contains("Due"), "{job}");
    let confirm_url = format!("{base}/console/jobs/{id}/cancel");
    let (status, confirm) = get_page(&http, &cookie, &confirm_url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(confirm.contains("Yes, cancel it"), "{confirm}");
    let cancelled = post_form(
        &http,
        &cookie,
        &confirm_url,
        &[("_csrf", &csrf_of(&confirm))],
    )
    .await;
    assert_eq!(cancelled.status(), StatusCode::SEE_OTHER);
    let location = cancelled.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let (_, after) = get_page(&http, &cookie, &format!("{base}{location}")).await;
    assert!(
        after.contains(">cancelled<") && after.contains("no worker will start"),
        "{after}"
    );
    let status = env.job_status(&env.status_store().await, id).await.unwrap();
    assert_eq!(status.status, sluice_core::status::Status::Cancelled);
    let (_, again) = get_page(&http, &cookie, &confirm_url).await;
    assert!(again.contains("cannot be cancelled"), "{again}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filtered_dead_letters_are_replayed_as_previewed_and_the_rest_purged() {
    let env = console_env().await;
    let api = env.start_api().await;
    let base = format!("http://{}", api.info);
    let http = browser();
    let cookie = session(&http, &base).await;
    let dlq = env.topics().dead_letters("noop");
    for (id, class) in [("perm-1", "permanent"), ("retry-1", "retryable")] {
        let now = headers::now_millis().to_string();
        let record_headers = OwnedHeaders::new()
            .insert(Header {
                key: headers::JOB_ID,
                value: Some(id),
            })
            .insert(Header {
                key: headers::ERROR_CLASS,
                value: Some(class),
            })
            .insert(Header {
                key: headers::ERROR,
                value: Some("boom"),
            })
            .insert(Header {
                key: headers::DEAD_AT,
                value: Some(&now),
            });
        env.producer()
            .send(
                FutureRecord::to(&dlq)
                    .key(id)
                    .payload("{}")
                    .headers(record_headers),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let list = format!("{base}/console/dead-letters/noop");
    let (_, filtered) = get_page(
        &http,
        &cookie,
        &format!("{list}?error_class=permanent&since=1h"),
    )
    .await;
    assert!(
        filtered.contains("perm-1") && !filtered.contains("retry-1"),
        "{filtered}"
    );

    let (_, preview) = get_page(
        &http,
        &cookie,
        &format!("{list}/replay?error_class=permanent&since=1h"),
    )
    .await;
    assert!(
        preview.contains(r#"<strong id="replay-count">1</strong>"#),
        "{preview}"
    );
    assert!(
        preview.contains("perm-1") && !preview.contains("retry-1"),
        "{preview}"
    );
    let lane = env
        .topics()
        .lane("noop", sluice_core::lanes::Priority::Normal);
    assert_eq!(env.record_count(&lane), 0, "a preview sends nothing");
    let replayed = post_form(
        &http,
        &cookie,
        &format!("{list}/replay"),
        &[
            ("_csrf", csrf_of(&preview).as_str()),
            ("error_class", "permanent"),
            ("since", "1h"),
            ("until", hidden_of(&preview, "until").as_str()),
        ],
    )
    .await;
    assert_eq!(replayed.status(), StatusCode::OK);
    let page = replayed.text().await.unwrap();
    assert!(page.contains("<strong>1</strong> dead letter(s)"), "{page}");
    assert_eq!(
        env.record_count(&lane),
        1,
        "the one previewed letter was sent"
    );

    let (_, left) = get_page(&http, &cookie, &list).await;
    assert!(
        left.contains("retry-1") && !left.contains("perm-1"),
        "{left}"
    );
    let (_, confirm) = get_page(&http, &cookie, &format!("{list}/purge")).await;
    assert!(confirm.contains("Purge 1"), "{confirm}");
    let purged = post_form(
        &http,
        &cookie,
        &format!("{list}/purge"),
        &[
            ("_csrf", csrf_of(&confirm).as_str()),
            ("until", hidden_of(&confirm, "until").as_str()),
        ],
    )
    .await;
    assert!(purged
        .text()
        .await
        .unwrap()
        .contains("<strong>1</strong> dead letter(s)"));
    let (_, empty) = get_page(&http, &cookie, &list).await;
    assert!(empty.contains("0 dead letter(s) match"), "{empty}");
    api.stop().await;
}
