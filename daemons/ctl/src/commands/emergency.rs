//! `beaconctl emergency up|down`: a static notice written straight into
//! origin directories, without NATS or any daemon (level 3 of the
//! degradation ladder: the pipeline itself is broken). The notice is a
//! version of its own under `<origin>/<page>/emergency-versions/`, made
//! live by the `<origin>/<page>/emergency` link; the edge serves its files
//! over the page's (the notice replaces `index.html`; the JSON API and
//! feeds stay as last published). `down` removes the link. The publisher
//! never touches either, so a running pipeline cannot overwrite a notice.
//! With `--dns-state-dir` the title also goes where a DNS responder on
//! this machine reads it, so `TXT _status.<host>` says it first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use base64::Engine;
use beacon_page::origin::{self, FileEntry, Manifest};
use html_escape::encode_text;

use crate::cli::{EmergencyCommand, OutputFormat};
use crate::commands::check_id;
use crate::exit::CtlError;
use crate::output;

/// The notice's only style; its hash goes into the manifest so the edge's
/// CSP allows exactly it.
const STYLE: &str =
    "body{font-family:system-ui,sans-serif;margin:0;background:#fff4e6;color:#1d2430}\
main{max-width:720px;margin:0 auto;padding:32px 24px}h1{color:#c92a2a}\
@media (prefers-color-scheme:dark){body{background:#2b1d12;color:#f1e8de}h1{color:#ff8787}}";

/// The notice page: escaped title and message, inline style, no script.
pub fn notice_html(title: &str, message: &str, at_ms: u64) -> String {
    let when =
        humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_millis(at_ms));
    let paragraphs: String = message
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| format!("<p>{}</p>", encode_text(p.trim()).replace('\n', "<br>")))
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta http-equiv=\"refresh\" content=\"60\"><title>{title}</title><style>{STYLE}</style></head>\
<body><main><h1 id=\"emergency\">{title}</h1>{paragraphs}<p><small>Posted <time datetime=\"{when}\">{when}</time></small></p></main></body></html>\n",
        title = encode_text(title),
    )
}

fn style_hash() -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, STYLE.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}

fn write_notice(origin_dir: &Path, page: &str, html: &[u8], at_ms: u64) -> std::io::Result<String> {
    let version = beacon_contract::event::EventId::new().to_string();
    let sha = origin::sha256_hex(html);
    let mut files = BTreeMap::new();
    files.insert(
        "index.html".to_owned(),
        FileEntry {
            sha256: sha.clone(),
            size: html.len() as u64,
            gzip: None,
            br: None,
        },
    );
    let manifest = Manifest {
        page: page.to_owned(),
        version: version.clone(),
        generated_at_ms: at_ms,
        hosts: Vec::new(),
        style_hashes: vec![style_hash()],
        files,
    };
    let page_dir = origin::page_dir(origin_dir, page);
    origin::write_version(
        &page_dir,
        origin::EMERGENCY_VERSIONS,
        origin::EMERGENCY,
        &manifest,
        &|wanted| (wanted == sha).then(|| html.to_vec()),
    )?;
    Ok(version)
}

fn origin_error(path: &Path, source: std::io::Error) -> CtlError {
    CtlError::ReadFile {
        path: path.to_path_buf(),
        source,
    }
}

fn check_origins(origins: &[PathBuf]) -> Result<(), CtlError> {
    if origins.is_empty() {
        return Err(CtlError::BadArgument {
            flag: "--origin",
            reason: "name at least one origin directory".into(),
        });
    }
    check_dirs("--origin", origins)
}

fn check_dirs(flag: &'static str, dirs: &[PathBuf]) -> Result<(), CtlError> {
    for dir in dirs {
        if !dir.is_dir() {
            return Err(CtlError::BadArgument {
                flag,
                reason: format!("{} is not a directory", dir.display()),
            });
        }
    }
    Ok(())
}

/// Puts `title` where the DNS responder with `state_dir` reads notices
/// (a temporary file renamed over it, so it never reads half of one).
fn write_dns_notice(state_dir: &Path, page: &str, title: &str) -> std::io::Result<()> {
    let file = origin::dns_emergency_file(state_dir, page);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temporary = file.with_extension("txt.tmp");
    std::fs::write(&temporary, title)?;
    std::fs::rename(&temporary, &file)
}

/// Runs `emergency …`. Touches only the origin directories.
pub fn run(command: EmergencyCommand, format: OutputFormat) -> Result<(), CtlError> {
    match command {
        EmergencyCommand::Up {
            page,
            origins,
            title,
            message,
            dns_state_dirs,
        } => {
            check_id("--page", &page)?;
            check_origins(&origins)?;
            check_dirs("--dns-state-dir", &dns_state_dirs)?;
            let at_ms = beacon_contract::hlc::wall_clock_ms();
            let html = notice_html(&title, &message, at_ms);
            let mut versions = Vec::new();
            for origin_dir in &origins {
                let version = write_notice(origin_dir, &page, html.as_bytes(), at_ms)
                    .map_err(|e| origin_error(origin_dir, e))?;
                versions.push(serde_json::json!({"origin": origin_dir, "version": version}));
            }
            for state_dir in &dns_state_dirs {
                write_dns_notice(state_dir, &page, &title)
                    .map_err(|e| origin_error(state_dir, e))?;
            }
            let text = match format {
                OutputFormat::Json => output::json(&serde_json::json!({"page": page, "up": versions}))?,
                _ => format!(
                    "emergency notice up on page {page} in {} origin(s); take it down with `beaconctl emergency down`\n",
                    origins.len()
                ),
            };
            output::print(&text)
        }
        EmergencyCommand::Down {
            page,
            origins,
            dns_state_dirs,
        } => {
            check_id("--page", &page)?;
            check_origins(&origins)?;
            check_dirs("--dns-state-dir", &dns_state_dirs)?;
            for origin_dir in &origins {
                origin::remove_link(&origin::page_dir(origin_dir, &page), origin::EMERGENCY)
                    .map_err(|e| origin_error(origin_dir, e))?;
            }
            for state_dir in &dns_state_dirs {
                let file = origin::dns_emergency_file(state_dir, &page);
                match std::fs::remove_file(&file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(origin_error(&file, e)),
                }
            }
            let text = match format {
                OutputFormat::Json => {
                    output::json(&serde_json::json!({"page": page, "down": origins}))?
                }
                _ => format!("emergency notice down on page {page}\n"),
            };
            output::print(&text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_goes_up_and_down_without_the_bus() {
        let dir = tempfile::tempdir().expect("tempdir");
        let html = notice_html("We <b>know</b>", "Checkout is down.\n\nUpdates here.", 0);
        assert!(html.contains("We &lt;b&gt;know&lt;/b&gt;"));
        assert!(!html.contains("<script"));
        write_notice(dir.path(), "demo", html.as_bytes(), 0).expect("up");
        let page = dir.path().join("demo");
        let (_, version_dir) = origin::resolve(&page, origin::EMERGENCY).expect("link");
        let manifest = origin::read_manifest(&version_dir).expect("manifest");
        assert_eq!(manifest.style_hashes, vec![style_hash()]);
        assert_eq!(
            std::fs::read_to_string(version_dir.join("index.html")).expect("read"),
            html
        );
        origin::remove_link(&page, origin::EMERGENCY).expect("down");
        assert!(origin::resolve(&page, origin::EMERGENCY).is_none());
        origin::remove_link(&page, origin::EMERGENCY).expect("down twice is fine");
    }
}
