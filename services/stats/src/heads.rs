//! The head record of each lagging partition: the first record a group would be given next, at
//! its committed offset. Read through one assign-only client that is never in a group, one
//! caller at a time (an assignment is the client's whole state).

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::Consumer, message::BorrowedMessage, message::Message, Offset, TopicPartitionList,
};

use crate::{PartitionLag, StatsReader};

/// How long reading a topic's head records may take; a head not read by then is left out.
const HEAD_READ_BOUND: Duration = Duration::from_secs(2);

impl StatsReader {
    /// `read` of the first readable record at or after each lagging partition's committed
    /// offset, by partition.
    pub(crate) fn read_heads<T>(
        &self,
        topic: &str,
        partitions: &[PartitionLag],
        read: impl Fn(&BorrowedMessage<'_>) -> T,
    ) -> BTreeMap<i32, T> {
        let mut heads = BTreeMap::new();
        let lagging: Vec<&PartitionLag> = partitions.iter().filter(|p| p.lag > 0).collect();
        if lagging.is_empty() {
            return heads;
        }
        let mut assignment = TopicPartitionList::new();
        for p in &lagging {
            let _ =
                assignment.add_partition_offset(topic, p.partition, Offset::Offset(p.committed));
        }
        let reader = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        if reader.assign(&assignment).is_err() {
            return heads;
        }
        let deadline = Instant::now() + HEAD_READ_BOUND;
        while heads.len() < lagging.len() && Instant::now() < deadline {
            if let Some(Ok(message)) = reader.poll(Duration::from_millis(100)) {
                heads
                    .entry(message.partition())
                    .or_insert_with(|| read(&message));
            }
        }
        let _ = reader.unassign();
        heads
    }
}
