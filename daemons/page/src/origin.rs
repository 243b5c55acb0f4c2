//! The layout of an origin directory and of the `pages` object store: the
//! contract between the publisher, which writes them, the edge, which
//! serves and mirrors them, and `beaconctl emergency`.
//!
//! ```text
//! <origin>/<page>/versions/<version>/index.html, index.html.gz, index.html.br, …
//! <origin>/<page>/versions/<version>/.manifest.json   what the version holds
//! <origin>/<page>/current -> versions/<version>
//! <origin>/<page>/emergency -> emergency-versions/<version>   (only during an emergency)
//! ```
//!
//! A version directory is complete before `current` points at it and never
//! changes afterwards. Its [`Manifest`] lists every file with its SHA-256
//! (the ETag) and its precompressed variants; the edge serves exactly the
//! files the manifest lists, so nothing else in the directory is ever
//! reachable.
//!
//! In the object store the same version is `{page}/blobs/{sha256}` for
//! each file's bytes, and `{page}/manifest` holds the manifest: writing it
//! is the one switch, so a mirror never sees half a version.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Name of the symlink pointing at the live version.
pub const CURRENT: &str = "current";

/// Name of the directory holding the versions.
pub const VERSIONS: &str = "versions";

/// Name of the symlink pointing at an emergency notice, while there is one.
pub const EMERGENCY: &str = "emergency";

/// Directory of emergency notices; the publisher never touches it.
pub const EMERGENCY_VERSIONS: &str = "emergency-versions";

/// The manifest file inside a version directory.
pub const MANIFEST: &str = ".manifest.json";

/// Versions kept besides the live one, so a reader that resolved `current`
/// a moment ago can finish.
pub const KEEP_VERSIONS: usize = 4;

/// What one version of a page holds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Page id.
    pub page: String,
    /// Version id (a ULID: sorts by creation time).
    pub version: String,
    /// When the version was rendered (Unix milliseconds).
    pub generated_at_ms: u64,
    /// Host names the page is served under (from the page's `url`).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// CSP hashes (`sha256-…`) of the inline `<style>` blocks of its HTML,
    /// so the edge can allow exactly those and no other inline style.
    #[serde(default)]
    pub style_hashes: Vec<String>,
    /// Files by path relative to the version directory.
    pub files: BTreeMap<String, FileEntry>,
}

/// One file of a version.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the gzip variant (`<path>.gz`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gzip: Option<String>,
    /// SHA-256 of the brotli variant (`<path>.br`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub br: Option<String>,
}

/// The precompressed variants a file may have, as (suffix, encoding).
pub const ENCODINGS: [(&str, &str); 2] = [(".br", "br"), (".gz", "gzip")];

/// Where `beaconctl emergency up --dns-state-dir` puts a page's notice for
/// the DNS responder, which answers `TXT _status.<host>` with it:
/// `<state-dir>/emergency/<page>.txt`, holding the notice's title.
pub fn dns_emergency_file(state_dir: &Path, page: &str) -> PathBuf {
    state_dir.join(EMERGENCY).join(format!("{page}.txt"))
}

/// `<origin>/<page>`.
pub fn page_dir(origin: &Path, page: &str) -> PathBuf {
    origin.join(page)
}

/// `<page_dir>/versions/<version>`.
pub fn version_dir(page_dir: &Path, version: &str) -> PathBuf {
    page_dir.join(VERSIONS).join(version)
}

/// The target `current` is written with: relative, so an origin can be
/// moved or mirrored as a whole.
pub fn current_target(version: &str) -> PathBuf {
    Path::new(VERSIONS).join(version)
}

/// Object name of a page's manifest in the `pages` object store.
pub fn manifest_object(page: &str) -> String {
    format!("{page}/manifest")
}

/// Object name of a page's emergency notice (a manifest like
/// [`manifest_object`]'s, its blobs beside the page's) in the `pages`
/// object store and in a bucket, while `beaconctl emergency` has one up.
/// The publisher never writes or deletes it.
pub fn emergency_object(page: &str) -> String {
    format!("{page}/{EMERGENCY}")
}

/// Object name of one file's bytes in the `pages` object store.
pub fn blob_object(page: &str, sha256: &str) -> String {
    format!("{page}/blobs/{sha256}")
}

/// Object name of an uploaded asset (a changelog image) in the `pages`
/// object store.
pub fn asset_object(page: &str, name: &str) -> String {
    format!("{page}/assets/{name}")
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `path` is a plain relative path of the characters a site uses:
/// no absolute paths, no `.`/`..`, no empty segments.
pub fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        })
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Writes one version of a page into `<page_dir>/<kind>/<version>` and
/// makes `<page_dir>/<link>` point at it, where (`kind`, `link`) is
/// ([`VERSIONS`], [`CURRENT`]) or ([`EMERGENCY_VERSIONS`], [`EMERGENCY`]).
/// `blob(sha256)` gives the bytes of each file and variant the manifest
/// names. The directory is written in full under a temporary name first and
/// renamed; the link is swapped with one rename. Old versions beyond
/// [`KEEP_VERSIONS`] are pruned.
pub fn write_version(
    page_dir: &Path,
    kind: &str,
    link: &str,
    manifest: &Manifest,
    blob: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> io::Result<()> {
    let version = &manifest.version;
    if !is_safe_relative(version) || version.contains('/') {
        return Err(invalid(format!("unsafe version id {version:?}")));
    }
    let versions = page_dir.join(kind);
    let staging = versions.join(format!(".{version}.tmp"));
    let final_dir = versions.join(version);
    if final_dir.exists() {
        // Written before (a retry): only the switch is left to do.
        return switch(page_dir, kind, link, version);
    }
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(&staging)?;
    for (path, entry) in &manifest.files {
        if !is_safe_relative(path) {
            return Err(invalid(format!("unsafe site path {path:?}")));
        }
        let target = staging.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let variants = [
            ("", Some(&entry.sha256)),
            (".gz", entry.gzip.as_ref()),
            (".br", entry.br.as_ref()),
        ];
        for (suffix, sha) in variants {
            let Some(sha) = sha else { continue };
            let bytes =
                blob(sha).ok_or_else(|| invalid(format!("no bytes for {path}{suffix} ({sha})")))?;
            let mut name = target.clone().into_os_string();
            name.push(suffix);
            std::fs::write(PathBuf::from(name), bytes)?;
        }
    }
    let manifest_bytes = serde_json::to_vec(manifest).map_err(|e| invalid(e.to_string()))?;
    std::fs::write(staging.join(MANIFEST), manifest_bytes)?;
    // The version directory only appears complete.
    std::fs::rename(&staging, &final_dir)?;
    switch(page_dir, kind, link, version)?;
    prune(&versions, version)
}

/// Points `<page_dir>/<link>` at `<kind>/<version>` with one rename.
fn switch(page_dir: &Path, kind: &str, link: &str, version: &str) -> io::Result<()> {
    let link_tmp = page_dir.join(format!(".{link}.{version}.tmp"));
    let _ = std::fs::remove_file(&link_tmp);
    std::os::unix::fs::symlink(Path::new(kind).join(version), &link_tmp)?;
    std::fs::rename(&link_tmp, page_dir.join(link))?;
    sync_dir(page_dir);
    Ok(())
}

/// Removes `<page_dir>/<link>` (ending an emergency notice). Not an error
/// when there is none.
pub fn remove_link(page_dir: &Path, link: &str) -> io::Result<()> {
    match std::fs::remove_file(page_dir.join(link)) {
        Ok(()) => {
            sync_dir(page_dir);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes the rename durable where the platform allows; a failure only costs
/// durability across a power cut, not correctness, so it is not an error.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

fn prune(versions: &Path, current: &str) -> io::Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(versions)?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.') && name != current)
        .collect();
    // Version ids sort by creation time (ULIDs).
    names.sort();
    let excess = names.len().saturating_sub(KEEP_VERSIONS);
    for name in &names[..excess] {
        std::fs::remove_dir_all(versions.join(name))?;
    }
    Ok(())
}

/// The version directory `<page_dir>/<link>` points at, if it does.
pub fn resolve(page_dir: &Path, link: &str) -> Option<(String, PathBuf)> {
    let target = std::fs::read_link(page_dir.join(link)).ok()?;
    let version = target.file_name()?.to_str()?.to_owned();
    Some((version, page_dir.join(target)))
}

/// Reads a version directory's manifest.
pub fn read_manifest(version_dir: &Path) -> io::Result<Manifest> {
    let bytes = std::fs::read(version_dir.join(MANIFEST))?;
    serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn site(text: &str, version: &str) -> (Manifest, HashMap<String, Vec<u8>>) {
        let mut blobs = HashMap::new();
        let mut manifest = Manifest {
            page: "demo".into(),
            version: version.into(),
            ..Manifest::default()
        };
        for (path, bytes) in [
            ("index.html", text.as_bytes().to_vec()),
            ("api/v2/summary.json", b"{}".to_vec()),
        ] {
            let sha = sha256_hex(&bytes);
            manifest.files.insert(
                path.into(),
                FileEntry {
                    sha256: sha.clone(),
                    size: bytes.len() as u64,
                    gzip: None,
                    br: None,
                },
            );
            blobs.insert(sha, bytes);
        }
        (manifest, blobs)
    }

    #[test]
    fn writing_swaps_current_and_prunes_old_versions() {
        let origin = tempfile::tempdir().expect("tempdir");
        let page = page_dir(origin.path(), "demo");
        for n in 0..8 {
            let (manifest, blobs) = site(&format!("site {n}"), &format!("v{n:02}"));
            write_version(&page, VERSIONS, CURRENT, &manifest, &|sha| {
                blobs.get(sha).cloned()
            })
            .expect("write");
            let current = std::fs::read_to_string(page.join("current/index.html")).expect("read");
            assert_eq!(current, format!("site {n}"));
            let (version, dir) = resolve(&page, CURRENT).expect("current");
            assert_eq!(version, format!("v{n:02}"));
            assert_eq!(read_manifest(&dir).expect("manifest"), manifest);
        }
        let kept = std::fs::read_dir(page.join(VERSIONS)).expect("dir").count();
        assert_eq!(kept, KEEP_VERSIONS + 1);
    }

    #[test]
    fn unsafe_paths_are_refused() {
        let origin = tempfile::tempdir().expect("tempdir");
        let page = page_dir(origin.path(), "demo");
        let (mut manifest, blobs) = site("x", "v1");
        let entry = manifest.files["index.html"].clone();
        manifest.files.insert("../escape".into(), entry);
        let result = write_version(&page, VERSIONS, CURRENT, &manifest, &|sha| {
            blobs.get(sha).cloned()
        });
        assert!(result.is_err());
        assert!(!origin.path().join("escape").exists());
        for bad in ["", "/etc/passwd", "a//b", "./a", "a/../b", "a b", "a\\b"] {
            assert!(!is_safe_relative(bad), "{bad:?}");
        }
        assert!(is_safe_relative("api/v2/summary.json"));
    }
}
