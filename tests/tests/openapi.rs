//! `GET /openapi.json` describes the whole API, user-defined kinds included: an OpenAPI
//! validator accepts it, and a schema-driven fuzzer (schemathesis) run against the live api —
//! on the real broker and Redis, with a token — finds no 5xx, no answer that contradicts the
//! document, and no operation that declares the bearer scheme yet answers without a token.
//! Both tools are pinned in `deploy/pytools.sh`, which `make test` runs first.

use std::{path::PathBuf, process::Command};

use serde_json::Value;
use sluice_tests::{get_json, TestEnv, TEST_TOKEN, WEBHOOK_SECRET};

fn tool(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../.cache/pytools/bin")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run deploy/pytools.sh (make test does)",
        path.display()
    );
    path
}

/// An environment with one user-defined kind beside the built-in ones.
async fn env_with_a_user_kind() -> (TestEnv, PathBuf) {
    let dir = std::env::temp_dir().join(format!("sluice-openapi-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("resize")).unwrap();
    std::fs::write(
        dir.join("resize/v1.avsc"),
        r#"{"type": "record", "name": "Resize", "fields": [
            {"name": "image", "type": "string", "doc": "Where the image is"},
            {"name": "width", "type": "int", "default": 800},
            {"name": "format", "type": {"type": "enum", "name": "Format", "symbols": ["jpeg", "webp"]}, "default": "jpeg"},
            {"name": "tag", "type": ["null", "string"], "default": null}
        ]}"#,
    )
    .unwrap();
    let schemas = dir.clone();
    let env = TestEnv::with_config(move |c| {
        c.schemas.dir = Some(schemas);
        let kind = c.kinds.entry("resize".into()).or_default();
        kind.insert("handler".into(), "http".into());
        kind.insert("url".into(), "http://127.0.0.1:9/resize".into());
        kind.insert("secret".into(), WEBHOOK_SECRET.into());
        kind.insert("allow_private".into(), true.into());
    })
    .await;
    (env, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_openapi_and_has_every_kind() {
    let (env, dir) = env_with_a_user_kind().await;
    let api = env.start_api().await;
    let doc: Value = get_json(
        &reqwest::Client::new(),
        &format!("http://{}/openapi.json", api.info),
    )
    .await;
    assert_eq!(doc["openapi"], "3.1.0");
    let resize = &doc["paths"]["/v1/jobs/resize"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    assert_eq!(resize["required"], serde_json::json!(["image"]));
    assert_eq!(
        resize["properties"]["format"]["enum"],
        serde_json::json!(["jpeg", "webp"])
    );
    assert_eq!(resize["properties"]["width"]["default"], 800);
    for kind in ["noop", "webhook"] {
        assert!(
            doc["paths"][format!("/v1/jobs/{kind}")].is_object(),
            "{kind}"
        );
    }
    let file = dir.join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let output = Command::new(tool("openapi-spec-validator"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    api.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schema_driven_fuzzer_finds_no_5xx_and_nothing_contradicting_the_document() {
    let (env, dir) = env_with_a_user_kind().await;
    let api = env.start_api().await;
    let base = format!("http://{}", api.info);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(tool("st"))
            .args(["run", &format!("{base}/openapi.json")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,ignored_auth",
                // A token with every scope; `ignored_auth` also calls each operation that
                // declares security without it (and with a wrong one) and wants a 401.
                "--header",
                &format!("Authorization: Bearer {TEST_TOKEN}"),
                "--max-examples",
                "25",
                "--seed",
                "7",
                // One worker: hypothesis's source inspection is not thread-safe on Python 3.11
                // (a `SystemError` from `ast.parse` seen with two).
                "--workers",
                "1",
                "--request-timeout",
                "40",
                "--no-color",
                "--generation-database",
                "none",
            ])
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}"
    );
    assert!(
        report.contains("passed"),
        "schemathesis ran no test case:\n{report}"
    );
    api.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
