//! `noop`: does no work. For smoke tests, benchmarks and failure drills: waits `sleep_ms` (v2 of
//! its schema), fails its first `fail_attempts` attempts with a retryable error (v3) and panics
//! on its first `panic_attempts` attempts (v4).

use std::{sync::Arc, time::Duration};

use apache_avro::types::Value;
use async_trait::async_trait;
use sluice_core::json::{long_field, FieldError};

use crate::{
    handler::{ErrorClass, Handler, Job, JobFailure, Outcome},
    kind::{no_settings, HandlerType, KindError, Settings},
};

pub struct Noop;

impl HandlerType for Noop {
    fn name(&self) -> &'static str {
        "noop"
    }

    fn built_in(&self) -> bool {
        true
    }

    fn validate(&self, record: &Value) -> Result<(), FieldError> {
        if long_field(record, "sleep_ms").is_some_and(|ms| !(0..=3_600_000).contains(&ms)) {
            return Err(FieldError {
                field: "sleep_ms".into(),
                problem: "must be between 0 and 3600000".into(),
            });
        }
        Ok(())
    }

    fn check(&self, kind: &str, settings: &Settings) -> Result<(), KindError> {
        no_settings(kind, settings)
    }

    fn build(
        &self,
        kind: &str,
        settings: &Settings,
        _: &sluice_core::Config,
    ) -> Result<Arc<dyn Handler>, KindError> {
        no_settings(kind, settings)?;
        Ok(Arc::new(NoopHandler))
    }
}

struct NoopHandler;

#[async_trait]
impl Handler for NoopHandler {
    async fn handle(&self, job: &Job) -> Result<Outcome, JobFailure> {
        let field = |name| long_field(&job.record, name).unwrap_or(0);
        if field("sleep_ms") > 0 {
            tokio::time::sleep(Duration::from_millis(field("sleep_ms") as u64)).await;
        }
        if i64::from(job.attempt) <= field("panic_attempts") {
            panic!("noop asked to panic on attempt {}", job.attempt);
        }
        if i64::from(job.attempt) <= field("fail_attempts") {
            return Err(JobFailure::new(
                ErrorClass::Retryable,
                format!("noop asked to fail attempt {}", job.attempt),
            ));
        }
        Ok(Outcome::default())
    }
}
