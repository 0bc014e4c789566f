//! Reports how many jobs this worker process is handling, per kind and lane, to Redis
//! (`sluice_core::in_flight`) every `REPORT_EVERY`, and takes its entries out when it stops, so
//! the console sees every worker's jobs without scraping each one.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use sluice_core::{headers::now_millis, in_flight, lanes::Priority, redis_conn::RedisConn};
use tokio_util::sync::CancellationToken;

/// Jobs of one kind being handled by this process, per lane.
#[derive(Default)]
pub struct LaneCounts([AtomicU64; 3]);

impl LaneCounts {
    pub fn start(&self, lane: Priority) {
        self.0[lane.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn end(&self, lane: Priority) {
        self.0[lane.index()].fetch_sub(1, Ordering::Relaxed);
    }

    fn now(&self) -> [u64; 3] {
        [0, 1, 2].map(|i| self.0[i].load(Ordering::Relaxed))
    }
}

/// A name for this worker process in the reports: the host's (a pod's name on Kubernetes) when
/// known, and a random part, so two processes on one host never share entries.
pub fn instance_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &random[..8])
}

/// A round trip of reports taking longer than this is given up (the next one comes soon).
const REPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// Reports `kinds`' counts until `shutdown`, then removes this process's entries. Redis being
/// unavailable only leaves the counts stale: never an error that would stop the worker.
pub async fn report(
    conn: RedisConn,
    key_prefix: String,
    instance: String,
    kinds: Vec<(String, Arc<LaneCounts>)>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut every = tokio::time::interval(in_flight::REPORT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = every.tick() => {}
        }
        let now = now_millis();
        let commands = kinds
            .iter()
            .flat_map(|(kind, counts)| {
                in_flight::report_commands(&key_prefix, &instance, kind, counts.now(), now)
            })
            .collect();
        send(&conn, commands, "report").await;
    }
    let commands = kinds
        .iter()
        .map(|(kind, _)| in_flight::remove_command(&key_prefix, &instance, kind))
        .collect();
    send(&conn, commands, "removal").await;
    Ok(())
}

async fn send(conn: &RedisConn, commands: Vec<(String, redis::Cmd)>, what: &str) {
    if commands.is_empty() {
        return;
    }
    match tokio::time::timeout(REPORT_TIMEOUT, conn.pipeline_by_key(commands)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, what, "in-flight report not written"),
        Err(_) => tracing::debug!(what, "in-flight report timed out"),
    }
}
