use apache_avro::{schema_compatibility::SchemaCompatibility, types::Value};

use super::*;

/// Published vectors from the Avro project's schema-tests.txt (signed 64-bit, as Java prints them).
#[test]
fn rabin_fingerprint_matches_the_avro_specification_vectors() {
    let vectors: &[(&str, i64)] = &[
        (r#""null""#, 7195948357588979594),
        (r#""boolean""#, -6970731678124411036),
        (r#""int""#, 8247732601305521295),
        (r#""long""#, -3434872931120570953),
        (r#""string""#, -8142146995180207161),
        (
            r#"{"name":"foo","type":"fixed","size":15}"#,
            1756455273707447556,
        ),
    ];
    for (canonical, expected) in vectors {
        assert_eq!(
            rabin_fingerprint(canonical.as_bytes()),
            *expected as u64,
            "{canonical}"
        );
    }
}

#[test]
fn every_embedded_schema_parses_and_the_known_types_exist() {
    let registry = SchemaRegistry::embedded();
    let names: Vec<_> = registry.type_names().collect();
    for expected in ["FollowChanged", "PostCreated", "noop", "webhook"] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
}

fn webhook(url: &str) -> Value {
    Value::Record(vec![
        ("url".into(), Value::String(url.into())),
        ("event_type".into(), Value::String("invoice.paid".into())),
        ("payload".into(), Value::String(r#"{"id":1}"#.into())),
    ])
}

#[test]
fn round_trip_keeps_every_field_and_writes_the_single_object_header() {
    let registry = SchemaRegistry::embedded();
    let bytes = registry
        .encode("webhook", webhook("http://example.test/hook"))
        .unwrap();
    assert_eq!(&bytes[..2], &MAGIC);
    let latest = registry.latest("webhook").unwrap();
    assert_eq!(&bytes[2..10], &latest.fingerprint.to_le_bytes());
    let decoded = registry.decode("webhook", &bytes).unwrap();
    assert_eq!(decoded.value, webhook("http://example.test/hook"));
}

#[test]
fn an_old_writer_is_resolved_to_the_newest_reader() {
    let registry = SchemaRegistry::embedded();
    let v1 = &registry.versions("noop")[0];
    assert_eq!(v1.version, 1);
    let bytes = encode_with(
        v1,
        Value::Record(vec![("payload".into(), Value::String("x".into()))]),
    )
    .unwrap();
    let decoded = registry.decode("noop", &bytes).unwrap();
    assert_eq!(decoded.writer.version, 1);
    assert_eq!(
        decoded.value,
        Value::Record(vec![
            ("payload".into(), Value::String("x".into())),
            ("sleep_ms".into(), Value::Long(0)),
            ("fail_attempts".into(), Value::Int(0)),
            ("panic_attempts".into(), Value::Int(0)),
        ])
    );
}

#[test]
fn garbage_is_a_decode_error_never_a_panic() {
    let registry = SchemaRegistry::embedded();
    assert!(matches!(
        registry.decode("noop", b"hi"),
        Err(DecodeError::TooShort(2))
    ));
    assert!(matches!(
        registry.decode("noop", b"not avro at all"),
        Err(DecodeError::BadMagic(b'n', b'o'))
    ));
    let mut unknown = vec![0xC3, 0x01];
    unknown.extend_from_slice(&0x0123_4567_89ab_cdefu64.to_le_bytes());
    assert!(matches!(
        registry.decode("noop", &unknown),
        Err(DecodeError::UnknownFingerprint(0x0123_4567_89ab_cdef))
    ));

    let webhook_bytes = registry.encode("webhook", webhook("http://x")).unwrap();
    assert!(matches!(
        registry.decode("noop", &webhook_bytes),
        Err(DecodeError::WrongType { .. })
    ));

    let mut truncated = webhook_bytes.clone();
    truncated.truncate(truncated.len() - 3);
    assert!(matches!(
        registry.decode("webhook", &truncated),
        Err(DecodeError::Body { .. })
    ));

    let mut trailing = webhook_bytes;
    trailing.push(0);
    assert_eq!(
        registry.decode("webhook", &trailing).unwrap_err(),
        DecodeError::TrailingBytes(1)
    );
}

/// Every schema change must keep both directions working: the new version reads what the previous
/// one wrote (backward: consumers upgrade first) and the previous version reads what the new one
/// writes (forward: producers upgrade first).
#[test]
fn each_schema_version_is_backward_and_forward_compatible_with_the_previous() {
    let registry = SchemaRegistry::embedded();
    let mut pairs_checked = 0;
    for type_name in registry.type_names() {
        for pair in registry.versions(type_name).windows(2) {
            let (previous, next) = (&pair[0].schema, &pair[1].schema);
            SchemaCompatibility::can_read(previous, next).unwrap_or_else(|e| {
                panic!(
                    "{type_name} v{} cannot read v{}: {e}",
                    pair[1].version, pair[0].version
                )
            });
            SchemaCompatibility::can_read(next, previous).unwrap_or_else(|e| {
                panic!(
                    "{type_name} v{} cannot read v{}: {e}",
                    pair[0].version, pair[1].version
                )
            });
            pairs_checked += 1;
        }
    }
    assert!(
        pairs_checked >= 1,
        "no type has two versions, so nothing was checked"
    );
}

#[test]
fn the_compatibility_check_rejects_a_breaking_change() {
    let registry = SchemaRegistry::from_sources([
        ("t", 1, r#"{"type":"record","name":"T","fields":[{"name":"a","type":"string"}]}"#),
        ("t", 2, r#"{"type":"record","name":"T","fields":[{"name":"a","type":"string"},{"name":"b","type":"long"}]}"#),
    ])
    .unwrap();
    let versions = registry.versions("t");
    // v2 added `b` without a default: it cannot read v1 data.
    assert!(SchemaCompatibility::can_read(&versions[0].schema, &versions[1].schema).is_err());
}

#[test]
fn the_new_writer_is_readable_by_the_previous_reader_in_practice() {
    let registry = SchemaRegistry::embedded();
    let versions = registry.versions("noop");
    let (v1, v2) = (&versions[0], &versions[1]);
    let bytes = encode_with(
        v2,
        Value::Record(vec![
            ("payload".into(), Value::String("y".into())),
            ("sleep_ms".into(), Value::Long(25)),
        ]),
    )
    .unwrap();
    let mut body = &bytes[HEADER_LEN..];
    let old_view = apache_avro::from_avro_datum(&v2.schema, &mut body, Some(&v1.schema)).unwrap();
    assert_eq!(
        old_view,
        Value::Record(vec![("payload".into(), Value::String("y".into()))])
    );
}
