//! The extension point: a handler type. Each built-in kind is one handler type serving the kind
//! of its own name with the built-in schema of that name (`webhook`, `noop`); other handler
//! types serve the kinds users define in `[kinds.<name>]` (`handler = "http"`).

use std::sync::Arc;

use apache_avro::types::Value;
use serde::de::DeserializeOwned;
use sluice_core::json::FieldError;

use crate::handler::Handler;

/// A handler's own keys of a `[kinds.<kind>]` table (retry keys, `handler` and `concurrency`
/// taken out).
pub type Settings = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, thiserror::Error)]
pub enum KindError {
    #[error("kinds.{kind}: {problem}")]
    Setting { kind: String, problem: String },
    #[error("kinds.{kind}.{key}: {problem}")]
    Key {
        kind: String,
        key: String,
        problem: String,
    },
    #[error("unknown job kind `{kind}` (known: {known})")]
    Unknown { kind: String, known: String },
    #[error(transparent)]
    Schema(#[from] sluice_core::codec::SchemaError),
}

impl KindError {
    pub fn key(kind: &str, key: &str, problem: impl Into<String>) -> Self {
        KindError::Key {
            kind: kind.to_owned(),
            key: key.to_owned(),
            problem: problem.into(),
        }
    }
}

/// What a handler type does for the kinds it serves.
pub trait HandlerType: Send + Sync {
    /// `handler = "<name>"`; for a built-in kind, also the kind's name and its schema's folder.
    fn name(&self) -> &'static str;

    /// True for a built-in kind (served under its own name, with its built-in schema); false
    /// for a handler type that kinds defined in `[kinds]` pick.
    fn built_in(&self) -> bool;

    /// False for kinds whose handler lives in a custom worker binary: the stock worker leaves
    /// them out when it runs every kind.
    fn runs_in_stock_worker(&self) -> bool {
        true
    }

    /// Checks a record beyond its schema: the api before accepting a job, and the worker again,
    /// since anyone may produce straight to Kafka. A failure is a 400 at the api and a `fatal`
    /// dead letter at the worker.
    fn validate(&self, _record: &Value) -> Result<(), FieldError> {
        Ok(())
    }

    /// JSON Schema keywords for fields whose `validate` rules go beyond the Avro schema
    /// (`{"url": {"pattern": "^https?://"}}`), merged into `/openapi.json`.
    fn field_hints(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Checks the kind's settings at start in every role, so a bad value fails early, naming
    /// the key. Settings only a worker needs (a secret) may be absent here.
    fn check(&self, kind: &str, settings: &Settings) -> Result<(), KindError>;

    /// Builds the handler, for a worker of the kind.
    /// `config` gives what several roles share (`[storage]`), never another kind's settings.
    fn build(
        &self,
        kind: &str,
        settings: &Settings,
        config: &sluice_core::Config,
    ) -> Result<Arc<dyn Handler>, KindError>;
}

/// Reads a handler's settings into its own type; unknown keys and bad values are errors naming
/// the kind and the key (use `#[serde(deny_unknown_fields)]`).
pub fn parse_settings<T: DeserializeOwned>(
    kind: &str,
    settings: &Settings,
) -> Result<T, KindError> {
    serde_json::from_value(serde_json::Value::Object(settings.clone())).map_err(|e| {
        KindError::Setting {
            kind: kind.to_owned(),
            problem: e.to_string(),
        }
    })
}

/// For handler types that take no settings of their own.
pub fn no_settings(kind: &str, settings: &Settings) -> Result<(), KindError> {
    match settings.keys().next() {
        None => Ok(()),
        Some(key) => Err(KindError::key(kind, key, "unknown key")),
    }
}
