//! `beaconctl emergency up|down`: a static notice written straight into
//! the origins, without any daemon (level 3 of the degradation ladder: the
//! pipeline itself is broken). In an origin directory the notice is a
//! version of its own under `<origin>/<page>/emergency-versions/`, made
//! live by the `<origin>/<page>/emergency` link; in the `pages` object
//! store (`--object-store`, which needs NATS but no daemon) and in a bucket
//! (`--s3-origin`) it is the `{page}/emergency` manifest beside the page's,
//! which mirroring edges follow. The edge serves its files over the page's
//! (the notice replaces `index.html`; the JSON API and feeds stay as last
//! published). `down` removes the link or the object. The publisher never
//! touches either, so a running pipeline cannot overwrite a notice.
//! With `--dns-state-dir` the title also goes where a DNS responder on
//! this machine reads it, so `TXT _status.<host>` says it first.
//!
//! Every origin named is tried; when some cannot be reached the others
//! still get the notice and the command fails naming the ones missed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use beacon_bucket::{Bucket, S3Settings};
use beacon_page::origin::{self, FileEntry, Manifest};
use beacon_runtime::connect::{connect_once, NatsArgs};
use html_escape::encode_text;

use crate::cli::{EmergencyCommand, EmergencyTargets, OutputFormat};
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

/// The notice as a version of the page: its manifest, whose one file is
/// `html`.
fn notice_manifest(page: &str, html: &[u8], at_ms: u64) -> Manifest {
    let mut files = BTreeMap::new();
    files.insert(
        "index.html".to_owned(),
        FileEntry {
            sha256: origin::sha256_hex(html),
            size: html.len() as u64,
            gzip: None,
            br: None,
        },
    );
    Manifest {
        page: page.to_owned(),
        version: beacon_contract::event::EventId::new().to_string(),
        generated_at_ms: at_ms,
        hosts: Vec::new(),
        style_hashes: vec![style_hash()],
        files,
    }
}

fn write_notice(origin_dir: &Path, manifest: &Manifest, html: &[u8]) -> std::io::Result<()> {
    let sha = origin::sha256_hex(html);
    let page_dir = origin::page_dir(origin_dir, &manifest.page);
    origin::write_version(
        &page_dir,
        origin::EMERGENCY_VERSIONS,
        origin::EMERGENCY,
        manifest,
        &|wanted| (wanted == sha).then(|| html.to_vec()),
    )
}

fn origin_error(path: &Path, source: std::io::Error) -> CtlError {
    CtlError::ReadFile {
        path: path.to_path_buf(),
        source,
    }
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

/// Every origin the command reaches, checked before anything is written.
struct Targets {
    page: String,
    dirs: Vec<PathBuf>,
    object_store: bool,
    buckets: Vec<Bucket>,
    dns_state_dirs: Vec<PathBuf>,
}

impl Targets {
    fn new(given: EmergencyTargets, timeout: Duration) -> Result<Targets, CtlError> {
        check_id("--page", &given.page)?;
        if given.origins.is_empty() && !given.object_store && given.s3_origins.is_empty() {
            return Err(CtlError::BadArgument {
                flag: "--origin",
                reason: "name at least one origin: --origin DIR, --object-store or --s3-origin URL"
                    .into(),
            });
        }
        check_dirs("--origin", &given.origins)?;
        check_dirs("--dns-state-dir", &given.dns_state_dirs)?;
        let (access_key, secret_key) = (
            std::env::var("BEACON_S3_ACCESS_KEY").unwrap_or_default(),
            std::env::var("BEACON_S3_SECRET_KEY").unwrap_or_default(),
        );
        let mut buckets = Vec::new();
        for text in &given.s3_origins {
            let bad = |reason: String| CtlError::BadArgument {
                flag: "--s3-origin",
                reason,
            };
            let settings =
                S3Settings::parse(text, &given.s3_region, &access_key, &secret_key).map_err(bad)?;
            buckets.push(Bucket::new(&settings, timeout).map_err(|e| bad(e.to_string()))?);
        }
        Ok(Targets {
            page: given.page,
            dirs: given.origins,
            object_store: given.object_store,
            buckets,
            dns_state_dirs: given.dns_state_dirs,
        })
    }

    fn count(&self) -> usize {
        self.dirs.len() + usize::from(self.object_store) + self.buckets.len()
    }
}

async fn open_store(
    nats: &NatsArgs,
    timeout: Duration,
) -> Result<async_nats::jetstream::object_store::ObjectStore, String> {
    let open = async {
        let client = connect_once(nats, "beaconctl")
            .await
            .map_err(|e| e.to_string())?;
        async_nats::jetstream::new(client)
            .get_object_store(beacon_contract::names::OBJECT_PAGES)
            .await
            .map_err(|e| format!("cannot open the object store: {e}"))
    };
    tokio::time::timeout(timeout, open)
        .await
        .map_err(|_| format!("no answer within {}", humantime::format_duration(timeout)))?
}

/// Puts the notice in the object store: its blob, then its manifest.
async fn store_up(
    nats: &NatsArgs,
    timeout: Duration,
    manifest: &Manifest,
    html: &[u8],
) -> Result<(), String> {
    let store = open_store(nats, timeout).await?;
    let put = async {
        let blob = origin::blob_object(&manifest.page, &origin::sha256_hex(html));
        store
            .put(blob.as_str(), &mut &html[..])
            .await
            .map_err(|e| format!("cannot store {blob}: {e}"))?;
        let name = origin::emergency_object(&manifest.page);
        let bytes = serde_json::to_vec(manifest).map_err(|e| e.to_string())?;
        store
            .put(name.as_str(), &mut bytes.as_slice())
            .await
            .map_err(|e| format!("cannot store {name}: {e}"))?;
        Ok(())
    };
    tokio::time::timeout(timeout, put)
        .await
        .map_err(|_| format!("no answer within {}", humantime::format_duration(timeout)))?
}

async fn store_down(nats: &NatsArgs, timeout: Duration, page: &str) -> Result<(), String> {
    let store = open_store(nats, timeout).await?;
    let name = origin::emergency_object(page);
    match tokio::time::timeout(timeout, store.delete(&name)).await {
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        )),
        Ok(Ok(())) => Ok(()),
        Ok(Err(e))
            if e.kind() == async_nats::jetstream::object_store::DeleteErrorKind::NotFound =>
        {
            Ok(())
        }
        Ok(Err(e)) => Err(format!("cannot delete {name}: {e}")),
    }
}

/// Puts the notice in a bucket: its blob, its manifest, and the page in
/// the bucket's index so polling edges look at it.
async fn bucket_up(bucket: &Bucket, manifest: &Manifest, html: &[u8]) -> Result<(), String> {
    bucket.ensure().await.map_err(|e| e.to_string())?;
    let blob = origin::blob_object(&manifest.page, &origin::sha256_hex(html));
    bucket
        .put(&blob, html.to_vec(), "application/octet-stream")
        .await
        .map_err(|e| e.to_string())?;
    let bytes = serde_json::to_vec(manifest).map_err(|e| e.to_string())?;
    bucket
        .put(
            &origin::emergency_object(&manifest.page),
            bytes,
            "application/json",
        )
        .await
        .map_err(|e| e.to_string())?;
    bucket
        .index_page(&manifest.page)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
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

fn remove_dns_notice(state_dir: &Path, page: &str) -> Result<(), CtlError> {
    let file = origin::dns_emergency_file(state_dir, page);
    match std::fs::remove_file(&file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(origin_error(&file, e)),
    }
}

/// Tries `up` or `down` on every target; the ones that failed, named.
async fn reach_all(
    targets: &Targets,
    nats: &NatsArgs,
    timeout: Duration,
    page: &str,
    notice: Option<(&Manifest, &[u8])>,
) -> Vec<String> {
    let mut missed = Vec::new();
    for dir in &targets.dirs {
        let done = match notice {
            Some((manifest, html)) => write_notice(dir, manifest, html),
            None => origin::remove_link(&origin::page_dir(dir, page), origin::EMERGENCY),
        };
        if let Err(e) = done {
            missed.push(format!("{}: {e}", dir.display()));
        }
    }
    if targets.object_store {
        let done = match notice {
            Some((manifest, html)) => store_up(nats, timeout, manifest, html).await,
            None => store_down(nats, timeout, page).await,
        };
        if let Err(e) = done {
            missed.push(format!("object store: {e}"));
        }
    }
    for bucket in &targets.buckets {
        let done = match notice {
            Some((manifest, html)) => bucket_up(bucket, manifest, html).await,
            None => bucket
                .delete(&origin::emergency_object(page))
                .await
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = done {
            missed.push(e);
        }
    }
    missed
}

/// Runs `emergency …`. Touches only the origins and the DNS state
/// directories named; NATS only for `--object-store`.
pub async fn run(
    nats: &NatsArgs,
    command: EmergencyCommand,
    format: OutputFormat,
    timeout: Duration,
) -> Result<(), CtlError> {
    let (given, notice) = match command {
        EmergencyCommand::Up {
            targets,
            title,
            message,
        } => (targets, Some((title, message))),
        EmergencyCommand::Down { targets } => (targets, None),
    };
    let targets = Targets::new(given, timeout)?;
    let page = targets.page.clone();
    let (missed, version) = match notice {
        Some((title, message)) => {
            let at_ms = beacon_contract::hlc::wall_clock_ms();
            let html = notice_html(&title, &message, at_ms);
            let manifest = notice_manifest(&page, html.as_bytes(), at_ms);
            // The DNS answer first: it needs no origin.
            for state_dir in &targets.dns_state_dirs {
                write_dns_notice(state_dir, &page, &title)
                    .map_err(|e| origin_error(state_dir, e))?;
            }
            let notice = Some((&manifest, html.as_bytes()));
            let missed = reach_all(&targets, nats, timeout, &page, notice).await;
            (missed, Some(manifest.version.clone()))
        }
        None => {
            let missed = reach_all(&targets, nats, timeout, &page, None).await;
            for state_dir in &targets.dns_state_dirs {
                remove_dns_notice(state_dir, &page)?;
            }
            (missed, None)
        }
    };
    let reached = targets.count() - missed.len();
    if !missed.is_empty() {
        return Err(CtlError::Origins { reached, missed });
    }
    let text = match (format, &version) {
        (OutputFormat::Json, Some(version)) => output::json(&serde_json::json!({
            "page": page, "version": version, "origins": reached,
        }))?,
        (OutputFormat::Json, None) => output::json(
            &serde_json::json!({"page": page, "down": true, "origins": reached}),
        )?,
        (_, Some(_)) => format!(
            "emergency notice up on page {page} in {reached} origin(s); take it down with `beaconctl emergency down`\n"
        ),
        (_, None) => format!("emergency notice down on page {page} in {reached} origin(s)\n"),
    };
    output::print(&text)
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
        let manifest = notice_manifest("demo", html.as_bytes(), 0);
        write_notice(dir.path(), &manifest, html.as_bytes()).expect("up");
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

    fn given(origins: Vec<PathBuf>, object_store: bool, s3: &[&str]) -> EmergencyTargets {
        EmergencyTargets {
            page: "demo".into(),
            origins,
            object_store,
            s3_origins: s3.iter().map(|u| u.to_string()).collect(),
            s3_region: "us-east-1".into(),
            dns_state_dirs: Vec::new(),
        }
    }

    #[test]
    fn bad_targets_are_refused_before_anything_is_written() {
        let timeout = Duration::from_secs(1);
        let refused = |given: EmergencyTargets| match Targets::new(given, timeout) {
            Err(CtlError::BadArgument { flag, reason }) => format!("{flag}: {reason}"),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("accepted"),
        };
        assert!(refused(given(Vec::new(), false, &[])).contains("at least one origin"));
        assert!(refused(given(vec!["/nowhere/at/all".into()], false, &[])).starts_with("--origin"));
        assert!(refused(given(Vec::new(), false, &["ftp://host/b"])).starts_with("--s3-origin"));
        let mut bad_page = given(Vec::new(), true, &[]);
        bad_page.page = "Not A Page".into();
        assert!(refused(bad_page).starts_with("--page"));
        let targets =
            Targets::new(given(Vec::new(), true, &[]), timeout).expect("object store only");
        assert_eq!(targets.count(), 1);
    }
}
