//! JSON Lines input cut into chunks of whole lines, so that several threads can encode them.

use std::io::{self, Read};

/// About this many bytes per chunk (a few thousand small jobs): big enough that handing chunks
/// between threads costs nothing next to encoding them.
const CHUNK_BYTES: usize = 1 << 20;
/// The first chunk's size; each next one doubles up to [`CHUNK_BYTES`]. The sender waits for the
/// first chunk to be encoded, and a whole 1 MiB of it (~10 ms) kept librdkafka idle at the start
/// of every run.
const FIRST_CHUNK_BYTES: usize = 32 << 10;

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
    /// The size the next chunk aims at.
    chunk_bytes: usize,
}

impl<R: Read> Chunker<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            carry: Vec::new(),
            seq: 0,
            chunk_bytes: FIRST_CHUNK_BYTES,
        }
    }

    /// The next chunk, or `None` at the end of the input. A line longer than a chunk makes a
    /// chunk of its own, however long. A read that returns less than asked for (a pipe with
    /// nothing more in it yet) ends the chunk at its last whole line, so that jobs streamed in
    /// (`tail -f jobs.jsonl | sluice publish …`) are sent as they come, not once 1 MiB is there.
    ///
    /// The chunk is read into `bytes`, a spare buffer (emptied first) or a new one.
    pub fn next_chunk(&mut self, mut bytes: Vec<u8>) -> io::Result<Option<Chunk>> {
        bytes.clear();
        bytes.append(&mut self.carry);
        loop {
            let start = bytes.len();
            let wanted = self.chunk_bytes.max(start / 2);
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
            if bytes.len() >= self.chunk_bytes || read < wanted {
                if let Some(end) = bytes.iter().rposition(|&b| b == b'\n') {
                    self.carry.extend_from_slice(&bytes[end + 1..]);
                    bytes.truncate(end + 1);
                    return Ok(Some(self.chunk(bytes)));
                }
            }
        }
    }

    fn chunk(&mut self, bytes: Vec<u8>) -> Chunk {
        let seq = self.seq;
        self.seq += 1;
        self.chunk_bytes = (self.chunk_bytes * 2).min(CHUNK_BYTES);
        Chunk { seq, bytes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_chunks(input: &[u8]) -> Vec<Chunk> {
        let mut chunker = Chunker::new(input);
        std::iter::from_fn(|| chunker.next_chunk(Vec::new()).unwrap()).collect()
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
        let mut next = || chunker.next_chunk(Vec::new()).unwrap().map(|c| c.bytes);
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
    fn chunks_start_small_grow_to_full_size_and_reuse_a_spare_buffer() {
        let line = format!("{}\n", "z".repeat(99));
        let text = line.repeat(5 * CHUNK_BYTES / line.len());
        let mut chunker = Chunker::new(text.as_bytes());
        let mut sizes = Vec::new();
        let mut spare = b"leftovers of an earlier chunk".to_vec();
        let mut joined = Vec::new();
        while let Some(chunk) = chunker.next_chunk(std::mem::take(&mut spare)).unwrap() {
            sizes.push(chunk.bytes.len());
            joined.extend_from_slice(&chunk.bytes);
            spare = chunk.bytes;
        }
        assert_eq!(
            joined,
            text.as_bytes(),
            "nothing of the spare's old content"
        );
        assert!(sizes[0] <= FIRST_CHUNK_BYTES, "{sizes:?}");
        assert!(sizes.windows(2).take(5).all(|w| w[1] > w[0]), "{sizes:?}");
        // A chunk may hold up to a line more: the part of a line the previous one left over.
        assert!(
            sizes.iter().all(|&n| n <= CHUNK_BYTES + line.len()),
            "{sizes:?}"
        );
        assert!(
            sizes[sizes.len() - 2] > CHUNK_BYTES - line.len(),
            "{sizes:?}"
        );
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
