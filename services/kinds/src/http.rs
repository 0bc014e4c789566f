//! `handler = "http"`: consumers as containers, in any language. The worker POSTs each job to
//! the kind's `url` as JSON —
//!
//! ```json
//! {"job_id": "…", "kind": "resize", "attempt": 1, "enqueued_at": 1764620000000, "record": {…}}
//! ```
//!
//! — the record decoded with its schema into plain JSON (`sluice_core::json::record_to_json`),
//! with `traceparent` and a Standard Webhooks signature (`webhook-id` = job id,
//! `webhook-timestamp`, `webhook-signature`) keyed by the kind's `secret`, so the container can
//! check the call came from sluice. The answer decides the outcome: 2xx succeeds (a JSON body up
//! to 64 KiB becomes the job's result); 429 and 503 retry, honouring `Retry-After`; 408, other
//! 5xx, timeouts and connection errors retry; other 4xx are fatal (dead-lettered at once, with
//! the status and the first bytes of the body as the error), 410 also disabling the endpoint;
//! 3xx are fatal (redirects are never followed). Calls obey the outgoing guard
//! (`crate::outgoing`) like webhooks.
//!
//! To enqueue follow-up jobs as well, a 2xx answers with `content-type:
//! application/vnd.sluice.outcome+json` and `{"result": …, "enqueue": [{"kind": "webhook",
//! "job": {…}}]}` (`Outcome::follow_ups`); each `job` is what `POST /v1/jobs/{kind}` takes.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use reqwest::{header::RETRY_AFTER, StatusCode};
use serde::Deserialize;
use sluice_core::json::record_to_json;

use crate::{
    handler::{ErrorClass, FollowUp, Handler, Job, JobFailure, Outcome},
    kind::{parse_settings, HandlerType, KindError, Settings},
    outgoing::{
        check_url, endpoint_key, policy, redirect_message, transport_failure, AddressPolicy,
        CidrList, Outgoing,
    },
    webhook::{answer_failure, decode_secret, parse_retry_after, sign},
};

/// A 2xx body larger than this is not kept as the result.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;
/// How much of a refusing answer's body goes into the error.
const ERROR_BODY_BYTES: usize = 200;

/// `[kinds.<kind>]` of an `http` kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSettings {
    /// Where the jobs are POSTed, e.g. `http://resizer:8000/jobs`. Required.
    url: Option<String>,
    /// `whsec_` + base64: the key of the Standard Webhooks signature on every call. Required.
    secret: Option<String>,
    /// One call's time limit. Default 30 s. (`timeout`, a retry key, bounds the whole attempt.)
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    request_timeout: Duration,
    /// Lets calls go to private-use addresses (loopback, RFC 1918, unique-local, link-local,
    /// CGNAT; not cloud metadata, multicast or unspecified): an endpoint on the same network
    /// as the worker. Default false.
    #[serde(default)]
    allow_private: bool,
    /// Networks calls may go to even though they are not public, e.g. `["10.20.0.0/16"]`.
    /// Default empty.
    #[serde(default)]
    allow_cidrs: CidrList,
}

/// An http kind's checked settings.
struct Resolved {
    url: String,
    key: Vec<u8>,
    timeout: Duration,
    policy: AddressPolicy,
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}

pub struct Http;

impl Http {
    fn settings(kind: &str, settings: &Settings) -> Result<Resolved, KindError> {
        let s: HttpSettings = parse_settings(kind, settings)?;
        let url = s
            .url
            .ok_or_else(|| KindError::key(kind, "url", "is required for an http kind"))?;
        let policy = policy(kind, s.allow_private, &s.allow_cidrs)?;
        // An IP-literal url the guard refuses would dead-letter every job: refuse it at start.
        // A host name is checked on every call, since what it resolves to may change.
        check_url(&policy, &url)
            .map_err(|problem| KindError::key(kind, "url", format!("`{url}`: {problem}")))?;
        let secret = s.secret.ok_or_else(|| {
            KindError::key(
                kind,
                "secret",
                "is required for an http kind (`whsec_` + base64; the endpoint checks the \
                 signature with it)",
            )
        })?;
        let key = decode_secret(&secret)
            .ok_or_else(|| KindError::key(kind, "secret", "must be `whsec_` followed by base64"))?;
        Ok(Resolved {
            url,
            key,
            timeout: s.request_timeout,
            policy,
        })
    }
}

impl HandlerType for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn built_in(&self) -> bool {
        false
    }

    fn check(&self, kind: &str, settings: &Settings) -> Result<(), KindError> {
        Self::settings(kind, settings).map(|_| ())
    }

    fn build(
        &self,
        kind: &str,
        settings: &Settings,
        _: &sluice_core::Config,
    ) -> Result<Arc<dyn Handler>, KindError> {
        let Resolved {
            url,
            key,
            timeout,
            policy,
        } = Self::settings(kind, settings)?;
        let outgoing = Outgoing::new(kind, timeout, policy)?;
        Ok(Arc::new(HttpHandler {
            outgoing,
            endpoint: endpoint_key(&url),
            url,
            key,
        }))
    }
}

struct HttpHandler {
    outgoing: Outgoing,
    url: String,
    /// `url` as endpoints are disabled by.
    endpoint: String,
    key: Vec<u8>,
}

#[async_trait]
impl Handler for HttpHandler {
    async fn handle(&self, job: &Job) -> Result<Outcome, JobFailure> {
        let body = serde_json::json!({
            "job_id": job.id,
            "kind": job.kind,
            "attempt": job.attempt,
            "enqueued_at": job.enqueued_at,
            "record": record_to_json(&job.record),
        })
        .to_string();
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut request = self
            .outgoing
            .post(&self.url)?
            .header("content-type", "application/json")
            .header("webhook-id", &job.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                sign(&self.key, &job.id, timestamp, &body),
            )
            .header("sluice-kind", &job.kind)
            .header("sluice-attempt", job.attempt.to_string());
        if let Some(traceparent) = &job.traceparent {
            request = request.header("traceparent", traceparent);
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| transport_failure(&e))?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok());
            let message = redirect_message("endpoint", status.as_u16(), location);
            return Err(answer_failure(status, None, message));
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let envelope = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(OUTCOME_CONTENT_TYPE));
        let (bytes, complete) = read_capped(response, MAX_RESULT_BYTES).await;
        let answered = outcome(status, retry_after, &bytes, complete)?;
        if envelope {
            return envelope_outcome(&bytes, complete);
        }
        Ok(answered)
    }

    fn endpoint(&self, _job: &Job) -> Option<String> {
        Some(self.endpoint.clone())
    }
}

/// Reads at most `cap` bytes of the body (a hostile endpoint cannot make the worker buffer
/// gigabytes); says whether that was all of it.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> (Vec<u8>, bool) {
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if bytes.len() + chunk.len() <= cap => bytes.extend_from_slice(&chunk),
            Ok(Some(chunk)) => {
                let room = cap - bytes.len();
                bytes.extend_from_slice(&chunk[..room]);
                return (bytes, false);
            }
            Ok(None) => return (bytes, true),
            // The status already decided the outcome; a body cut short only loses the result.
            Err(_) => return (bytes, false),
        }
    }
}

/// The content type of an answer that carries follow-up jobs next to its result.
pub const OUTCOME_CONTENT_TYPE: &str = "application/vnd.sluice.outcome+json";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    #[serde(default)]
    result: Option<serde_json::Value>,
    #[serde(default)]
    enqueue: Vec<EnvelopeJob>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeJob {
    kind: String,
    job: serde_json::Value,
}

/// A 2xx answer in `OUTCOME_CONTENT_TYPE`. One that does not parse is `fatal`: the endpoint
/// meant to enqueue something, and silently enqueueing nothing would lose it.
pub fn envelope_outcome(body: &[u8], complete: bool) -> Result<Outcome, JobFailure> {
    let fatal = |problem: String| {
        JobFailure::new(
            ErrorClass::Fatal,
            format!("endpoint's {OUTCOME_CONTENT_TYPE} answer {problem}"),
        )
    };
    if !complete {
        return Err(fatal(format!("is over {MAX_RESULT_BYTES} bytes")));
    }
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| fatal(format!("does not parse: {e}")))?;
    Ok(Outcome {
        result: envelope.result.filter(|r| !r.is_null()),
        follow_ups: envelope
            .enqueue
            .into_iter()
            .map(|j| FollowUp {
                kind: j.kind,
                job: j.job,
            })
            .collect(),
    })
}

/// The outcome of an answer, by the rules in this module's header.
pub fn outcome(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    complete: bool,
) -> Result<Outcome, JobFailure> {
    if status.is_success() {
        let result = complete
            .then(|| serde_json::from_slice::<serde_json::Value>(body).ok())
            .flatten();
        return Ok(Outcome {
            result,
            follow_ups: Vec::new(),
        });
    }
    let snippet: String = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_BYTES)])
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let message = if snippet.trim().is_empty() {
        format!("endpoint answered {}", status.as_u16())
    } else {
        format!("endpoint answered {}: {}", status.as_u16(), snippet.trim())
    };
    Err(answer_failure(status, retry_after, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(code: u16) -> Option<ErrorClass> {
        outcome(StatusCode::from_u16(code).unwrap(), None, b"", true)
            .err()
            .map(|f| f.class)
    }

    #[test]
    fn answers_are_classified_case_by_case() {
        for code in [200, 201, 202, 204] {
            assert_eq!(class(code), None, "{code}");
        }
        for code in [408, 429, 500, 502, 503, 504] {
            assert_eq!(class(code), Some(ErrorClass::Retryable), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 410, 413, 422, 301, 302] {
            assert_eq!(class(code), Some(ErrorClass::Fatal), "{code}");
        }
    }

    #[test]
    fn retry_after_counts_for_429_and_503_only() {
        let wait = Some(Duration::from_secs(7));
        let after = |code| {
            outcome(StatusCode::from_u16(code).unwrap(), wait, b"", true)
                .unwrap_err()
                .retry_after
        };
        assert_eq!(after(429), wait);
        assert_eq!(after(503), wait);
        assert_eq!(after(500), None);
    }

    #[test]
    fn a_json_body_is_the_result_and_a_refusal_quotes_the_body() {
        let ok = outcome(StatusCode::OK, None, br#"{"width": 800}"#, true).unwrap();
        assert_eq!(ok.result, Some(serde_json::json!({"width": 800})));
        let cut = outcome(StatusCode::OK, None, br#"{"width": 8"#, false).unwrap();
        assert_eq!(cut.result, None, "a body over the cap is no result");
        let text = outcome(StatusCode::OK, None, b"fine", true).unwrap();
        assert_eq!(text.result, None, "a body that is not JSON is no result");
        let refused = outcome(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            b"width\nmissing",
            true,
        )
        .unwrap_err();
        assert_eq!(refused.message, "endpoint answered 422: widthmissing");
    }

    #[test]
    fn an_outcome_envelope_carries_follow_up_jobs() {
        let body = br#"{"result": {"w": 1}, "enqueue": [{"kind": "webhook", "job": {"url": "https://x"}}]}"#;
        let done = envelope_outcome(body, true).unwrap();
        assert_eq!(done.result, Some(serde_json::json!({"w": 1})));
        assert_eq!(done.follow_ups.len(), 1);
        assert_eq!(done.follow_ups[0].kind, "webhook");
        let bad = envelope_outcome(br#"{"enqueue": [{"kind": 1}]}"#, true).unwrap_err();
        assert_eq!(bad.class, ErrorClass::Fatal);
        assert!(envelope_outcome(body, false).is_err(), "cut short");
    }
}
