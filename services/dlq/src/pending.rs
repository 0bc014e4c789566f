//! The number of pending dead letters of each kind, kept up to date incrementally: each refresh
//! reads only the dead letters and state records written since the last one (from a cursor per
//! topic partition), so its cost follows new dead letters, not all of them. The queue-health
//! exporter refreshes every 15 s; a DLQ of millions costs one full read, at the first refresh.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{Arc, Mutex},
};

use rdkafka::message::Message;
use sluice_core::{topics::Topics, Config};

use crate::{
    read::{read_new, reader, state_of, Cursor, Reader},
    DlqError, Position, State,
};

/// What one refresh found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingCount {
    /// Dead letters neither replayed nor purged.
    pub pending: usize,
    /// Records this refresh read (dead letters and state records): its cost.
    pub records_read: usize,
}

/// Pending dead letters per kind, from cursors kept in memory.
#[derive(Clone)]
pub struct PendingCounter {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    topics: Topics,
    reader: Mutex<Option<Reader>>,
    kinds: Mutex<HashMap<String, KindTally>>,
}

#[derive(Default)]
struct KindTally {
    letters: Cursor,
    states: Cursor,
    pending: BTreeSet<Position>,
    /// Handled before this counter read the dead letter itself (the state topic was read
    /// further than the DLQ topic): not counted when it arrives.
    handled_ahead: HashSet<Position>,
}

impl PendingCounter {
    pub fn new(config: &Config) -> Self {
        Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                topics: Topics::new(&config.topics),
                reader: Mutex::new(None),
                kinds: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Reads what is new for `kind` and returns its pending count.
    pub async fn refresh(&self, kind: &str) -> Result<PendingCount, DlqError> {
        let (inner, kind) = (self.inner.clone(), kind.to_owned());
        tokio::task::spawn_blocking(move || inner.refresh(&kind))
            .await
            .expect("the pending counter does not panic")
    }
}

impl Inner {
    fn refresh(&self, kind: &str) -> Result<PendingCount, DlqError> {
        let mut reader_slot = self.reader.lock().unwrap();
        if reader_slot.is_none() {
            *reader_slot = Some(reader(&self.config)?);
        }
        let reader = reader_slot.as_ref().expect("created above");
        let mut kinds = self.kinds.lock().unwrap();
        let tally = kinds.entry(kind.to_owned()).or_default();
        // Dead letters first, states second: a state record always refers to a dead letter
        // written before it, so reading in this order leaves few states ahead of their letter.
        let letters = read_new(reader, &self.topics.dead_letters(kind), &mut tally.letters)?;
        let states = read_new(
            reader,
            &self.topics.dead_letter_state(kind),
            &mut tally.states,
        )?;
        for letter in &letters {
            let position = Position {
                partition: letter.partition(),
                offset: letter.offset(),
            };
            if !tally.handled_ahead.remove(&position) {
                tally.pending.insert(position);
            }
        }
        for record in &states {
            let Some((position, State::Replayed | State::Purged)) = state_of(record) else {
                continue;
            };
            let read_yet = tally
                .letters
                .next
                .get(&position.partition)
                .is_some_and(|next| position.offset < *next);
            if !tally.pending.remove(&position) && !read_yet {
                tally.handled_ahead.insert(position);
            }
        }
        // Dead letters removed by retention are no longer anyone's to replay.
        let low = &tally.letters.low;
        tally
            .pending
            .retain(|p| low.get(&p.partition).is_none_or(|l| p.offset >= *l));
        Ok(PendingCount {
            pending: tally.pending.len(),
            records_read: letters.len() + states.len(),
        })
    }
}
