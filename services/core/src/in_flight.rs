//! Jobs being handled right now, per kind and lane, across every worker process, in Redis: the
//! console reads them without Prometheus.
//!
//! One hash per kind, `<prefix>inflight:<kind>`; each worker process writes one field per lane,
//! `<instance>:<lane>` = `<count>:<ms timestamp>`, every [`REPORT_EVERY`], and removes its fields
//! when it stops. A worker that died without removing them stops refreshing: its entries count
//! only while fresher than [`FRESH`], and the whole hash expires [`KEEP`] after its last report.

use std::{collections::BTreeMap, time::Duration};

use redis::{Cmd, RedisResult, Value};
use serde::Serialize;

use crate::{lanes::Priority, redis_conn::RedisConn};

/// How often a worker reports its counts.
pub const REPORT_EVERY: Duration = Duration::from_secs(2);
/// An entry older than this is a worker that stopped reporting, not counted.
pub const FRESH: Duration = Duration::from_secs(10);
/// A hash no worker reported to for this long is removed.
pub const KEEP: Duration = Duration::from_secs(30);

/// The hash of `kind`'s in-flight counts.
pub fn key(key_prefix: &str, kind: &str) -> String {
    format!("{key_prefix}inflight:{kind}")
}

/// One worker process's report for `kind`: its count per lane (`counts[lane.index()]`) at
/// `now_ms`, as an `HSET` and a `PEXPIRE` of the kind's hash (paired with the key, for
/// [`RedisConn::pipeline_by_key`]).
pub fn report_commands(
    key_prefix: &str,
    instance: &str,
    kind: &str,
    counts: [u64; 3],
    now_ms: i64,
) -> [(String, Cmd); 2] {
    let key = key(key_prefix, kind);
    let mut set = redis::cmd("HSET");
    set.arg(&key);
    for lane in Priority::ALL {
        set.arg(format!("{instance}:{}", lane.as_str()))
            .arg(format!("{}:{now_ms}", counts[lane.index()]));
    }
    let mut expire = redis::cmd("PEXPIRE");
    expire.arg(&key).arg(KEEP.as_millis() as u64);
    [(key.clone(), set), (key, expire)]
}

/// Removes a stopping worker process's entries for `kind`.
pub fn remove_command(key_prefix: &str, instance: &str, kind: &str) -> (String, Cmd) {
    let key = key(key_prefix, kind);
    let mut remove = redis::cmd("HDEL");
    remove.arg(&key);
    for lane in Priority::ALL {
        remove.arg(format!("{instance}:{}", lane.as_str()));
    }
    (key, remove)
}

/// Jobs of one kind being handled now, over every worker process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InFlight {
    /// Per lane (all three, zero where none).
    pub lanes: BTreeMap<Priority, u64>,
    pub total: u64,
    /// Worker processes whose reports were fresh (reporting, whether busy or not).
    pub workers: u64,
}

impl InFlight {
    /// Sums a hash's entries fresher than [`FRESH`] at `now_ms`; unreadable ones are skipped.
    fn from_entries(entries: &BTreeMap<String, String>, now_ms: i64) -> Self {
        let mut lanes: BTreeMap<Priority, u64> =
            Priority::ALL.into_iter().map(|l| (l, 0)).collect();
        let mut workers = std::collections::BTreeSet::new();
        for (field, value) in entries {
            let Some((instance, lane)) = field.rsplit_once(':') else {
                continue;
            };
            let Some((count, at)) = value.split_once(':') else {
                continue;
            };
            let (Ok(lane), Ok(count), Ok(at)) = (
                lane.parse::<Priority>(),
                count.parse::<u64>(),
                at.parse::<i64>(),
            ) else {
                continue;
            };
            if now_ms - at > FRESH.as_millis() as i64 {
                continue;
            }
            workers.insert(instance);
            *lanes.entry(lane).or_default() += count;
        }
        Self {
            total: lanes.values().sum(),
            lanes,
            workers: workers.len() as u64,
        }
    }
}

/// The in-flight counts of each of `kinds` at `now_ms`, from every worker's fresh reports: one
/// pipelined round trip (one per slot on a cluster). Every kind asked for is in the answer.
pub async fn read_in_flight(
    conn: &RedisConn,
    key_prefix: &str,
    kinds: &[String],
    now_ms: i64,
) -> RedisResult<BTreeMap<String, InFlight>> {
    let commands: Vec<(String, Cmd)> = kinds
        .iter()
        .map(|kind| {
            let key = key(key_prefix, kind);
            let mut get = redis::cmd("HGETALL");
            get.arg(&key);
            (key, get)
        })
        .collect();
    let answers = if commands.is_empty() {
        Vec::new()
    } else {
        conn.pipeline_by_key(commands).await?
    };
    Ok(kinds
        .iter()
        .zip(answers.into_iter().chain(std::iter::repeat(Value::Nil)))
        .map(|(kind, answer)| {
            let entries: BTreeMap<String, String> =
                redis::from_redis_value(&answer).unwrap_or_default();
            (kind.clone(), InFlight::from_entries(&entries, now_ms))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fresh_readable_entries_count() {
        let now = 1_800_000_000_000;
        let entries: BTreeMap<String, String> = [
            ("w1:high", format!("3:{}", now - 1000)),
            ("w1:normal", format!("2:{}", now - 1000)),
            ("host:with:colons:low", format!("1:{now}")),
            ("w2:high", format!("7:{}", now - 11_000)),
            ("w3:urgent", format!("5:{now}")),
            ("w4:low", "x:1".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let counted = InFlight::from_entries(&entries, now);
        assert_eq!(counted.lanes[&Priority::High], 3);
        assert_eq!(counted.lanes[&Priority::Normal], 2);
        assert_eq!(counted.lanes[&Priority::Low], 1);
        assert_eq!(counted.total, 6);
        assert_eq!(counted.workers, 2);
    }
}
