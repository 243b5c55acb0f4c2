//! Atomic publishing of a rendered site to an origin directory, in the
//! layout of [`beacon_core::origin`].
//!
//! A new version is written in full into its own directory, then `current`
//! is swapped with one `rename` of a fresh symlink. Readers (the edge) see
//! either the old site or the new one, never a mix. Old versions are pruned,
//! keeping a few so a reader that resolved `current` a moment ago can finish.

use std::io;
use std::path::Path;

use beacon_core::origin;

/// Versions kept besides the current one.
pub const KEEP_VERSIONS: usize = 4;

/// Writes `files` as a new version of `page` under `origin` and makes it
/// current.
pub fn publish(
    origin_dir: &Path,
    page: &str,
    version: &str,
    files: &[(String, Vec<u8>)],
) -> io::Result<()> {
    let page_dir = origin::page_dir(origin_dir, page);
    let versions = page_dir.join(origin::VERSIONS);
    let staging = versions.join(format!(".{version}.tmp"));
    let final_dir = origin::version_dir(&page_dir, version);
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(&staging)?;
    for (path, bytes) in files {
        let relative = Path::new(path);
        if relative.is_absolute()
            || relative
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unsafe site path {path:?}"),
            ));
        }
        let target = staging.join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, bytes)?;
    }
    // The version directory only appears complete.
    std::fs::rename(&staging, &final_dir)?;

    let link_tmp = page_dir.join(format!(".{}.{version}.tmp", origin::CURRENT));
    let _ = std::fs::remove_file(&link_tmp);
    std::os::unix::fs::symlink(origin::current_target(version), &link_tmp)?;
    std::fs::rename(&link_tmp, page_dir.join(origin::CURRENT))?;
    sync_dir(&page_dir);

    prune(&versions, version)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn files(text: &str) -> Vec<(String, Vec<u8>)> {
        vec![
            ("index.html".into(), text.as_bytes().to_vec()),
            ("api/v2/summary.json".into(), b"{}".to_vec()),
        ]
    }

    #[test]
    fn publishing_swaps_current_and_prunes_old_versions() {
        let origin = tempfile::tempdir().expect("tempdir");
        for n in 0..8 {
            publish(
                origin.path(),
                "demo",
                &format!("v{n:02}"),
                &files(&format!("site {n}")),
            )
            .expect("publish");
            let current = std::fs::read_to_string(origin.path().join("demo/current/index.html"))
                .expect("read");
            assert_eq!(current, format!("site {n}"));
        }
        let kept = std::fs::read_dir(origin.path().join("demo/versions"))
            .expect("dir")
            .count();
        assert_eq!(kept, KEEP_VERSIONS + 1);
        assert!(origin
            .path()
            .join("demo/current/api/v2/summary.json")
            .exists());
    }

    #[test]
    fn unsafe_paths_are_refused() {
        let origin = tempfile::tempdir().expect("tempdir");
        let bad = vec![("../escape".to_owned(), b"x".to_vec())];
        assert!(publish(origin.path(), "demo", "v1", &bad).is_err());
        assert!(!origin.path().join("escape").exists());
    }
}
