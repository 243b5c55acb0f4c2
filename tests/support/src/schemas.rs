//! Checked-in JSON Schemas against the ones the types generate, for every
//! crate that owns what it stores: each owner's schema test hands its
//! generated files here, by directory under `schemas/`.
//!
//! `BEACON_UPDATE_SCHEMAS=1` rewrites the files instead (and deletes the
//! ones nothing generates any more).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One generated schema: its file name and its text as checked in.
#[derive(Debug, Clone)]
pub struct SchemaFile {
    /// File name, e.g. `notice_thread.v1.schema.json`.
    pub file: String,
    /// Pretty JSON with a trailing newline.
    pub text: String,
}

/// `schemas/` at the root of the workspace.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

/// Whether this run rewrites the checked-in files.
pub fn updating() -> bool {
    std::env::var("BEACON_UPDATE_SCHEMAS").is_ok_and(|v| v == "1")
}

/// Every problem between `schemas/{dir}/` and `generated`: a file that
/// differs, is missing, or that nothing generates. Rewrites instead when
/// [`updating`].
pub fn problems(dir: &str, generated: &[SchemaFile]) -> Vec<String> {
    let update = updating();
    let dir_path = root().join(dir);
    if update {
        std::fs::create_dir_all(&dir_path).expect("create schema directory");
    }
    let mut problems = Vec::new();
    let mut expected = BTreeSet::new();
    for SchemaFile { file, text } in generated {
        assert!(
            expected.insert(file.clone()),
            "two generators write schemas/{dir}/{file}"
        );
        let path = dir_path.join(file);
        if update {
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(on_disk) if &on_disk == text => {}
            Ok(_) => problems.push(format!(
                "schemas/{dir}/{file} differs from what the types generate"
            )),
            Err(e) => problems.push(format!("schemas/{dir}/{file} cannot be read ({e})")),
        }
    }
    // A schema file nothing generates any more describes a message that no
    // longer exists; readers would trust it anyway.
    let entries =
        std::fs::read_dir(&dir_path).unwrap_or_else(|e| panic!("read {}: {e}", dir_path.display()));
    for entry in entries {
        let name = entry
            .expect("read a directory entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".schema.json") && !expected.contains(&name) {
            if update {
                std::fs::remove_file(dir_path.join(&name)).expect("remove stale schema");
            } else {
                problems.push(format!(
                    "schemas/{dir}/{name} is stale: no type generates it; delete it"
                ));
            }
        }
    }
    problems
}

/// Panics listing every problem of [`problems`], saying how to regenerate.
pub fn assert_checked_in(dir: &str, generated: &[SchemaFile], regenerate: &str) {
    let problems = problems(dir, generated);
    assert!(
        problems.is_empty(),
        "schema files are out of date:\n  - {}\nRegenerate with: {regenerate}",
        problems.join("\n  - ")
    );
}

/// The checked-in `schemas/{dir}/{file}` compiled as draft 2020-12 (what
/// schemars 1 emits); while [`updating`], the generated text instead, since
/// the files are being rewritten. Reads the file rather than regenerating,
/// so a sample is checked against what readers in other languages see.
pub fn validator(dir: &str, file: &str, generated: &[SchemaFile]) -> jsonschema::Validator {
    let path = root().join(dir).join(file);
    let text = if updating() {
        generated
            .iter()
            .find(|s| s.file == file)
            .map(|s| s.text.clone())
            .unwrap_or_else(|| panic!("no generator for schemas/{dir}/{file}"))
    } else {
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    };
    let schema: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    assert_eq!(
        schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "{file}: unexpected dialect"
    );
    jsonschema::draft202012::new(&schema)
        .unwrap_or_else(|e| panic!("{file} is not a valid schema: {e}"))
}

/// Panics unless `instance` is valid against `schemas/{dir}/{file}`.
pub fn assert_valid(dir: &str, file: &str, generated: &[SchemaFile], instance: &serde_json::Value) {
    let validator = validator(dir, file, generated);
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "sample for schemas/{dir}/{file} does not validate:\n{errors:#?}\n{instance:#}"
    );
}
