//! JSON Lines input cut into chunks of whole lines, so that several threads can encode them.

use std::io::{self, Read};

/// About this many bytes per chunk (a few thousand small jobs): big enough that handing chunks
/// between threads costs nothing next to encoding them, small enough that the first records
/// reach Kafka within a millisecond or two.
const CHUNK_BYTES: usize = 1 << 20;

/// Whole lines, in input order: every chunk but the last ends with `\n`.
pub struct Chunk {
    /// Its place in the input, from 0.
    pub seq: u64,
    pub bytes: Vec<u8>,
}

impl Chunk {
    /// Its lines without their `\n` or `\r\n`, blank ones included so that a line's index
    /// within the chunk counts the input's lines.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        let body = self.bytes.strip_suffix(b"\n").unwrap_or(&self.bytes);
        body.split(|&b| b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
    }

    /// How many input lines it holds.
    pub fn line_count(&self) -> u64 {
        let newlines = self.bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        let unterminated = !self.bytes.is_empty() && !self.bytes.ends_with(b"\n");
        newlines + u64::from(unterminated)
    }
}

/// Reads `input` chunk by chunk.
pub struct Chunker<R> {
    input: R,
    /// The start of a line the previous chunk did not end with.
    carry: Vec<u8>,
    seq: u64,
}

impl<R: Read> Chunker<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            carry: Vec::new(),
            seq: 0,
        }
    }

    /// The next chunk, or `None` at the end of the input. A line longer than a chunk makes a
    /// chunk of its own, however long. A read that returns less than asked for (a pipe with
    /// nothing more in it yet) ends the chunk at its last whole line, so that jobs streamed in
    /// (`tail -f jobs.jsonl | sluice publish …`) are sent as they come, not once 1 MiB is there.
    pub fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        let mut bytes = std::mem::take(&mut self.carry);
        loop {
            let start = bytes.len();
            let wanted = CHUNK_BYTES.max(start / 2);
            bytes.resize(start + wanted, 0);
            let read = loop {
                match self.input.read(&mut bytes[start..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    result => break result?,
                }
            };
            bytes.truncate(start + read);
            if read == 0 {
                // The end: whatever is left is the last chunk, with or without a final newline.
                return Ok((!bytes.is_empty()).then(|| self.chunk(bytes)));
            }
            if bytes.len() >= CHUNK_BYTES || read < wanted {
                if let Some(end) = bytes.iter().rposition(|&b| b == b'\n') {
                    self.carry = bytes.split_off(end + 1);
                    return Ok(Some(self.chunk(bytes)));
                }
            }
        }
    }

    fn chunk(&mut self, bytes: Vec<u8>) -> Chunk {
        let seq = self.seq;
        self.seq += 1;
        Chunk { seq, bytes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_chunks(input: &[u8]) -> Vec<Chunk> {
        let mut chunker = Chunker::new(input);
        std::iter::from_fn(|| chunker.next_chunk().unwrap()).collect()
    }

    #[test]
    fn chunks_hold_whole_lines_in_order_and_count_them() {
        let line = format!("{{\"payload\":\"{}\"}}", "x".repeat(100));
        let text: String = (0..30_000).map(|_| format!("{line}\n")).collect();
        let chunks = all_chunks(text.as_bytes());
        assert!(chunks.len() > 2, "{} chunks", chunks.len());
        assert!(chunks.iter().enumerate().all(|(i, c)| c.seq == i as u64));
        assert!(chunks.iter().all(|c| c.bytes.ends_with(b"\n")));
        assert_eq!(chunks.iter().map(Chunk::line_count).sum::<u64>(), 30_000);
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.bytes.clone()).collect();
        assert_eq!(joined, text.as_bytes());
        assert!(chunks
            .iter()
            .flat_map(|c| c.lines().collect::<Vec<_>>())
            .all(|l| l == line.as_bytes()));
    }

    #[test]
    fn a_last_line_without_newline_blank_lines_and_crlf_are_lines() {
        let chunks = all_chunks(b"a\r\n\nb");
        assert_eq!(chunks.iter().map(Chunk::line_count).sum::<u64>(), 3);
        let lines: Vec<&[u8]> = chunks.iter().flat_map(Chunk::lines).collect();
        assert_eq!(lines, [&b"a"[..], b"", b"b"]);
        assert!(all_chunks(b"").is_empty());
    }

    /// Hands out one piece per read, like a pipe a line at a time.
    struct Trickle(std::collections::VecDeque<&'static [u8]>);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let piece = self.0.pop_front().unwrap_or_default();
            buf[..piece.len()].copy_from_slice(piece);
            Ok(piece.len())
        }
    }

    #[test]
    fn a_short_read_sends_the_whole_lines_it_has_at_once() {
        let mut chunker = Chunker::new(Trickle(
            [&b"a\n"[..], b"b\nc", b"c\n"].into_iter().collect(),
        ));
        let mut next = || chunker.next_chunk().unwrap().map(|c| c.bytes);
        assert_eq!(
            next().as_deref(),
            Some(&b"a\n"[..]),
            "not held back for more"
        );
        assert_eq!(next().as_deref(), Some(&b"b\n"[..]));
        assert_eq!(
            next().as_deref(),
            Some(&b"cc\n"[..]),
            "the split line joined"
        );
        assert_eq!(next(), None);
    }

    #[test]
    fn a_line_longer_than_a_chunk_stays_whole() {
        let long = "y".repeat(3 * CHUNK_BYTES);
        let text = format!("short\n{long}\nend\n");
        let chunks = all_chunks(text.as_bytes());
        let lines: Vec<Vec<u8>> = chunks
            .iter()
            .flat_map(|c| c.lines().map(<[u8]>::to_vec).collect::<Vec<_>>())
            .collect();
        assert_eq!(
            lines,
            [b"short".to_vec(), long.into_bytes(), b"end".to_vec()]
        );
    }
}
