//! `GET /v1/queue/consumers`: each consumer group sluice uses, in detail (members and their
//! partitions, lag per partition, retry tiers and delay rungs waiting for a due time).

use axum::{extract::State, Json};
use serde::Serialize;
use sluice_core::headers::now_millis;
use sluice_stats::GroupView;

use crate::{error::ApiError, state::AppState};

#[derive(Serialize)]
pub struct Consumers {
    pub groups: Vec<GroupView>,
    /// Milliseconds since the epoch.
    pub collected_at: i64,
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Consumers>, ApiError> {
    let groups = state.stats.groups().await.map_err(|e| {
        tracing::warn!(error = %e, "reading consumer groups failed");
        ApiError::Unavailable("consumer groups cannot be read right now".into())
    })?;
    Ok(Json(Consumers {
        groups,
        collected_at: now_millis(),
    }))
}
