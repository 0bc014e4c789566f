//! Record headers carried by every job (DESIGN.md §5). Retry and DLQ records add to them and
//! never drop them.

use std::time::{SystemTime, UNIX_EPOCH};

use rdkafka::message::{Header, Headers, OwnedHeaders};

pub const JOB_ID: &str = "sluice-job-id";
pub const ATTEMPT: &str = "sluice-attempt";
pub const ENQUEUED_AT: &str = "sluice-enqueued-at";
pub const TRACEPARENT: &str = "traceparent";
pub const ERROR: &str = "sluice-error";
pub const ERROR_CLASS: &str = "sluice-error-class";
pub const ORIGINAL_TOPIC: &str = "sluice-original-topic";
pub const ORIGINAL_PARTITION: &str = "sluice-original-partition";
pub const ORIGINAL_OFFSET: &str = "sluice-original-offset";
pub const DEAD_AT: &str = "sluice-dead-at";
pub const DUE_AT: &str = "sluice-due-at";
pub const REPLAYED_FROM: &str = "sluice-replayed-from";

pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A fresh W3C trace context (version 00, sampled).
pub fn new_traceparent() -> String {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    format!("00-{trace}-{span}-01")
}

/// Headers of a brand-new job.
pub fn new_job(job_id: &str) -> OwnedHeaders {
    OwnedHeaders::new_with_capacity(4)
        .insert(str_header(JOB_ID, job_id))
        .insert(str_header(ATTEMPT, "1"))
        .insert(str_header(ENQUEUED_AT, &now_millis().to_string()))
        .insert(str_header(TRACEPARENT, &new_traceparent()))
}

pub fn str_header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// The last value of header `key` as UTF-8, if present and valid.
pub fn get<'h, H: Headers>(headers: &'h H, key: &str) -> Option<&'h str> {
    headers
        .iter()
        .filter(|h| h.key == key)
        .last()
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// Copies every header except those named in `replace`, so a caller can set new values for them.
pub fn copy_except<H: Headers>(headers: Option<&H>, replace: &[&str]) -> OwnedHeaders {
    let mut out = OwnedHeaders::new();
    if let Some(headers) = headers {
        for header in headers.iter().filter(|h| !replace.contains(&h.key)) {
            out = out.insert(Header {
                key: header.key,
                value: header.value,
            });
        }
    }
    out
}
