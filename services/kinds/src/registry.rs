//! The registry of job kinds, built once at start from the configuration: every role (api,
//! worker, `sluice topics ensure`, `sluice stats`, `sluice schemas`, the DLQ tools) reads it, so
//! they all agree on which kinds exist, their schemas, their policies and their handlers.
//!
//! A kind is a name, its schema versions, a handler type and its policy. Built-in kinds are the
//! handler types of `HANDLER_TYPES` marked built-in, each with the built-in schema of its name;
//! user kinds are declared in `[kinds.<name>]` with a `handler` and have their schemas in
//! `schemas.dir`. Adding a built-in kind: a schema folder, a file, a line in `HANDLER_TYPES`.

use std::collections::BTreeMap;

use sluice_core::{
    codec::{DecodeError, Decoded, SchemaRegistry},
    config::KindTable,
    retry::{RetryOverrides, RetryPlan},
    schema_dir,
    topics::{TopicSpec, Topics},
    Config,
};

use crate::kind::{HandlerType, KindError, Settings};

/// Every handler type, built-in kinds first. One line per implementation.
pub static HANDLER_TYPES: &[&dyn HandlerType] = &[
    &crate::noop::Noop,
    &crate::webhook::Webhook,
    &crate::email::Email,
    &crate::image::Image,
    &crate::hook::Hook,
    &crate::http::Http,
    &crate::custom::Custom,
];

/// The policy keys of a `[kinds.<kind>]` table besides the retry keys.
const HANDLER_KEY: &str = "handler";
const CONCURRENCY_KEY: &str = "concurrency";
const LANE_WEIGHTS_KEY: &str = "lane_weights";

/// One kind, resolved.
pub struct KindSpec {
    pub name: String,
    pub handler: &'static dyn HandlerType,
    /// The handler's own keys of `[kinds.<name>]`.
    pub settings: Settings,
    pub plan: RetryPlan,
    /// Jobs of this kind in flight per worker process at most; `None`: `worker.concurrency`.
    pub concurrency: Option<usize>,
    /// How a worker shares this kind's slots between its lanes; `None`: `worker.lane_weights`.
    pub lane_weights: Option<sluice_core::lanes::LaneWeights>,
}

impl KindSpec {
    pub fn is_built_in(&self) -> bool {
        self.handler.built_in()
    }
}

pub struct Registry {
    schemas: SchemaRegistry,
    kinds: BTreeMap<String, KindSpec>,
}

impl Registry {
    /// Loads the schemas (built-in plus `schemas.dir`) and the kinds; every problem is an error
    /// naming the kind, the key or the file.
    pub fn load(config: &Config) -> Result<Self, KindError> {
        let files = match &config.schemas.dir {
            Some(dir) => schema_dir::read_dir(dir)?,
            None => Vec::new(),
        };
        let schemas = SchemaRegistry::with_files(&files)?;
        let mut kinds = BTreeMap::new();
        let empty = KindTable::new();
        for handler in HANDLER_TYPES.iter().filter(|h| h.built_in()) {
            let name = handler.name();
            let table = config.kinds.get(name).unwrap_or(&empty);
            kinds.insert(
                name.to_owned(),
                resolve(config, name, Some(*handler), table)?,
            );
        }
        for (name, table) in &config.kinds {
            if kinds.contains_key(name) {
                continue;
            }
            check_name(name)?;
            kinds.insert(name.clone(), resolve(config, name, None, table)?);
        }
        for name in kinds.keys() {
            if schemas.latest(name).is_none() {
                let dir = config
                    .schemas
                    .dir
                    .as_ref()
                    .map_or("schemas.dir (not set)".to_owned(), |d| {
                        d.display().to_string()
                    });
                return Err(KindError::Setting {
                    kind: name.clone(),
                    problem: format!("no schema: expected {dir}/{name}/v1.avsc"),
                });
            }
        }
        let embedded = SchemaRegistry::embedded();
        for file in &files {
            let known =
                kinds.contains_key(&file.type_name) || embedded.latest(&file.type_name).is_some();
            if !known {
                return Err(KindError::Setting {
                    kind: file.type_name.clone(),
                    problem: format!(
                        "{} has a schema but no kind `{}` is declared: add [kinds.{}] with a handler",
                        file.path.display(),
                        file.type_name,
                        file.type_name
                    ),
                });
            }
        }
        Ok(Self { schemas, kinds })
    }

    /// Every schema version, built-in and loaded.
    pub fn schemas(&self) -> &SchemaRegistry {
        &self.schemas
    }

    pub fn get(&self, kind: &str) -> Option<&KindSpec> {
        self.kinds.get(kind)
    }

    /// The kind, or an error listing the known ones.
    pub fn kind(&self, kind: &str) -> Result<&KindSpec, KindError> {
        self.get(kind).ok_or_else(|| KindError::Unknown {
            kind: kind.to_owned(),
            known: self.names().join(", "),
        })
    }

    /// Every kind's name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.kinds.keys().cloned().collect()
    }

    pub fn kinds(&self) -> impl Iterator<Item = &KindSpec> {
        self.kinds.values()
    }

    /// Decodes a record of `kind`, resolved to its newest schema version.
    pub fn decode(&self, kind: &str, bytes: &[u8]) -> Result<Decoded, DecodeError> {
        self.schemas.decode(kind, bytes)
    }

    /// Every topic the configuration needs, for `sluice topics ensure`.
    pub fn topic_specs(&self, config: &Config) -> Vec<TopicSpec> {
        let topics = Topics::new(&config.topics);
        let partitions = config.topics.partitions;
        let mut specs: Vec<TopicSpec> = self
            .kinds()
            .flat_map(|k| {
                topics.kind_topics(
                    &k.name,
                    &k.plan.tiers,
                    partitions,
                    // A delayed job can be cancelled until it starts, up to 30 days later.
                    config.redis.status_ttl + sluice_core::delays::MAX_DELAY,
                )
            })
            .collect();
        specs.extend(topics.social_topics(partitions));
        specs.extend(topics.delay_topics(partitions));
        specs.extend(topics.scheduler_topics());
        specs
    }
}

/// Kind names become topic names, URL segments and metric labels.
fn check_name(name: &str) -> Result<(), KindError> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(KindError::Setting {
            kind: name.to_owned(),
            problem: "a kind's name is a lower-case letter, then lower-case letters, digits, `_` \
                      or `-` (at most 64)"
                .into(),
        })
    }
}

/// Splits a `[kinds.<name>]` table into handler, policy and settings, and checks them.
fn resolve(
    config: &Config,
    name: &str,
    built_in: Option<&'static dyn HandlerType>,
    table: &KindTable,
) -> Result<KindSpec, KindError> {
    let declared = match table.get(HANDLER_KEY) {
        None => None,
        Some(serde_json::Value::String(h)) => Some(h.as_str()),
        Some(_) => return Err(KindError::key(name, HANDLER_KEY, "must be a string")),
    };
    let handler = match (built_in, declared) {
        (Some(handler), None) => handler,
        (Some(handler), Some(h)) if h == handler.name() => handler,
        (Some(_), Some(_)) => {
            return Err(KindError::key(
                name,
                HANDLER_KEY,
                format!("`{name}` is a built-in kind; its handler cannot be changed"),
            ))
        }
        (None, None) => {
            return Err(KindError::key(
                name,
                HANDLER_KEY,
                format!(
                    "is required for a kind you define (one of: {})",
                    user_handlers()
                ),
            ))
        }
        (None, Some(h)) => *HANDLER_TYPES
            .iter()
            .find(|t| !t.built_in() && t.name() == h)
            .ok_or_else(|| {
                KindError::key(
                    name,
                    HANDLER_KEY,
                    format!("unknown handler `{h}` (one of: {})", user_handlers()),
                )
            })?,
    };
    let mut retry = serde_json::Map::new();
    let mut settings = Settings::new();
    let mut concurrency = None;
    let mut lane_weights = None;
    for (key, value) in table {
        match key.as_str() {
            HANDLER_KEY => {}
            LANE_WEIGHTS_KEY => {
                let weights: sluice_core::lanes::LaneWeights =
                    serde_json::from_value(value.clone())
                        .map_err(|e| KindError::key(name, key, e.to_string()))?;
                if let Some(problem) = weights.problem() {
                    return Err(KindError::key(name, key, problem));
                }
                lane_weights = Some(weights);
            }
            CONCURRENCY_KEY => {
                concurrency = Some(
                    value
                        .as_u64()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| KindError::key(name, key, "must be at least 1"))?
                        as usize,
                )
            }
            // A list set from the environment arrives as one comma-separated string.
            "tiers" if value.is_string() => {
                let list = value.as_str().unwrap_or_default().split(',');
                let tiers: Vec<serde_json::Value> = list.map(|t| t.trim().into()).collect();
                retry.insert(key.clone(), tiers.into());
            }
            k if RetryPlan::KEYS.contains(&k) => {
                retry.insert(key.clone(), value.clone());
            }
            _ => {
                settings.insert(key.clone(), value.clone());
            }
        }
    }
    let overrides: RetryOverrides = serde_json::from_value(serde_json::Value::Object(retry))
        .map_err(|e| KindError::Setting {
            kind: name.to_owned(),
            problem: e.to_string(),
        })?;
    if overrides
        .factor
        .is_some_and(|f| !(1.0..=100.0).contains(&f))
    {
        return Err(KindError::key(name, "factor", "must be between 1 and 100"));
    }
    let plan = RetryPlan::resolve(&config.retry, &overrides);
    if let Some((key, problem)) = plan.problem() {
        return Err(KindError::key(name, key, problem));
    }
    handler.check(name, &settings)?;
    Ok(KindSpec {
        name: name.to_owned(),
        handler,
        settings,
        plan,
        concurrency,
        lane_weights,
    })
}

fn user_handlers() -> String {
    let names: Vec<&str> = HANDLER_TYPES
        .iter()
        .filter(|t| !t.built_in())
        .map(|t| t.name())
        .collect();
    if names.is_empty() {
        "none yet".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
