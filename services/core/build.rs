//! Embeds every schema version found in the repository's `schemas/` folder into the binary, so a
//! deployed `sluice` carries the exact contract it was built with.

use std::{env, fs, path::PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let schemas_dir = manifest_dir.join("../../schemas");
    println!("cargo:rerun-if-changed={}", schemas_dir.display());

    let mut entries = Vec::new();
    for type_dir in fs::read_dir(&schemas_dir).expect("schemas/ folder is readable") {
        let type_dir = type_dir.expect("schemas/ entry").path();
        if !type_dir.is_dir() {
            continue;
        }
        println!("cargo:rerun-if-changed={}", type_dir.display());
        let name = type_dir.file_name().unwrap().to_string_lossy().into_owned();
        for file in fs::read_dir(&type_dir).expect("schema type folder is readable") {
            let file = file.expect("schema file").path();
            let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
            let is_avsc = file.extension().is_some_and(|e| e == "avsc");
            let version = stem.strip_prefix('v').and_then(|v| v.parse::<u32>().ok());
            match (is_avsc, version) {
                (true, Some(version)) => {
                    entries.push((name.clone(), version, file.canonicalize().unwrap()))
                }
                _ => panic!("{}: schema files are named v<N>.avsc", file.display()),
            }
        }
    }
    entries.sort();

    let mut out = String::from("/// (type name, version, schema JSON) for every file in schemas/.\npub const EMBEDDED: &[(&str, u32, &str)] = &[\n");
    for (name, version, path) in entries {
        out.push_str(&format!(
            "    ({name:?}, {version}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push_str("];\n");
    fs::write(
        PathBuf::from(env::var("OUT_DIR").unwrap()).join("embedded_schemas.rs"),
        out,
    )
    .unwrap();
}
