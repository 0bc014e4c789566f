//! `sluice publish --file`: JSON Lines to Kafka at close to what librdkafka can send.
//!
//! One thread reads the input in chunks of whole lines, one thread per core parses, validates
//! and encodes chunks (the job's record, key and headers), and this thread hands the records to
//! librdkafka strictly in input order — so jobs with the same key keep the order of the file —
//! without awaiting any of them: librdkafka batches them and reports only failed deliveries.

use std::{
    collections::BTreeMap,
    io::Read,
    process::ExitCode,
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc, Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use rdkafka::{
    error::KafkaError,
    message::{DeliveryResult, OwnedHeaders},
    producer::{BaseProducer, BaseRecord, Producer, ProducerContext},
    types::RDKafkaErrorCode,
    util::Timeout,
    ClientContext,
};
use sluice_core::{lanes::Priority, topics::Topics, Config};
use sluice_kinds::Registry;

use super::{
    chunks::{Chunk, Chunker},
    progress_bar, Defaults,
};

/// How long the last records may take to be acknowledged before the run gives up on them.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long records may sit unsent at the start before the producer is nudged (see [`Startup`]).
const STARTUP_NUDGE_AFTER: Duration = Duration::from_millis(20);
/// Invalid lines reported one by one; the summary counts the rest.
const REPORTED_INVALID: u64 = 10;

/// One line made into a record, or why it could not be.
type Line = Result<Encoded, String>;

struct Encoded {
    topic: Arc<str>,
    key: Option<String>,
    value: Vec<u8>,
    headers: Option<OwnedHeaders>,
}

/// A chunk's lines, encoded; blank lines are left out.
struct EncodedChunk {
    seq: u64,
    line_count: u64,
    /// Each with its index among the chunk's lines.
    lines: Vec<(u64, Line)>,
}

/// Counts failed deliveries, reported when the sending thread polls; successes are not reported
/// (`delivery.report.only.error`), which spares a callback per record.
#[derive(Default)]
struct Failures(AtomicU64);

struct CountingContext(Arc<Failures>);

impl ClientContext for CountingContext {
    fn stats(&self, _: rdkafka::statistics::Statistics) {}

    fn error(&self, error: KafkaError, reason: &str) {
        sluice_core::kafka::log_client_error(&error, reason);
    }
}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.0 .0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub fn publish(
    config: &Config,
    registry: &Registry,
    kind: &str,
    input: Box<dyn Read + Send>,
    defaults: &Defaults,
    compression: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let failures = Arc::new(Failures::default());
    let mut producer_config = sluice_core::kafka::producer_config(&config.kafka, DELIVERY_TIMEOUT);
    producer_config.set("delivery.report.only.error", "true");
    // Connect to every broker as soon as the bootstrap answer names it, instead of one at a time
    // at most every `reconnect.backoff.ms / 2` (50 ms by default): a bulk run writes to every
    // partition leader anyway, and the paced connect was ~15 % of a 100 000-record run.
    if !config
        .kafka
        .properties
        .contains_key("enable.sparse.connections")
    {
        producer_config.set("enable.sparse.connections", "false");
    }
    if let Some(codec) = compression {
        producer_config.set("compression.type", codec);
    }
    // Polled by this thread, not by rdkafka's `ThreadedProducer`: that one's polling thread sleeps in
    // 100 ms polls, and joining it at exit added up to 100 ms to every run.
    let producer: BaseProducer<CountingContext> = producer_config
        .create_with_context(CountingContext(failures.clone()))
        .context("creating the Kafka producer")?;
    let topics = Topics::new(&config.topics);
    let progress = progress_bar();
    let started = Instant::now();
    let encoders = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));

    // Buffers go back to where they are filled: fresh ones cost a page fault per 4 KiB, which
    // was a tenth of a run's CPU.
    let (input_buffers, line_buffers) = (Pool::default(), Pool::default());
    let (chunk_tx, chunk_rx) = mpsc::sync_channel::<Chunk>(encoders * 2);
    // Dropped with the last encoder, so that the reader stops when nobody encodes any more.
    let chunk_rx = Arc::new(Mutex::new(chunk_rx));
    let (done_tx, done_rx) = mpsc::sync_channel::<EncodedChunk>(encoders * 2);
    let mut tally = Tally::default();
    let mut startup = Startup::default();
    let read = std::thread::scope(|scope| {
        let input_buffers = &input_buffers;
        let line_buffers = &line_buffers;
        let reader = scope.spawn(move || -> std::io::Result<()> {
            let mut chunker = Chunker::new(input);
            while let Some(chunk) = chunker.next_chunk(input_buffers.take())? {
                if chunk_tx.send(chunk).is_err() {
                    break; // the sender stopped on an error of its own
                }
            }
            Ok(())
        });
        for _ in 0..encoders {
            let (chunk_rx, done_tx) = (chunk_rx.clone(), done_tx.clone());
            let encoder = Encoder::new(registry, &topics, kind, defaults);
            scope.spawn(move || loop {
                let Ok(chunk) = chunk_rx.lock().expect("no panics holding it").recv() else {
                    return;
                };
                let encoded = encoder.encode_chunk(&chunk, line_buffers.take());
                input_buffers.give(chunk.bytes);
                if done_tx.send(encoded).is_err() {
                    return;
                }
            });
        }
        drop((done_tx, chunk_rx));
        let sent = send_in_order(
            &producer,
            done_rx,
            line_buffers,
            &mut tally,
            &mut startup,
            &progress,
        );
        let read = reader.join().expect("the reader does not panic");
        sent.and(read.context("reading input"))
    });
    progress.set_length(tally.sent);

    // Wait on the queue first: flush() alone always sleeps out a whole poll interval (100 ms),
    // a visible share of a sub-second run. The queue's length counts undelivered records,
    // unserved delivery reports and librdkafka's own requests (so it may exceed `sent`); once
    // it is empty every failure has been counted.
    let deadline = Instant::now() + DELIVERY_TIMEOUT + Duration::from_secs(10);
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        let queued = producer.in_flight_count().max(0) as u64;
        progress.set_position(tally.sent.saturating_sub(queued));
        wait_for_deliveries(&producer, &mut startup);
    }
    // Succeeds once no record is left undelivered, whatever requests are still out; it does not
    // serve the reports of the last failures, so one more poll does.
    let flushed = producer.flush(Timeout::After(Duration::from_secs(10)));
    producer.poll(Duration::ZERO);
    let elapsed = started.elapsed();
    // Anything handed over but neither acknowledged nor failed by now is counted as failed.
    let unconfirmed = match flushed {
        Ok(()) => 0,
        Err(_) => producer.in_flight_count().max(0) as u64,
    };
    let failed_deliveries = failures.0.load(Ordering::Relaxed) + unconfirmed;
    let acknowledged = tally.sent.saturating_sub(failed_deliveries);
    let failed = failed_deliveries + tally.invalid;
    progress.finish_and_clear();
    let rate = acknowledged as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
    println!(
        "published {acknowledged} {kind} jobs in {:.2} s ({rate:.0} jobs/s); {failed} failed ({} invalid)",
        elapsed.as_secs_f64(),
        tally.invalid
    );
    read?;
    if let Err(e) = flushed {
        eprintln!("Kafka did not acknowledge every record: {e}");
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Turns lines into records; one per encoding thread.
struct Encoder<'a> {
    registry: &'a Registry,
    topics: &'a Topics,
    kind: &'a str,
    defaults: &'a Defaults,
    /// Every lane's topic, named once instead of once per record.
    lanes: Vec<(Priority, Arc<str>)>,
}

impl<'a> Encoder<'a> {
    fn new(
        registry: &'a Registry,
        topics: &'a Topics,
        kind: &'a str,
        defaults: &'a Defaults,
    ) -> Self {
        let lanes = Priority::ALL
            .into_iter()
            .map(|priority| (priority, topics.lane(kind, priority).into()))
            .collect();
        Self {
            registry,
            topics,
            kind,
            defaults,
            lanes,
        }
    }

    /// Encodes `chunk` into `lines` (emptied first).
    fn encode_chunk(&self, chunk: &Chunk, mut lines: Vec<(u64, Line)>) -> EncodedChunk {
        lines.clear();
        lines.extend(
            chunk
                .lines()
                .enumerate()
                .filter(|(_, line)| !line.trim_ascii().is_empty())
                .map(|(index, line)| (index as u64, self.encode_line(line))),
        );
        EncodedChunk {
            seq: chunk.seq,
            line_count: chunk.line_count(),
            lines,
        }
    }

    fn encode_line(&self, line: &[u8]) -> Line {
        let line = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
        let mut job = self
            .registry
            .prepare_bulk(self.kind, &self.defaults.apply(line))
            .map_err(|e| e.to_string())?;
        let route = job.bulk_route(self.topics, self.kind);
        let topic = match route.topic {
            Some(topic) => topic.into(),
            None => self.lane(job.priority),
        };
        Ok(Encoded {
            topic,
            key: job.ordering_key().map(str::to_owned),
            value: job.value,
            headers: route.headers,
        })
    }

    fn lane(&self, priority: Priority) -> Arc<str> {
        let (_, topic) = self
            .lanes
            .iter()
            .find(|(p, _)| *p == priority)
            .expect("every priority has a lane");
        topic.clone()
    }
}

/// Spare buffers handed back by the thread that emptied them to the one that fills them.
struct Pool<T>(Mutex<Vec<T>>);

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Self(Mutex::new(Vec::new()))
    }
}

impl<T: Default> Pool<T> {
    /// Spares beyond this are dropped; the channels bound how many are in use at once anyway.
    const MAX_SPARES: usize = 32;

    fn take(&self) -> T {
        self.0
            .lock()
            .expect("no panics holding it")
            .pop()
            .unwrap_or_default()
    }

    fn give(&self, spare: T) {
        let mut spares = self.0.lock().expect("no panics holding it");
        if spares.len() < Self::MAX_SPARES {
            spares.push(spare);
        }
    }
}

/// Works around a start-up race in librdkafka's idempotent producer. It asks for a producer id
/// when a metadata answer arrives; if the first answer comes from the bootstrap connection while
/// that connection is being replaced by the broker's own (same address, real node id), no broker
/// is up at that instant and librdkafka retries only on a 500 ms timer. That happened in about
/// half of all small runs and made a one-record publish take 0.51 s instead of 0.02 s. Any later
/// metadata answer from a connected broker asks again, so until the first delivery completes,
/// a stall of [`STARTUP_NUDGE_AFTER`] fetches the topic's metadata once more.
#[derive(Default)]
struct Startup {
    /// The first record's topic; empty until one is sent.
    topic: String,
    delivered_any: bool,
    in_flight: i32,
    /// When `in_flight` last grew, or the last nudge.
    since: Option<Instant>,
}

impl Startup {
    fn sent(&mut self, topic: &str) {
        if self.topic.is_empty() {
            topic.clone_into(&mut self.topic);
        }
    }

    fn nudge_if_stalled(&mut self, producer: &BaseProducer<CountingContext>) {
        if self.delivered_any || self.topic.is_empty() {
            return;
        }
        let in_flight = producer.in_flight_count();
        match self.since {
            _ if in_flight < self.in_flight => self.delivered_any = true,
            Some(since) if in_flight == self.in_flight => {
                if since.elapsed() >= STARTUP_NUDGE_AFTER {
                    // Only the answer's side effect matters; a real outage shows up as failed
                    // deliveries.
                    let _ = producer
                        .client()
                        .fetch_metadata(Some(&self.topic), Duration::from_secs(1));
                    self.since = Some(Instant::now());
                }
            }
            // More in flight than last seen, or the first look: the wait starts now.
            _ => {
                self.in_flight = in_flight;
                self.since = Some(Instant::now());
            }
        }
    }
}

#[derive(Default)]
struct Tally {
    sent: u64,
    invalid: u64,
}

/// Hands every encoded record to librdkafka in input order, reporting invalid lines by number.
fn send_in_order(
    producer: &BaseProducer<CountingContext>,
    done: mpsc::Receiver<EncodedChunk>,
    line_buffers: &Pool<Vec<(u64, Line)>>,
    tally: &mut Tally,
    startup: &mut Startup,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<()> {
    // Chunks finish out of order; each waits here until those before it are sent.
    let mut waiting = BTreeMap::new();
    let (mut next_seq, mut first_line) = (0u64, 1u64);
    for chunk in done {
        waiting.insert(chunk.seq, chunk);
        while let Some(mut chunk) = waiting.remove(&next_seq) {
            for (index, line) in chunk.lines.drain(..) {
                match line {
                    Ok(record) => send(producer, record, startup)?,
                    Err(why) => {
                        tally.invalid += 1;
                        if tally.invalid <= REPORTED_INVALID {
                            progress.suspend(|| eprintln!("line {}: {why}", first_line + index));
                        }
                        continue;
                    }
                }
                tally.sent += 1;
            }
            first_line += chunk.line_count;
            next_seq += 1;
            line_buffers.give(chunk.lines);
            // Serves failed deliveries and client errors; successes are not reported.
            producer.poll(Duration::ZERO);
            let queued = producer.in_flight_count().max(0) as u64;
            progress.set_length(tally.sent);
            progress.set_position(tally.sent.saturating_sub(queued));
        }
    }
    Ok(())
}

fn send(
    producer: &BaseProducer<CountingContext>,
    record: Encoded,
    startup: &mut Startup,
) -> anyhow::Result<()> {
    let mut base = BaseRecord::<str, _>::to(&record.topic).payload(&record.value);
    if let Some(headers) = record.headers {
        base = base.headers(headers);
    }
    if let Some(key) = &record.key {
        base = base.key(key.as_str());
    }
    loop {
        match producer.send(base) {
            Ok(()) => {
                startup.sent(&record.topic);
                return Ok(());
            }
            // librdkafka's queue is full: wait for deliveries to make room, then resend.
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                base = returned;
                wait_for_deliveries(producer, startup);
            }
            Err((e, _)) => return Err(e).context("handing a record to librdkafka"),
        }
    }
}

/// Serves what librdkafka reported, then sleeps a millisecond. Not `poll(1 ms)`: rdkafka turns
/// a timeout under a millisecond into non-blocking polls, so that call spins on the clock and
/// takes a core from librdkafka's broker thread while the last acknowledgements arrive.
fn wait_for_deliveries(producer: &BaseProducer<CountingContext>, startup: &mut Startup) {
    producer.poll(Duration::ZERO);
    std::thread::sleep(Duration::from_millis(1));
    startup.nudge_if_stalled(producer);
}
