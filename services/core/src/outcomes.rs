//! Job outcomes counted per kind, lane and minute in Redis, for the console's rates and
//! sparklines without Prometheus: shared by every api replica, kept across restarts.
//!
//! One hash per kind and minute, `<prefix>outcomes:<kind>:<minute>` (`minute`: ms since the epoch
//! / 60 000), fields `<lane>:<outcome>` (`high:succeeded`, `low:dead_lettered`, …), kept
//! [`KEEP`] after its last increment. The status writer, which sees every `succeeded`,
//! `retrying` and `dead_lettered` status in batches, adds one `HINCRBY` per (kind, lane, outcome)
//! of a batch and one `PEXPIRE` per hash ([`count_commands`]). A count is a best effort: a
//! status the writer dropped (Redis far behind) or a failed counter write is not counted, and a
//! job redelivered after a crash can be counted twice.

use std::{collections::BTreeMap, time::Duration};

use redis::{Cmd, RedisResult, Value};
use serde::Serialize;

use crate::{
    lanes::Priority,
    redis_conn::RedisConn,
    status::{Status, StatusUpdate},
};

/// How long a minute's counts are kept after its last increment: the console's longest window
/// (60 minutes) twice over.
pub const KEEP: Duration = Duration::from_secs(2 * 3600);

/// The most minutes [`read`] reads back (older hashes have expired).
pub const MAX_MINUTES: u32 = 120;

const MINUTE_MS: i64 = 60_000;

/// What became of one attempt, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    /// Failed, sent to a retry tier.
    Retried,
    DeadLettered,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Succeeded, Outcome::Retried, Outcome::DeadLettered];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Retried => "retried",
            Outcome::DeadLettered => "dead_lettered",
        }
    }

    /// The outcome a status records, if it is one that is counted.
    pub fn of(status: Status) -> Option<Self> {
        match status {
            Status::Succeeded => Some(Outcome::Succeeded),
            Status::Retrying => Some(Outcome::Retried),
            Status::DeadLettered => Some(Outcome::DeadLettered),
            _ => None,
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == text)
    }
}

/// The hash of `kind`'s counts in the minute holding `at_ms`.
pub fn key(key_prefix: &str, kind: &str, at_ms: i64) -> String {
    format!(
        "{key_prefix}outcomes:{kind}:{}",
        at_ms.div_euclid(MINUTE_MS)
    )
}

/// The commands counting `updates` (a status batch, every update in it, not only each job's
/// last) in the minute of `now_ms`: an `HINCRBY` per (kind, lane, outcome), a `PEXPIRE` per
/// hash, each paired with its key for [`RedisConn::pipeline_by_key`]. An update without a lane
/// counts in `normal`, the lane of a job that names none.
pub fn count_commands<'a>(
    key_prefix: &str,
    updates: impl IntoIterator<Item = &'a StatusUpdate>,
    now_ms: i64,
) -> Vec<(String, Cmd)> {
    let mut counts: BTreeMap<(&str, Priority, Outcome), u64> = BTreeMap::new();
    for update in updates {
        if let Some(outcome) = Outcome::of(update.status) {
            let lane = update.lane.unwrap_or_default();
            *counts
                .entry((update.kind.as_str(), lane, outcome))
                .or_default() += 1;
        }
    }
    let mut commands = Vec::with_capacity(counts.len() + 1);
    let mut kind_done: Option<&str> = None;
    for ((kind, lane, outcome), n) in counts {
        let key = key(key_prefix, kind, now_ms);
        let mut incr = redis::cmd("HINCRBY");
        incr.arg(&key)
            .arg(format!("{}:{}", lane.as_str(), outcome.as_str()))
            .arg(n);
        commands.push((key.clone(), incr));
        // Sorted by kind: one expiry per hash, after its first increment.
        if kind_done != Some(kind) {
            let mut expire = redis::cmd("PEXPIRE");
            expire.arg(&key).arg(KEEP.as_millis() as u64);
            commands.push((key, expire));
            kind_done = Some(kind);
        }
    }
    commands
}

/// Counts of each outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutcomeCounts {
    pub succeeded: u64,
    pub retried: u64,
    pub dead_lettered: u64,
}

impl OutcomeCounts {
    /// Every counted attempt: successes, retries and dead letters.
    pub fn total(&self) -> u64 {
        self.succeeded + self.retried + self.dead_lettered
    }
}

/// Per-minute counts of each outcome, oldest minute first, the current (partial) one last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutcomeSeries {
    pub succeeded: Vec<u64>,
    pub retried: Vec<u64>,
    pub dead_lettered: Vec<u64>,
}

impl OutcomeSeries {
    fn zeroed(minutes: usize) -> Self {
        Self {
            succeeded: vec![0; minutes],
            retried: vec![0; minutes],
            dead_lettered: vec![0; minutes],
        }
    }

    fn get_mut(&mut self, outcome: Outcome) -> &mut Vec<u64> {
        match outcome {
            Outcome::Succeeded => &mut self.succeeded,
            Outcome::Retried => &mut self.retried,
            Outcome::DeadLettered => &mut self.dead_lettered,
        }
    }

    /// The counts of the last `n` minutes, the current one included (all of them when `n` is
    /// larger than the series).
    pub fn sum_last(&self, n: usize) -> OutcomeCounts {
        let sum = |series: &[u64]| series.iter().rev().take(n).sum();
        OutcomeCounts {
            succeeded: sum(&self.succeeded),
            retried: sum(&self.retried),
            dead_lettered: sum(&self.dead_lettered),
        }
    }
}

/// One kind's outcomes over the minutes read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindOutcomes {
    /// The start of the oldest minute in the series, ms since the epoch.
    pub start_ms: i64,
    /// Each lane's series (all three lanes, zeros where nothing happened).
    pub lanes: BTreeMap<Priority, OutcomeSeries>,
    /// Summed over the lanes.
    pub total: OutcomeSeries,
}

impl KindOutcomes {
    fn zeroed(minutes: usize, start_ms: i64) -> Self {
        Self {
            start_ms,
            lanes: Priority::ALL
                .into_iter()
                .map(|lane| (lane, OutcomeSeries::zeroed(minutes)))
                .collect(),
            total: OutcomeSeries::zeroed(minutes),
        }
    }

    /// The counts of the last `n` minutes over every lane.
    pub fn sum_last(&self, n: usize) -> OutcomeCounts {
        self.total.sum_last(n)
    }

    /// Adds one hash's fields (`<lane>:<outcome>` → count) as minute `index`'s; unreadable
    /// fields (written by something else) are left out.
    fn add_minute(&mut self, index: usize, fields: &BTreeMap<String, u64>) {
        for (field, &count) in fields {
            let Some((lane, outcome)) = field.split_once(':') else {
                continue;
            };
            let (Ok(lane), Some(outcome)) = (lane.parse::<Priority>(), Outcome::parse(outcome))
            else {
                continue;
            };
            if let Some(series) = self.lanes.get_mut(&lane) {
                series.get_mut(outcome)[index] += count;
            }
            self.total.get_mut(outcome)[index] += count;
        }
    }
}

/// The outcomes of each of `kinds` over the last `minutes` minutes (at most [`MAX_MINUTES`]),
/// the minute of `now_ms` last: one pipelined round trip (one pipeline per slot on a cluster,
/// all in flight at once). Every kind asked for is in the answer, with zeros where nothing was
/// counted.
pub async fn read(
    conn: &RedisConn,
    key_prefix: &str,
    kinds: &[String],
    minutes: u32,
    now_ms: i64,
) -> RedisResult<BTreeMap<String, KindOutcomes>> {
    let minutes = minutes.clamp(1, MAX_MINUTES) as usize;
    let current = now_ms.div_euclid(MINUTE_MS);
    let first = current - minutes as i64 + 1;
    let mut commands = Vec::with_capacity(kinds.len() * minutes);
    for kind in kinds {
        for minute in first..=current {
            let key = key(key_prefix, kind, minute * MINUTE_MS);
            let mut get = redis::cmd("HGETALL");
            get.arg(&key);
            commands.push((key, get));
        }
    }
    let answers = if commands.is_empty() {
        Vec::new()
    } else {
        conn.pipeline_by_key(commands).await?
    };
    let mut answers = answers.into_iter();
    let mut outcomes = BTreeMap::new();
    for kind in kinds {
        let mut counts = KindOutcomes::zeroed(minutes, first * MINUTE_MS);
        for index in 0..minutes {
            let fields = answers.next().map(hash_counts).unwrap_or_default();
            counts.add_minute(index, &fields);
        }
        outcomes.insert(kind.clone(), counts);
    }
    Ok(outcomes)
}

/// An `HGETALL` answer as field → count; anything unreadable as nothing.
fn hash_counts(value: Value) -> BTreeMap<String, u64> {
    redis::from_redis_value::<BTreeMap<String, String>>(&value)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(field, count)| Some((field, count.parse().ok()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(kind: &str, status: Status, lane: Option<Priority>) -> StatusUpdate {
        StatusUpdate {
            job_id: "j".into(),
            kind: kind.into(),
            status,
            attempts: 1,
            error: None,
            result: None,
            lane,
            trace_id: None,
        }
    }

    #[test]
    fn a_batch_is_one_increment_per_kind_lane_and_outcome_and_one_expiry_per_hash() {
        let updates = [
            update("a", Status::Succeeded, Some(Priority::High)),
            update("a", Status::Succeeded, Some(Priority::High)),
            update("a", Status::Running, Some(Priority::High)),
            update("a", Status::Retrying, None),
            update("b", Status::DeadLettered, Some(Priority::Low)),
        ];
        let now = 1_800_000_000_123;
        let commands = count_commands("p:", &updates, now);
        let packed: Vec<String> = commands
            .iter()
            .map(|(_, cmd)| String::from_utf8_lossy(&cmd.get_packed_command()).into_owned())
            .collect();
        let minute = now / 60_000;
        assert_eq!(commands.len(), 5, "{packed:?}");
        assert!(packed[0].contains(&format!("p:outcomes:a:{minute}")));
        assert!(packed[0].contains("high:succeeded") && packed[0].ends_with("$1\r\n2\r\n"));
        assert!(packed[1].contains("PEXPIRE"));
        assert!(packed[2].contains("normal:retried"));
        assert!(packed[3].contains("p:outcomes:b:") && packed[3].contains("low:dead_lettered"));
        assert!(packed[4].contains("PEXPIRE"));
    }

    #[test]
    fn minutes_add_up_per_lane_and_in_total() {
        let mut counts = KindOutcomes::zeroed(3, 0);
        let fields = |pairs: &[(&str, u64)]| {
            pairs
                .iter()
                .map(|(f, n)| ((*f).to_owned(), *n))
                .collect::<BTreeMap<_, _>>()
        };
        counts.add_minute(0, &fields(&[("high:succeeded", 2), ("bogus", 9)]));
        counts.add_minute(2, &fields(&[("low:succeeded", 1), ("low:retried", 4)]));
        assert_eq!(counts.total.succeeded, vec![2, 0, 1]);
        assert_eq!(counts.lanes[&Priority::Low].retried, vec![0, 0, 4]);
        assert_eq!(counts.sum_last(1).total(), 5);
        assert_eq!(counts.sum_last(2).succeeded, 1);
        assert_eq!(counts.sum_last(60).succeeded, 3);
        // The console serves it as JSON, lanes by name.
        let json = serde_json::to_value(&counts).unwrap();
        assert_eq!(
            json["lanes"]["low"]["retried"],
            serde_json::json!([0, 0, 4])
        );
        assert_eq!(json["total"]["succeeded"], serde_json::json!([2, 0, 1]));
    }
}
