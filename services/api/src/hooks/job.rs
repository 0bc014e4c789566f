//! An incoming event made into a job of its source's kind: the hook envelope
//! (`schemas/hook/v1.avsc`: source, scheme, event id, the forwarded headers, the raw body, when
//! it arrived), under a job id derived from the source and the event id.

use axum::http::HeaderMap;
use base64::{engine::general_purpose::STANDARD as BASE64, Engine};
use serde_json::json;
use sha2::{Digest, Sha256};
use sluice_kinds::{PreparedJob, Registry};

use super::config::Source;

/// What arrived, verified.
pub struct Event<'a> {
    pub source: &'a str,
    pub event_id: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub received_at: i64,
}

/// `hook-<source>-<event id>`: the same event always gets the same job id (and Kafka key, so the
/// same partition), whichever api replica took it — the idempotency key downstream. An id with
/// characters that do not belong in a URL path or a Redis key is replaced by its SHA-256.
/// Events without an id get a fresh UUIDv7.
pub fn job_id(source: &str, event_id: Option<&str>) -> String {
    let Some(id) = event_id else {
        return format!("hook-{source}-{}", uuid::Uuid::now_v7());
    };
    let plain = id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if plain {
        format!("hook-{source}-{id}")
    } else {
        format!("hook-{source}-{}", hex::encode(&Sha256::digest(id)[..16]))
    }
}

fn envelope(scheme: &str, event: &Event<'_>, forwarded: &[&str]) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> = forwarded
        .iter()
        .filter_map(|name| {
            let value = event.headers.get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), value.into()))
        })
        .collect();
    json!({
        "source": event.source,
        "scheme": scheme,
        "event_id": event.event_id,
        "headers": headers,
        "body": BASE64.encode(event.body),
        "received_at": event.received_at,
    })
}

/// The job for `event`, encoded with its kind's newest schema.
pub fn prepare(
    registry: &Registry,
    hook: &Source,
    event: Event<'_>,
    job_id: String,
) -> Result<PreparedJob, String> {
    let document = envelope(hook.scheme, &event, &hook.verifier.forwarded_headers());
    registry
        .prepare_as(&hook.kind, document.to_string().as_bytes(), job_id)
        .map_err(|e| format!("the event does not make a job: {e}"))
}

/// Whether `kind` takes the envelope: a sample one is prepared with it at start.
pub fn check_kind(registry: &Registry, kind: &str) -> Result<(), String> {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().expect("valid"));
    let sample = envelope(
        "check",
        &Event {
            source: "check",
            event_id: Some("evt_check"),
            headers: &headers,
            body: b"{}",
            received_at: 0,
        },
        &["content-type"],
    );
    registry
        .prepare_as(kind, sample.to_string().as_bytes(), "check".into())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_derive_from_source_and_event_id() {
        assert_eq!(job_id("stripe", Some("evt_1N2")), "hook-stripe-evt_1N2");
        assert_eq!(
            job_id("stripe", Some("evt_1N2")),
            job_id("stripe", Some("evt_1N2"))
        );
        assert_ne!(job_id("a", Some("x")), job_id("b", Some("x")));
        let odd = job_id("gh", Some("a/../b c"));
        assert!(odd.starts_with("hook-gh-") && odd.len() == "hook-gh-".len() + 32);
        assert!(!odd.contains('/'));
        assert_ne!(job_id("gh", None), job_id("gh", None));
    }

    #[test]
    fn the_envelope_decodes_with_every_forwarded_header_and_the_raw_body() {
        let config = sluice_core::Config::default();
        let registry = Registry::load(&config).unwrap();
        check_kind(&registry, "hook").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-github-event", "push".parse().unwrap());
        headers.insert("authorization", "Bearer secret".parse().unwrap());
        let body = [0xff, 0x00, b'{'];
        let document = envelope(
            "github",
            &Event {
                source: "gh",
                event_id: Some("d-1"),
                headers: &headers,
                body: &body,
                received_at: 42,
            },
            &["x-github-event", "content-type"],
        );
        let job = registry
            .prepare_as("hook", document.to_string().as_bytes(), "j".into())
            .unwrap();
        let decoded = registry.decode("hook", &job.value).unwrap();
        let back = sluice_core::json::record_to_json(&decoded.value);
        assert_eq!(back["headers"], json!({"x-github-event": "push"}));
        assert_eq!(BASE64.decode(back["body"].as_str().unwrap()).unwrap(), body);
        assert_eq!(back["event_id"], "d-1");
        assert_eq!(back["received_at"], 42);
    }
}
