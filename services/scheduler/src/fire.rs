//! The transactional fire: a tick's job and its fired-tick record are written in one Kafka
//! transaction, so they exist together or not at all (workers and the fired-tick reader read
//! committed records only).
//!
//! Every replica uses the same `transactional.id`. A new leader's `init_transactions` bumps the
//! producer epoch: the previous leader's producer is fenced (its next transactional call fails)
//! and a transaction it left open is aborted, or finished first if it was committing. Only after
//! that does the new leader read the fired ticks, so it sees exactly what was committed and no
//! one else can commit until it is fenced in turn.

use std::time::Duration;

use rdkafka::{
    error::KafkaError,
    message::OwnedHeaders,
    producer::{FutureProducer, FutureRecord, Producer},
};
use sluice_core::{config::KafkaConfig, kafka_stats::KafkaStats, kafka_stats::StatsContext};

/// How long `init_transactions` may take (it waits for an open transaction of a previous
/// leader to be aborted).
const INIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a commit (or abort) may take.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(15);
/// A record not acknowledged within this fails the transaction. At most the transaction
/// timeout, as librdkafka requires.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The broker aborts a transaction of a producer that went silent for this long. A dead
/// leader's open transaction is aborted sooner, by the next leader's `init_transactions`.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum FireError {
    #[error("creating the transactional producer: {0}")]
    Create(#[source] KafkaError),
    #[error("init_transactions (fencing any previous leader): {0}")]
    Init(#[source] KafkaError),
    #[error("transaction failed (nothing of it is visible): {0}")]
    Transaction(#[source] KafkaError),
    #[error(transparent)]
    Read(#[from] sluice_schedules::fired::FiredError),
    #[error("the fire task panicked")]
    Panicked,
}

/// One record of a fire transaction.
pub struct Record {
    pub topic: String,
    pub key: String,
    pub value: Vec<u8>,
    pub headers: Option<OwnedHeaders>,
}

/// A leadership term's producer: created and initialised when a replica becomes leader, dropped
/// when it stops leading or a transaction fails (a fenced producer cannot be used again).
pub struct Term {
    producer: FutureProducer<StatsContext>,
}

impl Term {
    /// A fresh transactional producer under `transactional_id`, initialised: every earlier
    /// producer with that id is fenced once this returns.
    pub async fn begin(
        kafka: &KafkaConfig,
        transactional_id: &str,
        kafka_stats: KafkaStats,
    ) -> Result<Self, FireError> {
        let mut config = sluice_core::kafka::producer_config(kafka, DELIVERY_TIMEOUT);
        config.set(
            "transaction.timeout.ms",
            TRANSACTION_TIMEOUT.as_millis().to_string(),
        );
        let mut config = sluice_core::kafka::with_statistics(config, kafka);
        config.set("transactional.id", transactional_id);
        let producer: FutureProducer<StatsContext> = config
            .create_with_context(StatsContext(kafka_stats))
            .map_err(FireError::Create)?;
        let initialising = producer.clone();
        tokio::task::spawn_blocking(move || initialising.init_transactions(INIT_TIMEOUT))
            .await
            .map_err(|_| FireError::Panicked)?
            .map_err(FireError::Init)?;
        Ok(Self { producer })
    }

    /// Writes `records` in one transaction and commits it. An error means none of them is
    /// visible to read_committed readers, or (a commit whose outcome is unknown) that the next
    /// term's `init_transactions` settles it; either way this term must end.
    pub async fn commit(&self, records: Vec<Record>) -> Result<(), FireError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || {
            let transaction = || -> Result<(), KafkaError> {
                producer.begin_transaction()?;
                for record in &records {
                    let mut future = FutureRecord::to(&record.topic)
                        .key(&record.key)
                        .payload(&record.value);
                    if let Some(headers) = &record.headers {
                        future = future.headers(headers.clone());
                    }
                    // Delivery is checked by the commit, which flushes and fails if any
                    // record of the transaction failed.
                    producer.send_result(future).map_err(|(error, _)| error)?;
                }
                producer.commit_transaction(COMMIT_TIMEOUT)
            };
            transaction().inspect_err(|_| {
                // Best effort: a fenced producer cannot abort, and the next leader's
                // init_transactions aborts whatever is left open.
                let _ = producer.abort_transaction(COMMIT_TIMEOUT);
            })
        })
        .await
        .map_err(|_| FireError::Panicked)?
        .map_err(FireError::Transaction)
    }

    /// Ends the term. Dropping a producer may block while librdkafka shuts it down.
    pub async fn end(self) {
        let _ = tokio::task::spawn_blocking(move || drop(self.producer)).await;
    }
}
