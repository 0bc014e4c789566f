//! API tokens on the real api: every operation `/openapi.json` documents under `/v1` refuses a
//! caller without a token or with an unknown one (401) and a token without its scope (403),
//! and serves one with it; the open routes stay open; tricks with the path do not get around
//! it; refusals are counted, rate limits answer 429, and the token shows up in no log line and
//! no metric.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use sluice_core::tokens::{sha256_hex, Scope, TokenConfig};
use sluice_tests::{client_with_token, eventually, free_port, get_text, TestEnv, TEST_TOKEN};

/// A token holding every scope but `scope`, and one holding only `scope`.
fn token_without(scope: Scope) -> String {
    format!("sk_sluice_tests-without-{scope}-0000000000000000000000")
}
fn token_with_only(scope: Scope) -> String {
    format!("sk_sluice_tests-only-{scope}-00000000000000000000000000")
}

/// `path` with each `{parameter}` filled in with something the api parses.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{kind}" => "noop",
            "{job_id}" => "0193a4b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b",
            "{user_id}" => "ada",
            "{key}" => "images/none/800.jpg",
            other => other,
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn send(
    http: &reqwest::Client,
    method: &str,
    url: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let response = http
        .request(method, url)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// The start of a body, for failure messages (a queue-stats answer runs to pages).
fn short(body: &str) -> &str {
    let end = body
        .char_indices()
        .nth(300)
        .map_or(body.len(), |(at, _)| at);
    &body[..end]
}

fn json_error(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    value["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {body}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_v1_operation_needs_a_token_with_its_scope() {
    let env = TestEnv::with_config(|c| {
        for scope in Scope::ALL {
            let others = Scope::ALL.into_iter().filter(|s| *s != scope).collect();
            for (name, token, scopes) in [
                (format!("without-{scope}"), token_without(scope), others),
                (format!("only-{scope}"), token_with_only(scope), vec![scope]),
            ] {
                c.api.tokens.insert(
                    name,
                    TokenConfig {
                        sha256: sha256_hex(&token),
                        scopes,
                        ..Default::default()
                    },
                );
            }
        }
    })
    .await;
    let api = env.start_api().await;
    let base = format!("http://{}", api.info);
    let stranger = reqwest::Client::new();
    let unknown = client_with_token("sk_sluice_not-a-configured-token-000000000000000");
    let doc: Value = stranger
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let mut secured = 0;
    for (path, operations) in doc["paths"].as_object().unwrap() {
        let url = format!("{base}{}", concrete(path));
        for (method, operation) in operations.as_object().unwrap() {
            let what = format!("{} {path}", method.to_uppercase());
            let needs: Vec<Scope> = operation["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: no `security` in the document"))
                .iter()
                .flat_map(|requirement| {
                    requirement["bearer"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .map(|scope| scope.as_str().unwrap().parse().unwrap())
                .collect();
            let Some(scope) = needs.first().copied() else {
                assert!(
                    !path.starts_with("/v1/") || path.starts_with("/v1/hooks/"),
                    "{what} is open"
                );
                let (status, _, _) = send(&stranger, method, &url).await;
                assert!(
                    status != 401 && status != 403,
                    "{what} is open, yet answered {status}"
                );
                continue;
            };
            secured += 1;
            for (who, client) in [("no token", &stranger), ("an unknown token", &unknown)] {
                let (status, headers, body) = send(client, method, &url).await;
                assert_eq!(status, 401, "{what} with {who}: {}", short(&body));
                let challenge = headers["www-authenticate"].to_str().unwrap();
                assert!(challenge.starts_with("Bearer"), "{what}: {challenge}");
                json_error(&body);
            }
            let (status, _, body) =
                send(&client_with_token(&token_without(scope)), method, &url).await;
            assert_eq!(
                status,
                403,
                "{what} with every scope but {scope}: {}",
                short(&body)
            );
            assert!(json_error(&body).contains(scope.as_str()), "{what}: {body}");
            let (status, _, body) =
                send(&client_with_token(&token_with_only(scope)), method, &url).await;
            assert!(
                status != 401 && status != 403,
                "{what} with only {scope} answered {status}: {}",
                short(&body)
            );
        }
    }
    assert!(
        secured >= 14,
        "only {secured} secured operations documented"
    );
    api.stop().await;
}

/// The routes `lib.rs` declares under /v1 are all in the document, so the test above covers
/// every one of them (a path parameter's name may differ: `{kind_or_id}` is `{job_id}` there).
#[test]
fn every_v1_route_of_the_router_is_documented() {
    let source = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../services/api/src/lib.rs"),
    )
    .unwrap();
    let registry = sluice_kinds::Registry::load(&sluice_core::Config::default()).unwrap();
    let doc = sluice_api::openapi::document(&registry);
    let shape = |path: &str| -> String {
        path.split('/')
            .map(|s| if s.starts_with('{') { "{}" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    };
    let documented: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(|p| shape(p))
        .collect();
    // Every string literal that starts with /v1/: the route patterns.
    let routes: Vec<&str> = source
        .match_indices("\"/v1/")
        .map(|(at, _)| source[at + 1..].split('"').next().unwrap())
        .collect();
    assert!(routes.len() >= 10, "{routes:?}");
    for route in routes {
        assert!(
            documented.contains(&shape(route)),
            "{route} is not in /openapi.json"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_path_reaches_v1_without_a_token() {
    let env = TestEnv::new().await;
    let api = env.start_api().await;
    let addr = api.info;
    let targets = [
        "/v1/queue/stats",
        "/v1/queue/stats/",
        "//v1/queue/stats",
        "/v1//queue/stats",
        "/v1/../v1/queue/stats",
        "/files/../v1/queue/stats",
        "/healthz/../v1/queue/stats",
        "/%761/queue/stats",
        "/V1/queue/stats",
        "/v1/hooks/../queue/stats",
        "/v1",
        "/v1/no-such-route",
    ];
    for target in targets {
        let status =
            tokio::task::spawn_blocking(move || sluice_tests::raw_get_status(addr, target))
                .await
                .unwrap();
        assert!(
            status == 401 || status == 404,
            "{target} without a token answered {status}"
        );
    }
    let status = tokio::task::spawn_blocking(move || {
        sluice_tests::raw_get_status(addr, "/v1/no-such-route")
    })
    .await
    .unwrap();
    assert_eq!(status, 401, "an unknown /v1 path tells a stranger nothing");
    api.stop().await;
}

/// Starts `sluice api` with `extra` environment (minus the test token when `tokens` is false),
/// logging everything at DEBUG to a pipe.
fn spawn_api(
    env: &TestEnv,
    port: u16,
    tokens: bool,
    extra: &[(&str, &str)],
) -> std::process::Child {
    Command::new(sluice_tests::sluice_binary())
        .arg("api")
        .envs(
            env.env_vars()
                .into_iter()
                .filter(|(key, _)| tokens || !key.starts_with("SLUICE__API__TOKENS__")),
        )
        .env("SLUICE__API__LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "debug")
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn wait_up(http: &reqwest::Client, base: &str) {
    eventually("the api up", Duration::from_secs(30), || async {
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .ok()
            .map(|_| ())
    })
    .await;
}

fn stop(child: std::process::Child) -> String {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_counted_limits_answer_429_and_no_token_is_logged_or_exported() {
    let env = TestEnv::new().await;
    let limited = "sk_sluice_tests-rate-limited-token-0000000000000000";
    let limited_hash = sha256_hex(limited);
    let port = free_port();
    let api = spawn_api(
        &env,
        port,
        true,
        &[
            (
                "SLUICE__API__TOKENS__LIMITED__SHA256",
                limited_hash.as_str(),
            ),
            ("SLUICE__API__TOKENS__LIMITED__SCOPES", "read"),
            ("SLUICE__API__TOKENS__LIMITED__RATE", "1"),
            ("SLUICE__API__TOKENS__LIMITED__BURST", "2"),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    let stranger = reqwest::Client::new();
    wait_up(&stranger, &base).await;
    let stats = format!("{base}/v1/queue/stats");
    let unknown = "sk_sluice_tests-unknown-token-never-logged-00000000";

    assert_eq!(
        send(&sluice_tests::api_client(), "GET", &stats).await.0,
        200
    );
    assert_eq!(send(&stranger, "GET", &stats).await.0, 401);
    assert_eq!(
        send(&client_with_token(unknown), "GET", &stats).await.0,
        401
    );
    // A burst of 2, then one a second: the third call in a row is over (all three are quick).
    let limited_client = client_with_token(limited);
    let job = format!("{base}/v1/jobs/0193a4b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b");
    assert_eq!(
        send(&limited_client, "POST", &format!("{base}/v1/posts"))
            .await
            .0,
        403
    );
    assert_eq!(send(&limited_client, "GET", &job).await.0, 404);
    let (status, headers, body) = send(&limited_client, "GET", &job).await;
    assert_eq!(status, 429, "{body}");
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");

    let metrics = get_text(&stranger, &format!("{base}/metrics")).await;
    for (reason, count) in [
        ("missing", 1),
        ("unknown", 1),
        ("scope", 1),
        ("rate_limited", 1),
    ] {
        let line = format!("sluice_auth_failures_total{{reason=\"{reason}\"}} {count}");
        assert!(metrics.contains(&line), "no `{line}` in:\n{metrics}");
    }
    for (route, status) in [
        ("/v1/queue/stats", "200"),
        ("/v1/queue/stats", "401"),
        ("/v1/posts", "403"),
        ("/v1/jobs/{kind_or_id}", "429"),
    ] {
        let line = format!("sluice_http_requests_total{{route=\"{route}\",status=\"{status}\"}}");
        assert!(metrics.contains(&line), "no `{line}`");
    }
    let logs = stop(api);
    for token in [TEST_TOKEN, limited, unknown] {
        // Any long piece of it: a log that cut or wrapped it would still show.
        let piece = &token["sk_sluice_".len()..];
        assert!(!logs.contains(piece), "a token is in the logs:\n{logs}");
        assert!(!metrics.contains(piece), "a token is in the metrics");
    }
    assert!(
        logs.contains("refused a /v1 call"),
        "refusals are logged at DEBUG:\n{logs}"
    );
}

/// Also `api.metrics_listen`: `/metrics` on a port of its own, and not on the api's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_the_api_warns_once_and_refuses_every_v1_call() {
    let env = TestEnv::new().await;
    let (port, metrics_port) = (free_port(), free_port());
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let api = spawn_api(
        &env,
        port,
        false,
        &[
            ("RUST_LOG", "warn"),
            ("SLUICE__API__METRICS_LISTEN", &metrics_listen),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = sluice_tests::api_client();
    wait_up(&http, &base).await;
    assert_eq!(
        send(&http, "GET", &format!("{base}/v1/queue/stats"))
            .await
            .0,
        401
    );
    assert_eq!(send(&http, "GET", &format!("{base}/readyz")).await.0, 200);
    assert_eq!(send(&http, "GET", &format!("{base}/metrics")).await.0, 404);
    let metrics = get_text(&http, &format!("http://{metrics_listen}/metrics")).await;
    assert!(
        metrics.contains("sluice_auth_failures_total{reason=\"unknown\"} 1"),
        "{metrics}"
    );
    let logs = stop(api);
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("no API tokens are configured"))
        .collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert!(warnings[0].contains("sluice tokens new"), "{logs}");
}
