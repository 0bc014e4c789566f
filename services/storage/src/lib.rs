//! Object storage for uploads and what jobs make of them: a local directory (the default, so
//! `make run` needs nothing else) or any S3-compatible store, both through `object_store`.
//! Every key is checked (`check_key`) before it reaches a store, so a key from a URL or a record
//! cannot name anything outside the storage root.

mod key;

use std::sync::Arc;

use bytes::Bytes;
use futures::{stream::BoxStream, StreamExt, TryStreamExt};
use object_store::{
    aws::{AmazonS3Builder, AmazonS3ConfigKey},
    buffered::BufWriter,
    local::LocalFileSystem,
    path::Path,
    ObjectStore, PutPayload,
};
use sluice_core::config::StorageConfig;
use tokio::io::AsyncWriteExt;

pub use key::{check_key, parent, KeyError};

/// An upload is buffered up to this much, then sent in parts of this size: S3's smallest part,
/// so memory per upload stays bounded whatever its size.
const PART_BYTES: usize = 5 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage.{key}: {problem}")]
    Config { key: String, problem: String },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("no object `{0}` in storage")]
    NotFound(String),
    #[error("object `{key}` has {size} bytes, over the limit of {limit}")]
    TooLarge { key: String, size: u64, limit: u64 },
    #[error("storage: {0}")]
    Backend(String),
}

impl StorageError {
    fn from_store(key: &str, error: object_store::Error) -> Self {
        match error {
            object_store::Error::NotFound { .. } => StorageError::NotFound(key.to_owned()),
            other => StorageError::Backend(other.to_string()),
        }
    }

    /// True when trying again later may work (the store is down or slow), false when the same
    /// request will fail the same way.
    pub fn is_transient(&self) -> bool {
        matches!(self, StorageError::Backend(_))
    }
}

/// The configured store.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// Prepended to every key (the `prefix` of `s3://bucket/prefix`).
    prefix: String,
    public_url: String,
    /// Where objects go, for logs: no credentials.
    location: String,
}

impl Storage {
    pub fn open(config: &StorageConfig) -> Result<Self, StorageError> {
        let url = config.url.trim();
        let config_error = |key: &str, problem: String| StorageError::Config {
            key: key.to_owned(),
            problem,
        };
        let (store, prefix, location): (Arc<dyn ObjectStore>, &str, String) =
            if let Some(rest) = url.strip_prefix("s3://") {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(config_error("url", "`s3://` needs a bucket name".into()));
                }
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
                for (key, value) in &config.options {
                    let setting: AmazonS3ConfigKey = key.parse().map_err(|_| {
                        config_error(
                            &format!("options.{key}"),
                            "not an S3 setting of object_store (e.g. aws_endpoint)".into(),
                        )
                    })?;
                    builder = builder.with_config(setting, value);
                }
                let store = builder
                    .build()
                    .map_err(|e| config_error("url", e.to_string()))?;
                (Arc::new(store), prefix, format!("s3://{bucket}"))
            } else if url.contains("://") && !url.starts_with("file://") {
                return Err(config_error(
                    "url",
                    format!("`{url}`: use a directory, file:///dir or s3://bucket/prefix"),
                ));
            } else {
                let dir = url.strip_prefix("file://").unwrap_or(url);
                std::fs::create_dir_all(dir)
                    .map_err(|e| config_error("url", format!("creating `{dir}`: {e}")))?;
                let store = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| config_error("url", format!("`{dir}`: {e}")))?;
                (Arc::new(store), "", dir.to_owned())
            };
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            check_key(prefix).map_err(|e| config_error("url", e.to_string()))?;
        }
        Ok(Self {
            store,
            prefix: prefix.to_owned(),
            public_url: config.public_url.trim_end_matches('/').to_owned(),
            location: location.to_owned() + if prefix.is_empty() { "" } else { "/" } + prefix,
        })
    }

    /// Where objects go (a directory or `s3://bucket/prefix`), for logs.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The URL a client fetches `key` from.
    pub fn url(&self, key: &str) -> String {
        format!("{}/{key}", self.public_url)
    }

    fn path(&self, key: &str) -> Result<Path, StorageError> {
        check_key(key)?;
        Ok(if self.prefix.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.prefix))
        })
    }

    /// Starts writing `key`; nothing is visible under it until `Upload::finish`.
    pub fn upload(&self, key: &str) -> Result<Upload, StorageError> {
        let writer = BufWriter::with_capacity(self.store.clone(), self.path(key)?, PART_BYTES);
        Ok(Upload {
            writer,
            key: key.to_owned(),
            written: 0,
        })
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        let path = self.path(key)?;
        self.store
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map(|_| ())
            .map_err(|e| StorageError::from_store(key, e))
    }

    /// The whole object, if it has at most `limit` bytes (checked before reading it).
    pub async fn get(&self, key: &str, limit: u64) -> Result<Bytes, StorageError> {
        let path = self.path(key)?;
        let object = self
            .store
            .get(&path)
            .await
            .map_err(|e| StorageError::from_store(key, e))?;
        if object.meta.size > limit {
            return Err(StorageError::TooLarge {
                key: key.to_owned(),
                size: object.meta.size,
                limit,
            });
        }
        object
            .bytes()
            .await
            .map_err(|e| StorageError::from_store(key, e))
    }

    /// The object as a stream of chunks, with its size: for serving it without holding it.
    pub async fn read(
        &self,
        key: &str,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes, StorageError>>), StorageError> {
        let path = self.path(key)?;
        let object = self
            .store
            .get(&path)
            .await
            .map_err(|e| StorageError::from_store(key, e))?;
        let size = object.meta.size;
        let owned_key = key.to_owned();
        let chunks = object
            .into_stream()
            .map_err(move |e| StorageError::from_store(&owned_key, e))
            .boxed();
        Ok((size, chunks))
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StorageError::from_store(key, e)),
        }
    }
}

/// An object being written in parts; dropped without `finish`, nothing appears under its key
/// (call `abort` to also free the parts a store already holds).
pub struct Upload {
    writer: BufWriter,
    key: String,
    written: u64,
}

impl Upload {
    pub async fn put(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        self.written += chunk.len() as u64;
        self.writer
            .put(chunk)
            .await
            .map_err(|e| StorageError::from_store(&self.key, e))
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Completes the object; returns its size.
    pub async fn finish(mut self) -> Result<u64, StorageError> {
        self.writer
            .shutdown()
            .await
            .map_err(|e| StorageError::Backend(format!("completing `{}`: {e}", self.key)))?;
        Ok(self.written)
    }

    pub async fn abort(mut self) {
        let _ = self.writer.abort().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(dir: &std::path::Path) -> Storage {
        Storage::open(&StorageConfig {
            url: dir.display().to_string(),
            ..StorageConfig::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn an_upload_appears_only_when_finished_and_reads_back() {
        let dir = std::env::temp_dir().join(format!("sluice-storage-{}", std::process::id()));
        let storage = local(&dir);
        let mut upload = storage.upload("images/a/original.jpg").unwrap();
        upload.put(Bytes::from_static(b"hello ")).await.unwrap();
        upload
            .put(Bytes::from(vec![b'x'; PART_BYTES + 1]))
            .await
            .unwrap();
        assert!(matches!(
            storage.get("images/a/original.jpg", u64::MAX).await,
            Err(StorageError::NotFound(_))
        ));
        assert_eq!(upload.finish().await.unwrap(), 6 + PART_BYTES as u64 + 1);
        let bytes = storage
            .get("images/a/original.jpg", u64::MAX)
            .await
            .unwrap();
        assert_eq!(&bytes[..6], b"hello ");
        assert!(matches!(
            storage.get("images/a/original.jpg", 10).await,
            Err(StorageError::TooLarge { size, .. }) if size == bytes.len() as u64
        ));
        assert_eq!(storage.url("images/a/800.jpg"), "/files/images/a/800.jpg");
        storage.delete("images/a/original.jpg").await.unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_urls_and_options_name_the_key() {
        let error = |url: &str, options: &[(&str, &str)]| {
            Storage::open(&StorageConfig {
                url: url.into(),
                options: options
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
                ..StorageConfig::default()
            })
            .err()
            .expect("refused")
            .to_string()
        };
        assert!(error("gs://bucket", &[]).contains("storage.url"));
        assert!(error("s3://", &[]).contains("bucket"));
        assert!(error("s3://b/p", &[("colour", "blue")]).contains("storage.options.colour"));
    }
}
