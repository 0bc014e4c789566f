//! Avro binary encoding of a value already checked against its schema — what `json_to_avro`
//! returns — without going back to the schema.
//!
//! apache-avro's writer validates the value against the schema again and resolves named types
//! while it writes: about a fifth of a bulk publish's CPU. A converted value needs neither: its
//! records hold their fields in schema order, its unions and enums carry their branch index, and
//! every number has its schema's width. So the bytes follow from the value alone.

use apache_avro::types::Value;

/// Appends the Avro binary body of `value` to `out`. Returns false, with `out` as it was, for a
/// logical type that `json_to_avro` never produces (decimal, uuid, duration): the caller
/// encodes those with apache-avro.
pub fn write(value: &Value, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let written = write_value(value, out);
    if !written {
        out.truncate(start);
    }
    written
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> bool {
    match value {
        Value::Null => {}
        Value::Boolean(b) => out.push(u8::from(*b)),
        Value::Int(n) | Value::Date(n) | Value::TimeMillis(n) => write_long(i64::from(*n), out),
        Value::Long(n)
        | Value::TimeMicros(n)
        | Value::TimestampMillis(n)
        | Value::TimestampMicros(n)
        | Value::TimestampNanos(n)
        | Value::LocalTimestampMillis(n)
        | Value::LocalTimestampMicros(n)
        | Value::LocalTimestampNanos(n) => write_long(*n, out),
        Value::Float(f) => out.extend_from_slice(&f.to_le_bytes()),
        Value::Double(f) => out.extend_from_slice(&f.to_le_bytes()),
        Value::Bytes(bytes) => write_bytes(bytes, out),
        Value::String(text) => write_bytes(text.as_bytes(), out),
        Value::Fixed(_, bytes) => out.extend_from_slice(bytes),
        Value::Enum(index, _) => write_long(i64::from(*index), out),
        Value::Union(index, inner) => {
            write_long(i64::from(*index), out);
            return write_value(inner, out);
        }
        Value::Array(items) => {
            if !items.is_empty() {
                write_long(items.len() as i64, out);
                if !items.iter().all(|item| write_value(item, out)) {
                    return false;
                }
            }
            out.push(0);
        }
        Value::Map(entries) => {
            if !entries.is_empty() {
                write_long(entries.len() as i64, out);
                for (key, item) in entries {
                    write_bytes(key.as_bytes(), out);
                    if !write_value(item, out) {
                        return false;
                    }
                }
            }
            out.push(0);
        }
        Value::Record(fields) => return fields.iter().all(|(_, field)| write_value(field, out)),
        Value::Decimal(_) | Value::BigDecimal(_) | Value::Duration(_) | Value::Uuid(_) => {
            return false
        }
    }
    true
}

/// Zigzag, then a little-endian base-128 varint.
fn write_long(n: i64, out: &mut Vec<u8>) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn write_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    write_long(bytes.len() as i64, out);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use apache_avro::{to_avro_datum, Schema};
    use serde_json::json;

    use super::*;
    use crate::json::json_to_avro;

    /// Every type `json_to_avro` handles, nested, with unions taking each kind of branch.
    const SCHEMA: &str = r#"{
      "type": "record", "name": "All", "fields": [
        {"name": "n", "type": "null"},
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "s", "type": "string"},
        {"name": "by", "type": "bytes"},
        {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
        {"name": "e", "type": {"type": "enum", "name": "Color", "symbols": ["red", "green"]}},
        {"name": "a", "type": {"type": "array", "items": "long"}},
        {"name": "empty", "type": {"type": "array", "items": "string"}},
        {"name": "m", "type": {"type": "map", "values": "string"}},
        {"name": "u1", "type": ["null", "string"]},
        {"name": "u2", "type": ["null", "string"], "default": null},
        {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [
          {"name": "x", "type": "long", "default": -3}]}}
      ]}"#;

    #[test]
    fn writes_what_apache_avro_writes() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let documents = [
            json!({"n": null, "b": true, "i": -2147483648, "l": 9007199254740993_i64,
                   "t": 1733389000000_i64, "f": 1.5, "d": -0.1, "s": "héllo", "by": "AAEC",
                   "fx": "AQIDBA==", "e": "green", "a": [0, -1, 64, -65, 1_i64 << 40], "empty": [],
                   "m": {"k": "v"}, "u1": "x", "inner": {}}),
            json!({"n": null, "b": false, "i": 0, "l": 0, "t": 0, "f": 0, "d": 0, "s": "",
                   "by": "", "fx": "AAAAAA==", "e": "red", "a": [], "empty": [], "m": {},
                   "u1": null, "u2": "y", "inner": {"x": 300}}),
        ];
        for document in documents {
            let value = json_to_avro(&schema, document.clone()).unwrap();
            let mut ours = Vec::new();
            assert!(write(&value, &mut ours));
            assert_eq!(ours, to_avro_datum(&schema, value).unwrap(), "{document}");
        }
    }

    #[test]
    fn every_embedded_schema_encodes_its_defaults_alike() {
        let registry = crate::codec::SchemaRegistry::embedded();
        let every_version = registry
            .type_names()
            .flat_map(|name| registry.versions(name).iter());
        let mut compared = 0;
        for version in every_version {
            let apache_avro::Schema::Record(record) = &version.schema else {
                continue;
            };
            // Required fields get a value of their type; fields with defaults take them.
            let mut document = serde_json::Map::new();
            for field in record.fields.iter().filter(|f| f.default.is_none()) {
                let value = match field.schema {
                    Schema::String => json!("https://example.com/a"),
                    Schema::Long | Schema::Int => json!(7),
                    Schema::Boolean => json!(true),
                    _ => continue,
                };
                document.insert(field.name.clone(), value);
            }
            let Ok(value) = json_to_avro(&version.schema, document.into()) else {
                continue;
            };
            let mut ours = Vec::new();
            assert!(write(&value, &mut ours));
            assert_eq!(
                ours,
                to_avro_datum(&version.schema, value).unwrap(),
                "{} v{}",
                version.type_name,
                version.version
            );
            compared += 1;
        }
        assert!(compared >= 5, "only {compared} schemas compared");
    }

    #[test]
    fn an_unsupported_logical_type_leaves_out_untouched() {
        let mut out = vec![1, 2];
        let value = Value::Record(vec![
            ("a".into(), Value::Long(5)),
            ("u".into(), Value::Uuid(uuid::Uuid::nil())),
        ]);
        assert!(!write(&value, &mut out));
        assert_eq!(out, [1, 2]);
    }
}
