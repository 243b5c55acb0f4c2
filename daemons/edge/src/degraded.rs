//! What the edge says when a page is older than it should be. The edge is
//! the last part standing, so it is the one that can tell: a page whose
//! newest version is older than `--stale-after` (the publisher renders
//! every page at least every `--refresh`) means the pipeline behind it is
//! not running. The edge then serves two of the page's files rewritten:
//! `index.html` with a quiet line ("Last updated 4 minutes ago: live
//! updates are paused.") and `api/v2/summary.json` with its own view in
//! `beacon_degradation`. Everything else is served as published.
//!
//! [`page_level`] is the pure decision; [`Overlay::build`] makes the files.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use beacon_contract::degradation::{Level, PageDegradation};

use crate::site::{html_csp, prepared, File, Version};

/// The level the edge sees for one page.
pub fn page_level(
    emergency: bool,
    age: Duration,
    stale_after: Duration,
    origin_silent: bool,
) -> Level {
    if emergency {
        Level::Emergency
    } else if age > stale_after {
        Level::ComputeDegraded
    } else if origin_silent {
        Level::OriginDegraded
    } else {
        Level::Full
    }
}

/// "Last updated 4 minutes ago: live updates are paused."
pub fn paused_note(age: Duration) -> String {
    let minutes = age.as_secs() / 60;
    let ago = match minutes {
        0 => "less than a minute ago".to_owned(),
        1 => "1 minute ago".to_owned(),
        m if m < 120 => format!("{m} minutes ago"),
        m if m < 48 * 60 => format!("{} hours ago", m / 60),
        m => format!("{} days ago", m / (24 * 60)),
    };
    format!("Last updated {ago}: live updates are paused.")
}

/// What the overlay was built for: a new key rebuilds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayKey {
    /// The version it rewrites.
    pub version: String,
    /// The level it states.
    pub level: Level,
    /// The note's text (it changes as the page ages).
    pub note: Option<String>,
}

/// Rewritten files served over a page's version.
#[derive(Debug)]
pub struct Overlay {
    /// What it was built for.
    pub key: OverlayKey,
    /// Files by path.
    pub files: HashMap<String, File>,
}

const SUMMARY: &str = "api/v2/summary.json";
const INDEX: &str = "index.html";

impl Overlay {
    /// The overlay for `version` at `key.level` (`key.note` goes into the
    /// HTML). Files the version lacks, or cannot be rewritten, are left
    /// as published.
    pub fn build(version: &Version, key: OverlayKey) -> Overlay {
        let csp = html_csp(&version.manifest.style_hashes);
        let mut files = HashMap::new();
        if let Some(body) = version
            .files
            .get(SUMMARY)
            .and_then(|f| rewrite_summary(&f.identity.body, key.level))
        {
            files.insert(SUMMARY.to_owned(), file(SUMMARY, body, &csp));
        }
        if let Some(note) = &key.note {
            if let Some(body) = version
                .files
                .get(INDEX)
                .and_then(|f| add_note(&f.identity.body, note))
            {
                files.insert(INDEX.to_owned(), file(INDEX, body, &csp));
            }
        }
        Overlay { key, files }
    }
}

fn file(path: &str, body: Vec<u8>, csp: &str) -> File {
    let sha = beacon_page::origin::sha256_hex(&body);
    let gzip = gzip(&body).map(|zipped| {
        let zipped_sha = beacon_page::origin::sha256_hex(&zipped);
        prepared(path, zipped, &zipped_sha, Some("gzip"), csp)
    });
    File {
        identity: prepared(path, body, &sha, None, csp),
        gzip,
        br: None,
    }
}

fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

/// `summary.json` with `beacon_degradation` set to `level`.
pub fn rewrite_summary(body: &[u8], level: Level) -> Option<Vec<u8>> {
    let mut summary: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = summary.as_object_mut()?;
    object.insert(
        "beacon_degradation".to_owned(),
        serde_json::to_value(PageDegradation::at(level)).ok()?,
    );
    Some(beacon_page::safe_json(&summary))
}

/// `index.html` with the note as the first line of `<main>`: text only,
/// escaped, styled like the page's other quiet notes.
pub fn add_note(body: &[u8], note: &str) -> Option<Vec<u8>> {
    let html = std::str::from_utf8(body).ok()?;
    let at = html.find("<main>")? + "<main>".len();
    let line = format!(
        "<p id=\"paused-note\" class=\"muted\" role=\"status\">{}</p>",
        html_escape::encode_text(note)
    );
    let mut out = String::with_capacity(html.len() + line.len());
    out.push_str(&html[..at]);
    out.push_str(&line);
    out.push_str(&html[at..]);
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_fact_decides_the_page_level() {
        let stale = Duration::from_secs(180);
        let cases = [
            (false, 10, false, Level::Full),
            (false, 10, true, Level::OriginDegraded),
            (false, 181, false, Level::ComputeDegraded),
            (false, 181, true, Level::ComputeDegraded),
            (true, 10, false, Level::Emergency),
            (true, 9999, true, Level::Emergency),
        ];
        for (emergency, age, silent, want) in cases {
            assert_eq!(
                page_level(emergency, Duration::from_secs(age), stale, silent),
                want,
                "{emergency} {age} {silent}"
            );
        }
    }

    #[test]
    fn the_note_says_how_old_the_page_is() {
        assert_eq!(
            paused_note(Duration::from_secs(4 * 60 + 59)),
            "Last updated 4 minutes ago: live updates are paused."
        );
        assert!(paused_note(Duration::from_secs(30)).contains("less than a minute ago"));
        assert!(paused_note(Duration::from_secs(61)).contains("1 minute ago"));
        assert!(paused_note(Duration::from_secs(3 * 3600)).contains("3 hours ago"));
        assert!(paused_note(Duration::from_secs(3 * 86_400)).contains("3 days ago"));
    }

    #[test]
    fn summary_gets_the_edge_view_and_stays_safe_json() {
        let body = br#"{"page":{"name":"<b>"},"beacon_degradation":{"level":0,"state":"full","live_updates":true}}"#;
        let rewritten = rewrite_summary(body, Level::ComputeDegraded).expect("json");
        let text = String::from_utf8(rewritten).expect("utf-8");
        assert!(!text.contains('<'), "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(value["beacon_degradation"]["level"], 2);
        assert_eq!(value["beacon_degradation"]["live_updates"], false);
        assert_eq!(value["page"]["name"], "<b>");
        assert!(rewrite_summary(b"[1]", Level::Full).is_none());
        assert!(rewrite_summary(b"not json", Level::Full).is_none());
    }

    #[test]
    fn the_note_goes_first_in_main_escaped() {
        let html = b"<html><body><main><h1>x</h1></main></body></html>";
        let out = add_note(html, "a <b> & c").expect("has main");
        let out = String::from_utf8(out).expect("utf-8");
        assert!(
            out.contains("<main><p id=\"paused-note\" class=\"muted\" role=\"status\">a &lt;b&gt; &amp; c</p><h1>"),
            "{out}"
        );
        assert!(add_note(b"<html></html>", "x").is_none());
    }
}
