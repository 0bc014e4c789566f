//! The registry's start-up checks: each bad input fails naming the kind, the key or the file.

use std::path::PathBuf;

use serde_json::json;
use sluice_core::Config;

use super::Registry;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const GREET_V1: &str =
    r#"{"type":"record","name":"Greet","fields":[{"name":"name","type":"string"}]}"#;

/// A temporary `schemas.dir` with the given `(type, version, schema)` files.
fn schemas_dir(files: &[(&str, u32, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-registry-{}", uuid::Uuid::new_v4()));
    for (type_name, version, json) in files {
        std::fs::create_dir_all(dir.join(type_name)).unwrap();
        std::fs::write(dir.join(type_name).join(format!("v{version}.avsc")), json).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(dir: Option<PathBuf>, kinds: serde_json::Value) -> Config {
    let mut config = Config::default();
    config.schemas.dir = dir;
    config.kinds = serde_json::from_value(kinds).unwrap();
    config
}

fn http_greet() -> serde_json::Value {
    json!({"greet": {"handler": "http", "url": "http://127.0.0.1:9/jobs", "secret": SECRET, "allow_private": true}})
}

fn error(config: &Config) -> String {
    match Registry::load(config) {
        Ok(_) => panic!("the registry loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_built_in_kinds_are_there_with_no_configuration() {
    let registry = Registry::load(&Config::default()).unwrap();
    assert_eq!(
        registry.names(),
        ["email", "hook", "image", "noop", "webhook"]
    );
    assert!(registry.kinds().all(|k| k.is_built_in()));
}

#[test]
fn a_kind_defined_at_run_time_gets_topics_tiers_and_its_policy() {
    let dir = schemas_dir(&[("greet", 1, GREET_V1)]);
    let mut kinds = http_greet();
    kinds["greet"]["max_attempts"] = json!(3);
    kinds["greet"]["concurrency"] = json!(4);
    let registry = Registry::load(&config(Some(dir), kinds)).unwrap();
    let greet = registry.kind("greet").unwrap();
    assert_eq!(greet.handler.name(), "http");
    assert_eq!(greet.plan.tiers.len(), 2, "three attempts: two retry tiers");
    assert_eq!(greet.concurrency, Some(4));
    let topics: Vec<String> = registry
        .topic_specs(&Config::default())
        .into_iter()
        .map(|t| t.name)
        .collect();
    for wanted in [
        "jobs.greet",
        "jobs.greet.retry.2s",
        "jobs.greet.retry.4s",
        "jobs.greet.dlq",
    ] {
        assert!(topics.iter().any(|t| t == wanted), "{wanted} in {topics:?}");
    }
    let job = registry.prepare("greet", br#"{"name": "Ada"}"#).unwrap();
    assert!(registry.decode("greet", &job.value).is_ok());
}

#[test]
fn handler_problems_name_the_kind_and_the_key() {
    let dir = schemas_dir(&[("greet", 1, GREET_V1)]);
    let cases = [
        (
            json!({"greet": {"handler": "ftp"}}),
            "kinds.greet.handler: unknown handler `ftp`",
        ),
        (json!({"greet": {}}), "kinds.greet.handler: is required"),
        (
            json!({"greet": {"handler": "http", "secret": SECRET}}),
            "kinds.greet.url",
        ),
        (
            json!({"greet": {"handler": "http", "url": "http://x/jobs"}}),
            "kinds.greet.secret: is required",
        ),
        (
            json!({"greet": {"handler": "http", "url": "ftp://x", "secret": SECRET}}),
            "kinds.greet.url",
        ),
        (
            json!({"greet": {"handler": "http", "url": "http://127.0.0.1:9/jobs", "secret": SECRET}}),
            "kinds.greet.url: `http://127.0.0.1:9/jobs`: 127.0.0.1 is a loopback address",
        ),
        (
            json!({"greet": {"handler": "http", "url": "http://x/jobs", "secret": SECRET, "allow_cidrs": ["10.0.0.0/40"]}}),
            "kinds.greet.allow_cidrs: `10.0.0.0/40` is not a network",
        ),
        (
            json!({"webhook": {"allow_cidrs": "127.0.0.0/8,nope"}}),
            "kinds.webhook.allow_cidrs: `nope` is not a network",
        ),
        (
            json!({"noop": {"colour": "red"}}),
            "kinds.noop.colour: unknown key",
        ),
        (json!({"noop": {"handler": "http"}}), "kinds.noop.handler"),
        (
            json!({"webhook": {"secret": "abc"}}),
            "kinds.webhook.secret",
        ),
        (
            json!({"noop": {"concurrency": 0}}),
            "kinds.noop.concurrency",
        ),
        (json!({"noop": {"factor": 500.0}}), "kinds.noop.factor"),
        (
            json!({"Greet": {"handler": "http"}}),
            "kinds.Greet: a kind's name",
        ),
    ];
    for (kinds, expected) in cases {
        let message = error(&config(Some(dir.clone()), kinds.clone()));
        assert!(message.contains(expected), "{kinds}: {message}");
    }
}

#[test]
fn schema_problems_name_the_file() {
    // Declared without a schema.
    let empty = schemas_dir(&[]);
    let message = error(&config(Some(empty), http_greet()));
    assert!(
        message.contains("kinds.greet: no schema") && message.contains("greet/v1.avsc"),
        "{message}"
    );

    // A schema folder no kind is declared for.
    let stray = schemas_dir(&[("greet", 1, GREET_V1)]);
    let message = error(&config(Some(stray), json!({})));
    assert!(
        message.contains("greet/v1.avsc") && message.contains("[kinds.greet]"),
        "{message}"
    );

    // A file that does not parse.
    let broken = schemas_dir(&[("greet", 1, r#"{"type": "record", "name": }"#)]);
    let message = error(&config(Some(broken), http_greet()));
    assert!(
        message.contains("greet/v1.avsc") && message.contains("does not parse"),
        "{message}"
    );

    // v2 adds a field without a default: v2 cannot read what v1 wrote.
    let v2 = r#"{"type":"record","name":"Greet","fields":[{"name":"name","type":"string"},{"name":"age","type":"int"}]}"#;
    let incompatible = schemas_dir(&[("greet", 1, GREET_V1), ("greet", 2, v2)]);
    let message = error(&config(Some(incompatible), http_greet()));
    assert!(
        message.contains("greet/v2.avsc") && message.contains("backward"),
        "{message}"
    );

    // A file named otherwise.
    let misnamed = schemas_dir(&[]);
    std::fs::create_dir_all(misnamed.join("greet")).unwrap();
    std::fs::write(misnamed.join("greet/latest.avsc"), GREET_V1).unwrap();
    let message = error(&config(Some(misnamed), http_greet()));
    assert!(
        message.contains("latest.avsc") && message.contains("v<N>.avsc"),
        "{message}"
    );

    // A built-in version changed in place.
    let changed = schemas_dir(&[("noop", 1, GREET_V1)]);
    let message = error(&config(Some(changed), json!({})));
    assert!(
        message.contains("noop/v1.avsc") && message.contains("built-in"),
        "{message}"
    );
}

#[test]
fn the_repository_schemas_folder_as_schemas_dir_is_the_built_in_schemas_again() {
    let repo_schemas = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let registry = Registry::load(&config(Some(repo_schemas), json!({}))).unwrap();
    assert_eq!(
        registry.names(),
        ["email", "hook", "image", "noop", "webhook"]
    );
}

#[test]
fn a_compatible_new_version_resolves_old_records() {
    let v2 = r#"{"type":"record","name":"Greet","fields":[{"name":"name","type":"string"},{"name":"loud","type":"boolean","default":false}]}"#;
    let dir = schemas_dir(&[("greet", 1, GREET_V1), ("greet", 2, v2)]);
    let registry = Registry::load(&config(Some(dir), http_greet())).unwrap();
    let v1 = &registry.schemas().versions("greet")[0];
    let old = sluice_core::codec::encode_with(
        v1,
        apache_avro::types::Value::Record(vec![(
            "name".into(),
            apache_avro::types::Value::String("Ada".into()),
        )]),
    )
    .unwrap();
    let decoded = registry.decode("greet", &old).unwrap();
    assert_eq!(
        sluice_core::json::record_to_json(&decoded.value),
        json!({"name": "Ada", "loud": false})
    );
}
