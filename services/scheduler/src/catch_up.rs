//! Which ticks a leader fires now: every unfired tick up to now, except those older than the
//! catch-up window, which follow the schedule's `missed` policy (docs/architecture.md §15).
//!
//! A failover leaves a gap of seconds (the group's session timeout): those ticks are fired late,
//! each once. A gap longer than the window means every replica was down; then firing, say, a
//! night's worth of a per-minute job at once is rarely what anyone wants.

use std::time::Duration;

use sluice_core::schedules::MissedPolicy;
pub use sluice_schedules::Ticks;

/// What to do now for one schedule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Due {
    /// Ticks to fire, oldest first.
    pub fire: Vec<i64>,
    /// The newest tick passed over without firing (policy `skip`): the schedule goes on after it.
    pub skipped_through: Option<i64>,
}

/// The ticks due for a schedule whose last fired (or passed-over) tick is `cursor`, at `now`:
/// every tick in (cursor, now], except that those older than `now - catch_up` are all skipped
/// (`skip`) or only the newest of them is fired (`fire_once`). At most `limit` ticks are
/// returned; the rest are due on the next call.
pub fn due(
    ticks: &impl Ticks,
    cursor: i64,
    now: i64,
    catch_up: Duration,
    missed: MissedPolicy,
    limit: usize,
) -> Due {
    let threshold = now.saturating_sub(catch_up.as_millis() as i64);
    let mut due = Due::default();
    let mut from = cursor;
    // The newest tick older than the window, searched backwards so an outage of months costs
    // one search, not one per tick; then walked forward so it is exactly a forward tick.
    if let Some(mut oldest_newest) = ticks
        .last_before(threshold)
        .filter(|t| *t > cursor && cursor < threshold)
    {
        while let Some(next) = ticks.next_after(oldest_newest).filter(|t| *t < threshold) {
            oldest_newest = next;
        }
        match missed {
            MissedPolicy::Skip => due.skipped_through = Some(oldest_newest),
            MissedPolicy::FireOnce if limit > 0 => due.fire.push(oldest_newest),
            // Nothing may be fired in this call: leave it for the next.
            MissedPolicy::FireOnce => return due,
        }
        from = oldest_newest;
    }
    let mut next = ticks.next_after(from);
    while let Some(tick) = next.filter(|t| *t <= now) {
        if due.fire.len() >= limit {
            break;
        }
        due.fire.push(tick);
        next = ticks.next_after(tick);
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ticks every `0` ms since the epoch.
    struct Every(i64);

    impl Ticks for Every {
        fn next_after(&self, after: i64) -> Option<i64> {
            Some((after.div_euclid(self.0) + 1) * self.0)
        }
        fn last_before(&self, before: i64) -> Option<i64> {
            Some((before - 1).div_euclid(self.0) * self.0)
        }
    }

    const S: i64 = 1000;
    const WINDOW: Duration = Duration::from_secs(300);
    const SECOND: Every = Every(S);

    fn seconds(range: std::ops::RangeInclusive<i64>) -> Vec<i64> {
        range.map(|s| s * S).collect()
    }

    #[test]
    fn nothing_is_due_before_the_next_tick() {
        let due = due(
            &SECOND,
            10 * S,
            10 * S + 999,
            WINDOW,
            MissedPolicy::Skip,
            100,
        );
        assert_eq!(due, Due::default());
    }

    #[test]
    fn a_tick_is_due_at_its_time_and_fired_once_it_is_the_cursor() {
        let at_tick = due(&SECOND, 10 * S, 11 * S, WINDOW, MissedPolicy::Skip, 100);
        assert_eq!(at_tick.fire, vec![11 * S]);
        let after = due(&SECOND, 11 * S, 11 * S + 5, WINDOW, MissedPolicy::Skip, 100);
        assert!(after.fire.is_empty());
    }

    #[test]
    fn a_failover_gap_inside_the_window_fires_every_tick_in_order_whatever_the_policy() {
        // The last fired tick was 100 s; the new leader runs at 108.2 s.
        for missed in [MissedPolicy::Skip, MissedPolicy::FireOnce] {
            let due = due(&SECOND, 100 * S, 108 * S + 200, WINDOW, missed, 100);
            assert_eq!(due.fire, seconds(101..=108), "{missed:?}");
            assert_eq!(due.skipped_through, None);
        }
    }

    #[test]
    fn ticks_older_than_the_window_are_skipped_and_the_recent_ones_fired() {
        // Down from 100 s to 1000 s: ticks 101..=699 are older than the 300 s window.
        let due = due(&SECOND, 100 * S, 1000 * S, WINDOW, MissedPolicy::Skip, 1000);
        assert_eq!(due.skipped_through, Some(699 * S));
        assert_eq!(due.fire, seconds(700..=1000));
    }

    #[test]
    fn fire_once_fires_only_the_newest_tick_older_than_the_window() {
        let due = due(
            &SECOND,
            100 * S,
            1000 * S,
            WINDOW,
            MissedPolicy::FireOnce,
            1000,
        );
        assert_eq!(due.skipped_through, None);
        assert_eq!(due.fire[0], 699 * S, "the newest missed tick, once");
        assert_eq!(&due.fire[1..], &seconds(700..=1000)[..]);
    }

    #[test]
    fn a_nightly_job_missed_by_hours_is_skipped_or_fired_once() {
        let daily = Every(86_400 * S);
        let midnight = 20_000 * 86_400 * S;
        let cursor = midnight - 86_400 * S; // yesterday's tick fired
        let now = midnight + 6 * 3600 * S; // back at 06:00
        let skipped = due(&daily, cursor, now, WINDOW, MissedPolicy::Skip, 100);
        assert_eq!(skipped.fire, Vec::<i64>::new());
        assert_eq!(skipped.skipped_through, Some(midnight));
        let once = due(&daily, cursor, now, WINDOW, MissedPolicy::FireOnce, 100);
        assert_eq!(once.fire, vec![midnight]);
        // Once fired (the cursor moved to it), it is not fired again.
        let again = due(
            &daily,
            midnight,
            now + S,
            WINDOW,
            MissedPolicy::FireOnce,
            100,
        );
        assert_eq!(again, Due::default());
    }

    #[test]
    fn a_cursor_inside_the_window_is_never_treated_as_missed() {
        // The last tick fired 200 s ago, inside the 300 s window: nothing is skipped.
        let due = due(&SECOND, 800 * S, 1000 * S, WINDOW, MissedPolicy::Skip, 1000);
        assert_eq!(due.skipped_through, None);
        assert_eq!(due.fire, seconds(801..=1000));
    }

    #[test]
    fn a_long_catch_up_comes_in_batches_of_the_limit_without_gaps() {
        let mut cursor = 100 * S;
        let mut fired = Vec::new();
        loop {
            let due = due(&SECOND, cursor, 350 * S, WINDOW, MissedPolicy::Skip, 64);
            if due.fire.is_empty() {
                break;
            }
            assert!(due.fire.len() <= 64);
            cursor = *due.fire.last().unwrap();
            fired.extend(due.fire);
        }
        assert_eq!(fired, seconds(101..=350));
    }

    #[test]
    fn a_cursor_in_the_future_fires_nothing_until_the_clock_passes_it() {
        // A previous leader whose clock ran ahead fired 105 s; this one's clock says 103 s.
        let early = due(&SECOND, 105 * S, 103 * S, WINDOW, MissedPolicy::Skip, 100);
        assert_eq!(early, Due::default());
        let later = due(&SECOND, 105 * S, 106 * S, WINDOW, MissedPolicy::Skip, 100);
        assert_eq!(later.fire, vec![106 * S]);
    }
}
