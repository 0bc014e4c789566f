//! Shared pieces of every sluice role: configuration, the Avro codec and schema registry, topic
//! names, Kafka client settings, record headers, job status, metrics, logging and shutdown.

pub mod avro_body;
pub mod codec;
pub mod config;
pub mod delays;
pub mod endpoints;
pub mod headers;
pub mod hooks;
pub mod in_flight;
pub mod json;
pub mod kafka;
pub mod kafka_stats;
pub mod lanes;
pub mod metrics;
pub mod outcomes;
pub mod redact;
pub mod redis_conn;
pub mod redis_slot_owners;
pub mod replication;
pub mod retry;
pub mod schedules;
pub mod schema_dir;
pub mod shutdown;
pub mod status;
pub mod status_writer;
pub mod telemetry;
pub mod tokens;
pub mod topic_setup;
pub mod topics;

pub use config::Config;
