//! `POST /v1/hooks/{source}`: incoming webhooks, authenticated by their signatures (not by API
//! tokens), enqueued as jobs (docs/architecture.md §16).
//!
//! The guarantee: a 200 means Kafka acknowledged the event's job, or already held it (a repeat
//! of an event id seen within the source's `tolerance`). Every signature is checked on the raw
//! bytes, in constant time, before anything is parsed; a repeat found while its first delivery
//! is still being produced gets 503 + `Retry-After`, so it is neither lost nor enqueued twice.
//! The limit: with Redis down, repeats are enqueued again (under the same job id, which is
//! derived from the event id, so consumers can recognise them) rather than refused.
//!
//! One scheme per sender family: a `Scheme` builds a `Verifier` from a `[hooks.<source>]`
//! table; `SCHEMES` lists them.

mod claim;
mod config;
mod github;
mod hmac_header;
mod job;
mod standard;
mod stripe;

use std::{collections::BTreeMap, time::Duration};

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, Path, State},
    http::{header::RETRY_AFTER, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use hmac::{Hmac, Mac};
use prometheus::IntCounterVec;
use serde_json::json;
use sha2::Sha256;
use sluice_core::hooks::HookConfig;

pub use config::HookConfigError;

use crate::{error::ApiError, jobs::enqueue, state::AppState};

/// Every scheme a `[hooks.<source>]` table may name. One line per implementation.
static SCHEMES: &[&dyn Scheme] = &[
    &stripe::Stripe,
    &standard::Standard,
    &github::Github,
    &hmac_header::HmacHeader,
];

/// A family of senders' signing convention.
pub trait Scheme: Send + Sync {
    /// `scheme = "<name>"`.
    fn name(&self) -> &'static str;

    /// The verifier of one source; a bad setting is an error naming its key.
    fn build(
        &self,
        source: &str,
        config: &HookConfig,
    ) -> Result<Box<dyn Verifier>, HookConfigError>;
}

/// Checks one source's requests.
pub trait Verifier: Send + Sync {
    /// Checks the signature on the raw body (constant-time comparison, any configured secret,
    /// any of the request's signatures), then the signed timestamp if the scheme has one.
    /// `now` is in seconds since the epoch.
    fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), Refusal>;

    /// The sender's event id, for de-duplication; called only once `verify` passed, so a body
    /// is parsed only when it is known to come from the sender. `None`: the scheme has no id.
    fn event_id(&self, headers: &HeaderMap, body: &[u8]) -> Result<Option<String>, Refusal>;

    /// The request headers copied into the job (lower-case names).
    fn forwarded_headers(&self) -> Vec<&str>;
}

/// Why a request was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No signature, or none that matches any secret: 401.
    InvalidSignature,
    /// A header that cannot be read as the scheme defines it: 400 naming it.
    Malformed(String),
    /// Validly signed, but its timestamp is further from now than the tolerance: 401.
    Expired,
}

/// The configured sources, and their metric.
pub struct Hooks {
    sources: BTreeMap<String, config::Source>,
    received: IntCounterVec,
    claims: claim::Claims,
}

impl Hooks {
    /// Checks every `[hooks.<source>]` table: a bad one fails the start naming its key.
    pub fn load(
        config: &sluice_core::Config,
        registry: &sluice_kinds::Registry,
        redis: sluice_core::redis_conn::RedisConn,
        metrics: &prometheus::Registry,
    ) -> Result<Self, HookConfigError> {
        let sources = config::load(&config.hooks, registry)?;
        let received = sluice_core::metrics::register(
            metrics,
            IntCounterVec::new(
                prometheus::Opts::new(
                    "sluice_hooks_received_total",
                    "Incoming webhook requests of configured sources, by outcome (accepted, \
                     duplicate, in_progress, invalid_signature, expired, malformed, too_large, \
                     unavailable).",
                ),
                &["source", "outcome"],
            )
            .expect("valid metric"),
        );
        for source in sources.keys() {
            received.with_label_values(&[source.as_str(), "accepted"]);
        }
        let claims = claim::Claims::new(redis, &config.redis, config.api.publish_timeout);
        Ok(Self {
            sources,
            received,
            claims,
        })
    }
}

/// What a request came to; each is one value of the metric's `outcome` label.
enum Answer {
    Accepted(String),
    Duplicate(String),
    InProgress,
    Refused(Refusal),
    TooLarge(usize),
    Unavailable(String),
}

impl Answer {
    fn outcome(&self) -> &'static str {
        match self {
            Answer::Accepted(_) => "accepted",
            Answer::Duplicate(_) => "duplicate",
            Answer::InProgress => "in_progress",
            Answer::Refused(Refusal::InvalidSignature) => "invalid_signature",
            Answer::Refused(Refusal::Expired) => "expired",
            Answer::Refused(Refusal::Malformed(_)) => "malformed",
            Answer::TooLarge(_) => "too_large",
            Answer::Unavailable(_) => "unavailable",
        }
    }
}

/// Longer event ids are refused (every sender's are far shorter).
const MAX_EVENT_ID_BYTES: usize = 256;

/// Senders retry a 503 after this many seconds (they all retry non-2xx answers anyway).
const RETRY_AFTER_SECONDS: &str = "5";

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let error = |status, message: &str| (status, Json(json!({ "error": message })));
        match self {
            Answer::Accepted(job_id) => {
                Json(json!({"status": "accepted", "job_id": job_id})).into_response()
            }
            Answer::Duplicate(job_id) => {
                Json(json!({"status": "duplicate", "job_id": job_id})).into_response()
            }
            // Whoever holds the claim is producing it now; the sender's retry will find it
            // done (200) or released (and enqueue it then).
            Answer::InProgress => (
                [(RETRY_AFTER, RETRY_AFTER_SECONDS)],
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this event is being enqueued by another request; retry",
                ),
            )
                .into_response(),
            Answer::Refused(Refusal::InvalidSignature) => {
                error(StatusCode::UNAUTHORIZED, "invalid signature").into_response()
            }
            Answer::Refused(Refusal::Expired) => error(
                StatusCode::UNAUTHORIZED,
                "signed timestamp is outside the tolerance",
            )
            .into_response(),
            Answer::Refused(Refusal::Malformed(why)) => {
                error(StatusCode::BAD_REQUEST, &why).into_response()
            }
            Answer::TooLarge(limit) => ApiError::PayloadTooLarge(limit).into_response(),
            Answer::Unavailable(why) => (
                [(RETRY_AFTER, RETRY_AFTER_SECONDS)],
                error(StatusCode::SERVICE_UNAVAILABLE, &why),
            )
                .into_response(),
        }
    }
}

/// `POST /v1/hooks/{source}`.
pub async fn receive(
    State(state): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(hook) = state.hooks.sources.get(&source) else {
        // Not echoed into a metric label: the path is the sender's to choose.
        return ApiError::NotFound("unknown webhook source".into()).into_response();
    };
    let answer = answer(&state, &source, hook, &headers, body).await;
    state
        .hooks
        .received
        .with_label_values(&[source.as_str(), answer.outcome()])
        .inc();
    tracing::debug!(%source, outcome = answer.outcome(), "incoming webhook");
    answer.into_response()
}

async fn answer(
    state: &AppState,
    source: &str,
    hook: &config::Source,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Answer::TooLarge(state.config.api.body_limit_bytes)
        }
        Err(_) => return Answer::Refused(Refusal::Malformed("unreadable body".into())),
    };
    let received_at = sluice_core::headers::now_millis();
    if let Err(refusal) = hook.verifier.verify(headers, &body, received_at / 1000) {
        return Answer::Refused(refusal);
    }
    let event_id = match hook.verifier.event_id(headers, &body) {
        // It becomes part of a Redis key and of the job id.
        Ok(Some(id)) if id.is_empty() || id.len() > MAX_EVENT_ID_BYTES => {
            return Answer::Refused(Refusal::Malformed(format!(
                "the event id must be 1-{MAX_EVENT_ID_BYTES} bytes"
            )))
        }
        Ok(id) => id,
        Err(refusal) => return Answer::Refused(refusal),
    };
    let job_id = job::job_id(source, event_id.as_deref());
    let prepared = job::prepare(
        &state.registry,
        hook,
        job::Event {
            source,
            event_id: event_id.as_deref(),
            headers,
            body: &body,
            received_at,
        },
        job_id.clone(),
    );
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(why) => return Answer::Refused(Refusal::Malformed(why)),
    };
    let claimed = match &event_id {
        None => claim::Claim::Unavailable,
        Some(id) => state.hooks.claims.claim(source, id).await,
    };
    match claimed {
        claim::Claim::Done => return Answer::Duplicate(job_id),
        claim::Claim::InProgress => return Answer::InProgress,
        claim::Claim::Claimed(_) | claim::Claim::Unavailable => {}
    }
    let incoming = headers.get("traceparent").and_then(|v| v.to_str().ok());
    match enqueue(state, &hook.kind, &prepared, incoming).await {
        Ok(_) => {
            if let (Some(id), claim::Claim::Claimed(_)) = (&event_id, &claimed) {
                state.hooks.claims.done(source, id, hook.tolerance).await;
            }
            Answer::Accepted(job_id)
        }
        Err(_) => {
            if let (Some(id), claim::Claim::Claimed(token)) = (&event_id, &claimed) {
                state.hooks.claims.release(source, id, token).await;
            }
            Answer::Unavailable("the job queue cannot take this event right now; retry".into())
        }
    }
}

/// HMAC-SHA256 keyed by `key` over `parts`, one after another.
fn mac(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// True if any candidate is the MAC of `parts` under any key. Each comparison is constant-time
/// (`verify_slice`); which key or candidate matched is not secret.
fn any_matches(keys: &[Vec<u8>], parts: &[&[u8]], candidates: &[Vec<u8>]) -> bool {
    keys.iter().any(|key| {
        let computed = mac(key, parts);
        candidates
            .iter()
            .any(|candidate| computed.clone().verify_slice(candidate).is_ok())
    })
}

/// True if `timestamp` (s) is within `tolerance` of `now` (s), either way.
fn within(timestamp: i64, now: i64, tolerance: Duration) -> bool {
    now.abs_diff(timestamp) <= tolerance.as_secs()
}

/// A header's value as text; `None` if absent, a malformed refusal if not visible ASCII.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, Refusal> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(Some)
            .map_err(|_| Refusal::Malformed(format!("header `{name}` is not text"))),
    }
}

#[cfg(test)]
mod test_support;
