//! `GET /openapi.json`: an OpenAPI 3.1 document of the whole HTTP API, built at start from the
//! routes below and from the kind registry — every kind's request body (user-defined kinds
//! included) comes from its newest Avro schema: required fields, types, enums, defaults.

use apache_avro::{schema::RecordSchema, Schema};
use serde_json::{json, Map, Value as Json};
use sluice_core::tokens::Scope;
use sluice_kinds::Registry;

/// The JSON Schema a JSON value must satisfy to become a value of `schema` (the conversion the
/// api applies: `sluice_core::json::json_to_avro`).
pub fn json_schema(schema: &Schema) -> Json {
    match schema {
        Schema::Null => json!({"type": "null"}),
        Schema::Boolean => json!({"type": "boolean"}),
        Schema::Int => {
            json!({"type": "integer", "format": "int32", "minimum": i32::MIN, "maximum": i32::MAX})
        }
        Schema::Long | Schema::TimestampMillis => json!({"type": "integer", "format": "int64"}),
        Schema::Float | Schema::Double => json!({"type": "number"}),
        Schema::String => json!({"type": "string"}),
        Schema::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
        Schema::Fixed(f) => {
            json!({"type": "string", "contentEncoding": "base64", "description": format!("{} bytes", f.size)})
        }
        Schema::Enum(e) => json!({"type": "string", "enum": e.symbols}),
        Schema::Array(a) => json!({"type": "array", "items": json_schema(&a.items)}),
        Schema::Map(m) => json!({"type": "object", "additionalProperties": json_schema(&m.types)}),
        Schema::Union(u) => {
            json!({"anyOf": u.variants().iter().map(json_schema).collect::<Vec<_>>()})
        }
        Schema::Record(r) => record_schema(r, &Map::new()),
        // Named references and logical types the api does not take over JSON: anything goes
        // here, and the api answers 400 naming the field.
        _ => json!({}),
    }
}

/// A record as a JSON object: fields without a default are required, unknown ones refused.
fn record_schema(record: &RecordSchema, extra: &Map<String, Json>) -> Json {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in &record.fields {
        let mut property = json_schema(&field.schema);
        if let (Some(doc), Json::Object(p)) = (&field.doc, &mut property) {
            p.insert("description".into(), doc.clone().into());
        }
        match (&field.default, &mut property) {
            (Some(default), Json::Object(p)) => {
                p.insert("default".into(), default.clone());
            }
            (None, _) => required.push(field.name.clone()),
            _ => {}
        }
        properties.insert(field.name.clone(), property);
    }
    properties.extend(extra.clone());
    let mut object = json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    });
    if !required.is_empty() {
        object["required"] = required.into();
    }
    if let Some(doc) = &record.doc {
        object["description"] = doc.clone().into();
    }
    object
}

fn error_responses(codes: &[(&str, &str)]) -> Map<String, Json> {
    codes
        .iter()
        .map(|(code, why)| {
            (
                (*code).to_owned(),
                json!({"description": why, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
            )
        })
        .collect()
}

fn responses(ok: (&str, &str, Json), errors: &[(&str, &str)]) -> Json {
    let mut all = Map::new();
    all.insert(
        ok.0.to_owned(),
        json!({"description": ok.1, "content": {"application/json": {"schema": ok.2}}}),
    );
    all.extend(error_responses(errors));
    Json::Object(all)
}

fn body(schema: Json) -> Json {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

fn path_param(name: &str, schema: Json) -> Json {
    json!({"name": name, "in": "path", "required": true, "schema": schema})
}

fn query_param(name: &str, schema: Json, description: &str) -> Json {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

/// The security requirement of an operation that needs a token with `scope` (OpenAPI 3.1 lets a
/// non-OAuth scheme list the roles it requires).
fn needs(scope: Scope) -> Json {
    json!([{"bearer": [scope.as_str()]}])
}

/// Every operation that needs a token can answer 401, 403 and 429 (the `auth` layer).
fn add_auth_responses(paths: &mut Map<String, Json>) {
    let auth = error_responses(&[
        (
            "401",
            "No token, or an unknown one (`WWW-Authenticate: Bearer`)",
        ),
        ("403", "The token lacks the operation's scope"),
        (
            "429",
            "The token is over its rate limit (`Retry-After` says when to retry)",
        ),
    ]);
    for operation in paths
        .values_mut()
        .filter_map(Json::as_object_mut)
        .flat_map(|p| p.values_mut())
    {
        let secured = operation["security"]
            .as_array()
            .is_some_and(|s| !s.is_empty());
        if let (true, Some(responses)) = (secured, operation["responses"].as_object_mut()) {
            responses.extend(auth.clone());
        }
    }
}

/// The document, for this registry.
pub fn document(registry: &Registry) -> Json {
    let user_id = json!({"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"});
    let mut paths = Map::new();
    let envelope: Map<String, Json> = [
        (
            "key".to_owned(),
            json!({"type": "string", "minLength": 1, "description": "Ordering key: jobs with the same key go to the same partition. Default: the job id."}),
        ),
        (
            "priority".to_owned(),
            json!({"type": "string", "enum": ["high", "normal", "low"], "description": "Priority lane: `jobs.<kind>.high`, `jobs.<kind>` or `jobs.<kind>.low`. Workers serve lanes weighted (default 8:4:1). Default `normal`."}),
        ),
        (
            "run_at".to_owned(),
            json!({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}], "description": "Do not start before then (RFC 3339, or ms since the epoch), at most 30 days ahead: status `scheduled`. A time already past runs now. Not with `delay`."}),
        ),
        (
            "delay".to_owned(),
            json!({"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 1, "maximum": 2592000}], "description": "Do not start before this long from now (`90s`, `2h`, or seconds), 1 s to 30 days: status `scheduled`. Not with `run_at`."}),
        ),
        (
            "expires_in".to_owned(),
            json!({"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 1}], "description": "Not run if not started within this (`10m`, or seconds): status `expired`. Not with `expires_at`."}),
        ),
        (
            "expires_at".to_owned(),
            json!({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}], "description": "Not run if not started by then (RFC 3339, or ms since the epoch; in the future). Not with `expires_in`."}),
        ),
    ]
    .into_iter()
    .collect();
    for spec in registry.kinds() {
        let Some(Schema::Record(record)) = registry.schemas().latest(&spec.name).map(|v| &v.schema)
        else {
            continue;
        };
        let mut request = record_schema(record, &envelope);
        if let Json::Object(hints) = spec.handler.field_hints() {
            for (field, keywords) in hints {
                if let (Some(Json::Object(property)), Json::Object(keywords)) =
                    (request["properties"].get_mut(&field), keywords)
                {
                    property.extend(keywords);
                }
            }
        }
        paths.insert(
            format!("/v1/jobs/{}", spec.name),
            json!({"post": {
                "operationId": format!("enqueue_{}", spec.name.replace('-', "_")),
                "security": needs(Scope::Publish),
                "summary": format!("Enqueue a `{}` job (202 once Kafka acknowledged it)", spec.name),
                "tags": ["jobs"],
                "requestBody": body(request),
                "responses": responses(
                    ("202", "Accepted: Kafka holds the job", json!({"$ref": "#/components/schemas/Accepted"})),
                    &[("400", "The body does not fit the kind (the message names the field)"), ("413", "Body over api.body_limit_bytes"), ("503", "Kafka did not acknowledge in time; nothing was enqueued")],
                ),
            }}),
        );
    }
    let kinds: Vec<String> = registry.names();
    let cancel = json!({
        "operationId": "cancel_job", "tags": ["jobs"], "security": needs(Scope::Admin),
        "summary": "Cancel a job that has not started (queued or waiting for a retry)",
        "parameters": [path_param("job_id", json!({"type": "string"}))],
        "responses": responses(("200", "Cancelled: workers skip it", json!({"type": "object", "required": ["job_id", "status"], "properties": {"job_id": {"type": "string"}, "status": {"type": "string", "enum": ["cancelled"]}}})), &[("404", "Unknown or expired job"), ("409", "The job started or finished already (the message names its status)"), ("503", "Job status or Kafka unavailable; nothing was cancelled")]),
    });
    paths.insert("/v1/jobs/{job_id}".into(), json!({"delete": cancel, "get": {
        "operationId": "get_job", "tags": ["jobs"], "security": needs(Scope::Read),
        "summary": "A job's status; with `wait`, once it is final or the wait is over",
        "parameters": [path_param("job_id", json!({"type": "string"})), query_param("wait", json!({"type": "string"}), "`10s`, `500ms` or seconds; at most 30 s")],
        "responses": responses(("200", "The job's status", json!({"$ref": "#/components/schemas/JobStatus"})), &[("400", "Bad `wait`"), ("404", "Unknown or expired job"), ("503", "Job status unavailable")]),
    }}));
    paths.insert("/v1/dlq/{kind}".into(), json!({"get": {
        "operationId": "list_dead_letters", "tags": ["dead letters"], "security": needs(Scope::Read),
        "parameters": [
            path_param("kind", json!({"type": "string", "enum": kinds})),
            query_param("limit", json!({"type": "integer", "minimum": 1, "maximum": 10000}), "At most this many"),
            query_param("error_class", json!({"type": "string"}), "Only this error class"),
            query_param("since", json!({"type": "integer", "format": "int64"}), "Only dead since (ms since epoch)"),
            query_param("all", json!({"type": "boolean"}), "Include replayed and purged ones"),
        ],
        "responses": responses(("200", "Dead letters, oldest first", json!({"type": "object", "required": ["kind", "dead_letters"], "properties": {"kind": {"type": "string"}, "dead_letters": {"type": "array", "items": {"$ref": "#/components/schemas/DeadLetter"}}}})), &[("400", "Bad query"), ("404", "Unknown kind"), ("503", "The DLQ cannot be read right now")]),
    }}));
    paths.insert("/v1/dlq/{kind}/replay".into(), json!({"post": {
        "operationId": "replay_dead_letters", "tags": ["dead letters"], "security": needs(Scope::Admin),
        "parameters": [path_param("kind", json!({"type": "string", "enum": registry.names()}))],
        "requestBody": body(json!({"type": "object", "additionalProperties": false, "description": "Exactly one of offset, job_id, error_class, all", "properties": {
            "offset": {"type": "string"}, "job_id": {"type": "string"}, "error_class": {"type": "string"}, "all": {"type": "boolean"}, "dry_run": {"type": "boolean"}}})),
        "responses": responses(("200", "What was (or would be) sent back", json!({"type": "object", "required": ["kind", "dry_run", "replayed"], "properties": {"kind": {"type": "string"}, "dry_run": {"type": "boolean"}, "replayed": {"type": "array", "items": {"$ref": "#/components/schemas/DeadLetter"}}}})), &[("400", "No or several selectors"), ("404", "Unknown kind or offset"), ("409", "Another replay of the kind is running"), ("503", "The DLQ cannot be read right now")]),
    }}));
    paths.insert("/v1/posts".into(), json!({"post": {
        "operationId": "create_post", "tags": ["feeds"], "security": needs(Scope::Publish),
        "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["author_id", "text"], "properties": {"author_id": user_id, "text": {"type": "string", "minLength": 1}}})),
        "responses": responses(("202", "Accepted", json!({"type": "object", "required": ["post_id", "created_at"], "properties": {"post_id": {"type": "string"}, "created_at": {"type": "integer"}}})), &[("400", "Bad author or text"), ("503", "Kafka did not acknowledge in time")]),
    }}));
    let follow = json!({
        "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["follower_id", "followee_id"], "properties": {"follower_id": user_id, "followee_id": user_id}})),
        "responses": responses(("202", "Accepted", json!({"type": "object", "properties": {"status": {"type": "string"}}})), &[("400", "Bad ids, or following oneself"), ("503", "Kafka did not acknowledge in time")]),
        "tags": ["feeds"],
        "security": needs(Scope::Publish),
    });
    let mut follow_post = follow.clone();
    follow_post["operationId"] = "follow".into();
    let mut follow_delete = follow;
    follow_delete["operationId"] = "unfollow".into();
    paths.insert(
        "/v1/follows".into(),
        json!({"post": follow_post, "delete": follow_delete}),
    );
    paths.insert("/v1/feed/{user_id}".into(), json!({"get": {
        "operationId": "read_feed", "tags": ["feeds"], "security": needs(Scope::Read),
        "parameters": [path_param("user_id", json!({"type": "string"})), query_param("limit", json!({"type": "integer", "minimum": 1, "maximum": 200}), "Posts to return (default 50)")],
        "responses": responses(("200", "Newest first", json!({"type": "object", "required": ["user_id", "posts"], "properties": {"user_id": {"type": "string"}, "posts": {"type": "array", "items": {"type": "object", "required": ["post_id", "author_id", "text", "created_at"], "properties": {"post_id": {"type": "string"}, "author_id": {"type": "string"}, "text": {"type": "string"}, "created_at": {"type": "integer"}}}}}})), &[("400", "Bad user id or limit"), ("503", "Feeds unavailable")]),
    }}));
    paths.insert("/v1/queue/stats".into(), json!({"get": {
        "operationId": "queue_stats", "tags": ["operations"], "security": needs(Scope::Read),
        "responses": responses(("200", "Pending, failed, workers, per kind and topic", json!({"type": "object", "required": ["pending", "failed", "workers", "kinds", "topics"], "properties": {"pending": {"type": "integer"}, "failed": {"type": "integer"}, "workers": {"type": "integer"}, "kinds": {"type": "object"}, "topics": {"type": "object"}, "collected_at": {"type": "integer"}}})), &[("503", "Queue health cannot be read right now")]),
    }}));
    let partition_lag = json!({"type": "object", "required": ["partition", "high_watermark", "committed", "lag"], "properties": {
        "partition": {"type": "integer"}, "high_watermark": {"type": "integer"}, "committed": {"type": "integer"}, "lag": {"type": "integer"}}});
    let topic_lag = json!({"type": "object", "required": ["group", "lag", "lag_seconds", "partitions"], "properties": {
        "group": {"type": "string"}, "lag": {"type": "integer"}, "lag_seconds": {"type": "number"},
        "partitions": {"type": "array", "items": partition_lag}}});
    let member = json!({"type": "object", "required": ["member_id", "client_id", "host", "assignments"], "properties": {
        "member_id": {"type": "string"}, "client_id": {"type": "string"}, "host": {"type": "string"},
        "assignments": {"type": "array", "items": {"type": "object", "required": ["topic", "partition"], "properties": {
            "topic": {"type": "string"}, "partition": {"type": "integer"}}}}}});
    let waiting = json!({"type": "object", "required": ["topic", "partition", "offset", "due_at_ms"], "properties": {
        "topic": {"type": "string"}, "partition": {"type": "integer"}, "offset": {"type": "integer"}, "due_at_ms": {"type": "integer"}}});
    paths.insert("/v1/queue/consumers".into(), json!({"get": {
        "operationId": "queue_consumers", "tags": ["operations"], "security": needs(Scope::Read),
        "summary": "Each consumer group sluice uses: members and their partitions, lag per partition, timed partitions waiting for a due time",
        "responses": responses(("200", "Every group: each kind's workers, the fanout's two, the scheduler's and the delay ladder's", json!({"type": "object", "required": ["groups", "collected_at"], "properties": {
            "groups": {"type": "array", "items": {"type": "object", "required": ["group", "state", "members", "lag", "topics", "waiting"], "properties": {
                "group": {"type": "string"}, "state": {"type": "string"},
                "members": {"type": "array", "items": member},
                "lag": {"type": "integer"},
                "topics": {"type": "object", "additionalProperties": topic_lag},
                "waiting": {"type": "array", "items": waiting}}}},
            "collected_at": {"type": "integer"}}})), &[("503", "Consumer groups cannot be read right now")]),
    }}));
    paths.insert("/v1/uploads/images".into(), json!({"post": {
        "operationId": "upload_image", "tags": ["uploads"], "security": needs(Scope::Publish),
        "summary": "Store an image and enqueue its thumbnails (202 once Kafka holds the `image` job)",
        "description": "The image is a multipart form field `file`, or the raw body with any content type: its type is judged from its first bytes (JPEG, PNG, WebP, GIF), never from a file name or header. It is streamed to storage, never held whole.",
        "parameters": [query_param("notify_url", json!({"type": "string"}), "Where a signed `image.processed` webhook goes once the thumbnails are stored (also a form field)")],
        "requestBody": {"required": true, "content": {
            "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                "file": {"type": "string", "format": "binary"},
                "notify_url": {"type": "string"}}}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        "responses": responses(
            ("202", "Stored, and Kafka holds the image job", json!({"type": "object", "required": ["job_id", "status", "original"], "properties": {
                "job_id": {"type": "string"}, "status": {"type": "string", "enum": ["queued"]}, "original": {"$ref": "#/components/schemas/StoredObject"}}})),
            &[("400", "Empty upload, unreadable form, unknown field or bad notify_url"), ("413", "Upload over api.upload_limit_bytes"), ("415", "Not a JPEG, PNG, WebP or GIF image"), ("503", "Storage or Kafka cannot take it now; nothing was kept")],
        ),
    }}));
    paths.insert("/v1/uploads/images/{job_id}".into(), json!({"get": {
        "operationId": "get_upload", "tags": ["uploads"], "security": needs(Scope::Read),
        "summary": "An upload's job status and, once it succeeded, its original and variants",
        "parameters": [path_param("job_id", json!({"type": "string"})), query_param("wait", json!({"type": "string"}), "`10s`, `500ms` or seconds; at most 30 s")],
        "responses": responses(("200", "The upload", json!({"type": "object", "required": ["job_id", "status", "attempts", "variants"], "properties": {
            "job_id": {"type": "string"},
            "status": {"type": "string", "enum": ["queued", "scheduled", "running", "retrying", "succeeded", "dead_lettered", "cancelled", "expired"]},
            "attempts": {"type": "integer", "minimum": 0},
            "last_error": {"type": ["string", "null"]},
            "original": {"anyOf": [{"type": "null"}, {"$ref": "#/components/schemas/StoredObject"}]},
            "variants": {"type": "array", "items": {"$ref": "#/components/schemas/StoredObject"}}}})),
            &[("400", "Bad `wait`"), ("404", "No such upload"), ("503", "Job status unavailable")]),
    }}));
    paths.insert("/v1/hooks/{source}".into(), json!({"post": {
        "operationId": "receive_webhook", "tags": ["webhooks"], "security": [],
        "summary": "An incoming webhook from a `[hooks.<source>]` sender (200 once Kafka holds its job)",
        "description": "Authenticated by the sender's signature (scheme `stripe`, `standard`, `github` or `hmac`), checked on the raw bytes, not by an API token. A repeat of an event id seen within the source's tolerance is answered 200 without being enqueued again.",
        "parameters": [path_param("source", json!({"type": "string"}))],
        "requestBody": {"required": true, "content": {
            "application/json": {"schema": {}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        "responses": responses(
            ("200", "Kafka holds the event's job (or already did)", json!({"type": "object", "required": ["status", "job_id"], "properties": {
                "status": {"type": "string", "enum": ["accepted", "duplicate"]}, "job_id": {"type": "string"}}})),
            &[("400", "A malformed signature header, or a signed body without its event id"), ("401", "Missing or invalid signature, or a signed timestamp outside the tolerance"), ("404", "Unknown source"), ("413", "Body over api.body_limit_bytes"), ("503", "Kafka cannot take it now, or the same event is being enqueued by another request; retry after `Retry-After`")],
        ),
    }}));
    let file_content: Map<String, Json> = [
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/gif",
        "application/octet-stream",
    ]
    .into_iter()
    .map(|t| {
        (
            t.to_owned(),
            json!({"schema": {"type": "string", "format": "binary"}}),
        )
    })
    .collect();
    let mut file_responses = error_responses(&[
        ("404", "No such file (or not a storage key)"),
        ("503", "Storage unavailable"),
    ]);
    file_responses.insert(
        "200".into(),
        json!({"description": "The stored object, read-only", "content": file_content}),
    );
    paths.insert("/files/{key}".into(), json!({"get": {
        "operationId": "get_file", "tags": ["uploads"], "security": [],
        "summary": "A stored object (upload or thumbnail): the default `storage.public_url`",
        "parameters": [path_param("key", json!({"type": "string", "description": "Storage key, e.g. images/<job id>/800.jpg"}))],
        "responses": file_responses,
    }}));
    paths.insert("/healthz".into(), json!({"get": {"operationId": "healthz", "tags": ["operations"], "security": [], "responses": {"200": {"description": "The process runs", "content": {"application/json": {"schema": {"type": "object"}}}}}}}));
    paths.insert("/readyz".into(), json!({"get": {"operationId": "readyz", "tags": ["operations"], "security": [], "responses": {
        "200": {"description": "Kafka and Redis answer", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}},
        "503": {"description": "Kafka or Redis does not answer", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}}}}}));
    paths.insert("/metrics".into(), json!({"get": {"operationId": "metrics", "tags": ["operations"], "security": [], "responses": {"200": {"description": "Prometheus text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}}}}));
    paths.insert("/openapi.json".into(), json!({"get": {"operationId": "openapi", "tags": ["operations"], "security": [], "responses": {"200": {"description": "This document", "content": {"application/json": {"schema": {"type": "object"}}}}}}}));
    add_auth_responses(&mut paths);

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "sluice",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Accepts jobs in milliseconds (202 once Kafka holds them), reports their status and results, inspects and replays dead letters, and serves follower feeds.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "An API token (`sk_sluice_…`, made by `sluice tokens new`). Each operation lists the scope its token needs: publish, read or admin.",
            }},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "Accepted": {"type": "object", "required": ["job_id", "status"], "properties": {"job_id": {"type": "string"}, "status": {"type": "string", "enum": ["queued", "scheduled"]}, "run_at": {"type": "integer", "description": "A delayed job's due time, ms since the epoch"}}},
                "JobStatus": {"type": "object", "required": ["job_id", "kind", "status", "attempts", "updated_at", "lane", "trace_id", "errors"], "properties": {
                    "job_id": {"type": "string"}, "kind": {"type": "string"},
                    "status": {"type": "string", "enum": ["queued", "scheduled", "running", "retrying", "succeeded", "dead_lettered", "cancelled", "expired"]},
                    "attempts": {"type": "integer", "minimum": 0},
                    "last_error": {"type": ["string", "null"]},
                    "result": {"description": "What the handler returned (JSON), or null"},
                    "run_at": {"type": "integer", "description": "A scheduled job's due time, ms since the epoch"},
                    "updated_at": {"type": "integer"},
                    "lane": {"type": ["string", "null"], "enum": ["high", "normal", "low", null], "description": "The lane the job runs in; null for a status written before lanes were recorded"},
                    "trace_id": {"type": ["string", "null"], "pattern": "^[0-9a-f]{32}$", "description": "The trace id of the job's `traceparent`"},
                    "errors": {"type": "array", "description": "Each failed attempt's error, oldest first, the last 20 at most", "items": {"type": "object", "required": ["attempt", "error", "at"], "properties": {
                        "attempt": {"type": "integer", "minimum": 1}, "error": {"type": "string"}, "at": {"type": "integer", "description": "When the attempt failed, ms since the epoch"}}}}}},
                "DeadLetter": {"type": "object", "required": ["offset", "job_id", "attempts", "error_class", "error", "dead_at", "state"], "properties": {
                    "offset": {"type": "string"}, "job_id": {"type": "string"}, "attempts": {"type": "integer"},
                    "error_class": {"type": "string"}, "error": {"type": "string"}, "dead_at": {"type": "integer"},
                    "state": {"type": "string", "enum": ["pending", "replayed", "purged"]}}},
                "StoredObject": {"type": "object", "required": ["key", "url", "content_type", "bytes"], "properties": {
                    "key": {"type": "string"}, "url": {"type": "string"}, "content_type": {"type": "string"},
                    "bytes": {"type": "integer"}, "width": {"type": "integer"}, "height": {"type": "integer"},
                    "max_side": {"type": "integer", "description": "The box a variant was fit into"}}},
                "Readiness": {"type": "object", "required": ["kafka", "redis"], "properties": {"kafka": {"type": "string", "enum": ["ok", "unreachable"]}, "redis": {"type": "string", "enum": ["ok", "unreachable"]}}},
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_request_body_from_its_newest_schema() {
        let registry = Registry::load(&sluice_core::Config::default()).unwrap();
        let doc = document(&registry);
        let webhook = &doc["paths"]["/v1/jobs/webhook"]["post"]["requestBody"]["content"]
            ["application/json"]["schema"];
        assert_eq!(webhook["required"], json!(["url", "event_type", "payload"]));
        assert_eq!(webhook["additionalProperties"], false);
        let noop = &doc["paths"]["/v1/jobs/noop"]["post"]["requestBody"]["content"]
            ["application/json"]["schema"];
        assert_eq!(noop["properties"]["sleep_ms"]["default"], 0);
        assert!(
            noop.get("required").is_none(),
            "every noop field has a default"
        );
        assert_eq!(noop["properties"]["key"]["type"], "string");
    }

    #[test]
    fn every_v1_operation_names_its_scope_and_its_auth_answers() {
        let registry = Registry::load(&sluice_core::Config::default()).unwrap();
        let doc = document(&registry);
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        for (path, operations) in doc["paths"].as_object().unwrap() {
            for (method, operation) in operations.as_object().unwrap() {
                let security = operation["security"].as_array().unwrap_or_else(|| {
                    panic!("{method} {path} declares no security (`needs(…)` or `[]`)")
                });
                let open = [
                    "/healthz",
                    "/readyz",
                    "/metrics",
                    "/openapi.json",
                    "/files/{key}",
                ];
                // Incoming webhooks are signed by their senders instead.
                let open = open.contains(&path.as_str()) || path.starts_with("/v1/hooks/");
                assert_eq!(security.is_empty(), open, "{method} {path}");
                if !security.is_empty() {
                    for code in ["401", "403", "429"] {
                        assert!(
                            operation["responses"][code].is_object(),
                            "{method} {path} {code}"
                        );
                    }
                }
            }
        }
        assert_eq!(
            doc["paths"]["/v1/jobs/{job_id}"]["delete"]["security"],
            json!([{"bearer": ["admin"]}])
        );
    }
}
