//! Bearer tokens on `/v1` (docs/architecture.md, "API tokens"): `authenticate` finds who is
//! calling (401 when nobody known is) and applies the token's rate limit (429); `require`,
//! declared per route group next to the routes in `lib.rs`, checks the scope (403).
//!
//! The rule is by path, so it fails closed: every path under `/v1/` needs a known token, a
//! route added there without a `require` still refuses strangers, and `require` without a
//! caller answers 401. The one exception is `/v1/hooks/`: incoming webhooks carry their
//! sender's signature, which their own handler verifies, not a token of ours.
//!
//! Lookup: the presented token is hashed (SHA-256) and the hash looked up in a map. That need
//! not be constant-time: an attacker controls the token, not its hash, so timing the map
//! lookup would tell them about hashes of their guesses, which leads nowhere near a valid
//! 256-bit token. The token itself is never logged or put in a metric; only the token's name
//! is, at DEBUG.

use std::{collections::BTreeMap, collections::HashMap, num::NonZeroU32, sync::Arc};

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{
    clock::{Clock, DefaultClock},
    DefaultDirectRateLimiter, Quota, RateLimiter,
};
use prometheus::{IntCounterVec, Opts, Registry};
use sha2::{Digest, Sha256};
pub use sluice_core::tokens::Scope;
use sluice_core::tokens::TokenConfig;

use crate::error::ApiError;

/// The paths that need a token.
pub fn needs_token(path: &str) -> bool {
    let v1 = path == "/v1" || path.starts_with("/v1/");
    // Incoming webhooks are authenticated by their signatures (see the module header).
    let hooks = path.starts_with("/v1/hooks/");
    v1 && !hooks
}

/// Who is calling: put in the request's extensions by `authenticate`.
#[derive(Debug)]
pub struct Caller {
    /// The token's name in the configuration (never the token).
    pub name: String,
    scopes: Vec<Scope>,
}

impl Caller {
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

struct Known {
    caller: Arc<Caller>,
    limit: Option<DefaultDirectRateLimiter>,
}

/// Why a call was refused: the label values of `sluice_auth_failures_total`.
#[derive(Debug, Clone, Copy)]
enum Failure {
    /// No `Authorization: Bearer …` header.
    Missing,
    /// A bearer token that is not configured.
    Unknown,
    /// A known token without the route's scope.
    Scope,
    /// A known token over its rate limit.
    RateLimited,
}

impl Failure {
    const ALL: [Failure; 4] = [
        Failure::Missing,
        Failure::Unknown,
        Failure::Scope,
        Failure::RateLimited,
    ];

    fn label(self) -> &'static str {
        match self {
            Failure::Missing => "missing",
            Failure::Unknown => "unknown",
            Failure::Scope => "scope",
            Failure::RateLimited => "rate_limited",
        }
    }
}

/// The configured tokens, by the SHA-256 of each.
pub struct Tokens {
    by_hash: HashMap<[u8; 32], Known>,
    clock: DefaultClock,
    failures: IntCounterVec,
}

impl Tokens {
    /// `config` was validated at load (64 hex digits, known scopes, rate and burst at least 1).
    pub fn new(config: &BTreeMap<String, TokenConfig>, registry: &Registry) -> Self {
        let failures = sluice_core::metrics::register(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "sluice_auth_failures_total",
                    "/v1 calls refused, by reason (missing, unknown, scope, rate_limited).",
                ),
                &["reason"],
            )
            .unwrap(),
        );
        for failure in Failure::ALL {
            failures.with_label_values(&[failure.label()]);
        }
        let clock = DefaultClock::default();
        let by_hash = config
            .iter()
            .map(|(name, token)| {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(&token.sha256, &mut hash)
                    .expect("api.tokens.*.sha256 is checked when the configuration loads");
                let limit = token.rate.and_then(NonZeroU32::new).map(|rate| {
                    let burst = token.burst.and_then(NonZeroU32::new).unwrap_or(rate);
                    let quota = Quota::per_second(rate).allow_burst(burst);
                    RateLimiter::direct_with_clock(quota, clock.clone())
                });
                let caller = Arc::new(Caller {
                    name: name.clone(),
                    scopes: token.scopes.clone(),
                });
                (hash, Known { caller, limit })
            })
            .collect();
        Self {
            by_hash,
            clock,
            failures,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The caller a presented token belongs to (looked up by its hash, as for `/v1`).
    pub fn find(&self, token: &str) -> Option<Arc<Caller>> {
        self.known(token).map(|known| known.caller.clone())
    }

    /// The caller of the token configured under `name`: a console session names its token, so
    /// a token removed from the configuration ends its sessions at the next restart.
    pub fn named(&self, name: &str) -> Option<Arc<Caller>> {
        self.by_hash
            .values()
            .find(|known| known.caller.name == name)
            .map(|known| known.caller.clone())
    }

    fn known(&self, token: &str) -> Option<&Known> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.by_hash.get(&hash)
    }

    fn refuse(&self, failure: Failure) {
        self.failures.with_label_values(&[failure.label()]).inc();
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// 401 with `WWW-Authenticate` (RFC 6750: `invalid_token` when one was sent but is unknown).
fn unauthorized(challenge: &'static str, message: &str) -> Response {
    (
        [(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        )],
        ApiError::Unauthorized(message.into()),
    )
        .into_response()
}

/// Marks a 403 from `require`, so that `authenticate` counts it on the way out.
#[derive(Clone, Copy)]
struct ScopeRefused;

pub async fn authenticate(
    State(tokens): State<Arc<Tokens>>,
    mut request: Request,
    next: Next,
) -> Response {
    if !needs_token(request.uri().path()) {
        return next.run(request).await;
    }
    let Some(token) = bearer(request.headers()) else {
        tokens.refuse(Failure::Missing);
        return unauthorized(
            r#"Bearer realm="sluice""#,
            "this route needs an `Authorization: Bearer <token>` header",
        );
    };
    let Some(known) = tokens.known(token) else {
        tokens.refuse(Failure::Unknown);
        tracing::debug!(reason = "unknown", "refused a /v1 call");
        return unauthorized(
            r#"Bearer realm="sluice", error="invalid_token""#,
            "unknown token",
        );
    };
    if let Some(limit) = &known.limit {
        if let Err(not_until) = limit.check() {
            tokens.refuse(Failure::RateLimited);
            tracing::debug!(token = %known.caller.name, reason = "rate_limited", "refused a /v1 call");
            let wait = not_until.wait_time_from(tokens.clock.now());
            // Whole seconds, rounded up: a client retrying after it will find a token.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return (
                [(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)))],
                ApiError::TooManyRequests(format!(
                    "token `{}` is over its rate limit; retry in {}s",
                    known.caller.name,
                    seconds.max(1)
                )),
            )
                .into_response();
        }
    }
    request.extensions_mut().insert(known.caller.clone());
    let response = next.run(request).await;
    if response.extensions().get::<ScopeRefused>().is_some() {
        tokens.refuse(Failure::Scope);
    }
    response
}

/// The route group's scope check: `route_layer(from_fn_with_state(Scope::Read, require))`.
pub async fn require(State(scope): State<Scope>, request: Request, next: Next) -> Response {
    let Some(caller) = request.extensions().get::<Arc<Caller>>() else {
        // Not behind `authenticate`: refuse rather than serve a route nobody checked.
        return unauthorized(
            r#"Bearer realm="sluice""#,
            "this route needs an `Authorization: Bearer <token>` header",
        );
    };
    if caller.may(scope) {
        return next.run(request).await;
    }
    tracing::debug!(token = %caller.name, %scope, reason = "scope", "refused a /v1 call");
    let mut response =
        ApiError::Forbidden(format!("this token lacks the `{scope}` scope")).into_response();
    response.extensions_mut().insert(ScopeRefused);
    response
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
