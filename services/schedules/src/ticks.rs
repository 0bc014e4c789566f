//! What a schedule is to the code that fires it or lists it: a sequence of ticks.

/// The ticks of a schedule, in ms since the Unix epoch.
pub trait Ticks {
    /// The first tick strictly after `after`; `None` when there is none.
    fn next_after(&self, after: i64) -> Option<i64>;
    /// The last tick strictly before `before`; `None` when there is none.
    fn last_before(&self, before: i64) -> Option<i64>;
}
