//! The delay ladder (docs/architecture.md §14): a delayed job walks down fixed-delay topics
//! shared by every kind, `sluice.delay.<rung>`, each hop one bounded wait, until less than the
//! smallest rung is left; then it goes to its lane and the worker holds it the last moment.
//!
//! Every record on a rung waits the same time, so a rung partition is in due order: its mover
//! holds only the head record and waits for it, however many jobs are delayed.

use std::time::Duration;

/// The shortest delay accepted; a job due sooner is not a delayed job.
pub const MIN_DELAY: Duration = Duration::from_secs(1);
/// The longest delay accepted (30 days).
pub const MAX_DELAY: Duration = Duration::from_secs(30 * 24 * 3600);

/// Each rung's wait. Consecutive rungs are at most 6× apart, so a job stays on one rung at most
/// five times: any delay up to 30 days takes at most 38 hops.
pub const RUNGS: [Duration; 9] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(3600),
    Duration::from_secs(6 * 3600),
    Duration::from_secs(24 * 3600),
    Duration::from_secs(4 * 24 * 3600),
];

/// The rung a job with `remaining` to wait goes to next: the longest wait that does not pass its
/// due time. `None`: less than the shortest rung is left, the job goes to its lane.
pub fn next_rung(remaining: Duration) -> Option<Duration> {
    RUNGS.iter().rev().find(|rung| **rung <= remaining).copied()
}

/// How many hops a delay takes (for the docs and the bound tests).
pub fn hops(delay: Duration) -> usize {
    let mut left = delay;
    let mut hops = 0;
    while let Some(rung) = next_rung(left) {
        left -= rung;
        hops += 1;
    }
    hops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_takes_the_longest_rung_that_does_not_pass_its_due_time() {
        assert_eq!(next_rung(Duration::from_millis(999)), None);
        assert_eq!(
            next_rung(Duration::from_secs(1)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            next_rung(Duration::from_secs(29)),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            next_rung(MAX_DELAY),
            Some(Duration::from_secs(4 * 24 * 3600))
        );
    }

    #[test]
    fn hops_stay_bounded_from_one_second_to_thirty_days() {
        assert_eq!(hops(Duration::from_secs(1)), 1);
        assert_eq!(hops(Duration::from_secs(90)), 3, "30 s three times");
        assert_eq!(hops(MAX_DELAY), 9, "4 d seven times, then 1 d twice");
        let worst = (1..=MAX_DELAY.as_secs() / 3600)
            .map(|h| hops(Duration::from_secs(h * 3600 - 1)))
            .max()
            .unwrap();
        assert!(worst <= 40, "{worst}");
    }
}
