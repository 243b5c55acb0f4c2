//! The layout of an origin directory: the contract between the publisher,
//! which writes it, and the edge, which serves it.
//!
//! ```text
//! <origin>/<page>/versions/<version>/index.html, api/v2/summary.json, …
//! <origin>/<page>/current -> versions/<version>
//! ```
//!
//! A version directory is complete before `current` points at it and never
//! changes afterwards, so the version id is a valid ETag for every file in it.

use std::path::{Path, PathBuf};

/// Name of the symlink pointing at the live version.
pub const CURRENT: &str = "current";

/// Name of the directory holding the versions.
pub const VERSIONS: &str = "versions";

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
