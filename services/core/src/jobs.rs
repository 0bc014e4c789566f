//! What a job of each kind must satisfy beyond its schema. The API checks it before accepting a
//! job; the worker checks it again, because anyone may produce straight to Kafka.

use apache_avro::types::Value;

use crate::json::FieldError;

/// Returns the string field `name` of a record value.
pub fn string_field<'v>(record: &'v Value, name: &str) -> Option<&'v str> {
    match record {
        Value::Record(fields) => {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| match v {
                    Value::String(s) => Some(s.as_str()),
                    _ => None,
                })
        }
        _ => None,
    }
}

/// Returns the integer field `name` of a record value.
pub fn long_field(record: &Value, name: &str) -> Option<i64> {
    match record {
        Value::Record(fields) => {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| match v {
                    Value::Long(n) => Some(*n),
                    Value::Int(n) => Some(i64::from(*n)),
                    _ => None,
                })
        }
        _ => None,
    }
}

/// Kind-specific checks on a record that already matches its schema.
pub fn validate(kind: &str, record: &Value) -> Result<(), FieldError> {
    let problem = |field: &str, problem: &str| FieldError {
        field: field.to_owned(),
        problem: problem.to_owned(),
    };
    match kind {
        "webhook" => {
            let url = string_field(record, "url").unwrap_or_default();
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            if !scheme_ok || url.len() <= "https://".len() {
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
        }
        "noop"
            if long_field(record, "sleep_ms").is_some_and(|ms| !(0..=3_600_000).contains(&ms)) =>
        {
            return Err(problem("sleep_ms", "must be between 0 and 3600000"));
        }
        _ => {}
    }
    Ok(())
}

/// A job ready to produce: encoded in the wire format, with its id and partition key.
#[derive(Debug, Clone)]
pub struct PreparedJob {
    pub job_id: String,
    /// The user's ordering key, or the job id.
    pub key: String,
    pub value: Vec<u8>,
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

/// Turns a JSON job document into a record of `kind`: envelope fields taken out, the rest checked
/// against the kind's newest schema and the kind's own rules, then encoded.
pub fn prepare(kind: &str, body: &[u8]) -> Result<PreparedJob, JobError> {
    let registry = crate::codec::SchemaRegistry::embedded();
    let schema = match registry.latest(kind) {
        Some(schema) if crate::topics::is_job_kind(kind) => schema,
        _ => return Err(JobError::UnknownKind(kind.to_owned())),
    };
    let mut document: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| JobError::NotJson(e.to_string()))?;
    let field_error = |field: &str, problem: &str| FieldError {
        field: field.to_owned(),
        problem: problem.to_owned(),
    };
    let object = document
        .as_object_mut()
        .ok_or_else(|| field_error("", "expected a JSON object"))?;
    let job_id = uuid::Uuid::now_v7().to_string();
    let key = match object.remove(KEY_FIELD) {
        None => job_id.clone(),
        Some(serde_json::Value::String(key)) if !key.is_empty() => key,
        Some(_) => return Err(field_error(KEY_FIELD, "must be a non-empty string").into()),
    };
    match object.remove(PRIORITY_FIELD) {
        None => {}
        Some(serde_json::Value::String(p)) if p == "normal" => {}
        Some(serde_json::Value::String(p)) if p == "high" || p == "low" => {
            return Err(field_error(
                PRIORITY_FIELD,
                "priority lanes are not enabled; use `normal`",
            )
            .into())
        }
        Some(_) => {
            return Err(field_error(PRIORITY_FIELD, "must be one of high, normal, low").into())
        }
    }
    let record = crate::json::json_to_avro(&schema.schema, &document)?;
    validate(kind, &record)?;
    let value = crate::codec::encode_with(schema, record)
        .map_err(|e| field_error("", &format!("does not encode: {e}")))?;
    Ok(PreparedJob { job_id, key, value })
}
