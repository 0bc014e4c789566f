//! JSON ⇄ Avro for one schema, with errors that name the offending field, so an HTTP client or a
//! CLI user learns exactly what to fix (`field `url`: expected a string, got a number`).

use std::collections::HashMap;

use apache_avro::{schema::UnionSchema, types::Value, Schema};
use serde_json::Value as Json;

/// A JSON document that does not fit a schema. `field` is a dotted path (`items[2].name`), empty
/// for the document itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }

    fn describe(&self) -> String {
        if self.field.is_empty() {
            self.problem.clone()
        } else {
            format!("field `{}`: {}", self.field, self.problem)
        }
    }
}

/// Converts a JSON document to an Avro value of `schema`. Unknown fields are rejected rather than
/// dropped: a typo in a field name must not silently become a default.
pub fn json_to_avro(schema: &Schema, json: Json) -> Result<Value, FieldError> {
    convert(schema, json, "")
}

/// A decoded record as plain JSON, for consumers in any language: unions as their value (not
/// tagged), enums as their symbol, bytes and fixed as base64, timestamps and dates as numbers,
/// decimals as base64 of their unscaled bytes, non-finite floats as null.
pub fn record_to_json(value: &Value) -> Json {
    use base64::{engine::general_purpose::STANDARD, Engine};
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int(n) | Value::Date(n) | Value::TimeMillis(n) => Json::from(*n),
        Value::Long(n)
        | Value::TimeMicros(n)
        | Value::TimestampMillis(n)
        | Value::TimestampMicros(n)
        | Value::TimestampNanos(n)
        | Value::LocalTimestampMillis(n)
        | Value::LocalTimestampMicros(n)
        | Value::LocalTimestampNanos(n) => Json::from(*n),
        Value::Float(f) => {
            serde_json::Number::from_f64(f64::from(*f)).map_or(Json::Null, Json::Number)
        }
        Value::Double(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Bytes(b) | Value::Fixed(_, b) => Json::String(STANDARD.encode(b)),
        Value::String(s) | Value::Enum(_, s) => Json::String(s.clone()),
        Value::Union(_, inner) => record_to_json(inner),
        Value::Array(items) => Json::Array(items.iter().map(record_to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), record_to_json(v)))
                .collect(),
        ),
        Value::Record(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), record_to_json(v)))
                .collect(),
        ),
        Value::Uuid(u) => Json::String(u.to_string()),
        // The unscaled two's-complement bytes, as the Avro binary form holds them: the scale is
        // in the schema, which the consumer has.
        Value::Decimal(d) => Vec::<u8>::try_from(d.clone())
            .map_or(Json::Null, |bytes| Json::String(STANDARD.encode(bytes))),
        Value::BigDecimal(d) => Json::String(d.to_string()),
        Value::Duration(d) => Json::String(format!("{d:?}")),
    }
}

/// Renders a decoded Avro value as JSON (for `GET` responses and `dlq show`).
pub fn avro_to_json(value: Value) -> Json {
    Json::try_from(value).unwrap_or_else(|e| Json::String(format!("<unrepresentable: {e}>")))
}

/// The field `name` of a record value.
pub fn field<'v>(record: &'v Value, name: &str) -> Option<&'v Value> {
    match record {
        Value::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
        _ => None,
    }
}

/// The string field `name` of a record value.
pub fn string_field<'v>(record: &'v Value, name: &str) -> Option<&'v str> {
    match field(record, name)? {
        Value::String(s) => Some(s.as_str()),
        _ => None,
    }
}

/// The integer field `name` of a record value.
pub fn long_field(record: &Value, name: &str) -> Option<i64> {
    match field(record, name)? {
        Value::Long(n) => Some(*n),
        Value::Int(n) => Some(i64::from(*n)),
        _ => None,
    }
}

fn kind_of(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn expected(path: &str, what: &str, json: &Json) -> FieldError {
    FieldError::new(path, format!("expected {what}, got {}", kind_of(json)))
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Takes the document by value so that strings move into the record instead of being copied.
fn convert(schema: &Schema, json: Json, path: &str) -> Result<Value, FieldError> {
    match schema {
        Schema::Null => match json {
            Json::Null => Ok(Value::Null),
            other => Err(expected(path, "null", &other)),
        },
        Schema::Boolean => json
            .as_bool()
            .map(Value::Boolean)
            .ok_or_else(|| expected(path, "a boolean", &json)),
        Schema::Int => integer(&json, path, i64::from(i32::MIN), i64::from(i32::MAX))
            .map(|n| Value::Int(n as i32)),
        Schema::Long => integer(&json, path, i64::MIN, i64::MAX).map(Value::Long),
        Schema::TimestampMillis => {
            integer(&json, path, i64::MIN, i64::MAX).map(Value::TimestampMillis)
        }
        Schema::Float => json
            .as_f64()
            .map(|f| Value::Float(f as f32))
            .ok_or_else(|| expected(path, "a number", &json)),
        Schema::Double => json
            .as_f64()
            .map(Value::Double)
            .ok_or_else(|| expected(path, "a number", &json)),
        Schema::String => match json {
            Json::String(s) => Ok(Value::String(s)),
            other => Err(expected(path, "a string", &other)),
        },
        // Bytes travel over JSON as base64, the way `record_to_json` writes them.
        Schema::Bytes => base64_bytes(&json, path).map(Value::Bytes),
        Schema::Fixed(f) => {
            let bytes = base64_bytes(&json, path)?;
            if bytes.len() != f.size {
                return Err(FieldError::new(
                    path,
                    format!("expected {} bytes (base64), got {}", f.size, bytes.len()),
                ));
            }
            Ok(Value::Fixed(f.size, bytes))
        }
        Schema::Enum(e) => {
            let Json::String(symbol) = json else {
                return Err(expected(path, "a string", &json));
            };
            e.symbols
                .iter()
                .position(|s| *s == symbol)
                .map(|i| Value::Enum(i as u32, symbol))
                .ok_or_else(|| {
                    FieldError::new(path, format!("expected one of {}", e.symbols.join(", ")))
                })
        }
        Schema::Array(a) => {
            let Json::Array(items) = json else {
                return Err(expected(path, "an array", &json));
            };
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| convert(&a.items, item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()
                .map(Value::Array)
        }
        Schema::Map(m) => {
            let Json::Object(entries) = json else {
                return Err(expected(path, "an object", &json));
            };
            entries
                .into_iter()
                .map(|(k, v)| {
                    let value = convert(&m.types, v, &child(path, &k))?;
                    Ok((k, value))
                })
                .collect::<Result<HashMap<_, _>, _>>()
                .map(Value::Map)
        }
        Schema::Union(u) => union(u, json, path),
        Schema::Record(r) => {
            let Json::Object(mut object) = json else {
                return Err(expected(path, "an object", &json));
            };
            if let Some(unknown) = object.keys().find(|k| !r.lookup.contains_key(*k)) {
                return Err(FieldError::new(child(path, unknown), "unknown field"));
            }
            let mut fields = Vec::with_capacity(r.fields.len());
            for field in &r.fields {
                let field_path = || child(path, &field.name);
                let value = match (object.remove(&field.name), &field.default) {
                    (Some(value), _) => convert(&field.schema, value, &field_path())?,
                    (None, Some(default)) => {
                        convert(&field.schema, default.clone(), &field_path())?
                    }
                    (None, None) => return Err(FieldError::new(field_path(), "missing")),
                };
                fields.push((field.name.clone(), value));
            }
            Ok(Value::Record(fields))
        }
        other => Err(FieldError::new(
            path,
            format!("schema type {other:?} is not supported over JSON"),
        )),
    }
}

fn integer(json: &Json, path: &str, min: i64, max: i64) -> Result<i64, FieldError> {
    let n = json
        .as_i64()
        .ok_or_else(|| expected(path, "an integer", json))?;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(FieldError::new(
            path,
            format!("{n} is out of range {min}..={max}"),
        ))
    }
}

/// JSON carries no type tag, so a union value takes the first branch it fits (null for JSON null).
fn base64_bytes(json: &Json, path: &str) -> Result<Vec<u8>, FieldError> {
    use base64::{engine::general_purpose::STANDARD, Engine};
    let text = json
        .as_str()
        .ok_or_else(|| expected(path, "a base64 string", json))?;
    STANDARD
        .decode(text)
        .map_err(|_| FieldError::new(path, "expected base64"))
}

fn union(u: &UnionSchema, json: Json, path: &str) -> Result<Value, FieldError> {
    let Some((last, others)) = u.variants().split_last() else {
        return Err(FieldError::new(path, "empty union"));
    };
    // Every branch but the last may fail and leave the document to the next one.
    for (i, branch) in others.iter().enumerate() {
        if let Ok(value) = convert(branch, json.clone(), path) {
            return Ok(Value::Union(i as u32, Box::new(value)));
        }
    }
    convert(last, json, path).map(|value| Value::Union(others.len() as u32, Box::new(value)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::codec::SchemaRegistry;

    fn webhook_schema() -> &'static Schema {
        &SchemaRegistry::embedded().latest("webhook").unwrap().schema
    }

    #[test]
    fn a_valid_document_converts() {
        let value = json_to_avro(
            webhook_schema(),
            json!({"url": "http://x", "event_type": "a.b", "payload": "{}"}),
        )
        .unwrap();
        assert!(matches!(value, Value::Record(ref f) if f.len() == 3));
    }

    #[test]
    fn errors_name_the_field() {
        let missing = json_to_avro(
            webhook_schema(),
            json!({"url": "http://x", "payload": "{}"}),
        );
        assert_eq!(
            missing.unwrap_err().to_string(),
            "field `event_type`: missing"
        );

        let wrong_type = json_to_avro(
            webhook_schema(),
            json!({"url": 5, "event_type": "a", "payload": "{}"}),
        );
        assert_eq!(
            wrong_type.unwrap_err().to_string(),
            "field `url`: expected a string, got a number"
        );

        let unknown = json_to_avro(
            webhook_schema(),
            json!({"url": "u", "event_type": "a", "payload": "{}", "ulr": "typo"}),
        );
        assert_eq!(
            unknown.unwrap_err().to_string(),
            "field `ulr`: unknown field"
        );

        let not_object = json_to_avro(webhook_schema(), json!([1]));
        assert_eq!(
            not_object.unwrap_err().to_string(),
            "expected an object, got an array"
        );
    }

    #[test]
    fn defaults_fill_absent_fields_and_enums_are_checked() {
        let noop = &SchemaRegistry::embedded().latest("noop").unwrap().schema;
        let value = json_to_avro(noop, json!({})).unwrap();
        assert_eq!(
            value,
            Value::Record(vec![
                ("payload".into(), Value::String(String::new())),
                ("sleep_ms".into(), Value::Long(0)),
                ("fail_attempts".into(), Value::Int(0)),
                ("panic_attempts".into(), Value::Int(0)),
            ])
        );
        let follow = &SchemaRegistry::embedded()
            .latest("FollowChanged")
            .unwrap()
            .schema;
        let bad = json_to_avro(
            follow,
            json!({"follower_id": "a", "followee_id": "b", "action": "LIKE", "changed_at": 1}),
        );
        assert_eq!(
            bad.unwrap_err().to_string(),
            "field `action`: expected one of FOLLOW, UNFOLLOW"
        );
    }
}
