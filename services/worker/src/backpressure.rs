//! When to pause a partition: it holds `max_held` retries or delayed jobs not yet due (each on a
//! timer), or `read_ahead` jobs that are due but wait for a slot. Either way the worker stops
//! fetching it, so memory stays bounded, while other partitions (another lane's) keep flowing.
//! It resumes once both counts are at half their bound.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

/// What the caller must do to the partition's consumption.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Pause,
    Resume,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    held: usize,
    ready: usize,
}

pub struct Backpressure {
    max_held: usize,
    read_ahead: usize,
    inner: Mutex<State>,
}

#[derive(Default)]
struct State {
    counts: HashMap<(String, i32), Counts>,
    paused: HashSet<(String, i32)>,
}

impl Backpressure {
    pub fn new(max_held: usize, read_ahead: usize) -> Self {
        Self {
            max_held,
            read_ahead,
            inner: Mutex::default(),
        }
    }

    pub fn held(&self, topic: &str, partition: i32) -> Option<Change> {
        self.update(topic, partition, |c| c.held += 1)
    }

    pub fn unheld(&self, topic: &str, partition: i32) -> Option<Change> {
        self.update(topic, partition, |c| c.held = c.held.saturating_sub(1))
    }

    pub fn readied(&self, topic: &str, partition: i32) -> Option<Change> {
        self.update(topic, partition, |c| c.ready += 1)
    }

    pub fn taken(&self, topic: &str, partition: i32) -> Option<Change> {
        self.update(topic, partition, |c| c.ready = c.ready.saturating_sub(1))
    }

    /// Forgets revoked partitions: a partition assigned again starts unpaused and empty.
    pub fn forget(&self, partitions: &[(String, i32)]) {
        let mut state = self.inner.lock().unwrap();
        for key in partitions {
            state.counts.remove(key);
            state.paused.remove(key);
        }
    }

    fn update(
        &self,
        topic: &str,
        partition: i32,
        change: impl FnOnce(&mut Counts),
    ) -> Option<Change> {
        let mut state = self.inner.lock().unwrap();
        let key = (topic.to_owned(), partition);
        let counts = state.counts.entry(key.clone()).or_default();
        change(counts);
        let Counts { held, ready } = *counts;
        let full = held >= self.max_held || ready >= self.read_ahead;
        let drained = held <= self.max_held / 2 && ready <= self.read_ahead / 2;
        if full && state.paused.insert(key.clone()) {
            return Some(Change::Pause);
        }
        if drained && state.paused.remove(&key) {
            return Some(Change::Resume);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_pauses_when_full_and_resumes_at_half() {
        let b = Backpressure::new(10, 4);
        assert_eq!(b.readied("t", 0), None);
        assert_eq!(b.readied("t", 0), None);
        assert_eq!(b.readied("t", 0), None);
        assert_eq!(b.readied("t", 0), Some(Change::Pause));
        assert_eq!(b.readied("t", 0), None, "already paused");
        assert_eq!(b.readied("t", 1), None, "other partitions are their own");
        assert_eq!(b.taken("t", 0), None);
        assert_eq!(b.taken("t", 0), None);
        assert_eq!(b.taken("t", 0), Some(Change::Resume));
    }

    #[test]
    fn both_reasons_must_clear_before_resuming() {
        let b = Backpressure::new(2, 2);
        b.held("r", 0);
        assert_eq!(b.held("r", 0), Some(Change::Pause));
        b.readied("r", 0);
        b.readied("r", 0);
        assert_eq!(b.unheld("r", 0), None);
        assert_eq!(b.unheld("r", 0), None, "still two ready");
        assert_eq!(b.taken("r", 0), Some(Change::Resume));
    }

    #[test]
    fn a_forgotten_partition_starts_over() {
        let b = Backpressure::new(1, 1);
        assert_eq!(b.readied("t", 0), Some(Change::Pause));
        b.forget(&[("t".to_owned(), 0)]);
        assert_eq!(b.taken("t", 0), None);
        assert_eq!(b.readied("t", 0), Some(Change::Pause));
    }
}
