//! Schedules as the scheduler runs them: `[[schedules]]` parsed and checked once at start, and
//! the ticks of each (ms since the Unix epoch; every replica computes the same ones).

use std::{collections::HashSet, time::Duration};

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use croner::{
    parser::{CronParser, Seconds, Year},
    Cron,
};
use sluice_core::{
    headers::now_millis,
    lanes::Priority,
    schedules::{MissedPolicy, ScheduleConfig},
    Config,
};
use sluice_kinds::{JobError, Registry};

use crate::Ticks;

/// A schedule's problem, named by its configuration key (`schedules.nightly-cleanup.cron`).
#[derive(Debug, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ScheduleError {
    pub key: String,
    pub problem: String,
}

impl ScheduleError {
    fn new(name: &str, field: &str, problem: impl Into<String>) -> Self {
        Self {
            key: format!("schedules.{name}.{field}"),
            problem: problem.into(),
        }
    }
}

/// The shortest `every`: a tick is a job, and ids are per millisecond anyway.
const MIN_PERIOD: Duration = Duration::from_secs(1);
/// The longest `every` (a year): beyond it `cron` says what is meant.
const MAX_PERIOD: Duration = Duration::from_secs(366 * 24 * 3600);
/// The smallest `scheduler.catch_up`: a tick is always a few milliseconds late when it fires, so
/// a window near zero would treat every tick as missed.
pub const MIN_CATCH_UP: Duration = Duration::from_secs(10);

/// When a schedule ticks.
#[derive(Debug, Clone)]
pub enum When {
    /// A cron expression read in a time zone.
    Cron {
        cron: Box<Cron>,
        expression: String,
        zone: Tz,
    },
    /// Every multiple of this many ms since the epoch.
    Every { period_ms: i64, text: String },
}

/// One checked `[[schedules]]` entry.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub when: When,
    pub kind: String,
    /// The job document, as JSON.
    pub payload: Vec<u8>,
    pub priority: Option<Priority>,
    pub missed: MissedPolicy,
}

impl Schedule {
    /// The id of the job a tick enqueues: the same for every replica and every redelivery, so
    /// even a duplicate produce would be recognisable downstream.
    pub fn job_id(&self, tick: i64) -> String {
        format!("schedule-{}-{tick}", self.name)
    }
}

impl When {
    /// `0 2 * * * (Europe/Paris)` or `every 5m`.
    pub fn describe(&self) -> String {
        match self {
            When::Cron {
                expression, zone, ..
            } => format!("{expression} ({zone})"),
            When::Every { text, .. } => format!("every {text}"),
        }
    }

    /// A tick as RFC 3339 text, in the schedule's zone (UTC for `every`).
    pub fn format(&self, at: i64) -> String {
        let Some(utc) = DateTime::<Utc>::from_timestamp_millis(at) else {
            return at.to_string();
        };
        match self {
            When::Cron { zone, .. } => utc
                .with_timezone(zone)
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
            When::Every { .. } => utc.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        }
    }

    fn zoned(zone: &Tz, at_ms: i64) -> Option<DateTime<Tz>> {
        DateTime::<Utc>::from_timestamp_millis(at_ms).map(|t| t.with_timezone(zone))
    }
}

impl Ticks for When {
    fn next_after(&self, after: i64) -> Option<i64> {
        match self {
            When::Every { period_ms, .. } => Some((after.div_euclid(*period_ms) + 1) * period_ms),
            When::Cron { cron, zone, .. } => {
                // Cron ticks fall on whole seconds: the first one after `after` is the first one
                // after its second, which is what croner searches from.
                let start = Self::zoned(zone, after.div_euclid(1000) * 1000)?;
                let next = cron.find_next_occurrence(&start, false).ok()?;
                Some(next.timestamp() * 1000)
            }
        }
    }

    fn last_before(&self, before: i64) -> Option<i64> {
        match self {
            When::Every { period_ms, .. } => Some((before - 1).div_euclid(*period_ms) * period_ms),
            When::Cron { cron, zone, .. } => {
                let second = before.div_euclid(1000) * 1000;
                let start = Self::zoned(zone, second)?;
                // A tick at `second` itself is before `before` unless `before` is that second.
                let inclusive = second < before;
                let previous = cron.find_previous_occurrence(&start, inclusive).ok()?;
                Some(previous.timestamp() * 1000)
            }
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Parses a cron expression of 5 or 6 fields (or an `@daily`-style nickname).
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|e| e.to_string())
}

/// Parses an IANA time zone name.
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("`{name}` is not an IANA time zone name (like `Europe/Paris` or `UTC`)")
    })
}

fn when(config: &ScheduleConfig) -> Result<When, ScheduleError> {
    let name = &config.name;
    match (&config.cron, config.every) {
        (Some(_), Some(_)) => Err(ScheduleError::new(
            name,
            "cron",
            "give cron or every, not both",
        )),
        (None, None) => Err(ScheduleError::new(
            name,
            "cron",
            "missing: give cron (\"0 2 * * *\") or every (\"5m\")",
        )),
        (None, Some(period)) => {
            if config.timezone.is_some() {
                return Err(ScheduleError::new(
                    name,
                    "timezone",
                    "applies only to cron (every ticks on multiples of its period since the epoch)",
                ));
            }
            if !(MIN_PERIOD..=MAX_PERIOD).contains(&period) || period.subsec_micros() % 1000 != 0 {
                return Err(ScheduleError::new(
                    name,
                    "every",
                    "must be whole milliseconds from 1s to 366 days",
                ));
            }
            Ok(When::Every {
                period_ms: period.as_millis() as i64,
                text: humantime::format_duration(period).to_string(),
            })
        }
        (Some(expression), None) => {
            let zone = match &config.timezone {
                None => Tz::UTC,
                Some(zone) => {
                    parse_zone(zone).map_err(|e| ScheduleError::new(name, "timezone", e))?
                }
            };
            let cron = parse_cron(expression)
                .map_err(|e| ScheduleError::new(name, "cron", format!("`{expression}`: {e}")))?;
            let when = When::Cron {
                cron: Box::new(cron),
                expression: expression.trim().to_owned(),
                zone,
            };
            if when.next_after(now_millis()).is_none() {
                return Err(ScheduleError::new(
                    name,
                    "cron",
                    format!("`{expression}` never matches"),
                ));
            }
            Ok(when)
        }
    }
}

/// Every `[[schedules]]` entry checked: name, cron or period, time zone, kind and payload (made
/// into a job of its kind, as a fire would). The first problem fails, naming its key.
pub fn load(config: &Config, registry: &Registry) -> Result<Vec<Schedule>, ScheduleError> {
    if config.scheduler.catch_up < MIN_CATCH_UP {
        return Err(ScheduleError {
            key: "scheduler.catch_up".into(),
            problem: format!(
                "must be at least {}",
                humantime::format_duration(MIN_CATCH_UP)
            ),
        });
    }
    let mut seen = HashSet::new();
    let mut schedules = Vec::with_capacity(config.schedules.len());
    for (index, entry) in config.schedules.iter().enumerate() {
        let name = &entry.name;
        if !valid_name(name) {
            return Err(ScheduleError {
                key: format!("schedules[{index}].name"),
                problem: format!(
                    "`{name}` is not a schedule name: 1 to 100 lowercase letters, digits, `-`, `_`"
                ),
            });
        }
        if !seen.insert(name.as_str()) {
            return Err(ScheduleError::new(
                name,
                "name",
                "another schedule has the same name",
            ));
        }
        let when = when(entry)?;
        if registry.get(&entry.kind).is_none() {
            let problem = if entry.kind.is_empty() {
                "missing: the job kind to enqueue".to_owned()
            } else {
                format!(
                    "`{}` is not a job kind (known: {})",
                    entry.kind,
                    registry.names().join(", ")
                )
            };
            return Err(ScheduleError::new(name, "kind", problem));
        }
        let payload = serde_json::to_vec(&entry.payload).expect("a JSON map serializes");
        let schedule = Schedule {
            name: name.clone(),
            when,
            kind: entry.kind.clone(),
            payload,
            priority: entry.priority,
            missed: entry.missed,
        };
        registry
            .prepare_as(&schedule.kind, &schedule.payload, schedule.job_id(0))
            .map_err(|e| match e {
                JobError::Field(field) => ScheduleError::new(name, "payload", field.to_string()),
                other => ScheduleError::new(name, "payload", other.to_string()),
            })?;
        schedules.push(schedule);
    }
    Ok(schedules)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .unwrap()
            .timestamp_millis()
    }

    fn cron(expression: &str, zone: &str) -> When {
        When::Cron {
            cron: Box::new(parse_cron(expression).unwrap()),
            expression: expression.into(),
            zone: parse_zone(zone).unwrap(),
        }
    }

    /// The next `n` ticks after `from`.
    fn ticks(when: &When, from: i64, n: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let mut at = from;
        for _ in 0..n {
            at = when.next_after(at).unwrap();
            out.push(at);
        }
        out
    }

    #[test]
    fn a_daily_time_that_does_not_exist_runs_right_after_the_spring_forward_gap() {
        // 2026-03-29 in Paris: 02:00 CET (UTC+1) becomes 03:00 CEST (UTC+2), so 02:30 does not
        // exist that day. croner's documented rule for a fixed-time job in a gap: it runs at the
        // first valid time after the gap, the same day — 03:00 CEST, 01:00Z.
        let paris = cron("30 2 * * *", "Europe/Paris");
        assert_eq!(
            ticks(&paris, utc(2026, 3, 27, 12, 0, 0), 3),
            vec![
                utc(2026, 3, 28, 1, 30, 0), // 02:30 CET
                utc(2026, 3, 29, 1, 0, 0),  // 03:00 CEST: the gap's end
                utc(2026, 3, 30, 0, 30, 0), // 02:30 CEST
            ]
        );
    }

    #[test]
    fn a_daily_time_that_happens_twice_runs_once_at_its_first_occurrence() {
        // 2026-10-25 in Paris: 03:00 CEST (UTC+2) goes back to 02:00 CET (UTC+1), so 02:30
        // happens twice, at 00:30Z and 01:30Z. croner's documented rule for a fixed-time job in
        // an overlap: it runs once, at the first occurrence.
        let paris = cron("30 2 * * *", "Europe/Paris");
        assert_eq!(
            ticks(&paris, utc(2026, 10, 23, 12, 0, 0), 3),
            vec![
                utc(2026, 10, 24, 0, 30, 0), // 02:30 CEST
                utc(2026, 10, 25, 0, 30, 0), // 02:30 CEST, first pass only
                utc(2026, 10, 26, 1, 30, 0), // 02:30 CET
            ]
        );
    }

    #[test]
    fn a_weekly_local_time_moves_in_utc_across_both_changes() {
        // 09:00 Paris every Tuesday: 08:00Z while Paris is UTC+1 (winter), 07:00Z while it is
        // UTC+2 (summer, 2026-03-29 to 2026-10-25).
        let tuesdays = cron("0 9 * * TUE", "Europe/Paris");
        assert_eq!(
            ticks(&tuesdays, utc(2026, 3, 20, 0, 0, 0), 2),
            vec![utc(2026, 3, 24, 8, 0, 0), utc(2026, 3, 31, 7, 0, 0)]
        );
        assert_eq!(
            ticks(&tuesdays, utc(2026, 10, 18, 0, 0, 0), 2),
            vec![utc(2026, 10, 20, 7, 0, 0), utc(2026, 10, 27, 8, 0, 0)]
        );
        // In UTC (the default zone) the same expression does not move.
        let plain = cron("0 9 * * TUE", "UTC");
        assert_eq!(
            ticks(&plain, utc(2026, 3, 20, 0, 0, 0), 2),
            vec![utc(2026, 3, 24, 9, 0, 0), utc(2026, 3, 31, 9, 0, 0)]
        );
    }

    #[test]
    fn an_hourly_cron_skips_the_missing_hour_and_runs_twice_in_the_repeated_one() {
        // A wildcard-hour job: croner runs it for every wall-clock match, so the hour that does
        // not exist has none and the hour that happens twice has two.
        let hourly = cron("15 * * * *", "Europe/Paris");
        assert_eq!(
            ticks(&hourly, utc(2026, 3, 29, 0, 0, 0), 3),
            vec![
                utc(2026, 3, 29, 0, 15, 0), // 01:15 CET
                utc(2026, 3, 29, 1, 15, 0), // 03:15 CEST (02:15 does not exist)
                utc(2026, 3, 29, 2, 15, 0), // 04:15 CEST
            ]
        );
        assert_eq!(
            ticks(&hourly, utc(2026, 10, 25, 0, 0, 0), 3),
            vec![
                utc(2026, 10, 25, 0, 15, 0), // 02:15 CEST
                utc(2026, 10, 25, 1, 15, 0), // 02:15 CET
                utc(2026, 10, 25, 2, 15, 0), // 03:15 CET
            ]
        );
    }

    #[test]
    fn every_ticks_on_multiples_of_its_period_since_the_epoch() {
        let five = When::Every {
            period_ms: 300_000,
            text: "5m".into(),
        };
        // Whatever instant a replica starts from, it lands on the same ticks.
        let from_a = ticks(&five, utc(2026, 1, 1, 10, 2, 17) + 345, 3);
        let from_b = ticks(&five, utc(2026, 1, 1, 10, 4, 59), 3);
        assert_eq!(from_a, from_b);
        assert_eq!(
            from_a,
            vec![
                utc(2026, 1, 1, 10, 5, 0),
                utc(2026, 1, 1, 10, 10, 0),
                utc(2026, 1, 1, 10, 15, 0)
            ]
        );
        assert!(from_a.iter().all(|t| t % 300_000 == 0));
        // A tick is not after itself; the one before a tick is a period earlier.
        let tick = utc(2026, 1, 1, 10, 5, 0);
        assert_eq!(five.next_after(tick), Some(tick + 300_000));
        assert_eq!(five.last_before(tick), Some(tick - 300_000));
        assert_eq!(five.last_before(tick + 1), Some(tick));
        // Seven minutes does not divide an hour: still epoch multiples, not per hour.
        let seven = When::Every {
            period_ms: 420_000,
            text: "7m".into(),
        };
        assert_eq!(seven.next_after(0), Some(420_000));
        assert_eq!(
            seven.next_after(utc(2026, 1, 1, 0, 0, 0)).unwrap() % 420_000,
            0
        );
    }

    #[test]
    fn five_and_six_field_crons_and_ticks_strictly_after_an_instant() {
        let minutely = cron("*/15 * * * *", "UTC");
        let at = utc(2026, 5, 1, 12, 0, 0);
        assert_eq!(minutely.next_after(at), Some(utc(2026, 5, 1, 12, 15, 0)));
        assert_eq!(minutely.next_after(at - 1), Some(at));
        assert_eq!(minutely.last_before(at), Some(utc(2026, 5, 1, 11, 45, 0)));
        assert_eq!(minutely.last_before(at + 1), Some(at));
        let seconds = cron("*/10 * * * * *", "UTC");
        assert_eq!(seconds.next_after(at + 500), Some(at + 10_000));
        assert_eq!(seconds.next_after(at + 10_000), Some(at + 20_000));
        assert_eq!(seconds.last_before(at + 10_001), Some(at + 10_000));
        assert_eq!(
            cron("@daily", "UTC").next_after(at),
            Some(utc(2026, 5, 2, 0, 0, 0))
        );
        assert!(parse_cron("0 0 1 1 * 2030").is_err(), "no year field");
        assert!(parse_cron("* * * *").is_err(), "four fields");
    }

    fn registry_and(toml: &str) -> (Config, Registry) {
        let config = Config::from_toml(toml).unwrap();
        let registry = Registry::load(&config).unwrap();
        (config, registry)
    }

    fn load_error(toml: &str) -> String {
        let (config, registry) = registry_and(toml);
        load(&config, &registry).unwrap_err().to_string()
    }

    #[test]
    fn bad_schedules_are_refused_naming_the_schedule_and_key() {
        let cases = [
            (
                "[[schedules]]\nname = \"nightly-cleanup\"\ncron = \"61 2 * * *\"\nkind = \"noop\"",
                "schedules.nightly-cleanup.cron: ",
            ),
            (
                "[[schedules]]\nname = \"x\"\ncron = \"0 2 * * * * 2030\"\nkind = \"noop\"",
                "schedules.x.cron: ",
            ),
            (
                "[[schedules]]\nname = \"x\"\ncron = \"0 2 * * *\"\ntimezone = \"Europe/Pariss\"\nkind = \"noop\"",
                "schedules.x.timezone: `Europe/Pariss` is not an IANA time zone",
            ),
            (
                "[[schedules]]\nname = \"x\"\nkind = \"noop\"",
                "schedules.x.cron: missing",
            ),
            (
                "[[schedules]]\nname = \"x\"\ncron = \"* * * * *\"\nevery = \"5m\"\nkind = \"noop\"",
                "schedules.x.cron: give cron or every, not both",
            ),
            (
                "[[schedules]]\nname = \"x\"\nevery = \"10ms\"\nkind = \"noop\"",
                "schedules.x.every: ",
            ),
            (
                "[[schedules]]\nname = \"x\"\nevery = \"5m\"\ntimezone = \"UTC\"\nkind = \"noop\"",
                "schedules.x.timezone: applies only to cron",
            ),
            (
                "[[schedules]]\nname = \"x\"\nevery = \"5m\"\nkind = \"nope\"",
                "schedules.x.kind: `nope` is not a job kind",
            ),
            (
                "[[schedules]]\nname = \"x\"\nevery = \"5m\"\nkind = \"noop\"\npayload = { sleep_ms = \"long\" }",
                "schedules.x.payload: field `sleep_ms`",
            ),
            (
                "[[schedules]]\nname = \"x\"\nevery = \"5m\"\nkind = \"noop\"\npayload = { colour = 1 }",
                "schedules.x.payload: field `colour`",
            ),
            (
                "[[schedules]]\nname = \"Nightly\"\nevery = \"5m\"\nkind = \"noop\"",
                "schedules[0].name: `Nightly` is not a schedule name",
            ),
            (
                "[[schedules]]\nname = \"a\"\nevery = \"5m\"\nkind = \"noop\"\n[[schedules]]\nname = \"a\"\nevery = \"1m\"\nkind = \"noop\"",
                "schedules.a.name: another schedule has the same name",
            ),
            (
                "[[schedules]]\nname = \"x\"\ncron = \"0 0 30 2 *\"\nkind = \"noop\"",
                "schedules.x.cron: `0 0 30 2 *` never matches",
            ),
            ("[scheduler]\ncatch_up = \"1s\"", "scheduler.catch_up: must be at least"),
        ];
        for (toml, expected) in cases {
            let error = load_error(toml);
            assert!(
                error.starts_with(expected),
                "for\n{toml}\nexpected `{expected}…`, got `{error}`"
            );
        }
    }

    #[test]
    fn good_schedules_load_with_their_ticks_and_settings() {
        let (config, registry) = registry_and(
            r#"
            [[schedules]]
            name = "nightly-cleanup"
            cron = "0 2 * * *"
            timezone = "Europe/Paris"
            kind = "noop"
            payload = { payload = "cleanup" }
            priority = "low"
            missed = "fire_once"

            [[schedules]]
            name = "tick_5"
            every = "5m"
            kind = "noop"
            "#,
        );
        let schedules = load(&config, &registry).unwrap();
        assert_eq!(schedules.len(), 2);
        let nightly = &schedules[0];
        assert_eq!(nightly.when.describe(), "0 2 * * * (Europe/Paris)");
        assert_eq!(nightly.priority, Some(Priority::Low));
        assert_eq!(nightly.missed, MissedPolicy::FireOnce);
        assert_eq!(
            nightly.job_id(1_767_229_200_000),
            "schedule-nightly-cleanup-1767229200000"
        );
        assert_eq!(
            nightly.when.format(utc(2026, 7, 1, 0, 0, 0)),
            "2026-07-01T02:00:00+02:00"
        );
        assert_eq!(schedules[1].when.describe(), "every 5m");
        assert_eq!(schedules[1].missed, MissedPolicy::Skip);
    }
}
