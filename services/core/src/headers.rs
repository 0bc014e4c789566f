//! Record headers carried by every job (docs/architecture.md §3). Retry and DLQ records add to
//! them and never drop them.

use std::time::{SystemTime, UNIX_EPOCH};

pub use rdkafka::message::OwnedHeaders;
use rdkafka::message::{Header, Headers};

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
/// A job not started by then (ms since epoch) is not run: status `expired`.
pub const EXPIRES_AT: &str = "sluice-expires-at";
pub const REPLAYED_FROM: &str = "sluice-replayed-from";
/// The job's lane (`high`, `normal`, `low`); kept on retries so a retry is served in its lane.
/// An outside producer may set it; absent, the lane is the topic's.
pub const PRIORITY: &str = "sluice-priority";
/// A delayed job is not started before then (ms since epoch).
pub const RUN_AT: &str = "sluice-run-at";
/// Where a delayed job goes once due: its lane topic.
pub const TARGET_TOPIC: &str = "sluice-target-topic";
/// When a record on a rung of the delay ladder may move on (ms since epoch).
pub const HOP_DUE_AT: &str = "sluice-hop-due-at";

pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A fresh W3C trace context (version 00, sampled).
pub fn new_traceparent() -> String {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    child_traceparent(&trace)
}

/// A new span in trace `trace_id`, as a W3C `traceparent`.
fn child_traceparent(trace_id: &str) -> String {
    let span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    format!("00-{trace_id}-{span}-01")
}

/// The trace id of a valid W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`, ids not all zero).
/// Allocates nothing: the worker reads it for every status update.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.trim().split('-');
    let (Some(version), Some(trace), Some(span), Some(flags), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && hex(span, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && span.bytes().any(|b| b != b'0');
    valid.then_some(trace)
}

/// Headers of a brand-new job, in a new trace.
pub fn new_job(job_id: &str) -> OwnedHeaders {
    new_job_traced(job_id, None).0
}

/// Headers of a brand-new job, continuing the caller's trace when `incoming` is a valid
/// `traceparent`; also returns the job's `traceparent`.
pub fn new_job_traced(job_id: &str, incoming: Option<&str>) -> (OwnedHeaders, String) {
    new_job_with(job_id, incoming, &JobOptions::default())
}

/// When and where a new job runs, beyond its id and trace.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobOptions {
    /// `sluice-expires-at`: not started after this, it is not run.
    pub expires_at: Option<i64>,
    /// `sluice-run-at`: not started before this.
    pub run_at: Option<i64>,
    /// `sluice-priority`, written unless normal.
    pub priority: crate::lanes::Priority,
}

/// `new_job_traced`, with the headers of `options`.
pub fn new_job_with(
    job_id: &str,
    incoming: Option<&str>,
    options: &JobOptions,
) -> (OwnedHeaders, String) {
    let traceparent = incoming
        .and_then(trace_id)
        .map(child_traceparent)
        .unwrap_or_else(new_traceparent);
    let headers = OwnedHeaders::new_with_capacity(5)
        .insert(str_header(JOB_ID, job_id))
        .insert(str_header(ATTEMPT, "1"))
        .insert(str_header(ENQUEUED_AT, &now_millis().to_string()))
        .insert(str_header(TRACEPARENT, &traceparent));
    (with_options(headers, options), traceparent)
}

/// Headers of a new job sent in bulk, which runs now: only what neither the record nor its
/// topic says, so usually none. An absent `sluice-job-id` makes the worker name the job after
/// its place in the lane (`<topic>-<partition>-<offset>`, the same on every redelivery), an
/// absent `sluice-attempt` is the first attempt, an absent `sluice-enqueued-at` is the record's
/// own timestamp, the lane topic is the priority, and a worker starts a trace for a job that
/// arrives without `traceparent`. Each header left out spares librdkafka an allocation, a copy
/// and a free per record, and ~50 bytes on the wire.
pub fn new_job_bulk(options: &JobOptions) -> Option<OwnedHeaders> {
    options.expires_at.map(|at| {
        OwnedHeaders::new_with_capacity(1).insert(str_header(EXPIRES_AT, &at.to_string()))
    })
}

fn with_options(mut headers: OwnedHeaders, options: &JobOptions) -> OwnedHeaders {
    if let Some(at) = options.expires_at {
        headers = headers.insert(str_header(EXPIRES_AT, &at.to_string()));
    }
    if let Some(at) = options.run_at {
        headers = headers.insert(str_header(RUN_AT, &at.to_string()));
    }
    if options.priority != crate::lanes::Priority::Normal {
        headers = headers.insert(str_header(PRIORITY, options.priority.as_str()));
    }
    headers
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
    let pairs = headers
        .into_iter()
        .flat_map(|h| h.iter().map(|header| (header.key, header.value)));
    copy_pairs_except(pairs, replace)
}

/// `copy_except` for headers already read out of a message, as (name, value) pairs.
pub fn copy_pairs_except<'a>(
    pairs: impl Iterator<Item = (&'a str, Option<&'a [u8]>)>,
    replace: &[&str],
) -> OwnedHeaders {
    let mut out = OwnedHeaders::new();
    for (key, value) in pairs.filter(|(key, _)| !replace.contains(key)) {
        out = out.insert(Header { key, value });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_validated_and_continued() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id(incoming), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(trace_id(bad), None, "{bad}");
        }
        let (_, continued) = new_job_traced("j", Some(incoming));
        assert_eq!(
            trace_id(&continued),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_ne!(continued, incoming, "a new span in the same trace");
        let (_, fresh) = new_job_traced("j", Some("garbage"));
        assert!(trace_id(&fresh).is_some());
    }
}
