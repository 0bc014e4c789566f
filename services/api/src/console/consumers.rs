//! Consumers: each consumer group sluice reads with — its members and what each is assigned,
//! lag per partition, and the retry-tier partitions held back until their head is due.

use axum::{extract::State, http::StatusCode, response::Response, Extension};
use maud::{html, Markup};
use sluice_stats::GroupView;

use super::{
    layout::{age, respond, shell, time},
    Session,
};
use crate::state::AppState;

pub async fn page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
) -> Response {
    let groups = state.stats.groups().await;
    if let Err(e) = &groups {
        tracing::warn!(error = %e, "reading consumer groups for the console failed");
    }
    let body = html! {
        h1 { "Consumers" }
        section #consumers hx-get="/console/consumers" hx-trigger="every 5s" hx-select="#consumers" hx-swap="outerHTML" {
            @match &groups {
                Err(_) => p.notice.bad role="alert" { "Consumer groups cannot be read from Kafka right now." },
                Ok(groups) => {
                    table #groups {
                        thead { tr { th { "Group" } th { "State" } th.num { "Members" } th.num { "Lag" } th.num { "Waiting tier partitions" } } }
                        tbody {
                            @for g in groups {
                                tr.alert[g.members.is_empty() && g.lag > 0] {
                                    td { a href={"#" (g.group)} { (g.group) } }
                                    td { (g.state) }
                                    td.num { (g.members.len()) }
                                    td.num { (g.lag) }
                                    td.num { (g.waiting.len()) }
                                }
                            }
                        }
                    }
                    @for g in groups { (group(g)) }
                },
            }
            p.refresh { "Refreshed every 5 s. " a href="/console/consumers" { "Reload" } }
        }
    };
    respond(
        StatusCode::OK,
        shell("Consumers", "/console/consumers", Some(&session), body),
    )
}

fn group(g: &GroupView) -> Markup {
    html! {
        h2 id=(g.group) { code { (g.group) } " " span.muted { (g.state) } }
        @if g.members.is_empty() {
            p.muted { "No member: nothing consumes for this group right now." }
        } @else {
            table.members {
                thead { tr { th { "Client" } th { "Host" } th { "Assigned partitions" } } }
                tbody {
                    @for m in &g.members {
                        tr {
                            td { (m.client_id) }
                            td { (m.host) }
                            td { @for (i, a) in m.assignments.iter().enumerate() {
                                @if i > 0 { ", " }
                                (a.topic) "[" (a.partition) "]"
                            } }
                        }
                    }
                }
            }
        }
        table.partitions {
            thead { tr { th { "Topic" } th.num { "Partition" } th.num { "Committed" } th.num { "End" } th.num { "Lag" } th.num { "Oldest" } } }
            tbody {
                @for (topic, lag) in &g.topics {
                    @for p in &lag.partitions {
                        tr {
                            td { (topic) } td.num { (p.partition) } td.num { (p.committed) }
                            td.num { (p.high_watermark) } td.num { (p.lag) }
                            td.num { (age(lag.lag_seconds)) }
                        }
                    }
                }
            }
        }
        @if !g.waiting.is_empty() {
            table.waiting {
                thead { tr { th { "Held back until due" } th.num { "Partition" } th.num { "Offset" } th { "Due" } } }
                tbody {
                    @for w in &g.waiting {
                        tr { td { (w.topic) } td.num { (w.partition) } td.num { (w.offset) } td { (time(w.due_at_ms)) } }
                    }
                }
            }
        }
    }
}
