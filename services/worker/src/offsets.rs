//! Which offset may be stored for each partition while several jobs of it run at once.
//!
//! Jobs finish out of order. The offset stored (and later committed) for a partition is the
//! lowest offset still unfinished, or one past the highest dispatched offset when nothing is in
//! flight: after a crash, the group resumes at the first job whose outcome was not yet durable,
//! so every job is processed at least once (docs/architecture.md §6). Offsets use Kafka's
//! commit meaning: the next offset to consume.

use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Default)]
struct PartitionState {
    /// Every job received and not yet finished: running, or waiting for its retry due time.
    in_flight: BTreeSet<i64>,
    /// The subset of `in_flight` whose handler has started.
    running: BTreeSet<i64>,
    next_after_dispatched: Option<i64>,
    last_stored: Option<i64>,
}

impl PartitionState {
    fn committable(&self) -> Option<i64> {
        self.in_flight
            .first()
            .copied()
            .or(self.next_after_dispatched)
    }
}

#[derive(Debug, Default)]
pub struct OffsetTracker {
    /// By topic, then partition: looked up by `&str`, without a `String` per call.
    partitions: HashMap<String, HashMap<i32, PartitionState>>,
}

impl OffsetTracker {
    /// A job at `offset` was handed to a handler.
    pub fn started(&mut self, topic: &str, partition: i32, offset: i64) {
        self.received(topic, partition, offset);
        self.begin(topic, partition, offset);
    }

    /// A job at `offset` was received but waits (a retry not yet due): it holds the committed
    /// offset back like a running job, but a revocation does not wait for it.
    pub fn deferred(&mut self, topic: &str, partition: i32, offset: i64) {
        self.received(topic, partition, offset);
    }

    /// A deferred job's handler starts.
    pub fn begin(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(state) = self.state_mut(topic, partition) {
            if state.in_flight.contains(&offset) {
                state.running.insert(offset);
            }
        }
    }

    fn received(&mut self, topic: &str, partition: i32, offset: i64) {
        let partitions = match self.partitions.get_mut(topic) {
            Some(partitions) => partitions,
            None => self.partitions.entry(topic.to_owned()).or_default(),
        };
        let state = partitions.entry(partition).or_default();
        state.in_flight.insert(offset);
        let next = state
            .next_after_dispatched
            .map_or(offset + 1, |n| n.max(offset + 1));
        state.next_after_dispatched = Some(next);
    }

    /// The job at `offset` has a durable outcome. Returns the offset to store now, if the
    /// committable position moved. Offsets this tracker is not waiting for (a partition revoked
    /// meanwhile) are ignored.
    pub fn finished(&mut self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        let state = self.state_mut(topic, partition)?;
        state.running.remove(&offset);
        if !state.in_flight.remove(&offset) {
            return None;
        }
        let committable = state.committable()?;
        if state.last_stored == Some(committable) {
            return None;
        }
        state.last_stored = Some(committable);
        Some(committable)
    }

    /// Jobs of this partition whose handler is running.
    pub fn running_of(&self, topic: &str, partition: i32) -> usize {
        self.state(topic, partition).map_or(0, |s| s.running.len())
    }

    /// The offset to commit for a partition right now.
    pub fn committable(&self, topic: &str, partition: i32) -> Option<i64> {
        self.state(topic, partition)
            .and_then(PartitionState::committable)
    }

    /// Drops a revoked partition; late completions for it are ignored.
    pub fn forget(&mut self, topic: &str, partition: i32) {
        if let Some(partitions) = self.partitions.get_mut(topic) {
            partitions.remove(&partition);
        }
    }

    pub fn total_in_flight(&self) -> usize {
        self.partitions
            .values()
            .flat_map(HashMap::values)
            .map(|s| s.in_flight.len())
            .sum()
    }

    fn state(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.partitions.get(topic)?.get(&partition)
    }

    fn state_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionState> {
        self.partitions.get_mut(topic)?.get_mut(&partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_only_below_the_lowest_unfinished_job() {
        let mut t = OffsetTracker::default();
        for offset in 0..4 {
            t.started("t", 0, offset);
        }
        assert_eq!(
            t.finished("t", 0, 1),
            Some(0),
            "0 is still running: resume there"
        );
        assert_eq!(t.finished("t", 0, 2), None, "unchanged: nothing to store");
        assert_eq!(t.finished("t", 0, 0), Some(3), "0,1,2 done: resume at 3");
        assert_eq!(t.finished("t", 0, 3), Some(4), "all done: next is 4");
        assert_eq!(t.committable("t", 0), Some(4));
    }

    #[test]
    fn n_jobs_from_an_empty_partition_commit_offset_n() {
        let mut t = OffsetTracker::default();
        let n = 10;
        for offset in 0..n {
            t.started("t", 3, offset);
        }
        let mut last = None;
        for offset in (0..n).rev() {
            if let Some(stored) = t.finished("t", 3, offset) {
                last = Some(stored);
            }
        }
        assert_eq!(last, Some(n));
    }

    #[test]
    fn partitions_are_independent_and_forgotten_ones_ignore_late_results() {
        let mut t = OffsetTracker::default();
        t.started("t", 0, 5);
        t.started("t", 1, 7);
        assert_eq!(t.finished("t", 1, 7), Some(8));
        assert_eq!(t.running_of("t", 0), 1);
        t.forget("t", 0);
        assert_eq!(t.finished("t", 0, 5), None);
        assert_eq!(t.total_in_flight(), 0);
    }

    #[test]
    fn a_deferred_retry_holds_the_offset_back_without_counting_as_running() {
        let mut t = OffsetTracker::default();
        t.deferred("r", 0, 10);
        t.started("r", 0, 11);
        assert_eq!(t.running_of("r", 0), 1);
        assert_eq!(t.finished("r", 0, 11), Some(10), "10 still waits");
        t.begin("r", 0, 10);
        assert_eq!(t.running_of("r", 0), 1);
        assert_eq!(t.finished("r", 0, 10), Some(12));
    }

    #[test]
    fn an_offset_not_in_flight_changes_nothing() {
        let mut t = OffsetTracker::default();
        t.started("t", 0, 0);
        assert_eq!(t.finished("t", 0, 42), None);
        assert_eq!(t.committable("t", 0), Some(0));
    }
}
