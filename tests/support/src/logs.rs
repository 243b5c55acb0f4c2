//! Reading log files for panic messages.

use std::fs::{File, OpenOptions};
use std::path::Path;

/// The whole file as text; a missing or unreadable file is described
/// rather than treated as an error, since this only feeds diagnostics.
pub(crate) fn read(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(err) => format!("<could not read {}: {err}>", path.display()),
    }
}

/// The last `lines` lines of the file, so a panic message stays readable.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = read(path);
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

/// Opens `path` for appending, creating it if needed. Child processes get
/// this as stdout and stderr; with `O_APPEND` both can share one file and a
/// restarted process adds to the log instead of replacing it.
pub(crate) fn append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|err| panic!("open log file {}: {err}", path.display()))
}
