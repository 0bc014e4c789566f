//! Avro single-object encoding (Avro specification, "Single object encoding"):
//! `C3 01`, the 8-byte little-endian CRC-64-AVRO (Rabin) fingerprint of the writer schema's
//! Parsing Canonical Form, then the Avro binary body.
//!
//! Readers resolve whichever registered version wrote a record to the newest version of the same
//! type, so producers on an older schema keep working. Anything else — a short buffer, a wrong
//! magic, an unknown fingerprint, a record of another type, a body that does not decode or has
//! trailing bytes — is a [`DecodeError`], which consumers dead-letter instead of retrying.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, OnceLock},
};

use apache_avro::{types::Value, GenericSingleObjectWriter, Schema};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_schemas.rs"));
}

/// The two bytes every single-object encoded value starts with.
pub const MAGIC: [u8; 2] = [0xC3, 0x01];
/// Magic plus fingerprint.
pub const HEADER_LEN: usize = 10;

/// One version of one record type, as found in `schemas/<type_name>/v<version>.avsc`.
#[derive(Debug)]
pub struct SchemaVersion {
    pub type_name: String,
    pub version: u32,
    pub schema: Schema,
    /// CRC-64-AVRO of the Parsing Canonical Form.
    pub fingerprint: u64,
}

impl SchemaVersion {
    /// The 10-byte single-object header for values written with this version.
    pub fn header(&self) -> [u8; HEADER_LEN] {
        let mut header = [0u8; HEADER_LEN];
        header[..2].copy_from_slice(&MAGIC);
        header[2..].copy_from_slice(&self.fingerprint.to_le_bytes());
        header
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schema {type_name} v{version} does not parse: {source}")]
    Parse {
        type_name: String,
        version: u32,
        source: apache_avro::Error,
    },
    #[error("schemas {first} and {second} have the same fingerprint {fingerprint:016x}")]
    DuplicateFingerprint {
        first: String,
        second: String,
        fingerprint: u64,
    },
    #[error("unknown schema type `{0}`")]
    UnknownType(String),
    #[error("value does not match schema {type_name}: {source}")]
    Encode {
        type_name: String,
        source: apache_avro::Error,
    },
    #[error("schema file {}: {problem}", path.display())]
    File {
        path: std::path::PathBuf,
        problem: String,
    },
    #[error("schema {path}: {problem}")]
    Incompatible { path: String, problem: String },
}

/// Why bytes on a topic are not a record sluice can read. Never retryable.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("{0} bytes is shorter than the 10-byte single-object header")]
    TooShort(usize),
    #[error("not Avro single-object encoding (first bytes {0:02x} {1:02x}, expected c3 01)")]
    BadMagic(u8, u8),
    #[error("unknown schema fingerprint {0:016x}")]
    UnknownFingerprint(u64),
    #[error("record is a {found}, expected a {expected}")]
    WrongType { expected: String, found: String },
    #[error("body does not decode with {type_name} v{version}: {message}")]
    Body {
        type_name: String,
        version: u32,
        message: String,
    },
    #[error("{0} trailing bytes after the record")]
    TrailingBytes(usize),
}

/// A decoded record, resolved to the newest version of its type.
#[derive(Debug)]
pub struct Decoded {
    pub value: Value,
    pub writer: Arc<SchemaVersion>,
}

/// Every schema version sluice knows, by type and by fingerprint.
#[derive(Debug)]
pub struct SchemaRegistry {
    by_type: BTreeMap<String, Vec<Arc<SchemaVersion>>>,
    by_fingerprint: HashMap<u64, Arc<SchemaVersion>>,
    /// For records written with their type's newest version (nearly all of them): a reader with
    /// the schema's names resolved once, since nothing needs resolving between versions.
    newest_readers: HashMap<u64, NewestReader>,
}

struct NewestReader(apache_avro::GenericSingleObjectReader);

impl std::fmt::Debug for NewestReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewestReader")
    }
}

impl SchemaRegistry {
    /// The schemas embedded at build time from the repository's `schemas/` folder.
    pub fn embedded() -> &'static SchemaRegistry {
        static REGISTRY: OnceLock<SchemaRegistry> = OnceLock::new();
        REGISTRY.get_or_init(|| {
            SchemaRegistry::from_sources(embedded_sources())
                .expect("schemas/ was checked when this binary was built and tested")
        })
    }

    /// Builds a registry from `(type name, version, schema JSON)` triples.
    pub fn from_sources<'a>(
        sources: impl IntoIterator<Item = (&'a str, u32, &'a str)>,
    ) -> Result<Self, SchemaError> {
        let mut by_type: BTreeMap<String, Vec<Arc<SchemaVersion>>> = BTreeMap::new();
        let mut by_fingerprint: HashMap<u64, Arc<SchemaVersion>> = HashMap::new();
        for (type_name, version, json) in sources {
            let schema = Schema::parse_str(json).map_err(|source| SchemaError::Parse {
                type_name: type_name.to_owned(),
                version,
                source,
            })?;
            let fingerprint = rabin_fingerprint(schema.canonical_form().as_bytes());
            let entry = Arc::new(SchemaVersion {
                type_name: type_name.to_owned(),
                version,
                schema,
                fingerprint,
            });
            if let Some(previous) = by_fingerprint.insert(fingerprint, entry.clone()) {
                return Err(SchemaError::DuplicateFingerprint {
                    first: format!("{} v{}", previous.type_name, previous.version),
                    second: format!("{type_name} v{version}"),
                    fingerprint,
                });
            }
            by_type.entry(type_name.to_owned()).or_default().push(entry);
        }
        let mut newest_readers = HashMap::new();
        for versions in by_type.values_mut() {
            versions.sort_by_key(|v| v.version);
            let newest = versions.last().expect("a type has a version");
            let reader = apache_avro::GenericSingleObjectReader::new(newest.schema.clone())
                .map_err(|source| SchemaError::Parse {
                    type_name: newest.type_name.clone(),
                    version: newest.version,
                    source,
                })?;
            newest_readers.insert(newest.fingerprint, NewestReader(reader));
        }
        Ok(Self {
            by_type,
            by_fingerprint,
            newest_readers,
        })
    }

    /// Names of every registered record type.
    pub fn type_names(&self) -> impl Iterator<Item = &str> {
        self.by_type.keys().map(String::as_str)
    }

    /// All versions of a type, oldest first.
    pub fn versions(&self, type_name: &str) -> &[Arc<SchemaVersion>] {
        self.by_type
            .get(type_name)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The newest version of a type: what sluice writes and resolves into.
    pub fn latest(&self, type_name: &str) -> Option<&Arc<SchemaVersion>> {
        self.versions(type_name).last()
    }

    /// Encodes `value` with the newest version of `type_name`.
    pub fn encode(&self, type_name: &str, value: Value) -> Result<Vec<u8>, SchemaError> {
        let latest = self
            .latest(type_name)
            .ok_or_else(|| SchemaError::UnknownType(type_name.to_owned()))?;
        encode_with(latest, value)
    }

    /// Decodes a single-object encoded record that must be of type `type_name`, resolving it from
    /// its writer version to the newest version.
    pub fn decode(&self, type_name: &str, bytes: &[u8]) -> Result<Decoded, DecodeError> {
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::TooShort(bytes.len()));
        }
        if bytes[..2] != MAGIC {
            return Err(DecodeError::BadMagic(bytes[0], bytes[1]));
        }
        let fingerprint = u64::from_le_bytes(bytes[2..HEADER_LEN].try_into().expect("8 bytes"));
        let writer = self
            .by_fingerprint
            .get(&fingerprint)
            .ok_or(DecodeError::UnknownFingerprint(fingerprint))?;
        if writer.type_name != type_name {
            return Err(DecodeError::WrongType {
                expected: type_name.to_owned(),
                found: writer.type_name.clone(),
            });
        }
        let mut body = EndGuard {
            rest: &bytes[HEADER_LEN..],
            ran_out: false,
        };
        let decoded = match self.newest_readers.get(&writer.fingerprint) {
            Some(newest) => {
                // Its own header check, on the same 10 bytes already matched above.
                body.rest = bytes;
                newest.0.read_value(&mut body)
            }
            None => {
                let reader = self.latest(type_name).expect("writer's type has versions");
                apache_avro::from_avro_datum(&writer.schema, &mut body, Some(&reader.schema))
            }
        };
        let body_error = |message: String| DecodeError::Body {
            type_name: writer.type_name.clone(),
            version: writer.version,
            message,
        };
        let value = decoded.map_err(|e| body_error(e.to_string()))?;
        if body.ran_out {
            return Err(body_error("the record ends early".into()));
        }
        if !body.rest.is_empty() {
            return Err(DecodeError::TrailingBytes(body.rest.len()));
        }
        Ok(Decoded {
            value,
            writer: writer.clone(),
        })
    }
}

/// The record's bytes, noting whether the decoder asked for more than there is: apache_avro
/// reads a string, boolean or union cut short by the end of input as `null` instead of failing,
/// so without this a truncated record could decode "successfully".
struct EndGuard<'a> {
    rest: &'a [u8],
    ran_out: bool,
}

impl std::io::Read for EndGuard<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.len() > self.rest.len() {
            self.ran_out = true;
        }
        self.rest.read(buf)
    }
}

/// `(type name, version, schema JSON)` of every schema built into the binary.
pub(crate) fn embedded_sources() -> impl Iterator<Item = (&'static str, u32, &'static str)> {
    embedded::EMBEDDED.iter().copied()
}

/// Encodes `value` with one specific schema version (tests use this to write old versions).
pub fn encode_with(version: &SchemaVersion, value: Value) -> Result<Vec<u8>, SchemaError> {
    let encode_error = |source| SchemaError::Encode {
        type_name: version.type_name.clone(),
        source,
    };
    // `to_avro_datum` resolves the schema's names twice per value (once to validate, once to
    // encode): a third of the encoding time of a small job. A writer per thread and schema
    // resolves once; the fingerprint identifies the schema (it hashes the canonical form).
    WRITERS.with(|writers| {
        let mut writers = writers.borrow_mut();
        let writer = match writers.entry(version.fingerprint) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => entry.insert(
                GenericSingleObjectWriter::new_with_capacity_and_header_builder(
                    &version.schema,
                    256,
                    SingleObjectHeader(version.header()),
                )
                .map_err(encode_error)?,
            ),
        };
        let mut out = Vec::with_capacity(256);
        writer
            .write_value_ref(&value, &mut out)
            .map_err(encode_error)?;
        Ok(out)
    })
}

/// `encode_with` for a value that `json::json_to_avro` built against `version`'s schema: that
/// value is already checked, so it is written straight from the value (`avro_body`).
pub fn encode_converted(version: &SchemaVersion, value: Value) -> Result<Vec<u8>, SchemaError> {
    let mut out = Vec::with_capacity(HEADER_LEN + 240);
    out.extend_from_slice(&version.header());
    if crate::avro_body::write(&value, &mut out) {
        Ok(out)
    } else {
        encode_with(version, value)
    }
}

thread_local! {
    static WRITERS: std::cell::RefCell<HashMap<u64, GenericSingleObjectWriter>> =
        std::cell::RefCell::new(HashMap::new());
}

/// The writer's header is this crate's: `C3 01` and the fingerprint.
struct SingleObjectHeader([u8; HEADER_LEN]);

impl apache_avro::headers::HeaderBuilder for SingleObjectHeader {
    fn build_header(&self) -> Vec<u8> {
        self.0.to_vec()
    }
}

/// CRC-64-AVRO, the Rabin fingerprint the Avro specification defines for schema fingerprints.
pub fn rabin_fingerprint(bytes: &[u8]) -> u64 {
    const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
    static TABLE: OnceLock<[u64; 256]> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = [0u64; 256];
        for (i, slot) in table.iter_mut().enumerate() {
            let mut fp = i as u64;
            for _ in 0..8 {
                fp = (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg());
            }
            *slot = fp;
        }
        table
    });
    bytes.iter().fold(EMPTY, |fp, &b| {
        (fp >> 8) ^ table[((fp ^ u64::from(b)) & 0xff) as usize]
    })
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
