//! `POST /v1/posts`, `POST|DELETE /v1/follows` and `GET /v1/feed/{user_id}`.

use std::time::Instant;

use axum::{
    extract::{rejection::JsonRejection, Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::Deserialize;
use serde_json::json;
use sluice_core::headers;
use sluice_feed::events::{FollowAction, FollowChanged, PostCreated};

use crate::{
    error::ApiError,
    produce::{produce, Produced},
    state::AppState,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPost {
    author_id: Option<String>,
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowRequest {
    follower_id: Option<String>,
    followee_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    limit: Option<String>,
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(t)| t)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value.ok_or_else(|| ApiError::BadRequest(format!("field `{field}`: missing")))
}

/// Produces an event keyed by `key` (the author for posts, the followee for follows: the
/// co-partitioning key), acknowledged by Kafka within the publish timeout.
async fn produce_event(
    state: &AppState,
    topic: &str,
    key: &str,
    id: &str,
    value: &[u8],
) -> Result<(), ApiError> {
    let what = Produced {
        label: "social",
        unavailable: "events cannot be accepted right now; retry later",
    };
    produce(state, what, topic, key, value, headers::new_job(id)).await
}

pub async fn create_post(
    State(state): State<AppState>,
    body: Result<Json<NewPost>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body)?;
    let (author_id, text) = (
        required(body.author_id, "author_id")?,
        required(body.text, "text")?,
    );
    let post = PostCreated::new(&author_id, &text, &state.config.social)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    produce_event(
        &state,
        &state.topics.posts(),
        &post.author_id,
        &post.post_id,
        &post.encode(),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "post_id": post.post_id, "created_at": post.created_at })),
    )
        .into_response())
}

async fn change_follow(
    state: AppState,
    body: Result<Json<FollowRequest>, JsonRejection>,
    action: FollowAction,
) -> Result<Response, ApiError> {
    let body = json_body(body)?;
    let (follower, followee) = (
        required(body.follower_id, "follower_id")?,
        required(body.followee_id, "followee_id")?,
    );
    let change = FollowChanged::new(&follower, &followee, action)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let id = uuid::Uuid::now_v7().to_string();
    produce_event(
        &state,
        &state.topics.follows(),
        &change.followee_id,
        &id,
        &change.encode(),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "status": "accepted" }))).into_response())
}

pub async fn follow(
    State(state): State<AppState>,
    body: Result<Json<FollowRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    change_follow(state, body, FollowAction::Follow).await
}

pub async fn unfollow(
    State(state): State<AppState>,
    body: Result<Json<FollowRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    change_follow(state, body, FollowAction::Unfollow).await
}

pub async fn feed(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    query: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    sluice_feed::events::check_user_id("user_id", &user_id)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let limit = match query.limit.as_deref() {
        None => 50,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest("`limit` must be a whole number from 1 to 200".into())
            })?,
    };
    let started = Instant::now();
    let read = sluice_feed::read::read_feed(&state.graph, &user_id, limit)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "feed read failed");
            ApiError::Unavailable("feeds are unavailable right now".into())
        })?;
    state.metrics.feed_reads.inc();
    state
        .metrics
        .feed_read_seconds
        .observe(started.elapsed().as_secs_f64());
    if read.cached {
        state.metrics.feed_cache_hits.inc();
    }
    Ok(Json(json!({ "user_id": user_id, "posts": read.posts })))
}
