//! Feeds: one user's followers and following counts, celebrity status and feed size.

use axum::{
    extract::{rejection::QueryRejection, Query, State},
    http::StatusCode,
    response::Response,
    Extension,
};
use maud::html;

use super::{
    layout::{respond, shell},
    parsed, Session,
};
use crate::state::AppState;

#[derive(serde::Deserialize, Default)]
pub struct Lookup {
    #[serde(default)]
    user: String,
}

pub async fn page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    lookup: Result<Query<Lookup>, QueryRejection>,
) -> Response {
    let user = match parsed(lookup, &session) {
        Ok(lookup) => lookup.user,
        Err(refusal) => return *refusal,
    };
    let user = user.trim();
    let summary = if user.is_empty() {
        None
    } else {
        Some(state.graph.user_summary(user).await)
    };
    if let Some(Err(e)) = &summary {
        tracing::warn!(error = %e, "reading a user's graph summary failed");
    }
    let threshold = state.graph.config().celebrity_threshold;
    let body = html! {
        h1 { "Feeds" }
        form.filters method="get" action="/console/feeds" {
            label { "User id" input type="text" name="user" value=(user) required; }
            button type="submit" { "Look up" }
        }
        @match summary {
            None => p.muted { "Authors with " (threshold) " followers or more are celebrities: their posts are merged into feeds on read instead of pushed." },
            Some(Ok(s)) => {
                h2 { "User " code { (user) } }
                dl.facts #feed-summary {
                    dt { "Followers" } dd #followers { (s.followers) }
                    dt { "Following" } dd #following { (s.following) }
                    dt { "Delivery" } dd #celebrity {
                        @if s.celebrity { "celebrity: pulled on read (" (threshold) "+ followers)" }
                        @else { "pushed to followers' feeds" }
                    }
                    dt { "Feed size" } dd #feed-size { (s.feed_size) " pushed posts" }
                    dt { "Own recent posts" } dd { (s.recent_posts) }
                }
            },
            Some(Err(_)) => p.notice.bad role="alert" { "The graph cannot be read right now." },
        }
    };
    respond(
        StatusCode::OK,
        shell("Feeds", "/console/feeds", Some(&session), body),
    )
}
