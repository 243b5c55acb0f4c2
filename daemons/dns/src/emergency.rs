//! Notices put up by hand with `beaconctl emergency up --dns-state-dir`
//! (level 3 of the degradation ladder: no daemon and no NATS needed): one
//! file per page, `<state-dir>/emergency/<page>.txt`, holding the notice's
//! title. The responder reads the directory every second and answers
//! `TXT _status.<host>` with `emergency: <title>` first while a file is
//! there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use beacon_contract::degradation::Level;
use beacon_runtime::degradation::Degradation;
use beacon_runtime::shutdown::Shutdown;

/// Notices by page.
pub type Emergencies = BTreeMap<String, String>;

/// The shared view the DNS handler reads.
pub type EmergencyView = Arc<ArcSwap<Emergencies>>;

/// The directory the notices are in, under a state directory.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join(beacon_page::origin::EMERGENCY)
}

/// The file of `page`'s notice (the layout `beaconctl` writes).
pub fn file(state_dir: &Path, page: &str) -> PathBuf {
    beacon_page::origin::dns_emergency_file(state_dir, page)
}

/// Longest TXT character-string.
const MAX_STRING: usize = 255;

/// The TXT string for a notice: `emergency: <title>`, control characters
/// dropped, cut to one TXT string at a character boundary.
pub fn txt(title: &str) -> String {
    let mut text = String::from("emergency: ");
    for c in title.trim().chars().filter(|c| !c.is_control()) {
        if text.len() + c.len_utf8() > MAX_STRING {
            break;
        }
        text.push(c);
    }
    text
}

/// Every notice in `state_dir` (an unreadable file is skipped).
pub fn read(state_dir: &Path) -> Emergencies {
    let mut found = Emergencies::new();
    let Ok(entries) = std::fs::read_dir(dir(state_dir)) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(page) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".txt"))
        else {
            continue;
        };
        if beacon_contract::names::check_token(page).is_err() {
            continue;
        }
        if let Ok(title) = std::fs::read_to_string(&path) {
            found.insert(page.to_owned(), txt(&title));
        }
    }
    found
}

/// Reads the notices every second into `view` until shutdown; while any is
/// up the responder is at degradation level 3.
pub async fn run(
    state_dir: PathBuf,
    view: EmergencyView,
    degradation: Degradation,
    shutdown: Shutdown,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let found = read(&state_dir);
        degradation.hold("emergency", Level::Emergency, !found.is_empty());
        if **view.load() != found {
            tracing::warn!(pages = ?found.keys().collect::<Vec<_>>(), "Emergency notices changed.");
            view.store(Arc::new(found));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_read_per_page_and_kept_to_one_txt_string() {
        let state = tempfile::tempdir().expect("dir");
        assert!(read(state.path()).is_empty());
        std::fs::create_dir_all(dir(state.path())).expect("dir");
        std::fs::write(file(state.path(), "acme"), "Checkout down\r\n").expect("write");
        std::fs::write(dir(state.path()).join("Bad Page.txt"), "x").expect("write");
        std::fs::write(dir(state.path()).join("notes.md"), "x").expect("write");
        let found = read(state.path());
        assert_eq!(found.len(), 1);
        assert_eq!(found["acme"], "emergency: Checkout down");
        let long = txt(&"é".repeat(300));
        assert!(long.len() <= MAX_STRING);
        assert!(long.is_char_boundary(long.len()));
    }
}
