//! `hook`: incoming webhooks (`POST /v1/hooks/{source}` at the api), each a record of the hook
//! envelope (`schemas/hook/v1.avsc`: source, scheme, event id, headers, raw body, received at).
//!
//! With `url` and `secret` in `[kinds.hook]` the worker forwards every event there exactly as an
//! `http` kind does (signed, the same answers decide, bytes as base64), so a consumer container
//! in any language handles Stripe or GitHub events without holding their secrets. Without them
//! an event succeeds at once: it stays in `jobs.hook` for as long as the topic keeps it, for any
//! consumer group of your own. To route sources to different consumers, declare kinds of your
//! own whose schema is a copy of the envelope (under another record name: an exact copy has the
//! same fingerprint) and name them in `[hooks.<source>] kind`.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    handler::{Handler, Job, JobFailure, Outcome},
    http::Http,
    kind::{HandlerType, KindError, Settings},
};

pub struct Hook;

impl HandlerType for Hook {
    fn name(&self) -> &'static str {
        "hook"
    }

    fn built_in(&self) -> bool {
        true
    }

    fn check(&self, kind: &str, settings: &Settings) -> Result<(), KindError> {
        if settings.is_empty() {
            Ok(())
        } else {
            Http.check(kind, settings)
        }
    }

    fn build(
        &self,
        kind: &str,
        settings: &Settings,
        config: &sluice_core::Config,
    ) -> Result<Arc<dyn Handler>, KindError> {
        if settings.is_empty() {
            Ok(Arc::new(Kept))
        } else {
            Http.build(kind, settings, config)
        }
    }
}

/// No endpoint configured: the event is kept in Kafka, nothing else to do.
struct Kept;

#[async_trait]
impl Handler for Kept {
    async fn handle(&self, _: &Job) -> Result<Outcome, JobFailure> {
        Ok(Outcome::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: serde_json::Value) -> Settings {
        json.as_object().unwrap().clone()
    }

    #[test]
    fn events_are_kept_without_settings_and_forwarded_with_an_endpoint() {
        let config = sluice_core::Config::default();
        assert!(Hook.check("hook", &Settings::new()).is_ok());
        assert!(Hook.build("hook", &Settings::new(), &config).is_ok());
        let endpoint = settings(serde_json::json!({
            "url": "https://hooks.example.com/events",
            "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        }));
        assert!(Hook.check("hook", &endpoint).is_ok());
        let no_secret = settings(serde_json::json!({"url": "https://hooks.example.com/events"}));
        let error = Hook.check("hook", &no_secret).unwrap_err().to_string();
        assert!(error.contains("kinds.hook.secret"), "{error}");
        let typo = settings(serde_json::json!({"uri": "https://hooks.example.com/events"}));
        assert!(Hook.check("hook", &typo).is_err());
    }
}
