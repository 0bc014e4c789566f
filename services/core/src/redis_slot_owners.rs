//! Which master of a Redis Cluster serves each hash slot, as `CLUSTER SLOTS` last said: what
//! lets writes to thousands of unrelated keys go out as one pipeline per node instead of one per
//! slot. The map is only a hint. A node that no longer serves a slot refuses the command, and the
//! caller sends it again the slow way (see `RedisConn::pipeline_on_node`) and has the map read
//! again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{RedisResult, Value};

/// How long a map is trusted before it is read again even if nothing failed: a resharding moves
/// slots without any command of ours being refused until the old owner gives them up.
const MAX_AGE: Duration = Duration::from_secs(10);

/// Slots that no master serves (a cluster being set up or half failed over) map here.
pub const NO_NODE: u16 = u16::MAX;

/// For each of the 16 384 slots, an index standing for the master that serves it.
pub type SlotMap = Arc<[u16]>;

/// The cached map, shared by clones of a connection.
#[derive(Default)]
pub struct SlotOwners {
    cached: Mutex<Option<(Instant, SlotMap)>>,
}

impl SlotOwners {
    /// The map, if one was read less than [`MAX_AGE`] ago and not forgotten since.
    pub fn fresh(&self) -> Option<SlotMap> {
        let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        cached
            .as_ref()
            .filter(|(read_at, _)| read_at.elapsed() < MAX_AGE)
            .map(|(_, map)| map.clone())
    }

    /// Keeps `map`, read just now.
    pub fn store(&self, map: SlotMap) {
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), map));
    }

    /// Drops the map, so the next caller reads it again.
    pub fn forget(&self) {
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The map from a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id…], replicas…], …]`.
/// Masters are numbered in the order they first appear.
pub fn parse_cluster_slots(reply: &Value) -> RedisResult<SlotMap> {
    let malformed = |what: &str| -> redis::RedisError {
        (
            redis::ErrorKind::TypeError,
            "unexpected CLUSTER SLOTS reply",
            what.to_string(),
        )
            .into()
    };
    let Value::Array(ranges) = reply else {
        return Err(malformed("not an array"));
    };
    let mut owners = vec![NO_NODE; 16_384];
    let mut masters: Vec<(Vec<u8>, i64)> = Vec::new();
    for range in ranges {
        let Value::Array(fields) = range else {
            return Err(malformed("a range is not an array"));
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            return Err(malformed("a range lacks start, end or master"));
        };
        let address = match (master.first(), master.get(1)) {
            (Some(Value::BulkString(host)), Some(Value::Int(port))) => (host.clone(), *port),
            _ => return Err(malformed("a master lacks host or port")),
        };
        let node = match masters.iter().position(|known| *known == address) {
            Some(node) => node,
            None => {
                masters.push(address);
                masters.len() - 1
            }
        };
        let (start, end) = (*start, *end);
        if !(0..16_384).contains(&start) || !(start..16_384).contains(&end) {
            return Err(malformed("a slot range out of bounds"));
        }
        for slot in start..=end {
            owners[slot as usize] = node as u16;
        }
    }
    Ok(owners.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"node-id".to_vec()),
        ])
    }

    fn range(start: i64, end: i64, owner: Value) -> Value {
        Value::Array(vec![Value::Int(start), Value::Int(end), owner])
    }

    #[test]
    fn ranges_map_to_their_masters() {
        let reply = Value::Array(vec![
            range(0, 5460, master("10.0.0.1", 7001)),
            range(5461, 10922, master("10.0.0.2", 7002)),
            range(10923, 16000, master("10.0.0.1", 7001)),
        ]);
        let map = parse_cluster_slots(&reply).unwrap();
        assert_eq!(map.len(), 16_384);
        assert_eq!((map[0], map[5460]), (0, 0));
        assert_eq!((map[5461], map[10922]), (1, 1));
        assert_eq!((map[10923], map[16000]), (0, 0));
        assert_eq!(map[16001], NO_NODE, "a slot nobody serves");
    }

    #[test]
    fn a_malformed_reply_is_an_error() {
        assert!(parse_cluster_slots(&Value::Nil).is_err());
        assert!(parse_cluster_slots(&Value::Array(vec![Value::Int(1)])).is_err());
        let out_of_range = Value::Array(vec![range(0, 20_000, master("h", 1))]);
        assert!(parse_cluster_slots(&out_of_range).is_err());
    }

    #[test]
    fn a_map_is_kept_until_forgotten() {
        let owners = SlotOwners::default();
        assert!(owners.fresh().is_none());
        owners.store(vec![0; 16_384].into());
        assert!(owners.fresh().is_some());
        owners.forget();
        assert!(owners.fresh().is_none());
    }
}
