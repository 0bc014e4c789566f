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
use sluice_core::{topics::Topics, Config};
use sluice_kinds::Registry;

use super::{
    chunks::{Chunk, Chunker},
    progress_bar, Defaults,
};

/// How long the last records may take to be acknowledged before the run gives up on them.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Invalid lines reported one by one; the summary counts the rest.
const REPORTED_INVALID: u64 = 10;

/// One line made into a record, or why it could not be.
type Line = Result<Encoded, String>;

struct Encoded {
    topic: String,
    key: Option<String>,
    value: Vec<u8>,
    headers: OwnedHeaders,
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

    let (chunk_tx, chunk_rx) = mpsc::sync_channel::<Chunk>(encoders * 2);
    // Dropped with the last encoder, so that the reader stops when nobody encodes any more.
    let chunk_rx = Arc::new(Mutex::new(chunk_rx));
    let (done_tx, done_rx) = mpsc::sync_channel::<EncodedChunk>(encoders * 2);
    let mut tally = Tally::default();
    let read = std::thread::scope(|scope| {
        let reader = scope.spawn(move || -> std::io::Result<()> {
            let mut chunker = Chunker::new(input);
            while let Some(chunk) = chunker.next_chunk()? {
                if chunk_tx.send(chunk).is_err() {
                    break; // the sender stopped on an error of its own
                }
            }
            Ok(())
        });
        for _ in 0..encoders {
            let (chunk_rx, done_tx, topics) = (chunk_rx.clone(), done_tx.clone(), &topics);
            scope.spawn(move || loop {
                let Ok(chunk) = chunk_rx.lock().expect("no panics holding it").recv() else {
                    return;
                };
                let encoded = encode_chunk(registry, topics, kind, defaults, &chunk);
                if done_tx.send(encoded).is_err() {
                    return;
                }
            });
        }
        drop((done_tx, chunk_rx));
        let sent = send_in_order(&producer, done_rx, &mut tally, &progress);
        let read = reader.join().expect("the reader does not panic");
        sent.and(read.context("reading input"))
    });
    progress.set_length(tally.sent);

    // Wait on the queue first: flush() alone always sleeps out a whole poll interval (100 ms),
    // a visible share of a sub-second run. Once the queue is empty every delivery report has
    // been handled, so `failures` is final.
    let deadline = Instant::now() + DELIVERY_TIMEOUT + Duration::from_secs(10);
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        progress.set_position(tally.sent - producer.in_flight_count().max(0) as u64);
        wait_for_deliveries(&producer);
    }
    let flushed = producer.flush(Timeout::After(Duration::from_secs(10)));
    let elapsed = started.elapsed();
    // Anything handed over but neither acknowledged nor failed by now is counted as failed.
    let unconfirmed = producer.in_flight_count().max(0) as u64;
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

fn encode_chunk(
    registry: &Registry,
    topics: &Topics,
    kind: &str,
    defaults: &Defaults,
    chunk: &Chunk,
) -> EncodedChunk {
    let lines = chunk
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_ascii().is_empty())
        .map(|(index, line)| {
            (
                index as u64,
                encode_line(registry, topics, kind, defaults, line),
            )
        })
        .collect();
    EncodedChunk {
        seq: chunk.seq,
        line_count: chunk.line_count(),
        lines,
    }
}

fn encode_line(
    registry: &Registry,
    topics: &Topics,
    kind: &str,
    defaults: &Defaults,
    line: &[u8],
) -> Line {
    let line = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
    let job = registry
        .prepare(kind, &defaults.apply(line))
        .map_err(|e| e.to_string())?;
    let route = job.bulk_route(topics, kind);
    Ok(Encoded {
        topic: route.topic,
        key: job.ordering_key().map(str::to_owned),
        value: job.value,
        headers: route.headers,
    })
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
    tally: &mut Tally,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<()> {
    // Chunks finish out of order; each waits here until those before it are sent.
    let mut waiting = BTreeMap::new();
    let (mut next_seq, mut first_line) = (0u64, 1u64);
    for chunk in done {
        waiting.insert(chunk.seq, chunk);
        while let Some(chunk) = waiting.remove(&next_seq) {
            for (index, line) in chunk.lines {
                match line {
                    Ok(record) => send(producer, record)?,
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
            // Serves failed deliveries and client errors; successes are not reported.
            producer.poll(Duration::ZERO);
            let queued = producer.in_flight_count().max(0) as u64;
            progress.set_length(tally.sent);
            progress.set_position(tally.sent.saturating_sub(queued));
        }
    }
    Ok(())
}

fn send(producer: &BaseProducer<CountingContext>, record: Encoded) -> anyhow::Result<()> {
    let mut base = BaseRecord::<str, _>::to(&record.topic)
        .payload(&record.value)
        .headers(record.headers);
    if let Some(key) = &record.key {
        base = base.key(key.as_str());
    }
    loop {
        match producer.send(base) {
            Ok(()) => return Ok(()),
            // librdkafka's queue is full: wait for deliveries to make room, then resend.
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                base = returned;
                wait_for_deliveries(producer);
            }
            Err((e, _)) => return Err(e).context("handing a record to librdkafka"),
        }
    }
}

/// Serves what librdkafka reported, then sleeps a millisecond. Not `poll(1 ms)`: rdkafka turns
/// a timeout under a millisecond into non-blocking polls, so that call spins on the clock and
/// takes a core from librdkafka's broker thread while the last acknowledgements arrive.
fn wait_for_deliveries(producer: &BaseProducer<CountingContext>) {
    producer.poll(Duration::ZERO);
    std::thread::sleep(Duration::from_millis(1));
}
