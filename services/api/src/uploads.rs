//! `POST /v1/uploads/images`: an image streamed into storage and an `image` job enqueued for
//! it, answered 202 at once — the thumbnails are made later, by a worker. `GET
//! /v1/uploads/images/{id}`: the upload's job status and, once done, its variants.
//!
//! The body is never held whole: chunks go to storage as they arrive (`Upload`, in parts), the
//! size is counted against `api.upload_limit_bytes` (413), and the type is sniffed from the
//! first bytes (415 for anything but JPEG, PNG, WebP or GIF), never taken from a file name or a
//! `Content-Type`.

use axum::{
    body::Bytes,
    extract::{rejection::QueryRejection, FromRequest, Multipart, Path, Query, Request, State},
    http::{header, HeaderName, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use sluice_thumbnail::SourceType;

use crate::{error::ApiError, jobs, state::AppState};

/// The job kind an upload becomes.
const IMAGE_KIND: &str = "image";
/// Bytes needed to tell the types apart (WebP's `RIFF....WEBP`).
const SNIFF_BYTES: usize = 12;
/// Bytes a `notify_url` form field may have.
const MAX_TEXT_FIELD: usize = 2048;
/// After refusing an upload (413, 415), read and drop up to this much more of it, for at most
/// `DRAIN_TIME`, before answering: a client still sending its body when the connection closes
/// sees a reset instead of the answer. Beyond that, closing on it is the lesser cost.
const DRAIN_BYTES: u64 = 16 * 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// Where to send the signed `image.processed` webhook once the thumbnails are stored.
    notify_url: Option<String>,
}

/// An original in storage.
struct Stored {
    key: String,
    bytes: u64,
    source_type: SourceType,
}

pub async fn create(
    State(state): State<AppState>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let job_id = uuid::Uuid::now_v7().to_string();
    let incoming_trace = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (stored, mut notify_url) = if is_form {
        from_form(&state, &job_id, request).await?
    } else {
        let body = request.into_body().into_data_stream();
        (store(&state, &job_id, body).await?, None)
    };
    if query.notify_url.is_some() {
        notify_url = query.notify_url;
    }
    let document = json!({"object": stored.key, "notify_url": notify_url});
    let enqueued = async {
        let job = state.registry.prepare_as(
            IMAGE_KIND,
            document.to_string().as_bytes(),
            job_id.clone(),
        )?;
        jobs::enqueue(&state, IMAGE_KIND, &job, incoming_trace.as_deref()).await
    }
    .await;
    let traceparent = match enqueued {
        Ok(traceparent) => traceparent,
        Err(error) => {
            // Nothing refers to the original now: do not leave it behind.
            if let Err(e) = state.storage.delete(&stored.key).await {
                tracing::warn!(key = %stored.key, error = %e, "could not delete an orphaned upload");
            }
            return Err(error);
        }
    };
    Ok((
        StatusCode::ACCEPTED,
        [
            (header::LOCATION, format!("/v1/uploads/images/{job_id}")),
            (HeaderName::from_static("traceparent"), traceparent),
        ],
        Json(json!({
            "job_id": job_id,
            "status": "queued",
            "original": {
                "key": stored.key,
                "url": state.storage.url(&stored.key),
                "content_type": stored.source_type.content_type(),
                "bytes": stored.bytes,
            },
        })),
    )
        .into_response())
}

/// A `multipart/form-data` upload: the image in field `file`, optionally `notify_url`.
async fn from_form(
    state: &AppState,
    job_id: &str,
    request: Request,
) -> Result<(Stored, Option<String>), ApiError> {
    let bad_form = |e: axum::extract::multipart::MultipartError| {
        ApiError::BadRequest(format!("not a readable multipart form: {}", e.body_text()))
    };
    let mut form = Multipart::from_request(request, state)
        .await
        .map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut stored = None;
    let mut notify_url = None;
    while let Some(mut field) = form.next_field().await.map_err(bad_form)? {
        let name = field.name().map(str::to_owned);
        match name.as_deref() {
            Some("file") if stored.is_none() => {
                let chunks = field.map(|chunk| chunk.map_err(|e| e.body_text()));
                stored = Some(store(state, job_id, chunks).await?);
            }
            Some("file") => {
                discard(state, stored.as_ref()).await;
                return Err(ApiError::BadRequest("one `file` field per upload".into()));
            }
            Some("notify_url") => {
                let mut text = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
                    text.extend_from_slice(&chunk);
                    if text.len() > MAX_TEXT_FIELD {
                        discard(state, stored.as_ref()).await;
                        return Err(ApiError::BadRequest(format!(
                            "`notify_url`: at most {MAX_TEXT_FIELD} bytes"
                        )));
                    }
                }
                notify_url =
                    Some(String::from_utf8(text).map_err(|_| {
                        ApiError::BadRequest("`notify_url`: not UTF-8 text".into())
                    })?);
            }
            other => {
                let name = other
                    .unwrap_or_default()
                    .chars()
                    .take(64)
                    .collect::<String>();
                discard(state, stored.as_ref()).await;
                return Err(ApiError::BadRequest(format!(
                    "unknown form field `{name}` (expected `file`, and optionally `notify_url`)"
                )));
            }
        }
    }
    let stored = stored.ok_or_else(|| {
        ApiError::BadRequest("the form has no `file` field with the image".into())
    })?;
    Ok((stored, notify_url))
}

async fn discard(state: &AppState, stored: Option<&Stored>) {
    if let Some(stored) = stored {
        let _ = state.storage.delete(&stored.key).await;
    }
}

/// Streams `chunks` into storage as `images/<job id>/original.<ext>`, checking type and size.
async fn store<S, E>(state: &AppState, job_id: &str, chunks: S) -> Result<Stored, ApiError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let limit = state.config.api.upload_limit_bytes;
    let too_large = || ApiError::PayloadTooLarge(limit as usize);
    let unreadable = |e: E| ApiError::BadRequest(format!("could not read the upload: {e}"));
    let mut chunks = std::pin::pin!(chunks);
    let mut head = Vec::new();
    while head.len() < SNIFF_BYTES {
        match chunks.next().await {
            Some(chunk) => head.extend_from_slice(&chunk.map_err(unreadable)?),
            None => break,
        }
        if head.len() as u64 > limit {
            drain(&mut chunks).await;
            return Err(too_large());
        }
    }
    if head.is_empty() {
        return Err(ApiError::BadRequest(
            "the upload is empty: send the image as the body or as form field `file`".into(),
        ));
    }
    let Some(source_type) = sluice_thumbnail::sniff(&head) else {
        drain(&mut chunks).await;
        return Err(ApiError::UnsupportedMediaType(
            "not a JPEG, PNG, WebP or GIF image (judged from its first bytes)".into(),
        ));
    };
    let key = format!("images/{job_id}/original.{}", extension(source_type));
    let unavailable = |e: sluice_storage::StorageError| {
        tracing::warn!(error = %e, "storing an upload failed");
        ApiError::Unavailable("storage cannot take uploads right now; retry later".into())
    };
    let mut upload = state.storage.upload(&key).map_err(unavailable)?;
    let mut next = Some(Ok(Bytes::from(head)));
    while let Some(chunk) = next {
        let failed = match chunk {
            Ok(chunk) if upload.written() + chunk.len() as u64 > limit => Some(too_large()),
            Ok(chunk) => upload.put(chunk).await.err().map(unavailable),
            Err(e) => Some(unreadable(e)),
        };
        if let Some(error) = failed {
            upload.abort().await;
            if matches!(error, ApiError::PayloadTooLarge(_)) {
                drain(&mut chunks).await;
            }
            return Err(error);
        }
        next = chunks.next().await;
    }
    let bytes = upload.finish().await.map_err(unavailable)?;
    Ok(Stored {
        key,
        bytes,
        source_type,
    })
}

/// Reads and drops what is left of a refused upload, within `DRAIN_BYTES` and `DRAIN_TIME`.
async fn drain<S, E>(chunks: &mut std::pin::Pin<&mut S>)
where
    S: Stream<Item = Result<Bytes, E>>,
{
    let mut dropped = 0u64;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(chunk)) = chunks.next().await {
            dropped += chunk.len() as u64;
            if dropped > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

fn extension(source_type: SourceType) -> &'static str {
    match source_type {
        SourceType::Jpeg => "jpg",
        SourceType::Png => "png",
        SourceType::WebP => "webp",
        SourceType::Gif => "gif",
    }
}

/// The upload's job status; once it succeeded, its original and variants.
pub async fn get(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    query: Result<Query<jobs::GetQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let status = jobs::status_after_wait(&state, &job_id, query.wait.as_deref()).await?;
    if status.kind != IMAGE_KIND {
        return Err(ApiError::NotFound(format!("no image upload `{job_id}`")));
    }
    let result = status.result.clone().unwrap_or_default();
    Ok(Json(json!({
        "job_id": status.job_id,
        "status": status.status,
        "attempts": status.attempts,
        "last_error": status.last_error,
        "original": result.get("original"),
        "variants": result.get("variants").cloned().unwrap_or_else(|| json!([])),
    })))
}
