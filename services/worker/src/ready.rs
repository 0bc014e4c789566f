//! Jobs read (and due) that wait for a slot, one queue per lane, and which of them starts next:
//! smooth weighted round-robin between the lanes that have jobs waiting, except that a job
//! waiting longer than `lane_max_wait` goes first, so no lane starves.

use std::{
    collections::VecDeque,
    sync::Mutex,
    time::{Duration, Instant},
};

use sluice_core::lanes::{LaneWeights, Priority};
use tokio::sync::Notify;

/// A job with the lane it waits in and since when.
pub struct Waiting<T> {
    pub item: T,
    pub lane: Priority,
    pub since: Instant,
}

pub struct Ready<T> {
    inner: Mutex<Lanes<T>>,
    notify: Notify,
}

struct Lanes<T> {
    queues: [VecDeque<Waiting<T>>; 3],
    /// Each lane's running credit in the weighted round-robin.
    credit: [i64; 3],
    weights: [i64; 3],
    max_wait: Duration,
}

impl<T> Ready<T> {
    pub fn new(weights: LaneWeights, max_wait: Duration) -> Self {
        Self {
            inner: Mutex::new(Lanes {
                queues: Default::default(),
                credit: [0; 3],
                weights: Priority::ALL.map(|lane| i64::from(weights.of(lane))),
                max_wait,
            }),
            notify: Notify::new(),
        }
    }

    /// Queues `item` in `lane`; returns how many wait in that lane now.
    pub fn push(&self, item: T, lane: Priority) -> usize {
        let mut lanes = self.inner.lock().unwrap();
        let queue = &mut lanes.queues[lane.index()];
        queue.push_back(Waiting {
            item,
            lane,
            since: Instant::now(),
        });
        let waiting = queue.len();
        drop(lanes);
        self.notify.notify_one();
        waiting
    }

    /// The job to start next, waiting for one if none is queued. Cancel-safe: a job is only
    /// taken when this returns. Meant for one caller at a time (the dispatch loop).
    pub async fn next(&self) -> Waiting<T> {
        loop {
            let notified = self.notify.notified();
            if let Some(next) = self.try_next(Instant::now()) {
                return next;
            }
            notified.await;
        }
    }

    pub fn try_next(&self, now: Instant) -> Option<Waiting<T>> {
        let mut lanes = self.inner.lock().unwrap();
        let lane = lanes.pick(now)?;
        lanes.queues[lane].pop_front()
    }

    pub fn len(&self, lane: Priority) -> usize {
        self.inner.lock().unwrap().queues[lane.index()].len()
    }
}

impl<T> Lanes<T> {
    fn pick(&mut self, now: Instant) -> Option<usize> {
        let overdue = (0..3)
            .filter_map(|i| self.queues[i].front().map(|w| (i, w.since)))
            .filter(|(_, since)| now.duration_since(*since) >= self.max_wait)
            .min_by_key(|(_, since)| *since)
            .map(|(i, _)| i);
        if overdue.is_some() {
            return overdue;
        }
        let active: Vec<usize> = (0..3).filter(|i| !self.queues[*i].is_empty()).collect();
        let total: i64 = active.iter().map(|i| self.weights[*i]).sum();
        let mut best = None;
        for &i in &active {
            self.credit[i] += self.weights[i];
            // Strictly greater: on a tie the higher-priority lane (lower index) wins.
            if best.is_none_or(|b: usize| self.credit[i] > self.credit[b]) {
                best = Some(i);
            }
        }
        let best = best?;
        self.credit[best] -= total;
        // An idle lane starts over from nothing rather than from credit it built up before.
        for i in 0..3 {
            if self.queues[i].len() <= usize::from(i == best) {
                self.credit[i] = self.credit[i].min(0);
            }
        }
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(high: usize, normal: usize, low: usize) -> Ready<usize> {
        let ready = Ready::new(LaneWeights::default(), Duration::from_secs(3600));
        for (lane, n) in Priority::ALL.into_iter().zip([high, normal, low]) {
            for i in 0..n {
                ready.push(i, lane);
            }
        }
        ready
    }

    fn starts(ready: &Ready<usize>, n: usize) -> [usize; 3] {
        let mut counts = [0; 3];
        for _ in 0..n {
            counts[ready.try_next(Instant::now()).unwrap().lane.index()] += 1;
        }
        counts
    }

    #[test]
    fn backlogged_lanes_share_starts_eight_four_one() {
        let ready = filled(1000, 1000, 1000);
        assert_eq!(starts(&ready, 13), [8, 4, 1]);
        assert_eq!(starts(&ready, 130), [80, 40, 10]);
    }

    #[test]
    fn an_empty_lane_gives_its_share_to_the_others() {
        let ready = filled(0, 1000, 1000);
        assert_eq!(starts(&ready, 50), [0, 40, 10]);
        let ready = filled(0, 0, 5);
        assert_eq!(starts(&ready, 5), [0, 0, 5]);
        assert!(ready.try_next(Instant::now()).is_none());
    }

    #[test]
    fn a_high_job_arriving_behind_a_low_backlog_starts_next() {
        let ready = filled(0, 0, 1000);
        starts(&ready, 100);
        ready.push(7, Priority::High);
        let next = ready.try_next(Instant::now()).unwrap();
        assert_eq!((next.lane, next.item), (Priority::High, 7));
    }

    #[test]
    fn a_job_waiting_past_the_bound_goes_first_whatever_the_weights() {
        let ready = Ready::new(LaneWeights::default(), Duration::from_millis(50));
        ready.push(1, Priority::Low);
        for i in 0..100 {
            ready.push(i, Priority::High);
        }
        let later = Instant::now() + Duration::from_millis(60);
        assert_eq!(ready.try_next(later).unwrap().lane, Priority::Low);
    }

    #[test]
    fn within_a_lane_jobs_start_in_the_order_they_came() {
        let ready = filled(0, 3, 0);
        let order: Vec<usize> = (0..3)
            .map(|_| ready.try_next(Instant::now()).unwrap().item)
            .collect();
        assert_eq!(order, [0, 1, 2]);
    }
}
