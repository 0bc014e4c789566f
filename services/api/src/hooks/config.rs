//! `[hooks.<source>]` tables made into verifiers at start. Every problem fails the start with
//! the key's name: an unknown scheme, no secret, a kind that does not exist or does not take the
//! hook envelope, a tolerance out of bounds, a scheme's own bad setting.

use std::{collections::BTreeMap, time::Duration};

use sluice_core::hooks::HookConfig;
use sluice_kinds::Registry;

use super::{job, Verifier, SCHEMES};

#[derive(Debug, thiserror::Error)]
#[error("hooks.{source_name}{}: {problem}", key.map(|k| format!(".{k}")).unwrap_or_default())]
pub struct HookConfigError {
    pub source_name: String,
    pub key: Option<&'static str>,
    pub problem: String,
}

impl HookConfigError {
    pub fn key(source: &str, key: &'static str, problem: impl Into<String>) -> Self {
        Self {
            source_name: source.to_owned(),
            key: Some(key),
            problem: problem.into(),
        }
    }
}

/// One configured source, ready to serve.
pub struct Source {
    pub scheme: &'static str,
    pub kind: String,
    pub tolerance: Duration,
    pub verifier: Box<dyn Verifier>,
}

/// Tolerances outside these bounds are refused: under a second no sender's clock agrees with
/// ours; over a day the replay window (and the remembered ids) would be unbounded in practice.
const MIN_TOLERANCE: Duration = Duration::from_secs(1);
const MAX_TOLERANCE: Duration = Duration::from_secs(24 * 3600);

pub fn load(
    tables: &BTreeMap<String, HookConfig>,
    registry: &Registry,
) -> Result<BTreeMap<String, Source>, HookConfigError> {
    tables
        .iter()
        .map(|(name, table)| Ok((name.clone(), source(name, table, registry)?)))
        .collect()
}

fn source(name: &str, table: &HookConfig, registry: &Registry) -> Result<Source, HookConfigError> {
    check_name(name)?;
    let names: Vec<&str> = SCHEMES.iter().map(|s| s.name()).collect();
    let scheme = SCHEMES
        .iter()
        .find(|s| s.name() == table.scheme)
        .ok_or_else(|| {
            HookConfigError::key(
                name,
                "scheme",
                format!(
                    "unknown scheme `{}` (one of: {})",
                    table.scheme,
                    names.join(", ")
                ),
            )
        })?;
    if table.secret.all().is_empty() {
        return Err(HookConfigError::key(
            name,
            "secret",
            "is required: the sender's signing secret (several while rotating)",
        ));
    }
    if !(MIN_TOLERANCE..=MAX_TOLERANCE).contains(&table.tolerance) {
        return Err(HookConfigError::key(
            name,
            "tolerance",
            "must be from 1s to 24h",
        ));
    }
    if registry.get(&table.kind).is_none() {
        return Err(HookConfigError::key(
            name,
            "kind",
            format!(
                "unknown job kind `{}` (known: {})",
                table.kind,
                registry.names().join(", ")
            ),
        ));
    }
    if let Err(problem) = job::check_kind(registry, &table.kind) {
        return Err(HookConfigError::key(
            name,
            "kind",
            format!(
                "kind `{}` does not take the hook envelope (its schema must have the fields of \
                 schemas/hook/v1.avsc): {problem}",
                table.kind
            ),
        ));
    }
    let verifier = scheme.build(name, table)?;
    Ok(Source {
        scheme: scheme.name(),
        kind: table.kind.clone(),
        tolerance: table.tolerance,
        verifier,
    })
}

/// Source names become URL segments, metric labels and parts of Redis keys.
fn check_name(name: &str) -> Result<(), HookConfigError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(HookConfigError {
            source_name: name.to_owned(),
            key: None,
            problem: "a source's name is 1-64 of lower-case letters, digits, `_` and `-`".into(),
        })
    }
}

/// For schemes without `hmac`'s own keys: those keys are errors there, not silently ignored.
pub fn no_hmac_keys(source: &str, table: &HookConfig) -> Result<(), HookConfigError> {
    let given = [
        ("header", table.header.is_some()),
        ("encoding", table.encoding.is_some()),
        ("prefix", table.prefix.is_some()),
        ("id_header", table.id_header.is_some()),
    ];
    match given.iter().find(|(_, set)| *set) {
        Some((key, _)) => Err(HookConfigError::key(
            source,
            key,
            format!("is only for scheme = \"hmac\", not `{}`", table.scheme),
        )),
        None => Ok(()),
    }
}

/// Secrets used as written (Stripe, GitHub, `hmac`): their bytes are the HMAC key.
pub fn raw_keys(table: &HookConfig) -> Vec<Vec<u8>> {
    table
        .secret
        .all()
        .into_iter()
        .map(|s| s.as_bytes().to_vec())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_toml(toml: &str) -> Result<BTreeMap<String, Source>, String> {
        let config = sluice_core::Config::from_toml(toml).map_err(|e| e.to_string())?;
        let registry = Registry::load(&config).unwrap();
        load(&config.hooks, &registry).map_err(|e| e.to_string())
    }

    #[test]
    fn a_good_table_loads_with_defaults() {
        let sources =
            load_toml("[hooks.stripe]\nscheme = \"stripe\"\nsecret = \"whsec_abc\"").unwrap();
        let stripe = &sources["stripe"];
        assert_eq!(stripe.scheme, "stripe");
        assert_eq!(stripe.kind, "hook");
        assert_eq!(stripe.tolerance, Duration::from_secs(300));
    }

    #[test]
    fn bad_tables_fail_naming_the_key() {
        let cases = [
            ("[hooks.a]\nscheme = \"paypal\"\nsecret = \"s\"", "hooks.a.scheme"),
            ("[hooks.a]\nscheme = \"github\"", "hooks.a.secret"),
            ("[hooks.a]\nscheme = \"github\"\nsecret = []", "hooks.a.secret"),
            (
                "[hooks.a]\nscheme = \"github\"\nsecret = \"s\"\nkind = \"nope\"",
                "hooks.a.kind",
            ),
            // noop's schema is not the hook envelope.
            (
                "[hooks.a]\nscheme = \"github\"\nsecret = \"s\"\nkind = \"noop\"",
                "hooks.a.kind",
            ),
            (
                "[hooks.a]\nscheme = \"github\"\nsecret = \"s\"\ntolerance = \"0s\"",
                "hooks.a.tolerance",
            ),
            (
                "[hooks.a]\nscheme = \"github\"\nsecret = \"s\"\ntolerance = \"2d\"",
                "hooks.a.tolerance",
            ),
            (
                "[hooks.a]\nscheme = \"standard\"\nsecret = \"whsec_%%%\"",
                "hooks.a.secret",
            ),
            ("[hooks.a]\nscheme = \"hmac\"\nsecret = \"s\"", "hooks.a.header"),
            (
                "[hooks.a]\nscheme = \"hmac\"\nsecret = \"s\"\nheader = \"x-sig\"\nencoding = \"rot13\"",
                "hooks.a.encoding",
            ),
            (
                "[hooks.a]\nscheme = \"hmac\"\nsecret = \"s\"\nheader = \"bad header\"",
                "hooks.a.header",
            ),
            (
                "[hooks.a]\nscheme = \"stripe\"\nsecret = \"s\"\nheader = \"x-sig\"",
                "hooks.a.header",
            ),
            ("[hooks.Big]\nscheme = \"github\"\nsecret = \"s\"", "hooks.Big"),
        ];
        for (toml, key) in cases {
            let error = load_toml(toml).err().unwrap_or_default();
            assert!(error.contains(key), "{toml}\n→ {error}");
        }
        let unknown = load_toml("[hooks.a]\nscheme = \"github\"\nsecret = \"s\"\nsecrets = 1")
            .err()
            .unwrap_or_default();
        assert!(unknown.contains("secrets"), "{unknown}");
    }

    #[test]
    fn a_kind_of_your_own_with_a_copy_of_the_envelope_is_a_target() {
        let dir = std::env::temp_dir().join(format!("sluice-hooks-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("billing")).unwrap();
        let envelope = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/hook/v1.avsc");
        // Its own record name: schemas are told apart by fingerprint, so an exact copy of
        // hook/v1.avsc would be refused as a duplicate.
        let copy = std::fs::read_to_string(envelope)
            .unwrap()
            .replace(r#""name": "Hook""#, r#""name": "BillingEvent""#);
        std::fs::write(dir.join("billing/v1.avsc"), copy).unwrap();
        let toml = format!(
            "[schemas]\ndir = {:?}\n[kinds.billing]\nhandler = \"http\"\nurl = \"http://billing:8000/events\"\n\
             secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n\
             [hooks.stripe]\nscheme = \"stripe\"\nsecret = \"whsec_x\"\nkind = \"billing\"",
            dir.display().to_string()
        );
        let loaded = load_toml(&toml);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(loaded.unwrap()["stripe"].kind, "billing");
    }

    #[test]
    fn secrets_are_never_printed() {
        let config = sluice_core::Config::from_toml(
            "[hooks.a]\nscheme = \"github\"\nsecret = [\"s3cr3t-one\", \"s3cr3t-two\"]",
        )
        .unwrap();
        let printed = serde_json::to_string(&config).unwrap() + &format!("{config:?}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
    }
}
