//! The auth layers on a small router of their own (no Kafka or Redis needed): 401, 403, 429,
//! the open paths and the `/v1/hooks/` exemption, and what the failures metric counts.

use axum::{
    body::Body,
    http::{Request, StatusCode},
    middleware::from_fn_with_state,
    routing::{get, post},
    Router,
};
use tower::ServiceExt;

use super::*;

const PUBLISHER: &str = "sk_sluice_publisher-token-for-unit-tests-0000000";
const READER: &str = "sk_sluice_reader-token-for-unit-tests-00000000000";

fn config(rate: Option<u32>, burst: Option<u32>) -> BTreeMap<String, TokenConfig> {
    BTreeMap::from([
        (
            "publisher".to_owned(),
            TokenConfig {
                sha256: sluice_core::tokens::sha256_hex(PUBLISHER),
                scopes: vec![Scope::Publish],
                rate,
                burst,
            },
        ),
        (
            "reader".to_owned(),
            TokenConfig {
                sha256: sluice_core::tokens::sha256_hex(READER),
                scopes: vec![Scope::Read, Scope::Admin],
                ..Default::default()
            },
        ),
    ])
}

/// Routes shaped like the api's: one path in two scope groups, a hook, an open path.
fn app(tokens: Arc<Tokens>) -> Router {
    let ok = || async { "ok" };
    let publish = Router::new()
        .route("/v1/jobs/{x}", post(ok))
        .route_layer(from_fn_with_state(Scope::Publish, require));
    let read = Router::new()
        .route("/v1/jobs/{x}", get(ok))
        .route_layer(from_fn_with_state(Scope::Read, require));
    Router::new()
        .merge(publish)
        .merge(read)
        .route("/v1/hooks/{source}", post(ok))
        .route("/healthz", get(ok))
        .route_layer(from_fn_with_state(tokens, authenticate))
}

async fn call(app: &Router, method: &str, path: &str, token: Option<&str>) -> Response {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    app.clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn error_of(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    body["error"].as_str().unwrap().to_owned()
}

fn failures(tokens: &Tokens, reason: &str) -> u64 {
    tokens.failures.with_label_values(&[reason]).get()
}

#[tokio::test]
async fn strangers_get_401_wrong_scopes_403_and_the_right_scope_passes() {
    let registry = Registry::new();
    let tokens = Arc::new(Tokens::new(&config(None, None), &registry));
    let app = app(tokens.clone());

    let missing = call(&app, "POST", "/v1/jobs/noop", None).await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let challenge = missing.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(error_of(missing).await.contains("Authorization: Bearer"));

    let unknown = call(&app, "POST", "/v1/jobs/noop", Some("sk_sluice_nope")).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let challenge = unknown.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    let message = error_of(unknown).await;
    assert!(
        !message.contains("sk_sluice_nope"),
        "the token is echoed: {message}"
    );

    let wrong = call(&app, "GET", "/v1/jobs/123", Some(PUBLISHER)).await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_of(wrong).await, "this token lacks the `read` scope");
    let wrong = call(&app, "POST", "/v1/jobs/noop", Some(READER)).await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);

    assert_eq!(
        call(&app, "POST", "/v1/jobs/noop", Some(PUBLISHER))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "GET", "/v1/jobs/123", Some(READER))
            .await
            .status(),
        StatusCode::OK
    );
    let lowercase = Request::builder()
        .uri("/v1/jobs/123")
        .header("authorization", format!("bearer  {READER}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.clone().oneshot(lowercase).await.unwrap().status(),
        StatusCode::OK
    );
    let basic = Request::builder()
        .uri("/v1/jobs/123")
        .header("authorization", format!("Basic {READER}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.clone().oneshot(basic).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    assert_eq!(failures(&tokens, "missing"), 2);
    assert_eq!(failures(&tokens, "unknown"), 1);
    assert_eq!(failures(&tokens, "scope"), 2);
    assert_eq!(failures(&tokens, "rate_limited"), 0);
}

#[tokio::test]
async fn hooks_and_open_paths_need_no_token_and_no_tokens_means_every_v1_call_is_401() {
    let registry = Registry::new();
    let none = Arc::new(Tokens::new(&BTreeMap::new(), &registry));
    assert!(none.is_empty());
    let app = app(none);
    assert_eq!(
        call(&app, "POST", "/v1/hooks/github", None).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "GET", "/healthz", None).await.status(),
        StatusCode::OK
    );
    for (method, path) in [("POST", "/v1/jobs/noop"), ("GET", "/v1/jobs/1")] {
        assert_eq!(
            call(&app, method, path, Some(PUBLISHER)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert!(needs_token("/v1"));
    assert!(needs_token("/v1/anything"));
    assert!(!needs_token("/v1hooks"));
    assert!(!needs_token("/metrics"));
    assert!(!needs_token("/v1/hooks/stripe"));
}

#[tokio::test]
async fn require_without_authenticate_refuses() {
    let app = Router::new()
        .route("/v1/jobs/{x}", get(|| async { "ok" }))
        .route_layer(from_fn_with_state(Scope::Read, require));
    assert_eq!(
        call(&app, "GET", "/v1/jobs/1", Some(READER)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_token_over_its_rate_gets_429_with_retry_after_and_others_are_not_slowed() {
    let registry = Registry::new();
    // One a second after a burst of 2: the third call in a row is over.
    let tokens = Arc::new(Tokens::new(&config(Some(1), Some(2)), &registry));
    let app = app(tokens.clone());
    for _ in 0..2 {
        assert_eq!(
            call(&app, "POST", "/v1/jobs/noop", Some(PUBLISHER))
                .await
                .status(),
            StatusCode::OK
        );
    }
    let over = call(&app, "POST", "/v1/jobs/noop", Some(PUBLISHER)).await;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = over.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1).contains(&retry_after), "{retry_after}");
    assert!(error_of(over).await.contains("rate limit"));
    // The reader has no limit.
    for _ in 0..20 {
        assert_eq!(
            call(&app, "GET", "/v1/jobs/1", Some(READER)).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(failures(&tokens, "rate_limited"), 1);
    // A second later the bucket holds one again.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        call(&app, "POST", "/v1/jobs/noop", Some(PUBLISHER))
            .await
            .status(),
        StatusCode::OK
    );
}
