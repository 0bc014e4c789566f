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
        let record = sluice_core::json::json_to_avro(&schema.schema, &document)?;
        spec.handler.validate(&record)?;
        let value = encode_with(schema, record)
            .map_err(|e| FieldError::new("", format!("does not encode: {e}")))?;
        Ok(PreparedJob { job_id, key, value })
    }
}
