//! Periodic jobs as configured: `[[schedules]]` (what to enqueue and when) and `[scheduler]`
//! (how the scheduler role runs). The `sluice-scheduler` crate parses and checks them at start
//! (cron expression, time zone, kind, payload), naming the schedule in every error.

use std::{net::SocketAddr, time::Duration};

use serde::{Deserialize, Serialize};

use crate::lanes::Priority;

/// One `[[schedules]]` entry: a job of `kind` with `payload`, enqueued on every tick of `cron`
/// or `every`, exactly once across all scheduler replicas.
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// The schedule's name: lowercase letters, digits, `-` and `_`, unique. It is the key of
    /// its fired ticks and part of each job id (`schedule-<name>-<tick ms>`). Required.
    pub name: String,
    /// A cron expression of 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds
    /// first), read in `timezone`; `@daily`-style nicknames too. Give `cron` or `every`.
    pub cron: Option<String>,
    /// Where `cron` is read: an IANA time zone name such as `Europe/Paris`. Default `UTC`.
    /// Daylight-saving changes follow croner's rules (README "Periodic jobs").
    pub timezone: Option<String>,
    /// A fixed period instead of `cron`, e.g. `"5m"` (at least 1 s). Ticks are the multiples of
    /// it since the Unix epoch, so every replica computes the same ones. Default: none.
    #[serde(with = "humantime_serde")]
    pub every: Option<Duration>,
    /// The job kind to enqueue. Required.
    pub kind: String,
    /// The job document for `kind`, as `POST /v1/jobs/{kind}` takes it (the kind's fields, and
    /// envelope fields like `key` or `expires_in`), written as a TOML table. Default: empty.
    pub payload: serde_json::Map<String, serde_json::Value>,
    /// The lane of every job of this schedule (`high`, `normal`, `low`); it wins over a
    /// `priority` in `payload`. Default: the payload's, else normal.
    pub priority: Option<Priority>,
    /// What a tick older than `scheduler.catch_up` (missed while every replica was down)
    /// becomes. Default `skip`.
    pub missed: MissedPolicy,
}

/// What happens to ticks older than `scheduler.catch_up` when a leader finds them unfired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedPolicy {
    /// Not fired: the schedule goes on with its next tick.
    #[default]
    Skip,
    /// The newest of them is fired once, the older ones not.
    FireOnce,
}

impl MissedPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            MissedPolicy::Skip => "skip",
            MissedPolicy::FireOnce => "fire_once",
        }
    }
}

/// `[scheduler]`: the role that fires the schedules.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Unfired ticks at most this old are all fired when a leader takes over (a failover's
    /// gap); older ones follow their schedule's `missed` policy, since so long a gap means
    /// every replica was down. Default 5 min.
    #[serde(with = "humantime_serde")]
    pub catch_up: Duration,
    /// Where the scheduler serves `/metrics` and `/healthz`. Default `127.0.0.1:9103`.
    pub metrics_listen: SocketAddr,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            catch_up: Duration::from_secs(5 * 60),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9103)),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    use super::*;

    #[test]
    fn schedules_read_from_toml_with_their_defaults() {
        let config = Config::from_toml(
            r#"
            [scheduler]
            catch_up = "1m"

            [[schedules]]
            name = "nightly-cleanup"
            cron = "0 2 * * *"
            timezone = "Europe/Paris"
            kind = "noop"
            payload = { payload = "cleanup", sleep_ms = 5 }
            missed = "fire_once"
            priority = "low"

            [[schedules]]
            name = "tick"
            every = "5m"
            kind = "noop"
            "#,
        )
        .unwrap();
        assert_eq!(config.scheduler.catch_up, Duration::from_secs(60));
        assert_eq!(
            config.scheduler.metrics_listen,
            SocketAddr::from(([127, 0, 0, 1], 9103))
        );
        let [nightly, tick] = &config.schedules[..] else {
            panic!("two schedules: {:?}", config.schedules)
        };
        assert_eq!(nightly.cron.as_deref(), Some("0 2 * * *"));
        assert_eq!(nightly.payload["sleep_ms"], 5);
        assert_eq!(nightly.missed, MissedPolicy::FireOnce);
        assert_eq!(nightly.priority, Some(Priority::Low));
        assert_eq!(tick.every, Some(Duration::from_secs(300)));
        assert_eq!(tick.missed, MissedPolicy::Skip);
        assert!(tick.payload.is_empty());
    }

    #[test]
    fn a_typo_in_a_schedule_names_the_key() {
        let error = Config::from_toml("[[schedules]]\nname = \"a\"\nevry = \"5m\"").unwrap_err();
        assert!(error.to_string().contains("evry"), "{error}");
        let error = Config::from_toml("[scheduler]\ncatchup = \"5m\"").unwrap_err();
        assert!(error.to_string().contains("catchup"), "{error}");
    }
}
