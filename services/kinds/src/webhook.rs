//! `webhook`: outgoing webhooks, signed per Standard Webhooks: `webhook-id` (the job id, so
//! receivers can deduplicate redeliveries), `webhook-timestamp` (Unix seconds) and
//! `webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with the decoded
//! `whsec_` secret of `[kinds.webhook] secret`). The job chooses the URL, so deliveries go only
//! where the outgoing guard lets them (`crate::outgoing`: public addresses unless
//! `allow_private` / `allow_cidrs` say otherwise, no redirects).

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use apache_avro::types::Value;
use async_trait::async_trait;
use base64::{engine::general_purpose::STANDARD as BASE64, Engine};
use hmac::{Hmac, Mac};
use reqwest::{
    header::{HeaderValue, LOCATION, RETRY_AFTER},
    StatusCode,
};
use serde::Deserialize;
use sha2::Sha256;
use sluice_core::json::{string_field, FieldError};

use crate::{
    handler::{ErrorClass, Handler, Job, JobFailure, Outcome},
    kind::{parse_settings, HandlerType, KindError, Settings},
    outgoing::{endpoint_key, policy, redirect_message, transport_failure, CidrList, Outgoing},
};

/// `[kinds.webhook]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookSettings {
    /// Standard Webhooks signing secret, `whsec_` + base64. Required by workers of this kind.
    /// Default empty (no secret is ever committed).
    #[serde(default)]
    secret: String,
    /// Per-request timeout of outgoing deliveries. Default 10 s (docs/architecture.md §2).
    /// (`timeout`, a retry key, bounds the whole attempt.)
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    request_timeout: Duration,
    /// Lets deliveries go to private-use addresses (loopback, RFC 1918, unique-local,
    /// link-local, CGNAT; not cloud metadata, multicast or unspecified). Default false: a job
    /// chooses its URL, and must not reach what only the worker can reach.
    #[serde(default)]
    allow_private: bool,
    /// Networks deliveries may go to even though they are not public, e.g.
    /// `["10.20.0.0/16"]`. Default empty.
    #[serde(default)]
    allow_cidrs: CidrList,
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(10)
}

/// An absolute `http://` or `https://` URL with something after the scheme: what a webhook (or
/// any kind's callback URL) may be sent to.
pub fn is_http_url(url: &str) -> bool {
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    scheme_ok && url.len() > "https://".len()
}

pub struct Webhook;

impl HandlerType for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn built_in(&self) -> bool {
        true
    }

    fn validate(&self, record: &Value) -> Result<(), FieldError> {
        let problem = |field: &str, problem: &str| FieldError {
            field: field.to_owned(),
            problem: problem.to_owned(),
        };
        let url = string_field(record, "url").unwrap_or_default();
        if !is_http_url(url) {
            return Err(problem(
                "url",
                "must be an absolute http:// or https:// URL",
            ));
        }
        if string_field(record, "event_type")
            .unwrap_or_default()
            .is_empty()
        {
            return Err(problem("event_type", "must not be empty"));
        }
        let payload = string_field(record, "payload").unwrap_or_default();
        if serde_json::from_str::<serde_json::Value>(payload).is_err() {
            return Err(problem(
                "payload",
                "must be a JSON document encoded as a string",
            ));
        }
        Ok(())
    }

    fn field_hints(&self) -> serde_json::Value {
        serde_json::json!({
            "url": {"format": "uri", "pattern": "^https?://[^/\\s]{1,}"},
            "event_type": {"minLength": 1},
            "payload": {"contentMediaType": "application/json", "description": "A JSON document, as a string"},
        })
    }

    fn check(&self, kind: &str, settings: &Settings) -> Result<(), KindError> {
        settings_and_key(kind, settings).map(|_| ())
    }

    fn build(
        &self,
        kind: &str,
        settings: &Settings,
        _: &sluice_core::Config,
    ) -> Result<Arc<dyn Handler>, KindError> {
        let (settings, key) = settings_and_key(kind, settings)?;
        let key = key.ok_or_else(|| {
            KindError::key(
                kind,
                "secret",
                "is required by a worker of this kind (a `whsec_` + base64 signing secret; \
                 SLUICE__KINDS__WEBHOOK__SECRET)",
            )
        })?;
        let guard = policy(kind, settings.allow_private, &settings.allow_cidrs)?;
        let outgoing = Outgoing::new(kind, settings.request_timeout, guard)?;
        Ok(Arc::new(WebhookHandler { outgoing, key }))
    }
}

/// The settings, and the signing key when a secret is set (a worker needs one; the api does not).
fn settings_and_key(
    kind: &str,
    settings: &Settings,
) -> Result<(WebhookSettings, Option<Vec<u8>>), KindError> {
    let parsed: WebhookSettings = parse_settings(kind, settings)?;
    policy(kind, parsed.allow_private, &parsed.allow_cidrs)?;
    if parsed.secret.is_empty() {
        return Ok((parsed, None));
    }
    let key = decode_secret(&parsed.secret)
        .ok_or_else(|| KindError::key(kind, "secret", "must be `whsec_` followed by base64"))?;
    Ok((parsed, Some(key)))
}

struct WebhookHandler {
    outgoing: Outgoing,
    key: Vec<u8>,
}

/// The HMAC key: the base64 part of a `whsec_` secret.
pub fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    BASE64
        .decode(secret.strip_prefix("whsec_")?)
        .ok()
        .filter(|k| !k.is_empty())
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

#[async_trait]
impl Handler for WebhookHandler {
    async fn handle(&self, job: &Job) -> Result<Outcome, JobFailure> {
        let field = |name| {
            string_field(&job.record, name).ok_or_else(|| {
                JobFailure::new(ErrorClass::Fatal, format!("record has no `{name}`"))
            })
        };
        let (url, event_type, payload) = (field("url")?, field("event_type")?, field("payload")?);
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let response = self
            .outgoing
            .post(url)?
            .header("content-type", "application/json")
            .header("webhook-id", &job.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                sign(&self.key, &job.id, timestamp, payload),
            )
            .header("webhook-event-type", event_type)
            .body(payload.to_owned())
            .send()
            .await;
        let response = response.map_err(|e| transport_failure(&e))?;
        classify(
            response.status(),
            response.headers().get(RETRY_AFTER),
            response.headers().get(LOCATION),
        )
        .map(|()| Outcome::default())
    }

    fn endpoint(&self, job: &Job) -> Option<String> {
        string_field(&job.record, "url").map(endpoint_key)
    }
}

/// 2xx success; 408, 429, 5xx retryable (with `Retry-After` for 429/503); 3xx fatal (redirects
/// are never followed, and one would be again); 410 and other 4xx fatal: the receiver has told
/// us the request itself is wrong or unwanted (410 also disables the URL, see `answer_failure`).
pub fn classify(
    status: StatusCode,
    retry_after: Option<&HeaderValue>,
    location: Option<&HeaderValue>,
) -> Result<(), JobFailure> {
    if status.is_success() {
        return Ok(());
    }
    let retry_after = retry_after
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let message = if status.is_redirection() {
        redirect_message(
            "receiver",
            status.as_u16(),
            location.and_then(|v| v.to_str().ok()),
        )
    } else {
        format!("receiver answered {}", status.as_u16())
    };
    Err(answer_failure(status, retry_after, message))
}

/// The failure a non-2xx HTTP answer means, for every handler that calls out over HTTP: 408
/// and 429 retryable, 3xx and other 4xx fatal (a redirect is never followed; a 4xx says the
/// request itself is wrong), anything else retryable (5xx, 1xx); `Retry-After` kept for 429 and
/// 503. A 410 Gone also marks the failure `endpoint_gone`: the worker disables the URL.
pub fn answer_failure(
    status: StatusCode,
    retry_after: Option<Duration>,
    message: String,
) -> JobFailure {
    let class = match status.as_u16() {
        408 | 429 => ErrorClass::Retryable,
        300..=499 => ErrorClass::Fatal,
        _ => ErrorClass::Retryable,
    };
    let mut failure = JobFailure::new(class, message);
    if matches!(status.as_u16(), 429 | 503) {
        failure.retry_after = retry_after;
    }
    failure.endpoint_gone = status == StatusCode::GONE;
    failure
}

/// `Retry-After` is either delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value.trim()).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the Standard Webhooks specification's reference implementations.
    #[test]
    fn signature_matches_the_standard_webhooks_reference_vector() {
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn outcomes_are_classified_as_the_design_says() {
        let class = |code: u16| {
            classify(StatusCode::from_u16(code).unwrap(), None, None)
                .err()
                .map(|f| f.class)
        };
        assert_eq!(class(200), None);
        assert_eq!(class(204), None);
        for code in [408, 429, 500, 502, 503, 504] {
            assert_eq!(class(code), Some(ErrorClass::Retryable), "{code}");
        }
        for code in [400, 401, 403, 404, 410, 422, 301, 302, 307, 308] {
            assert_eq!(class(code), Some(ErrorClass::Fatal), "{code}");
        }
        let gone = |code| {
            classify(StatusCode::from_u16(code).unwrap(), None, None)
                .unwrap_err()
                .endpoint_gone
        };
        assert!(gone(410), "410 disables the endpoint");
        assert!(!gone(404) && !gone(500), "nothing else does");
        let location = HeaderValue::from_static("http://169.254.169.254/latest/meta-data");
        let redirect = classify(StatusCode::FOUND, None, Some(&location)).unwrap_err();
        assert_eq!(
            redirect.message,
            "receiver answered 302, a redirect to http://169.254.169.254; redirects are never followed"
        );
    }

    #[test]
    fn retry_after_is_read_for_429_and_503_only() {
        let ten = HeaderValue::from_static("10");
        let after = |code| {
            classify(StatusCode::from_u16(code).unwrap(), Some(&ten), None)
                .unwrap_err()
                .retry_after
        };
        assert_eq!(after(429), Some(Duration::from_secs(10)));
        assert_eq!(after(503), Some(Duration::from_secs(10)));
        assert_eq!(after(500), None);
        assert!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT").is_some());
    }

    #[test]
    fn secrets_must_be_whsec_base64() {
        assert!(decode_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_none());
        assert!(decode_secret("whsec_***").is_none());
    }
}
