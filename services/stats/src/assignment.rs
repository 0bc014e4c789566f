//! A consumer group member's assignment as the broker hands it out in DescribeGroups: the Kafka
//! consumer protocol's `ConsumerProtocolAssignment` (version i16, then an array of topics — a
//! string and an array of i32 partitions — then user data bytes; every array and byte string
//! prefixed by an i32 length, a string by an i16 length, big-endian, no flexible versions).
//!
//! The bytes come from the broker but were written by whichever client led the group, so they
//! are read with every length checked: anything malformed is an empty assignment, never a panic.

/// The `(topic, partition)` pairs of an assignment, in the order encoded; empty when `bytes`
/// are not a well-formed assignment.
pub fn decode(bytes: &[u8]) -> Vec<(String, i32)> {
    let mut reader = Reader(bytes);
    read_assignment(&mut reader).unwrap_or_default()
}

fn read_assignment(reader: &mut Reader<'_>) -> Option<Vec<(String, i32)>> {
    let version = reader.i16()?;
    if version < 0 {
        return None;
    }
    let mut assigned = Vec::new();
    for _ in 0..reader.count()? {
        let topic = reader.string()?;
        for _ in 0..reader.count()? {
            assigned.push((topic.clone(), reader.i32()?));
        }
    }
    // User data: nullable bytes (-1), which nothing here reads but must be all that is left.
    let user_data = reader.i32()?;
    if user_data >= 0 {
        reader.take(usize::try_from(user_data).ok()?)?;
    } else if user_data != -1 {
        return None;
    }
    // Later versions may append fields; like Kafka's own reader, this one ignores what follows.
    Some(assigned)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    /// An array length: never negative here (a null array is not a valid assignment), and
    /// never more elements than bytes left, so a forged length allocates nothing.
    fn count(&mut self) -> Option<usize> {
        let n = usize::try_from(self.i32()?).ok()?;
        (n <= self.0.len()).then_some(n)
    }

    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.i16()?).ok()?;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An assignment as a Java or librdkafka consumer leader encodes it.
    fn encode(version: i16, topics: &[(&str, &[i32])], user_data: Option<&[u8]>) -> Vec<u8> {
        let mut out = version.to_be_bytes().to_vec();
        out.extend((topics.len() as i32).to_be_bytes());
        for (topic, partitions) in topics {
            out.extend((topic.len() as i16).to_be_bytes());
            out.extend(topic.as_bytes());
            out.extend((partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                out.extend(p.to_be_bytes());
            }
        }
        match user_data {
            Some(data) => {
                out.extend((data.len() as i32).to_be_bytes());
                out.extend(data);
            }
            None => out.extend((-1i32).to_be_bytes()),
        }
        out
    }

    fn pairs(list: &[(&str, i32)]) -> Vec<(String, i32)> {
        list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    #[test]
    fn reads_every_topic_and_partition_in_order() {
        let bytes = encode(
            0,
            &[("jobs.email", &[0, 2]), ("jobs.email.retry.1m", &[1])],
            None,
        );
        assert_eq!(
            decode(&bytes),
            pairs(&[
                ("jobs.email", 0),
                ("jobs.email", 2),
                ("jobs.email.retry.1m", 1)
            ])
        );
    }

    #[test]
    fn user_data_and_later_versions_are_read_past() {
        let bytes = encode(1, &[("t", &[3])], Some(b"sticky"));
        assert_eq!(decode(&bytes), pairs(&[("t", 3)]));
        let mut longer = encode(3, &[("t", &[4])], None);
        longer.extend([0, 0, 0, 0]);
        assert_eq!(decode(&longer), pairs(&[("t", 4)]));
    }

    #[test]
    fn an_empty_assignment_is_empty() {
        assert!(decode(&encode(0, &[], None)).is_empty());
        assert!(decode(&[]).is_empty());
    }

    #[test]
    fn malformed_bytes_are_an_empty_assignment() {
        let good = encode(0, &[("jobs.email", &[0, 1, 2])], Some(b"x"));
        // Every truncation, and every byte flipped to a large or negative length.
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_empty(), "cut at {cut}");
        }
        for at in 0..good.len() {
            for value in [0x7f, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[at] = value;
                let decoded = decode(&bad);
                assert!(decoded.len() <= 3, "byte {at} = {value:#x}: {decoded:?}");
            }
        }
        // A forged array length claims more elements than there are bytes.
        let mut forged = 0i16.to_be_bytes().to_vec();
        forged.extend(i32::MAX.to_be_bytes());
        assert!(decode(&forged).is_empty());
        // A negative version, a null topic array, a topic that is not UTF-8.
        assert!(decode(&encode(-1, &[("t", &[0])], None)).is_empty());
        let mut null_array = 0i16.to_be_bytes().to_vec();
        null_array.extend((-1i32).to_be_bytes());
        null_array.extend((-1i32).to_be_bytes());
        assert!(decode(&null_array).is_empty());
        let mut not_utf8 = encode(0, &[("tt", &[0])], None);
        not_utf8[8] = 0xff;
        assert!(decode(&not_utf8).is_empty());
    }
}
