//! The worker's side of disabled endpoints (`sluice_core::endpoints`): before a job whose
//! handler calls out runs, its endpoint is looked up in memory, and a disabled one dead-letters
//! the job without a call; a 410 Gone answer disables the endpoint in Redis for every replica.

use std::sync::Arc;

use prometheus::IntGauge;
use sluice_core::{
    endpoints::{DisabledCache, DisabledEndpoint, EndpointStore, REFRESH_INTERVAL},
    headers::now_millis,
};
use tokio_util::sync::CancellationToken;

/// The error of a job whose endpoint is disabled. No URL: errors are stored in headers and
/// job status, and a webhook URL may carry a token.
pub const DISABLED: &str = "endpoint disabled: it answered 410 Gone before (`sluice endpoints \
                            list`; `sluice endpoints enable <url>` turns it back on)";

pub struct Endpoints {
    store: EndpointStore,
    cache: DisabledCache,
    gauge: IntGauge,
}

impl Endpoints {
    pub fn new(store: EndpointStore, gauge: IntGauge) -> Arc<Self> {
        Arc::new(Self {
            store,
            cache: DisabledCache::default(),
            gauge,
        })
    }

    /// No endpoint is disabled: nothing to look up.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    pub fn is_disabled(&self, endpoint: &str) -> bool {
        self.cache.contains(endpoint)
    }

    /// Reads the set once; a failure is logged and the worker starts with what it has (an
    /// empty set: at worst a disabled endpoint is called once more and answers 410 again).
    pub async fn refresh(&self) {
        match self.cache.refresh(&self.store).await {
            Ok(()) => self.gauge.set(self.cache.len() as i64),
            Err(e) => tracing::warn!(error = %e, "reading disabled endpoints failed"),
        }
    }

    /// Re-reads the set every `REFRESH_INTERVAL` until `shutdown`.
    pub async fn follow(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut ticks = tokio::time::interval(REFRESH_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => self.refresh().await,
                () = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    /// Disables `endpoint` after `job_id` of `kind` got a 410: in Redis first, then here (so a
    /// refresh that began before the write cannot drop it). Redis being down does not fail the
    /// job's dead-lettering: the endpoint is then disabled in this worker only, until the
    /// next 410 after Redis is back.
    pub async fn disable(&self, endpoint: &str, kind: &str, job_id: &str, error: &str) {
        let entry = DisabledEndpoint {
            url: endpoint.to_owned(),
            kind: kind.to_owned(),
            disabled_at: now_millis(),
            job_id: job_id.to_owned(),
            error: error.to_owned(),
        };
        match self.store.disable(&entry).await {
            Ok(true) => tracing::warn!(kind, job_id, "endpoint answered 410 Gone; disabled"),
            Ok(false) => {
                tracing::debug!(kind, job_id, "endpoint answered 410 Gone; already disabled")
            }
            Err(e) => {
                tracing::warn!(kind, job_id, error = %e, "recording a disabled endpoint failed")
            }
        }
        self.cache.insert(endpoint);
        self.gauge.set(self.cache.len() as i64);
    }
}
