//! Replay and purge.

use std::time::Duration;

use futures::future::try_join_all;
use rdkafka::{producer::FutureRecord, util::Timeout};
use serde::Serialize;
use sluice_core::headers::{self, now_millis};

use crate::{lease::Lease, DeadLetter, Dlq, DlqError, Position, State};

/// Which pending dead letters to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Position(Position),
    JobId(String),
    ErrorClass(String),
    /// Those dead in `[since_ms, until_ms)` (either bound open), of one error class if given:
    /// what the console previewed, bounded by when, so letters arriving after the preview are
    /// not sent with it.
    Matching {
        error_class: Option<String>,
        since_ms: Option<i64>,
        until_ms: Option<i64>,
    },
    All,
}

impl Selector {
    fn matches(&self, d: &DeadLetter) -> bool {
        match self {
            Selector::Position(p) => d.position == *p,
            Selector::JobId(id) => d.job_id == *id,
            Selector::ErrorClass(class) => d.error_class == *class,
            Selector::Matching {
                error_class,
                since_ms,
                until_ms,
            } => {
                error_class.as_ref().is_none_or(|c| *c == d.error_class)
                    && since_ms.is_none_or(|since| d.dead_at >= since)
                    && until_ms.is_none_or(|until| d.dead_at < until)
            }
            Selector::All => true,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// What was (or, on a dry run, would be) sent back to the main topic.
    pub replayed: Vec<DeadLetter>,
    pub dry_run: bool,
}

/// Headers a replay resets: the job starts over as a first delivery.
const RESET: &[&str] = &[
    headers::ATTEMPT,
    headers::DUE_AT,
    headers::ERROR,
    headers::ERROR_CLASS,
    headers::DEAD_AT,
    headers::ORIGINAL_TOPIC,
    headers::ORIGINAL_PARTITION,
    headers::ORIGINAL_OFFSET,
    headers::ENQUEUED_AT,
    headers::REPLAYED_FROM,
];

/// Replays are sent in chunks: enough in flight to be fast, few enough that a failure stops a
/// large replay early.
const CHUNK: usize = 500;

impl Dlq {
    /// Sends the selected *pending* dead letters back to `jobs.<kind>` — original key and bytes,
    /// headers kept but the attempt count reset and `sluice-replayed-from` added — then records
    /// them as replayed, so a second replay does not send them again. `progress` is called with
    /// the number sent so far.
    pub async fn replay(
        &self,
        kind: &str,
        selector: &Selector,
        dry_run: bool,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<ReplayReport, DlqError> {
        self.check_kind(kind)?;
        if dry_run {
            let selected = self.pending_matching(kind, selector).await?;
            return Ok(ReplayReport {
                replayed: selected,
                dry_run,
            });
        }
        // Taken before reading what is pending, so a replay that ran meanwhile has recorded
        // everything it sent by the time this one reads.
        let mut lease = Lease::acquire(&self.config.redis, kind).await?;
        let result = self
            .replay_leased(kind, selector, &mut lease, &mut progress)
            .await;
        lease.release().await;
        result
    }

    async fn pending_matching(
        &self,
        kind: &str,
        selector: &Selector,
    ) -> Result<Vec<DeadLetter>, DlqError> {
        Ok(self
            .read(kind)
            .await?
            .into_iter()
            .filter(|d| d.state == State::Pending && selector.matches(d))
            .collect())
    }

    async fn replay_leased(
        &self,
        kind: &str,
        selector: &Selector,
        lease: &mut Lease,
        progress: &mut impl FnMut(usize, usize),
    ) -> Result<ReplayReport, DlqError> {
        let selected = self.pending_matching(kind, selector).await?;
        let dlq = self.topics.dead_letters(kind);
        // Back to the lane the job came from: its `sluice-priority`, normal without one.
        let lane_of = |d: &DeadLetter| {
            let priority = d
                .headers
                .iter()
                .rev()
                .find(|(k, _)| k == headers::PRIORITY)
                .and_then(|(_, v)| std::str::from_utf8(v.as_deref()?).ok()?.parse().ok());
            self.topics.lane(kind, priority.unwrap_or_default())
        };
        let total = selected.len();
        for (done, chunk) in selected.chunks(CHUNK).enumerate() {
            lease.renew(kind).await?;
            let lanes: Vec<String> = chunk.iter().map(lane_of).collect();
            let sends = chunk.iter().zip(&lanes).map(|(d, lane)| {
                let from = format!("{dlq}:{}:{}", d.position.partition, d.position.offset);
                let now = now_millis().to_string();
                let mut record_headers = rdkafka::message::OwnedHeaders::new();
                for (key, value) in d
                    .headers
                    .iter()
                    .filter(|(k, _)| !RESET.contains(&k.as_str()))
                {
                    record_headers = record_headers.insert(rdkafka::message::Header {
                        key: key.as_str(),
                        value: value.as_deref(),
                    });
                }
                record_headers = record_headers
                    .insert(headers::str_header(headers::ATTEMPT, "1"))
                    .insert(headers::str_header(headers::ENQUEUED_AT, &now))
                    .insert(headers::str_header(headers::REPLAYED_FROM, &from));
                let mut record = FutureRecord::to(lane)
                    .payload(&d.payload)
                    .headers(record_headers);
                if let Some(key) = &d.key {
                    record = record.key(key);
                }
                self.producer
                    .send(record, Timeout::After(Duration::from_secs(30)))
            });
            try_join_all(sends).await.map_err(|(e, _)| e)?;
            self.mark(kind, chunk.iter().map(|d| d.position), State::Replayed)
                .await?;
            progress((done * CHUNK + chunk.len()).min(total), total);
        }
        Ok(ReplayReport {
            replayed: selected,
            dry_run: false,
        })
    }

    /// Marks pending dead letters dead before `before_ms` (all, when `None`) as handled without
    /// replaying them. Returns how many.
    pub async fn purge(&self, kind: &str, before_ms: Option<i64>) -> Result<usize, DlqError> {
        self.check_kind(kind)?;
        let mut lease = Lease::acquire(&self.config.redis, kind).await?;
        let result = self.purge_leased(kind, before_ms, &mut lease).await;
        lease.release().await;
        result
    }

    async fn purge_leased(
        &self,
        kind: &str,
        before_ms: Option<i64>,
        lease: &mut Lease,
    ) -> Result<usize, DlqError> {
        let purged: Vec<Position> = self
            .read(kind)
            .await?
            .into_iter()
            .filter(|d| {
                d.state == State::Pending && before_ms.is_none_or(|before| d.dead_at < before)
            })
            .map(|d| d.position)
            .collect();
        for chunk in purged.chunks(CHUNK) {
            lease.renew(kind).await?;
            self.mark(kind, chunk.iter().copied(), State::Purged)
                .await?;
        }
        Ok(purged.len())
    }

    async fn mark(
        &self,
        kind: &str,
        positions: impl Iterator<Item = Position>,
        state: State,
    ) -> Result<(), DlqError> {
        let topic = self.topics.dead_letter_state(kind);
        let word = match state {
            State::Replayed => "replayed",
            State::Purged => "purged",
            State::Pending => "pending",
        };
        let value = serde_json::json!({ "state": word, "at": now_millis() }).to_string();
        let keys: Vec<String> = positions
            .map(|p| format!("{}:{}", p.partition, p.offset))
            .collect();
        let sends = keys.iter().map(|key| {
            let record = FutureRecord::to(&topic).key(key).payload(&value);
            self.producer
                .send(record, Timeout::After(Duration::from_secs(30)))
        });
        try_join_all(sends).await.map_err(|(e, _)| e)?;
        Ok(())
    }
}
