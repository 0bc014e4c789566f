//! `image`: an image in storage made into thumbnails. Reads the original (bounded in bytes),
//! decodes it under a pixel limit, applies its EXIF orientation, fits each configured variant
//! into its box, re-encodes it without metadata and stores it next to the original. The result
//! lists the original and every variant (key, URL, width, height, bytes); with `notify_url` the
//! job enqueues a signed `webhook` carrying that result — a follow-up job, produced before this
//! job's offset is stored.
//!
//! Hostile input (a non-image, a truncated file, a decompression bomb) is `fatal`: the same
//! bytes would fail the same way on every attempt. A store that is down is retryable.

use std::sync::Arc;

use apache_avro::types::Value;
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use sluice_core::json::FieldError;
use sluice_storage::{check_key, parent, Storage, StorageError};
use sluice_thumbnail::{Limits, OutputType, ThumbnailError, Variant, VariantSpec};
use tokio::sync::Semaphore;

use crate::{
    handler::{ErrorClass, Handler, Job, JobFailure, Outcome},
    kind::{parse_settings, HandlerType, KindError, Settings},
};

/// The webhook event a finished image sends to its `notify_url`.
pub const PROCESSED_EVENT: &str = "image.processed";

/// `[kinds.image]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageSettings {
    /// The boxes variants are fit into, one variant each: `[800, 200]` (the default) makes an
    /// 800 × 800 and a 200 × 200 thumbnail. Never enlarged beyond the original.
    #[serde(default = "default_variants")]
    variants: Vec<u32>,
    /// `jpeg` (the default) or `webp` (lossless, keeps transparency).
    #[serde(default = "default_format")]
    format: String,
    /// JPEG quality, 1–100. Default 82.
    #[serde(default = "default_quality")]
    quality: u8,
    /// Pixels (width × height) an original may declare at most; larger ones are refused before
    /// they are decoded. Default 50 000 000.
    #[serde(default = "default_max_pixels")]
    max_pixels: u64,
    /// Bytes of an original read at most. Default 50 MiB.
    #[serde(default = "default_max_source_bytes")]
    max_source_bytes: u64,
}

fn default_variants() -> Vec<u32> {
    vec![800, 200]
}

fn default_format() -> String {
    "jpeg".into()
}

fn default_quality() -> u8 {
    82
}

fn default_max_pixels() -> u64 {
    Limits::default().max_pixels
}

fn default_max_source_bytes() -> u64 {
    50 * 1024 * 1024
}

impl ImageSettings {
    fn specs(&self, kind: &str) -> Result<Vec<VariantSpec>, KindError> {
        let output = match self.format.as_str() {
            "jpeg" => OutputType::Jpeg {
                quality: self.quality,
            },
            "webp" => OutputType::WebPLossless,
            other => {
                return Err(KindError::key(
                    kind,
                    "format",
                    format!("`{other}`: must be `jpeg` or `webp`"),
                ))
            }
        };
        if !(1..=100).contains(&self.quality) {
            return Err(KindError::key(kind, "quality", "must be between 1 and 100"));
        }
        if self.variants.is_empty() || self.variants.iter().any(|s| !(16..=8192).contains(s)) {
            return Err(KindError::key(
                kind,
                "variants",
                "one or more sizes, each between 16 and 8192 pixels",
            ));
        }
        if self.max_pixels == 0 || self.max_source_bytes == 0 {
            return Err(KindError::Setting {
                kind: kind.to_owned(),
                problem: "max_pixels and max_source_bytes must be at least 1".into(),
            });
        }
        Ok(self
            .variants
            .iter()
            .map(|&max_side| VariantSpec { max_side, output })
            .collect())
    }
}

/// The record, as the schema `schemas/image` defines it.
#[derive(Debug, Deserialize)]
struct ImageJob {
    object: String,
    notify_url: Option<String>,
}

pub struct Image;

impl HandlerType for Image {
    fn name(&self) -> &'static str {
        "image"
    }

    fn built_in(&self) -> bool {
        true
    }

    fn validate(&self, record: &Value) -> Result<(), FieldError> {
        let job: ImageJob = apache_avro::from_value(record)
            .map_err(|e| FieldError::new("", format!("not an image record: {e}")))?;
        check_key(&job.object).map_err(|e| FieldError::new("object", e.problem))?;
        if let Some(url) = &job.notify_url {
            if !crate::webhook::is_http_url(url) || url.len() > 2048 {
                return Err(FieldError::new(
                    "notify_url",
                    "must be an absolute http:// or https:// URL of at most 2048 bytes",
                ));
            }
        }
        Ok(())
    }

    fn field_hints(&self) -> serde_json::Value {
        json!({
            "object": {"pattern": "^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", "maxLength": 512},
            "notify_url": {"anyOf": [{"type": "null"}, {"type": "string", "pattern": "^https?://.", "maxLength": 2048}]},
        })
    }

    fn check(&self, kind: &str, settings: &Settings) -> Result<(), KindError> {
        let settings: ImageSettings = parse_settings(kind, settings)?;
        settings.specs(kind).map(|_| ())
    }

    fn build(
        &self,
        kind: &str,
        settings: &Settings,
        config: &sluice_core::Config,
    ) -> Result<Arc<dyn Handler>, KindError> {
        let settings: ImageSettings = parse_settings(kind, settings)?;
        let storage = Storage::open(&config.storage).map_err(|e| KindError::Setting {
            kind: kind.to_owned(),
            problem: e.to_string(),
        })?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Arc::new(ImageHandler {
            specs: settings.specs(kind)?,
            limits: Limits {
                max_pixels: settings.max_pixels,
            },
            max_source_bytes: settings.max_source_bytes,
            storage,
            cpu: Arc::new(Semaphore::new(cores)),
        }))
    }
}

struct ImageHandler {
    specs: Vec<VariantSpec>,
    limits: Limits,
    max_source_bytes: u64,
    storage: Storage,
    /// Decoding and resizing take a core each: more at once only adds decoded images in memory
    /// (a 12-megapixel photo is ~50 MB), while fetching and storing may overlap freely.
    cpu: Arc<Semaphore>,
}

fn fatal(message: impl Into<String>) -> JobFailure {
    JobFailure::new(ErrorClass::Fatal, message)
}

fn storage_failure(error: StorageError) -> JobFailure {
    let class = if error.is_transient() {
        ErrorClass::Retryable
    } else {
        ErrorClass::Fatal
    };
    JobFailure::new(class, error.to_string())
}

impl ImageHandler {
    /// Decode and every variant, on a blocking thread (they take tens of milliseconds of CPU).
    async fn make(
        &self,
        original: bytes::Bytes,
    ) -> Result<(sluice_thumbnail::SourceType, u32, u32, Vec<Variant>), JobFailure> {
        let _core = self
            .cpu
            .acquire()
            .await
            .map_err(|_| JobFailure::new(ErrorClass::Retryable, "worker is stopping"))?;
        let specs = self.specs.clone();
        let limits = self.limits;
        let work = tokio::task::spawn_blocking(move || {
            let source = sluice_thumbnail::decode(&original, &limits)?;
            let made = specs
                .iter()
                .map(|spec| sluice_thumbnail::variant(&source, *spec))
                .collect::<Result<Vec<_>, ThumbnailError>>()?;
            Ok::<_, ThumbnailError>((source.source_type, source.width(), source.height(), made))
        });
        match work.await {
            Ok(result) => result.map_err(|e| fatal(e.to_string())),
            Err(e) if e.is_panic() => Err(JobFailure::new(
                ErrorClass::Panic,
                "the image decoder panicked",
            )),
            Err(_) => Err(JobFailure::new(ErrorClass::Retryable, "worker is stopping")),
        }
    }
}

#[async_trait]
impl Handler for ImageHandler {
    async fn handle(&self, job: &Job) -> Result<Outcome, JobFailure> {
        let record: ImageJob = apache_avro::from_value(&job.record)
            .map_err(|e| JobFailure::new(ErrorClass::Decode, e.to_string()))?;
        let original = self
            .storage
            .get(&record.object, self.max_source_bytes)
            .await
            .map_err(storage_failure)?;
        let original_bytes = original.len();
        let (source_type, width, height, made) = self.make(original).await?;
        let folder = parent(&record.object);
        let mut variants = Vec::with_capacity(made.len());
        for variant in made {
            let name = format!("{}.{}", variant.max_side, variant.extension());
            let key = if folder.is_empty() {
                name
            } else {
                format!("{folder}/{name}")
            };
            let (size, content_type) = (variant.bytes.len(), variant.content_type());
            self.storage
                .put(&key, variant.bytes.into())
                .await
                .map_err(storage_failure)?;
            variants.push(json!({
                "max_side": variant.max_side,
                "key": key,
                "url": self.storage.url(&key),
                "content_type": content_type,
                "width": variant.width,
                "height": variant.height,
                "bytes": size,
            }));
        }
        let result = json!({
            "original": {
                "key": record.object,
                "url": self.storage.url(&record.object),
                "content_type": source_type.content_type(),
                "width": width,
                "height": height,
                "bytes": original_bytes,
            },
            "variants": variants,
        });
        let mut outcome = Outcome::with_result(result.clone());
        if let Some(url) = record.notify_url {
            let payload = json!({"job_id": job.id, "event": PROCESSED_EVENT, "image": result});
            outcome = outcome.then_enqueue(
                "webhook",
                json!({"url": url, "event_type": PROCESSED_EVENT, "payload": payload.to_string()}),
            );
        }
        Ok(outcome)
    }
}
