//! Retry policy: how many attempts a job gets and how long it waits between them.
//!
//! A policy is explicit tiers (`tiers = ["2s", "4s", "8s", "16s"]`) or exponential (`base`,
//! `factor`, capped at `max`) expanded to tiers. Each tier is a topic,
//! `jobs.<kind>.retry.<delay>`; attempts past the last tier reuse the last tier. `[retry]` is the
//! default for every kind and `[kinds.<kind>]` overrides any of its fields.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A duration written as text (`"2s"`, `"10m"`), usable inside lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Delay(#[serde(with = "humantime_serde")] pub Duration);

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Explicit delays, one tier each. Empty (the default): expand `base`/`factor`/`max`.
    pub tiers: Vec<Delay>,
    /// First exponential delay. Default 2 s (docs/architecture.md §2).
    #[serde(with = "humantime_serde")]
    pub base: Duration,
    /// Each further delay is the previous times this. Default 2.
    pub factor: f64,
    /// Cap of any exponential delay. Default 600 s.
    #[serde(with = "humantime_serde")]
    pub max: Duration,
    /// Spread each due time over [delay/2, delay] so a burst of failures does not come back as
    /// one burst. Default on.
    pub jitter: bool,
    /// Deliveries in all, the first included: 5 = the first try plus 4 retries. Default 5.
    pub max_attempts: u32,
    /// A handler running longer is cancelled; the attempt fails with class `timeout`
    /// (retryable). Default 5 min.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            tiers: Vec::new(),
            base: Duration::from_secs(2),
            factor: 2.0,
            max: Duration::from_secs(600),
            jitter: true,
            max_attempts: 5,
            timeout: Duration::from_secs(300),
        }
    }
}

/// Per-kind overrides of `[retry]` (the retry keys of a `[kinds.<kind>]` table); every field is
/// optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryOverrides {
    pub tiers: Option<Vec<Delay>>,
    #[serde(with = "humantime_serde")]
    pub base: Option<Duration>,
    pub factor: Option<f64>,
    #[serde(with = "humantime_serde")]
    pub max: Option<Duration>,
    pub jitter: Option<bool>,
    pub max_attempts: Option<u32>,
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

/// The policy of one kind, expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPlan {
    /// Delay of each tier, in order; empty when `max_attempts` is 1.
    pub tiers: Vec<Duration>,
    pub max_attempts: u32,
    pub jitter: bool,
    pub timeout: Duration,
}

impl RetryPlan {
    /// The keys of a `[kinds.<kind>]` table that are retry settings.
    pub const KEYS: &'static [&'static str] = &[
        "tiers",
        "base",
        "factor",
        "max",
        "jitter",
        "max_attempts",
        "timeout",
    ];

    /// `[retry]` with a kind's overrides applied.
    pub fn resolve(retry: &RetryConfig, overrides: &RetryOverrides) -> Self {
        let o = overrides.clone();
        let max_attempts = o.max_attempts.unwrap_or(retry.max_attempts).max(1);
        let explicit = o.tiers.unwrap_or_else(|| retry.tiers.clone());
        let retries = (max_attempts - 1) as usize;
        let tiers = if retries == 0 {
            Vec::new()
        } else if !explicit.is_empty() {
            explicit.into_iter().map(|d| d.0).take(retries).collect()
        } else {
            let (base, factor, max) = (
                o.base.unwrap_or(retry.base),
                o.factor.unwrap_or(retry.factor),
                o.max.unwrap_or(retry.max),
            );
            let mut tiers: Vec<Duration> = (0..retries)
                .map(|i| base.mul_f64(factor.powi(i as i32)).min(max))
                .collect();
            // Capped delays repeat; one tier serves them all.
            tiers.dedup();
            tiers
        };
        Self {
            tiers,
            max_attempts,
            jitter: o.jitter.unwrap_or(retry.jitter),
            timeout: o.timeout.unwrap_or(retry.timeout),
        }
    }

    /// Why the plan cannot run, naming the key.
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        if self.tiers.iter().any(|d| d.as_millis() == 0) {
            return Some(("tiers", "delays must be at least 1 ms"));
        }
        if self.timeout.is_zero() {
            return Some(("timeout", "must be more than 0"));
        }
        None
    }

    /// The tier a job goes to after failing attempt `attempt` (1-based), or `None` when that was
    /// the last attempt.
    pub fn tier_after(&self, attempt: u32) -> Option<Duration> {
        if attempt >= self.max_attempts || self.tiers.is_empty() {
            return None;
        }
        let index = (attempt as usize - 1).min(self.tiers.len() - 1);
        Some(self.tiers[index])
    }

    /// The due time of a retry `delay` after `now_ms`; with jitter, somewhere in
    /// [delay/2, delay]. `random` is uniform in [0, 1).
    pub fn due_at(&self, now_ms: i64, delay: Duration, random: f64) -> i64 {
        let delay_ms = delay.as_millis() as f64;
        let wait = if self.jitter {
            delay_ms / 2.0 + random * delay_ms / 2.0
        } else {
            delay_ms
        };
        now_ms + wait as i64
    }
}

/// A tier's name in its topic: `2s`, `10m`, `1h`, `500ms`.
pub fn tier_name(delay: Duration) -> String {
    let ms = delay.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(list: &[u64]) -> Vec<Duration> {
        list.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    #[test]
    fn the_default_policy_is_2_4_8_16_seconds_for_five_attempts() {
        let plan = RetryPlan::resolve(&RetryConfig::default(), &RetryOverrides::default());
        assert_eq!(plan.tiers, secs(&[2, 4, 8, 16]));
        assert_eq!(plan.max_attempts, 5);
        assert_eq!(plan.tier_after(1), Some(Duration::from_secs(2)));
        assert_eq!(plan.tier_after(4), Some(Duration::from_secs(16)));
        assert_eq!(plan.tier_after(5), None, "the fifth attempt was the last");
    }

    #[test]
    fn exponential_delays_are_capped_and_attempts_past_the_last_tier_reuse_it() {
        let retry = RetryConfig {
            base: Duration::from_secs(100),
            factor: 3.0,
            max_attempts: 6,
            ..RetryConfig::default()
        };
        let plan = RetryPlan::resolve(&retry, &RetryOverrides::default());
        assert_eq!(plan.tiers, secs(&[100, 300, 600]));
        assert_eq!(plan.tier_after(5), Some(Duration::from_secs(600)));
    }

    #[test]
    fn kind_overrides_win_and_explicit_tiers_are_taken_as_given() {
        let overrides = RetryOverrides {
            tiers: Some(vec![
                Delay(Duration::from_secs(1)),
                Delay(Duration::from_secs(30)),
            ]),
            max_attempts: Some(4),
            jitter: Some(false),
            ..RetryOverrides::default()
        };
        let plan = RetryPlan::resolve(&RetryConfig::default(), &overrides);
        assert_eq!(plan.tiers, secs(&[1, 30]));
        assert_eq!(plan.tier_after(3), Some(Duration::from_secs(30)));
        assert_eq!(plan.due_at(1_000, Duration::from_secs(30), 0.99), 31_000);
    }

    #[test]
    fn jitter_keeps_at_least_half_the_delay_and_never_more() {
        let plan = RetryPlan::resolve(&RetryConfig::default(), &RetryOverrides::default());
        let delay = Duration::from_secs(8);
        assert_eq!(plan.due_at(0, delay, 0.0), 4_000);
        assert!(plan.due_at(0, delay, 0.999_999) <= 8_000);
    }

    #[test]
    fn one_attempt_means_no_retries() {
        let retry = RetryConfig {
            max_attempts: 1,
            ..RetryConfig::default()
        };
        let plan = RetryPlan::resolve(&retry, &RetryOverrides::default());
        assert!(plan.tiers.is_empty());
        assert_eq!(plan.tier_after(1), None);
    }

    #[test]
    fn tier_names_are_short() {
        assert_eq!(tier_name(Duration::from_secs(2)), "2s");
        assert_eq!(tier_name(Duration::from_secs(600)), "10m");
        assert_eq!(tier_name(Duration::from_secs(7200)), "2h");
        assert_eq!(tier_name(Duration::from_millis(1500)), "1500ms");
        assert_eq!(tier_name(Duration::from_secs(90)), "90s");
    }
}
