//! `GET /files/{key}`: stored objects (uploads, thumbnails), read-only, from whichever store is
//! configured — the default `storage.public_url`. A key that is not a plain storage key (`..`,
//! `.`, empty segments, any character outside the allow-list, encoded or not) is a 404, the same
//! answer as a missing object, so nothing outside the storage root can be named.

use axum::{
    body::Body,
    extract::{rejection::PathRejection, Path, State},
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use futures::TryStreamExt;
use sluice_storage::StorageError;

use crate::{error::ApiError, state::AppState};

pub async fn get(
    State(state): State<AppState>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound("no such file".into());
    let Ok(Path(key)) = key else {
        return Err(not_found());
    };
    sluice_storage::check_key(&key).map_err(|_| not_found())?;
    let (size, chunks) = state.storage.read(&key).await.map_err(|e| match e {
        StorageError::NotFound(_) | StorageError::Key(_) | StorageError::TooLarge { .. } => {
            not_found()
        }
        other => {
            tracing::warn!(error = %other, "reading a stored file failed");
            ApiError::Unavailable("storage is unavailable right now".into())
        }
    })?;
    let body = Body::from_stream(chunks.map_err(std::io::Error::other));
    let static_header = HeaderValue::from_static;
    Ok((
        [
            (header::CONTENT_TYPE, static_header(content_type(&key))),
            (header::CONTENT_LENGTH, HeaderValue::from(size)),
            // Served as exactly that type, inert: a stored file is user input.
            (header::X_CONTENT_TYPE_OPTIONS, static_header("nosniff")),
            (
                header::CONTENT_SECURITY_POLICY,
                static_header("default-src 'none'; sandbox"),
            ),
            // Keys are never rewritten (each upload has its own job id).
            (
                header::CACHE_CONTROL,
                static_header("public, max-age=31536000, immutable"),
            ),
        ],
        body,
    )
        .into_response())
}

fn content_type(key: &str) -> &'static str {
    match key.rsplit_once('.').map(|(_, ext)| ext) {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        _ => "application/octet-stream",
    }
}
