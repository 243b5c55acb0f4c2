//! The edge's in-memory copy of every page, and the loader that keeps it
//! current. A version is read from the origin directory once, when its
//! page's `current` (or `emergency`) link changes, with every response's
//! headers prepared; requests then only look up and clone. A version that
//! cannot be read leaves the previous one in place: the last good version
//! is served until a good new one arrives.
//!
//! Bodies of at least [`SENDFILE_MIN_BYTES`] are also written, once per
//! version, into one sealed memfd, so [`crate::direct`] can hand them to
//! the socket with `sendfile(2)` instead of copying them from memory on
//! every response. The seals make the memfd immutable: a response in
//! flight keeps the file open and sends exactly the bytes it started with,
//! whatever version is loaded meanwhile.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use beacon_page::origin::{self, Manifest};
use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::degraded::{page_level, paused_note, Overlay, OverlayKey};
use crate::files::{content_type, Encoding};
use beacon_contract::degradation::Level;

/// Cache policy: browsers and CDNs may reuse a copy briefly, revalidate in
/// the background for a while, and keep serving it for a day if we fail.
pub const CACHE_CONTROL: &str =
    "public, max-age=5, stale-while-revalidate=30, stale-if-error=86400";

/// Smallest body sent with `sendfile(2)`; smaller ones are written with
/// their headers in one `write`. Measured on the benchmark page (one Tokio
/// worker, wrk, loopback): at 24 and 30 KB sendfile took 20 to 40 % less
/// CPU per response than the copy; at 5 to 7 KB the two were within the
/// noise, and the copy saves a system call.
pub const SENDFILE_MIN_BYTES: usize = 16 * 1024;

/// Where a body sits in its version's sealed memfd.
#[derive(Debug, Clone)]
pub struct Sendable {
    /// The memfd (sealed: it can neither change nor shrink).
    pub file: Arc<std::fs::File>,
    /// Offset of the body.
    pub offset: u64,
    /// Length of the body.
    pub len: usize,
}

/// One prepared response body and its headers.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The bytes.
    pub body: Bytes,
    /// The same bytes in the version's memfd, for bodies of at least
    /// [`SENDFILE_MIN_BYTES`] (none when the memfd could not be made).
    pub sendable: Option<Sendable>,
    /// The ETag, quoted.
    pub etag: HeaderValue,
    /// Every header of a 200 (content type, length is added by hyper).
    pub headers: HeaderMap,
}

/// A file and its precompressed variants.
#[derive(Debug, Clone)]
pub struct File {
    /// As is.
    pub identity: Prepared,
    /// Gzip, when published.
    pub gzip: Option<Prepared>,
    /// Brotli, when published.
    pub br: Option<Prepared>,
}

impl File {
    /// The variant for a negotiated encoding.
    pub fn variant(&self, encoding: Encoding) -> &Prepared {
        match encoding {
            Encoding::Br => self.br.as_ref().unwrap_or(&self.identity),
            Encoding::Gzip => self.gzip.as_ref().unwrap_or(&self.identity),
            Encoding::Identity => &self.identity,
        }
    }
}

/// One loaded version of a page.
#[derive(Debug)]
pub struct Version {
    /// Version id.
    pub id: String,
    /// What the publisher wrote about it.
    pub manifest: Manifest,
    /// Files by relative path.
    pub files: HashMap<String, File>,
}

/// A page as served: its live version, the edge's rewrites of it while
/// degraded, and an emergency notice over both.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The publisher's current version.
    pub current: Option<Arc<Version>>,
    /// `beaconctl emergency`'s notice; its files win.
    pub emergency: Option<Arc<Version>>,
    /// Files of `current` the edge rewrote to say it is degraded.
    pub overlay: Option<Arc<Overlay>>,
}

impl Page {
    /// The file at `path`: the notice's, else the edge's rewrite, else
    /// the version's.
    pub fn file(&self, path: &str) -> Option<&File> {
        self.emergency
            .as_ref()
            .and_then(|v| v.files.get(path))
            .or_else(|| self.overlay.as_ref().and_then(|o| o.files.get(path)))
            .or_else(|| self.current.as_ref().and_then(|v| v.files.get(path)))
    }

    /// Whether the page has a file at `path`.
    pub fn has(&self, path: &str) -> bool {
        self.file(path).is_some()
    }
}

/// Every page, and the custom domains that name them.
#[derive(Debug, Default)]
pub struct Sites {
    /// Pages by id.
    pub pages: HashMap<String, Page>,
    /// Page ids by host name.
    pub hosts: HashMap<String, String>,
}

/// The CSP of HTML pages: nothing but the page's own scripts (`live.js`),
/// its own origin for live updates and images, and exactly the inline
/// styles the publisher hashed. No inline script, no other origin, no
/// framing, no forms, no `<base>`.
pub fn html_csp(style_hashes: &[String]) -> String {
    let styles: Vec<String> = style_hashes.iter().map(|h| format!("'{h}'")).collect();
    let style_src = if styles.is_empty() {
        "'none'".to_owned()
    } else {
        styles.join(" ")
    };
    format!(
        "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self' data:; \
style-src {style_src}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// One body with every header it is served with.
pub fn prepared(
    path: &str,
    body: Vec<u8>,
    sha: &str,
    encoding: Option<&str>,
    csp: &str,
) -> Prepared {
    let etag = match encoding {
        // Each representation has its own validator (RFC 9110 8.8.3).
        Some(coding) => format!("\"{}-{coding}\"", &sha[..sha.len().min(20)]),
        None => format!("\"{}\"", &sha[..sha.len().min(20)]),
    };
    let etag = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"x\""));
    let mut headers = HeaderMap::with_capacity(10);
    let kind = content_type(path);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    headers.insert(header::ETAG, etag.clone());
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Some(coding) = encoding {
        if let Ok(value) = HeaderValue::from_str(coding) {
            headers.insert(header::CONTENT_ENCODING, value);
        }
    }
    if kind.starts_with("text/html") {
        if let Ok(value) = HeaderValue::from_str(csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, value);
        }
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    } else {
        // The JSON API, feeds, badges and the widget are public and meant
        // for other origins.
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        if kind.starts_with("image/svg") {
            // An SVG opened directly must not run anything either.
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
            );
        }
    }
    headers.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    Prepared {
        body: Bytes::from(body),
        sendable: None,
        etag,
        headers,
    }
}

/// Every variant of every file, to visit them all.
fn variants_mut(files: &mut HashMap<String, File>) -> impl Iterator<Item = &mut Prepared> {
    files
        .values_mut()
        .flat_map(|f| [Some(&mut f.identity), f.gzip.as_mut(), f.br.as_mut()])
        .flatten()
}

/// Copies the bodies worth a `sendfile(2)` into one sealed memfd and notes
/// where each sits. On failure no body has a place and all are written from
/// memory.
fn seal_bodies(version: &str, files: &mut HashMap<String, File>) {
    if let Err(e) = try_seal_bodies(files) {
        for prepared in variants_mut(files) {
            prepared.sendable = None;
        }
        tracing::warn!(version, error = %e, "Cannot keep the bodies in a memfd; writing them from memory.");
    }
}

fn try_seal_bodies(files: &mut HashMap<String, File>) -> std::io::Result<()> {
    use rustix::fs::{fcntl_add_seals, memfd_create, MemfdFlags, SealFlags};

    if !variants_mut(files).any(|p| p.body.len() >= SENDFILE_MIN_BYTES) {
        return Ok(());
    }
    let fd = memfd_create(
        "beacon-edge-version",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    let file = Arc::new(std::fs::File::from(fd));
    let mut offset = 0u64;
    for prepared in variants_mut(files) {
        if prepared.body.len() < SENDFILE_MIN_BYTES {
            continue;
        }
        (&*file).write_all(&prepared.body)?;
        prepared.sendable = Some(Sendable {
            file: file.clone(),
            offset,
            len: prepared.body.len(),
        });
        offset += prepared.body.len() as u64;
    }
    fcntl_add_seals(
        &*file,
        SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
    )?;
    Ok(())
}

/// Reads one version directory into memory: exactly the files its
/// manifest lists, each checked against its hash.
pub fn load_version(dir: &Path) -> std::io::Result<Version> {
    let manifest = origin::read_manifest(dir)?;
    let csp = html_csp(&manifest.style_hashes);
    let mut files = HashMap::with_capacity(manifest.files.len());
    for (path, entry) in &manifest.files {
        if !origin::is_safe_relative(path) {
            continue;
        }
        let read = |suffix: &str| std::fs::read(dir.join(format!("{path}{suffix}")));
        let body = read("")?;
        if origin::sha256_hex(&body) != entry.sha256 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{path} does not match its hash"),
            ));
        }
        let variant = |suffix: &str, sha: Option<&String>, coding: &str| {
            let sha = sha?;
            let bytes = read(suffix).ok()?;
            Some(prepared(path, bytes, sha, Some(coding), &csp))
        };
        files.insert(
            path.clone(),
            File {
                gzip: variant(".gz", entry.gzip.as_ref(), "gzip"),
                br: variant(".br", entry.br.as_ref(), "br"),
                identity: prepared(path, body, &entry.sha256, None, &csp),
            },
        );
    }
    seal_bodies(&manifest.version, &mut files);
    Ok(Version {
        id: manifest.version.clone(),
        manifest,
        files,
    })
}

/// What the loader last saw of a page's links.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Seen {
    current: Option<String>,
    emergency: Option<String>,
}

/// Keeps [`Sites`] in step with an origin directory.
pub struct Loader {
    origin: PathBuf,
    seen: HashMap<String, Seen>,
    /// The sites requests read; swapped whole after each change.
    pub sites: Arc<ArcSwap<Sites>>,
}

/// A page whose live version changed, for live updates.
#[derive(Debug, Clone)]
pub struct Changed {
    /// Page id.
    pub page: String,
    /// Its version now.
    pub version: Arc<Version>,
}

impl Loader {
    /// A loader of `origin` with nothing loaded yet.
    pub fn new(origin: PathBuf) -> Self {
        Self {
            origin,
            seen: HashMap::new(),
            sites: Arc::new(ArcSwap::from_pointee(Sites::default())),
        }
    }

    /// Decides every page's level at `now_ms` and rewrites what the edge
    /// serves of it where that changed (see [`crate::degraded`]). Returns
    /// the worst page level, 0 with no page.
    pub fn degrade(&mut self, now_ms: u64, stale_after: Duration, origin_silent: bool) -> Level {
        let old = self.sites.load_full();
        let mut worst = Level::Full;
        let mut rewritten: Vec<(String, Option<Arc<Overlay>>)> = Vec::new();
        for (name, page) in &old.pages {
            let Some(current) = &page.current else {
                continue;
            };
            let age =
                Duration::from_millis(now_ms.saturating_sub(current.manifest.generated_at_ms));
            let level = page_level(page.emergency.is_some(), age, stale_after, origin_silent);
            worst = worst.max(level);
            let wanted = (level > Level::Full).then(|| OverlayKey {
                version: current.id.clone(),
                level,
                note: (level >= Level::ComputeDegraded).then(|| paused_note(age)),
            });
            if page.overlay.as_ref().map(|o| &o.key) == wanted.as_ref() {
                continue;
            }
            let overlay = wanted.map(|key| Arc::new(Overlay::build(current, key)));
            rewritten.push((name.clone(), overlay));
        }
        if !rewritten.is_empty() {
            let mut pages = old.pages.clone();
            for (name, overlay) in rewritten {
                if let Some(page) = pages.get_mut(&name) {
                    page.overlay = overlay;
                }
            }
            self.sites.store(Arc::new(Sites {
                pages,
                hosts: old.hosts.clone(),
            }));
        }
        worst
    }

    /// Looks at every page's links once and loads what changed. Returns
    /// the pages whose current version changed.
    pub fn scan(&mut self) -> Vec<Changed> {
        let Ok(entries) = std::fs::read_dir(&self.origin) else {
            return Vec::new();
        };
        let old = self.sites.load_full();
        let mut pages = old.pages.clone();
        let mut changed_pages = Vec::new();
        let mut any = false;
        for entry in entries.filter_map(Result::ok) {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if beacon_contract::names::check_token(&name).is_err() {
                continue;
            }
            let dir = entry.path();
            let now = Seen {
                current: origin::resolve(&dir, origin::CURRENT).map(|(v, _)| v),
                emergency: origin::resolve(&dir, origin::EMERGENCY).map(|(v, _)| v),
            };
            let before = self.seen.get(&name).cloned().unwrap_or_default();
            if now == before {
                continue;
            }
            let mut page = pages.get(&name).cloned().unwrap_or_default();
            let mut seen = before.clone();
            if now.current != before.current {
                match origin::resolve(&dir, origin::CURRENT).map(|(_, d)| load_version(&d)) {
                    Some(Ok(version)) => {
                        let version = Arc::new(version);
                        page.current = Some(version.clone());
                        // Rewrites were of the previous version.
                        page.overlay = None;
                        seen.current = now.current.clone();
                        changed_pages.push(Changed {
                            page: name.clone(),
                            version,
                        });
                    }
                    Some(Err(e)) => {
                        tracing::warn!(page = %name, version = ?now.current, error = %e,
                            "Cannot load the new version; serving the previous one.");
                    }
                    // No link (yet): keep what is served.
                    None => seen.current = None,
                }
            }
            if now.emergency != before.emergency {
                match origin::resolve(&dir, origin::EMERGENCY).map(|(_, d)| load_version(&d)) {
                    Some(Ok(version)) => {
                        tracing::warn!(page = %name, "Emergency notice is up.");
                        page.emergency = Some(Arc::new(version));
                        seen.emergency = now.emergency.clone();
                    }
                    Some(Err(e)) => {
                        tracing::warn!(page = %name, error = %e, "Cannot load the emergency notice.");
                    }
                    None => {
                        if page.emergency.take().is_some() {
                            tracing::info!(page = %name, "Emergency notice taken down.");
                        }
                        seen.emergency = None;
                    }
                }
            }
            self.seen.insert(name.clone(), seen);
            pages.insert(name, page);
            any = true;
        }
        if any {
            let mut hosts = HashMap::new();
            for (id, page) in &pages {
                if let Some(current) = &page.current {
                    for host in &current.manifest.hosts {
                        hosts.insert(host.clone(), id.clone());
                    }
                }
            }
            self.sites.store(Arc::new(Sites { pages, hosts }));
        }
        changed_pages
    }
}
