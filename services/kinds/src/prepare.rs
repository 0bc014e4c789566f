//! A JSON job document made into a record of its kind, for the api and `sluice publish`.

use sluice_core::{
    codec::encode_converted,
    delays,
    headers::{self, JobOptions, OwnedHeaders},
    json::FieldError,
    lanes::Priority,
    topics::Topics,
};

use crate::registry::Registry;

/// A job ready to produce: encoded in the wire format, with its id and partition key.
#[derive(Debug, Clone)]
pub struct PreparedJob {
    /// Empty for a job sent in bulk until `bulk_route` needs one.
    pub job_id: String,
    /// The user's ordering key, or the job id.
    pub key: String,
    pub value: Vec<u8>,
    /// When a job not started by then is not run (ms since epoch), from `expires_in` or
    /// `expires_at`.
    pub expires_at: Option<i64>,
    /// Its lane, from `priority`.
    pub priority: Priority,
    /// Not to be started before this (ms since epoch), from `run_at` or `delay`; `None` runs now.
    pub run_at: Option<i64>,
}

/// Where a job sent in bulk is produced, with its headers (see [`PreparedJob::bulk_route`]).
pub struct BulkRoute {
    /// `None`: the lane of the job's priority.
    pub topic: Option<String>,
    pub headers: Option<OwnedHeaders>,
}

/// Where a prepared job is produced, with its headers.
pub struct Route {
    pub topic: String,
    pub headers: OwnedHeaders,
    /// The job's `traceparent`.
    pub traceparent: String,
}

impl PreparedJob {
    /// Its record headers, continuing the caller's trace when `incoming` is a `traceparent`;
    /// also returns the job's `traceparent`.
    pub fn headers(&self, incoming: Option<&str>) -> (OwnedHeaders, String) {
        headers::new_job_with(&self.job_id, incoming, &self.options())
    }

    fn options(&self) -> JobOptions {
        JobOptions {
            expires_at: self.expires_at,
            run_at: self.run_at,
            priority: self.priority,
        }
    }

    /// Its partition key when the caller chose one (`key`); a job keyed by nothing but its own
    /// random id gains nothing from a key, and without one librdkafka fills one partition's
    /// batch at a time instead of spreading every batch over all partitions.
    pub fn ordering_key(&self) -> Option<&str> {
        (self.key != self.job_id).then_some(self.key.as_str())
    }

    /// Where a job sent in bulk (`sluice publish --file`, prepared by `Registry::prepare_bulk`)
    /// goes, and its headers. A job that runs now goes to its lane with only the headers a
    /// worker cannot infer (`headers::new_job_bulk`, usually none): `None` and `None`, the caller
    /// naming the lane once per run. A delayed job gets an id and every header: its hops down the
    /// delay ladder rewrite the record's timestamp, which would otherwise stand for its enqueue
    /// time, and move it to other topics, which would otherwise name it.
    pub fn bulk_route(&mut self, topics: &Topics, kind: &str) -> BulkRoute {
        if self.run_at.is_none() {
            return BulkRoute {
                topic: None,
                headers: headers::new_job_bulk(&self.options()),
            };
        }
        if self.job_id.is_empty() {
            self.job_id = uuid::Uuid::now_v7().to_string();
            if self.key.is_empty() {
                self.key.clone_from(&self.job_id);
            }
        }
        let route = self.route(topics, kind, None);
        BulkRoute {
            topic: Some(route.topic),
            headers: Some(route.headers),
        }
    }

    /// The topic the job goes to — its lane, or for a delayed job the first rung of the delay
    /// ladder (docs/architecture.md §14) — and its headers.
    pub fn route(&self, topics: &Topics, kind: &str, incoming: Option<&str>) -> Route {
        let (mut record_headers, traceparent) = self.headers(incoming);
        let lane = topics.lane(kind, self.priority);
        let now = headers::now_millis();
        let remaining = self
            .run_at
            .map(|at| std::time::Duration::from_millis((at - now).max(0) as u64));
        let topic = match remaining.and_then(delays::next_rung) {
            None => lane,
            Some(rung) => {
                let hop_due = now + rung.as_millis() as i64;
                record_headers = record_headers
                    .insert(headers::str_header(headers::TARGET_TOPIC, &lane))
                    .insert(headers::str_header(
                        headers::HOP_DUE_AT,
                        &hop_due.to_string(),
                    ));
                topics.delay_rung(rung)
            }
        };
        Route {
            topic,
            headers: record_headers,
            traceparent,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("unknown job kind `{0}`")]
    UnknownKind(String),
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error(transparent)]
    Field(#[from] FieldError),
}

/// Envelope fields a client may send next to the kind's own fields (docs/architecture.md §5).
const KEY_FIELD: &str = "key";
const PRIORITY_FIELD: &str = "priority";
const EXPIRES_IN_FIELD: &str = "expires_in";
const EXPIRES_AT_FIELD: &str = "expires_at";
const RUN_AT_FIELD: &str = "run_at";
const DELAY_FIELD: &str = "delay";

/// A time written as RFC 3339 text or a whole number of ms since the epoch.
fn parse_instant(field: &str, value: &serde_json::Value) -> Result<i64, FieldError> {
    match value {
        serde_json::Value::String(text) => chrono::DateTime::parse_from_rfc3339(text.trim())
            .map(|t| t.timestamp_millis())
            .map_err(|_| {
                FieldError::new(
                    field,
                    "must be an RFC 3339 time (2026-12-01T09:00:00+01:00) or ms since the epoch",
                )
            }),
        serde_json::Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| FieldError::new(field, "must be whole milliseconds since the epoch")),
        _ => Err(FieldError::new(
            field,
            "must be an RFC 3339 time or ms since the epoch",
        )),
    }
}

/// A duration written as text (`"90s"`, `"2h"`) or a number of seconds.
fn parse_duration(value: &serde_json::Value) -> Option<std::time::Duration> {
    match value {
        serde_json::Value::String(text) => humantime::parse_duration(text.trim()).ok(),
        serde_json::Value::Number(n) => n.as_u64().map(std::time::Duration::from_secs),
        _ => None,
    }
}

/// When a delayed job may start, from `run_at` (a time) or `delay` (`"90s"`, `"2h"`), at most
/// one of them. A delay is 1 s to 30 days; a `run_at` already past (or less than a second away)
/// runs the job now, one further than 30 days away is refused.
fn run_at(
    object: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<Option<i64>, FieldError> {
    let given = (object.remove(RUN_AT_FIELD), object.remove(DELAY_FIELD));
    if given == (None, None) {
        return Ok(None);
    }
    // Read only when needed: a clock read per job is a visible cost of a bulk publish.
    let now = sluice_core::headers::now_millis();
    let max = delays::MAX_DELAY.as_millis() as i64;
    match given {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(FieldError::new(
            RUN_AT_FIELD,
            "give run_at or delay, not both",
        )),
        (None, Some(delay)) => {
            let delay = parse_duration(&delay).ok_or_else(|| {
                FieldError::new(
                    DELAY_FIELD,
                    "must be a duration like \"90s\" or \"2h\", or a number of seconds",
                )
            })?;
            if delay < delays::MIN_DELAY || delay > delays::MAX_DELAY {
                return Err(FieldError::new(DELAY_FIELD, "must be from 1s to 30 days"));
            }
            Ok(Some(now + delay.as_millis() as i64))
        }
        (Some(at), None) => {
            let at = parse_instant(RUN_AT_FIELD, &at)?;
            if at - now > max {
                return Err(FieldError::new(RUN_AT_FIELD, "is more than 30 days away"));
            }
            Ok((at - now >= delays::MIN_DELAY.as_millis() as i64).then_some(at))
        }
    }
}

/// The deadline of `expires_in` (`"10m"`, or seconds) or `expires_at` (RFC 3339, or ms since the
/// epoch), at most one of them; it must lie in the future.
fn expiry(
    object: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<Option<i64>, FieldError> {
    let given = (
        object.remove(EXPIRES_IN_FIELD),
        object.remove(EXPIRES_AT_FIELD),
    );
    if given == (None, None) {
        return Ok(None);
    }
    let now = sluice_core::headers::now_millis();
    let field = if given.0.is_some() {
        EXPIRES_IN_FIELD
    } else {
        EXPIRES_AT_FIELD
    };
    let at = match given {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(FieldError::new(
                EXPIRES_IN_FIELD,
                "give expires_in or expires_at, not both",
            ))
        }
        (Some(within), None) => {
            let duration = parse_duration(&within)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    FieldError::new(
                        EXPIRES_IN_FIELD,
                        "must be a positive duration like \"10m\" or a number of seconds",
                    )
                })?;
            now.saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
        }
        (None, Some(at)) => parse_instant(EXPIRES_AT_FIELD, &at)?,
    };
    if at <= now {
        return Err(FieldError::new(
            field,
            "is already past: the job would never run",
        ));
    }
    Ok(Some(at))
}

impl Registry {
    /// Turns a JSON job document into a record of `kind`: envelope fields taken out, the rest
    /// checked against the kind's newest schema and the kind's own rules, then encoded.
    pub fn prepare(&self, kind: &str, body: &[u8]) -> Result<PreparedJob, JobError> {
        self.prepare_as(kind, body, uuid::Uuid::now_v7().to_string())
    }

    /// `prepare` for a job sent in bulk: no id yet (`PreparedJob::bulk_route` explains why), so
    /// its `ordering_key` is the caller's `key` or none.
    pub fn prepare_bulk(&self, kind: &str, body: &[u8]) -> Result<PreparedJob, JobError> {
        self.prepare_as(kind, body, String::new())
    }

    /// `prepare` under a given job id (a follow-up's, derived from its parent's).
    pub fn prepare_as(
        &self,
        kind: &str,
        body: &[u8],
        job_id: String,
    ) -> Result<PreparedJob, JobError> {
        let spec = self
            .get(kind)
            .ok_or_else(|| JobError::UnknownKind(kind.to_owned()))?;
        let schema = self
            .schemas()
            .latest(kind)
            .expect("every registered kind has a schema");
        let mut document: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| JobError::NotJson(e.to_string()))?;
        let object = document
            .as_object_mut()
            .ok_or_else(|| FieldError::new("", "expected a JSON object"))?;
        let key = match object.remove(KEY_FIELD) {
            None => job_id.clone(),
            Some(serde_json::Value::String(key)) if !key.is_empty() => key,
            Some(_) => return Err(FieldError::new(KEY_FIELD, "must be a non-empty string").into()),
        };
        let priority = match object.remove(PRIORITY_FIELD) {
            None => Priority::Normal,
            Some(serde_json::Value::String(p)) => p
                .parse()
                .map_err(|_| FieldError::new(PRIORITY_FIELD, "must be one of high, normal, low"))?,
            Some(_) => {
                return Err(
                    FieldError::new(PRIORITY_FIELD, "must be one of high, normal, low").into(),
                )
            }
        };
        let expires_at = expiry(object)?;
        let run_at = run_at(object)?;
        if let (Some(expires), Some(start)) = (expires_at, run_at) {
            if expires <= start {
                return Err(FieldError::new(
                    EXPIRES_AT_FIELD,
                    "is not after run_at: the job would never run",
                )
                .into());
            }
        }
        let record = sluice_core::json::json_to_avro(&schema.schema, document)?;
        spec.handler.validate(&record)?;
        let value = encode_converted(schema, record)
            .map_err(|e| FieldError::new("", format!("does not encode: {e}")))?;
        Ok(PreparedJob {
            job_id,
            key,
            value,
            expires_at,
            priority,
            run_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::{topics::Topics, Config};

    use crate::registry::Registry;

    fn bulk(line: &str) -> (super::PreparedJob, super::BulkRoute) {
        let config = Config::default();
        let registry = Registry::load(&config).unwrap();
        let mut job = registry.prepare_bulk("noop", line.as_bytes()).unwrap();
        let route = job.bulk_route(&Topics::new(&config.topics), "noop");
        (job, route)
    }

    #[test]
    fn a_bulk_job_that_runs_now_has_no_id_no_key_and_no_headers() {
        let (job, route) = bulk(r#"{"payload":"x"}"#);
        assert!(job.job_id.is_empty());
        assert_eq!(job.ordering_key(), None);
        assert!(route.topic.is_none(), "its lane, named by the caller");
        assert!(route.headers.is_none());

        let (job, route) = bulk(r#"{"payload":"x","key":"k","priority":"low"}"#);
        assert_eq!(job.ordering_key(), Some("k"));
        assert!(route.headers.is_none(), "the lane says the priority");

        let (_, route) = bulk(r#"{"payload":"x","expires_in":"1m"}"#);
        let headers = route.headers.expect("the expiry");
        assert!(sluice_core::headers::get(&headers, sluice_core::headers::EXPIRES_AT).is_some());
    }

    #[test]
    fn a_delayed_bulk_job_gets_an_id_and_every_header_but_no_key() {
        let (job, route) = bulk(r#"{"payload":"x","delay":"90s"}"#);
        assert!(uuid::Uuid::parse_str(&job.job_id).is_ok(), "{}", job.job_id);
        assert_eq!(job.ordering_key(), None);
        assert!(route.topic.unwrap().contains("sluice.delay."));
        let headers = route.headers.unwrap();
        let id = sluice_core::headers::get(&headers, sluice_core::headers::JOB_ID);
        assert_eq!(id, Some(job.job_id.as_str()));

        let (job, _) = bulk(r#"{"payload":"x","delay":"90s","key":"k"}"#);
        assert_eq!(job.ordering_key(), Some("k"));
    }
}
