//! A JSON job document made into a record of its kind, for the api and `sluice publish`.

use sluice_core::{codec::encode_with, json::FieldError};

use crate::registry::Registry;

/// A job ready to produce: encoded in the wire format, with its id and partition key.
#[derive(Debug, Clone)]
pub struct PreparedJob {
    pub job_id: String,
    /// The user's ordering key, or the job id.
    pub key: String,
    pub value: Vec<u8>,
    /// When a job not started by then is not run (ms since epoch), from `expires_in` or
    /// `expires_at`.
    pub expires_at: Option<i64>,
}

impl PreparedJob {
    /// Its record headers, continuing the caller's trace when `incoming` is a `traceparent`;
    /// also returns the job's `traceparent`.
    pub fn headers(&self, incoming: Option<&str>) -> (sluice_core::headers::OwnedHeaders, String) {
        sluice_core::headers::new_job_expiring(&self.job_id, incoming, self.expires_at)
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

/// The deadline of `expires_in` (`"10m"`, or seconds) or `expires_at` (RFC 3339, or ms since the
/// epoch), at most one of them; it must lie in the future.
fn expiry(
    object: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<Option<i64>, FieldError> {
    let now = sluice_core::headers::now_millis();
    let given = (
        object.remove(EXPIRES_IN_FIELD),
        object.remove(EXPIRES_AT_FIELD),
    );
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
            let duration = match &within {
                serde_json::Value::String(text) => humantime::parse_duration(text.trim()).ok(),
                serde_json::Value::Number(n) => n.as_u64().map(std::time::Duration::from_secs),
                _ => None,
            }
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                FieldError::new(
                    EXPIRES_IN_FIELD,
                    "must be a positive duration like \"10m\" or a number of seconds",
                )
            })?;
            now.saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
        }
        (None, Some(at)) => match &at {
            serde_json::Value::String(text) => chrono::DateTime::parse_from_rfc3339(text.trim())
                .map(|t| t.timestamp_millis())
                .map_err(|_| {
                    FieldError::new(
                        EXPIRES_AT_FIELD,
                        "must be an RFC 3339 time (2026-12-01T09:00:00+01:00) or ms since the epoch",
                    )
                })?,
            serde_json::Value::Number(n) => n.as_i64().ok_or_else(|| {
                FieldError::new(EXPIRES_AT_FIELD, "must be whole milliseconds since the epoch")
            })?,
            _ => {
                return Err(FieldError::new(
                    EXPIRES_AT_FIELD,
                    "must be an RFC 3339 time or ms since the epoch",
                ))
            }
        },
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
        match object.remove(PRIORITY_FIELD) {
            None => {}
            Some(serde_json::Value::String(p)) if p == "normal" => {}
            Some(serde_json::Value::String(p)) if p == "high" || p == "low" => {
                return Err(FieldError::new(
                    PRIORITY_FIELD,
                    "priority lanes are not enabled; use `normal`",
                )
                .into())
            }
            Some(_) => {
                return Err(
                    FieldError::new(PRIORITY_FIELD, "must be one of high, normal, low").into(),
                )
            }
        }
        let expires_at = expiry(object)?;
        let record = sluice_core::json::json_to_avro(&schema.schema, &document)?;
        spec.handler.validate(&record)?;
        let value = encode_with(schema, record)
            .map_err(|e| FieldError::new("", format!("does not encode: {e}")))?;
        Ok(PreparedJob {
            job_id,
            key,
            value,
            expires_at,
        })
    }
}
