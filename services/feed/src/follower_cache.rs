//! Follower lists of big authors kept in the fanout's memory between their posts.
//!
//! Reading a 10 000-follower set page by page (SSCAN) cost Redis about a fifth of a push's time,
//! and each page had to arrive before its writes could be sent. A cached list is used only while
//! its [`Stamp`] still matches what Redis says now: the follow path bumps the author's version
//! after changing the set (so any fanout instance sees it), and the follower count catches a
//! set edited by hand. An edit that keeps the count and skips the version is picked up when the
//! entry expires.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// What a follower list was read under: the author's follow-change version and follower count,
/// both read before the set itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub version: u64,
    pub followers: u64,
}

/// Feed keys of each cached author's followers, at most `capacity` keys in all, least recently
/// used out first.
pub struct FollowerCache {
    capacity: usize,
    ttl: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    held: usize,
    clock: u64,
}

struct Entry {
    stamp: Stamp,
    feeds: Arc<[String]>,
    loaded: Instant,
    last_used: u64,
}

impl FollowerCache {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            capacity,
            ttl,
            state: Mutex::default(),
        }
    }

    /// The author's follower feeds, if cached under `stamp` and not expired.
    pub fn get(&self, author: &str, stamp: Stamp) -> Option<Arc<[String]>> {
        let mut state = self.state.lock().expect("never poisoned");
        state.clock += 1;
        let now = state.clock;
        let entry = state.entries.get_mut(author)?;
        if entry.stamp != stamp || entry.loaded.elapsed() >= self.ttl {
            return None;
        }
        entry.last_used = now;
        Some(entry.feeds.clone())
    }

    /// Caches the author's follower feeds as read under `stamp`, making room by dropping the
    /// least recently used lists. A list bigger than the whole cache is not kept.
    pub fn put(&self, author: &str, stamp: Stamp, feeds: Arc<[String]>) {
        if feeds.len() > self.capacity || self.ttl.is_zero() {
            return;
        }
        let mut state = self.state.lock().expect("never poisoned");
        if let Some(old) = state.entries.remove(author) {
            state.held -= old.feeds.len();
        }
        while state.held + feeds.len() > self.capacity {
            let Some(oldest) = state
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(author, _)| author.clone())
            else {
                break;
            };
            let dropped = state.entries.remove(&oldest).expect("just found");
            state.held -= dropped.feeds.len();
        }
        state.clock += 1;
        state.held += feeds.len();
        let last_used = state.clock;
        state.entries.insert(
            author.to_owned(),
            Entry {
                stamp,
                feeds,
                loaded: Instant::now(),
                last_used,
            },
        );
    }

    /// Follower feeds held in all.
    pub fn held(&self) -> usize {
        self.state.lock().expect("never poisoned").held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feeds(n: usize) -> Arc<[String]> {
        (0..n).map(|i| format!("feed:{i}")).collect()
    }

    const STAMP: Stamp = Stamp {
        version: 3,
        followers: 2,
    };

    #[test]
    fn a_list_is_used_only_under_the_stamp_it_was_read_with() {
        let cache = FollowerCache::new(10, Duration::from_secs(60));
        cache.put("ada", STAMP, feeds(2));
        assert_eq!(cache.get("ada", STAMP).unwrap().len(), 2);
        let followed_since = Stamp {
            version: 4,
            ..STAMP
        };
        assert!(cache.get("ada", followed_since).is_none());
        let edited_by_hand = Stamp {
            followers: 3,
            ..STAMP
        };
        assert!(cache.get("ada", edited_by_hand).is_none());
        assert!(cache.get("bob", STAMP).is_none());
    }

    #[test]
    fn a_list_expires() {
        let cache = FollowerCache::new(10, Duration::from_millis(30));
        cache.put("ada", STAMP, feeds(2));
        assert!(cache.get("ada", STAMP).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get("ada", STAMP).is_none());
    }

    #[test]
    fn the_least_recently_used_lists_make_room() {
        let cache = FollowerCache::new(10, Duration::from_secs(60));
        cache.put("ada", STAMP, feeds(4));
        cache.put("bob", STAMP, feeds(4));
        assert!(cache.get("ada", STAMP).is_some());
        cache.put("cy", STAMP, feeds(4));
        assert!(
            cache.get("bob", STAMP).is_none(),
            "bob was used least recently"
        );
        assert!(cache.get("ada", STAMP).is_some());
        assert!(cache.get("cy", STAMP).is_some());
        assert_eq!(cache.held(), 8);
        cache.put("ada", STAMP, feeds(6));
        assert_eq!(cache.held(), 10, "a reloaded list replaces its old one");
    }

    #[test]
    fn a_list_bigger_than_the_cache_is_not_kept() {
        let cache = FollowerCache::new(10, Duration::from_secs(60));
        cache.put("ada", STAMP, feeds(4));
        cache.put("star", STAMP, feeds(11));
        assert!(cache.get("star", STAMP).is_none());
        assert!(cache.get("ada", STAMP).is_some());
        assert_eq!(cache.held(), 4);
    }
}
