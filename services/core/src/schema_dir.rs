//! Schemas defined at run time: `schemas.dir` holds `<type>/v<N>.avsc`, loaded at start on top
//! of the schemas built into the binary, so a user adds a job kind without a rebuild. Every
//! type's versions must stay backward and forward compatible, version after version (the rule
//! `cargo test` applies to the built-in ones); a file that breaks it stops the start, naming it.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use apache_avro::schema_compatibility::SchemaCompatibility;

use crate::codec::{SchemaError, SchemaRegistry};

/// One schema file of `schemas.dir`.
#[derive(Debug, Clone)]
pub struct SchemaFile {
    pub type_name: String,
    pub version: u32,
    pub json: String,
    pub path: PathBuf,
}

/// Every `<type>/v<N>.avsc` below `dir`, in type then version order. Anything else in a type
/// folder is an error naming the file; non-folders at the top are ignored (a README).
pub fn read_dir(dir: &Path) -> Result<Vec<SchemaFile>, SchemaError> {
    let io = |path: &Path, e: std::io::Error| SchemaError::File {
        path: path.to_owned(),
        problem: e.to_string(),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let type_dir = entry.map_err(|e| io(dir, e))?.path();
        if !type_dir.is_dir() {
            continue;
        }
        let type_name = type_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for file in std::fs::read_dir(&type_dir).map_err(|e| io(&type_dir, e))? {
            let path = file.map_err(|e| io(&type_dir, e))?.path();
            let version = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix('v'))
                .and_then(|n| n.strip_suffix(".avsc"))
                .and_then(|n| n.parse::<u32>().ok());
            let Some(version) = version else {
                return Err(SchemaError::File {
                    path,
                    problem: "schema files are named v<N>.avsc (v1.avsc, v2.avsc, …)".into(),
                });
            };
            let json = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
            files.push(SchemaFile {
                type_name: type_name.clone(),
                version,
                json,
                path,
            });
        }
    }
    files.sort_by(|a, b| (&a.type_name, a.version).cmp(&(&b.type_name, b.version)));
    Ok(files)
}

impl SchemaRegistry {
    /// The built-in schemas plus `files`. A file identical to a built-in version (the
    /// repository's own `schemas/` used as `schemas.dir`) is skipped; one that differs from the
    /// built-in version of the same number is an error. Then every type's versions are checked
    /// for compatibility.
    pub fn with_files(files: &[SchemaFile]) -> Result<Self, SchemaError> {
        let embedded = Self::embedded();
        let mut paths: HashMap<(String, u32), PathBuf> = HashMap::new();
        let mut added = Vec::new();
        for file in files {
            let parsed =
                apache_avro::Schema::parse_str(&file.json).map_err(|e| SchemaError::File {
                    path: file.path.clone(),
                    problem: format!("does not parse: {e}"),
                })?;
            let built_in = embedded
                .versions(&file.type_name)
                .iter()
                .find(|v| v.version == file.version);
            if let Some(built_in) = built_in {
                if built_in.schema.canonical_form() == parsed.canonical_form() {
                    continue;
                }
                return Err(SchemaError::File {
                    path: file.path.clone(),
                    problem: format!(
                        "differs from the built-in {} v{}; a new schema needs a new version number",
                        file.type_name, file.version
                    ),
                });
            }
            paths.insert((file.type_name.clone(), file.version), file.path.clone());
            added.push(file);
        }
        let mut sources: Vec<(&str, u32, &str)> = crate::codec::embedded_sources().collect();
        sources.extend(
            added
                .iter()
                .map(|f| (f.type_name.as_str(), f.version, f.json.as_str())),
        );
        let registry = Self::from_sources(sources)?;
        registry.check_compatibility(|type_name, version| {
            paths.get(&(type_name.to_owned(), version)).cloned()
        })?;
        Ok(registry)
    }

    /// Each version of each type must read what the previous one wrote (backward: consumers
    /// upgrade first) and be readable by it (forward: producers upgrade first). `path_of` names
    /// the file of a version, for the error.
    pub fn check_compatibility(
        &self,
        path_of: impl Fn(&str, u32) -> Option<PathBuf>,
    ) -> Result<(), SchemaError> {
        for type_name in self.type_names() {
            for pair in self.versions(type_name).windows(2) {
                let (previous, next) = (&pair[0], &pair[1]);
                let directions = [(previous, next, "backward"), (next, previous, "forward")];
                for (writer, reader, direction) in directions {
                    if let Err(e) = SchemaCompatibility::can_read(&writer.schema, &reader.schema) {
                        return Err(SchemaError::Incompatible {
                            path: path_of(type_name, next.version)
                                .map(|p| p.display().to_string())
                                .unwrap_or_else(|| {
                                    format!("built-in {type_name} v{}", next.version)
                                }),
                            problem: format!(
                                "not {direction} compatible: v{} cannot read v{}: {e}",
                                reader.version, writer.version
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}
