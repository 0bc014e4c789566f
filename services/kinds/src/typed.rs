//! Typed Rust handlers: a kind's record decoded into your own `#[derive(Deserialize)]` struct
//! (through serde, from the record resolved to the kind's newest schema), and a result of your
//! own `Serialize` type.
//!
//! ```text
//! #[derive(Deserialize)]
//! struct WelcomeEmail { to: String, name: String }
//!
//! async fn welcome(job: TypedJob<WelcomeEmail>) -> Result<serde_json::Value, JobFailure> {
//!     Ok(serde_json::json!({ "sent_to": job.record.to }))
//! }
//!
//! Worker::new(config, registry).handler("welcome_email", typed(welcome))
//! ```
//!
//! A record whose fields do not fit the struct is a `decode` failure: dead-lettered at once,
//! bytes intact — never a panic.

use std::{
    future::Future,
    marker::PhantomData,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use serde::{de::DeserializeOwned, Serialize};

use crate::handler::{ErrorClass, FollowUp, Handler, Job, JobFailure, Outcome};

/// One delivery of a job, its record decoded into `T`.
#[derive(Debug, Clone)]
pub struct TypedJob<T> {
    /// The idempotency key: the same on every redelivery.
    pub id: String,
    /// 1 on first delivery.
    pub attempt: u32,
    pub record: T,
    /// When it was first enqueued (ms since the epoch).
    pub enqueued_at: Option<i64>,
    /// The W3C trace context, to pass on to what the handler calls.
    pub traceparent: Option<String>,
    follow_ups: Arc<Mutex<Vec<FollowUp>>>,
}

impl<T> TypedJob<T> {
    /// Enqueues a job of `kind` (a document as `POST /v1/jobs/{kind}` takes it) once this one
    /// succeeds; nothing is enqueued if it fails. See `Outcome::follow_ups`.
    pub fn enqueue(&self, kind: impl Into<String>, job: serde_json::Value) {
        self.follow_ups
            .lock()
            .expect("not poisoned")
            .push(FollowUp {
                kind: kind.into(),
                job,
            });
    }
}

/// Makes a handler of an `async fn(TypedJob<T>) -> Result<R, JobFailure>`. `R` becomes the job's
/// result (`()` for none).
pub fn typed<T, R, F, Fut>(handler: F) -> Arc<dyn Handler>
where
    T: DeserializeOwned + Send + Sync + 'static,
    R: Serialize + Send + 'static,
    F: Fn(TypedJob<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, JobFailure>> + Send + 'static,
{
    Arc::new(Typed {
        handler,
        types: PhantomData,
    })
}

struct Typed<T, R, F> {
    handler: F,
    types: PhantomData<fn() -> (T, R)>,
}

#[async_trait]
impl<T, R, F, Fut> Handler for Typed<T, R, F>
where
    T: DeserializeOwned + Send + Sync + 'static,
    R: Serialize + Send + 'static,
    F: Fn(TypedJob<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, JobFailure>> + Send + 'static,
{
    async fn handle(&self, job: &Job) -> Result<Outcome, JobFailure> {
        let record: T = apache_avro::from_value(&job.record).map_err(|e| {
            JobFailure::new(
                ErrorClass::Decode,
                format!(
                    "record does not fit {}: {e}",
                    std::any::type_name::<T>()
                        .rsplit("::")
                        .next()
                        .unwrap_or("the handler's type")
                ),
            )
        })?;
        let follow_ups = Arc::new(Mutex::new(Vec::new()));
        let typed = TypedJob {
            id: job.id.clone(),
            attempt: job.attempt,
            record,
            enqueued_at: job.enqueued_at,
            traceparent: job.traceparent.clone(),
            follow_ups: follow_ups.clone(),
        };
        let result = (self.handler)(typed).await?;
        let result = serde_json::to_value(result).map_err(|e| {
            JobFailure::new(ErrorClass::Fatal, format!("result does not serialize: {e}"))
        })?;
        let follow_ups = std::mem::take(&mut *follow_ups.lock().expect("not poisoned"));
        Ok(Outcome {
            result: (!result.is_null()).then_some(result),
            follow_ups,
        })
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::types::Value;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Welcome {
        to: String,
        name: String,
    }

    fn job(record: Value) -> Job {
        Job {
            id: "j1".into(),
            kind: "welcome".into(),
            attempt: 2,
            record,
            enqueued_at: Some(1),
            traceparent: None,
        }
    }

    #[tokio::test]
    async fn a_record_becomes_the_struct_and_the_return_value_the_result() {
        let handler = typed(|job: TypedJob<Welcome>| async move {
            Ok(
                serde_json::json!({"to": job.record.to, "name": job.record.name, "attempt": job.attempt}),
            )
        });
        let record = Value::Record(vec![
            ("to".into(), Value::String("ada@example.com".into())),
            (
                "name".into(),
                Value::Union(1, Box::new(Value::String("Ada".into()))),
            ),
        ]);
        let outcome = handler.handle(&job(record)).await.unwrap();
        assert_eq!(
            outcome.result,
            Some(serde_json::json!({"to": "ada@example.com", "name": "Ada", "attempt": 2}))
        );
    }

    #[tokio::test]
    async fn a_record_that_does_not_fit_is_a_decode_failure_not_a_panic() {
        let handler = typed(|_: TypedJob<Welcome>| async move { Ok(()) });
        let missing_name =
            Value::Record(vec![("to".into(), Value::String("ada@example.com".into()))]);
        let failure = handler.handle(&job(missing_name)).await.unwrap_err();
        assert_eq!(failure.class, ErrorClass::Decode);
        assert!(failure.message.contains("Welcome"), "{}", failure.message);
        let null_name = Value::Record(vec![
            ("to".into(), Value::String("a".into())),
            ("name".into(), Value::Union(0, Box::new(Value::Null))),
        ]);
        let failure = handler.handle(&job(null_name)).await.unwrap_err();
        assert_eq!(failure.class, ErrorClass::Decode);
    }

    #[tokio::test]
    async fn unit_is_no_result() {
        let handler = typed(|_: TypedJob<Welcome>| async move { Ok(()) });
        let record = Value::Record(vec![
            ("to".into(), Value::String("a".into())),
            ("name".into(), Value::String("b".into())),
        ]);
        assert_eq!(handler.handle(&job(record)).await.unwrap().result, None);
    }
}
