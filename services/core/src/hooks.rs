//! Incoming webhooks as configured: one `[hooks.<source>]` table per sender. The api checks each
//! table at start (scheme, secrets, kind, tolerance), naming the key in every error; the
//! verification itself lives in the api (`services/api/src/hooks/`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One `[hooks.<source>]` table: `POST /v1/hooks/<source>` verifies requests with `scheme` and
/// `secret` and enqueues each new event as a job of `kind`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HookConfig {
    /// How requests are signed: `stripe`, `standard` (Standard Webhooks), `github` or `hmac`
    /// (HMAC-SHA256 of the body in a header of your choice). Required.
    pub scheme: String,
    /// The signing secret, or several while rotating (a request signed with any of them is
    /// accepted). Stripe: the endpoint's `whsec_…` as shown; Standard Webhooks: `whsec_` +
    /// base64; GitHub and `hmac`: the shared secret as written. Required; keep it in the
    /// environment (`SLUICE__HOOKS__<SOURCE>__SECRET`).
    pub secret: Secrets,
    /// The job kind each event becomes; its schema must be the hook envelope
    /// (`schemas/hook/v1.avsc`). Default `hook`, the built-in kind.
    pub kind: String,
    /// Signed timestamps further than this from now (either way) are refused, and event ids are
    /// remembered this long to answer repeats without enqueueing them again. Default 300 s.
    #[serde(with = "humantime_serde")]
    pub tolerance: Duration,
    /// `hmac` only: the header carrying the signature, e.g. `X-Signature`. Required there.
    pub header: Option<String>,
    /// `hmac` only: `hex` or `base64`. Default `hex`.
    pub encoding: Option<String>,
    /// `hmac` only: text before the signature in the header, e.g. `sha256=`. Default none.
    pub prefix: Option<String>,
    /// `hmac` only: a header carrying a unique event id, for de-duplication. Default none: every
    /// verified request is a new event.
    pub id_header: Option<String>,
}

impl Default for HookConfig {
    fn default() -> Self {
        Self {
            scheme: String::new(),
            secret: Secrets::default(),
            kind: "hook".into(),
            tolerance: Duration::from_secs(300),
            header: None,
            encoding: None,
            prefix: None,
            id_header: None,
        }
    }
}

/// One secret, or a list of them (rotation). Printed (`sluice config`, `Debug`) as `***`.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Secrets {
    One(String),
    Several(Vec<String>),
}

impl Default for Secrets {
    fn default() -> Self {
        Secrets::Several(Vec::new())
    }
}

impl Serialize for Secrets {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let redacted: Vec<&str> = self.all().iter().map(|_| "***").collect();
        redacted.serialize(serializer)
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} secret(s)", self.all().len())
    }
}

impl Secrets {
    /// Every non-empty secret.
    pub fn all(&self) -> Vec<&str> {
        let list: Vec<&str> = match self {
            Secrets::One(one) => vec![one.as_str()],
            Secrets::Several(many) => many.iter().map(String::as_str).collect(),
        };
        list.into_iter().filter(|s| !s.trim().is_empty()).collect()
    }
}
