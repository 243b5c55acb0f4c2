//! Mirrors pages from several origins into the edge's origin directory, so
//! an edge in another place needs no shared disk and no single origin.
//! Each origin has a reader: the `pages` object store is watched (every
//! page's latest manifest first, then each new one); an S3-compatible
//! bucket is polled (its page index, then each page's manifest). Both hold
//! the same layout, and an emergency notice beside the manifest.
//!
//! What each origin last said about each page is kept; [`choose`] picks
//! what to serve: the first origin's word while it answers, else the
//! newest version any origin said. An origin that stops answering keeps
//! its last word, so with every origin gone the edge serves what it has
//! (RFC 5861 `stale-if-error`, which the edge also tells caches in front of
//! it). The chosen version's blobs come from the origin that named it, or
//! any other that has them, and are written with the publisher's atomic
//! layout; the loader then serves it like any other.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::object_store::ObjectStore;
use beacon_bucket::{Bucket, S3Settings};
use beacon_page::origin::{self, Manifest};
use beacon_runtime::connect::NatsArgs;
use beacon_runtime::shutdown::{Backoff, Shutdown};
use futures::StreamExt;
use prometheus::{IntCounterVec, IntGaugeVec};
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;

/// Where the edge mirrors from, first one preferred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The `pages` object store, over this connection.
    ObjectStore(NatsArgs),
    /// An S3-compatible bucket, polled.
    S3(S3Settings),
}

impl Source {
    /// The origin's name in logs and metrics: `object_store` or
    /// `s3-<bucket>`, as the publisher names them.
    pub fn name(&self) -> String {
        match self {
            Source::ObjectStore(_) => "object_store".to_owned(),
            Source::S3(settings) => format!("s3-{}", settings.bucket),
        }
    }
}

/// What one origin last said about one page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The page's live version.
    pub manifest: Option<Manifest>,
    /// The emergency notice over it, if one is up.
    pub emergency: Option<Manifest>,
}

/// What one origin said and whether it answers now.
#[derive(Debug, Clone, Default)]
pub struct Heard {
    /// True while the origin answers.
    pub answering: bool,
    /// Per page, its last word.
    pub pages: HashMap<String, Report>,
}

/// What to serve for one page, and which origin said so (an index into
/// the origins, to fetch the blobs from first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice<'a> {
    /// The live version, if any origin named one.
    pub manifest: Option<(usize, &'a Manifest)>,
    /// The emergency notice, if the chosen word has one.
    pub emergency: Option<(usize, &'a Manifest)>,
}

/// Picks what to serve for `page` from what the origins said: the first
/// origin's word while it answers and has one; otherwise, for each of the
/// live version and the notice, the newest any origin said (versions are
/// ULIDs, which sort by time). `None` when no origin has the page.
pub fn choose<'a>(heard: &'a [Heard], page: &str) -> Option<Choice<'a>> {
    if let Some(first) = heard.first().filter(|h| h.answering) {
        if let Some(report) = first.pages.get(page) {
            return Some(Choice {
                manifest: report.manifest.as_ref().map(|m| (0, m)),
                emergency: report.emergency.as_ref().map(|m| (0, m)),
            });
        }
    }
    let reports: Vec<(usize, &Report)> = heard
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.pages.get(page).map(|r| (i, r)))
        .collect();
    if reports.is_empty() {
        return None;
    }
    let newest = |pick: fn(&Report) -> Option<&Manifest>| {
        reports
            .iter()
            .filter_map(|(i, r)| pick(r).map(|m| (*i, m)))
            .max_by(|a, b| a.1.version.cmp(&b.1.version))
    };
    Some(Choice {
        manifest: newest(|r| r.manifest.as_ref()),
        emergency: newest(|r| r.emergency.as_ref()),
    })
}

/// How the mirror reads one origin's objects.
#[derive(Clone)]
enum Reader {
    Store(Box<ObjectStore>),
    S3(Box<Bucket>),
}

impl Reader {
    /// The bytes of `name`, or `None` when the origin has no such object.
    async fn read(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        match self {
            Reader::Store(store) => {
                let mut object = match store.get(name).await {
                    Ok(object) => object,
                    Err(e)
                        if e.kind()
                            == async_nats::jetstream::object_store::GetErrorKind::NotFound =>
                    {
                        return Ok(None)
                    }
                    Err(e) => return Err(format!("{name}: {e}")),
                };
                let mut bytes = Vec::new();
                object
                    .read_to_end(&mut bytes)
                    .await
                    .map_err(|e| format!("{name}: {e}"))?;
                Ok(Some(bytes))
            }
            Reader::S3(bucket) => bucket.get(name).await.map_err(|e| e.to_string()),
        }
    }
}

/// The mirror's metrics.
#[derive(Clone)]
pub struct MirrorMetrics {
    /// `beacon_edge_versions_total{outcome}`: mirrored, failed.
    pub versions: IntCounterVec,
    /// `beacon_edge_origin_up{origin}`: 1 while the origin answers.
    pub up: IntGaugeVec,
}

/// What the readers share with the writer.
struct Shared {
    names: Vec<String>,
    heard: Mutex<Vec<Heard>>,
    readers: Mutex<Vec<Option<Reader>>>,
    changed: Notify,
    up: IntGaugeVec,
}

impl Shared {
    fn answering(&self, index: usize, answering: bool) {
        let mut heard = self.heard.lock().unwrap_or_else(PoisonError::into_inner);
        if heard[index].answering != answering {
            if answering {
                tracing::info!(origin = %self.names[index], "Origin answers again.");
            } else {
                tracing::warn!(origin = %self.names[index], "Origin does not answer; serving from the others or the last copy.");
            }
        }
        heard[index].answering = answering;
        drop(heard);
        self.up
            .with_label_values(&[&self.names[index]])
            .set(i64::from(answering));
        self.changed.notify_one();
    }

    fn report(&self, index: usize, page: &str, change: impl FnOnce(&mut Report)) {
        let mut heard = self.heard.lock().unwrap_or_else(PoisonError::into_inner);
        change(heard[index].pages.entry(page.to_owned()).or_default());
        drop(heard);
        self.changed.notify_one();
    }

    fn reader(&self, index: usize, reader: Option<Reader>) {
        self.readers.lock().unwrap_or_else(PoisonError::into_inner)[index] = reader;
    }

    /// True while any origin does not answer (the edge is then at
    /// degradation level 1 at least).
    fn any_silent(&self) -> bool {
        self.heard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|h| !h.answering)
    }
}

/// A handle on a running mirror.
#[derive(Clone)]
pub struct MirrorState(Arc<Shared>);

impl MirrorState {
    /// True while any origin does not answer.
    pub fn any_origin_silent(&self) -> bool {
        self.0.any_silent()
    }
}

/// Starts the mirror: one reader per origin and one writer, until
/// shutdown.
pub fn start(
    sources: Vec<Source>,
    origin_dir: PathBuf,
    poll: Duration,
    metrics: MirrorMetrics,
    shutdown: &Shutdown,
) -> MirrorState {
    let names: Vec<String> = sources.iter().map(Source::name).collect();
    for name in &names {
        metrics.up.with_label_values(&[name]).set(0);
    }
    let shared = Arc::new(Shared {
        heard: Mutex::new(vec![Heard::default(); names.len()]),
        readers: Mutex::new(vec![None; names.len()]),
        names,
        changed: Notify::new(),
        up: metrics.up.clone(),
    });
    for (index, source) in sources.into_iter().enumerate() {
        let shared = shared.clone();
        let stop = shutdown.clone();
        match source {
            Source::ObjectStore(nats) => {
                shutdown.spawn(watch_object_store(nats, index, shared, stop));
            }
            Source::S3(settings) => {
                shutdown.spawn(poll_bucket(settings, index, poll, shared, stop));
            }
        }
    }
    shutdown.spawn(write(
        shared.clone(),
        origin_dir,
        metrics.versions,
        shutdown.clone(),
    ));
    MirrorState(shared)
}

/// Splits `{page}/manifest` and `{page}/emergency` into the page and which.
fn page_object(name: &str) -> Option<(&str, bool)> {
    let (page, what) = name.split_once('/')?;
    match what {
        "manifest" => Some((page, false)),
        origin::EMERGENCY => Some((page, true)),
        _ => None,
    }
}

fn parse_manifest(name: &str, bytes: &[u8]) -> Result<Manifest, String> {
    let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| format!("{name}: {e}"))?;
    if beacon_contract::names::check_token(&manifest.page).is_err() {
        return Err(format!("{name}: names an invalid page {:?}", manifest.page));
    }
    Ok(manifest)
}

/// Watches the object store; answering while the connection is up and the
/// watch runs.
async fn watch_object_store(nats: NatsArgs, index: usize, shared: Arc<Shared>, shutdown: Shutdown) {
    let client = match beacon_runtime::connect::connect(&nats, "beacon-edge-mirror", &shutdown)
        .await
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "Mirror cannot connect to NATS; serving the other origins and the local copy.");
            return;
        }
    };
    let js = async_nats::jetstream::new(client.clone());
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut health = tokio::time::interval(Duration::from_secs(1));
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !shutdown.is_cancelled() {
        let watched = async {
            let store = js
                .get_object_store(beacon_contract::names::OBJECT_PAGES)
                .await
                .map_err(|e| format!("cannot open the object store: {e}"))?;
            let watch = store
                .watch_with_history()
                .await
                .map_err(|e| format!("cannot watch the object store: {e}"))?;
            Ok::<_, String>((store, watch))
        }
        .await;
        let (store, mut watch) = match watched {
            Ok(watched) => watched,
            Err(e) => {
                tracing::warn!(error = %e, "Mirror retrying the object store.");
                shared.answering(index, false);
                shutdown.sleep(backoff.next_delay()).await;
                continue;
            }
        };
        shared.reader(index, Some(Reader::Store(Box::new(store.clone()))));
        shared.answering(index, true);
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = health.tick() => {
                    let connected = client.connection_state() == async_nats::connection::State::Connected;
                    shared.answering(index, connected);
                    continue;
                }
                next = watch.next() => next,
            };
            let info = match next {
                Some(Ok(info)) => info,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "Object store watch failed, watching again.");
                    break;
                }
                None => break,
            };
            let Some((page, emergency)) = page_object(&info.name) else {
                continue;
            };
            if info.deleted {
                if emergency {
                    shared.report(index, page, |r| r.emergency = None);
                }
                continue;
            }
            let read = Reader::Store(Box::new(store.clone()));
            let manifest = match read.read(&info.name).await {
                Ok(Some(bytes)) => parse_manifest(&info.name, &bytes),
                Ok(None) => continue,
                Err(e) => Err(e),
            };
            match manifest {
                Ok(manifest) if emergency => {
                    shared.report(index, page, |r| r.emergency = Some(manifest));
                }
                Ok(manifest) => shared.report(index, page, |r| r.manifest = Some(manifest)),
                // A newer manifest will follow, or the re-watch reads it again.
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot read a manifest from the object store.")
                }
            }
            backoff.reset(Duration::from_millis(200));
        }
        shared.answering(index, false);
        shutdown.sleep(backoff.next_delay()).await;
    }
}

/// Reads everything a bucket says: its index, then each page's manifest
/// and notice. All or nothing, so a half-read poll never looks like a
/// notice taken down.
async fn read_bucket(bucket: &Bucket) -> Result<Vec<(String, Report)>, String> {
    let pages: BTreeSet<String> = bucket.pages().await.map_err(|e| e.to_string())?;
    let mut reports = Vec::new();
    for page in pages {
        if beacon_contract::names::check_token(&page).is_err() {
            continue;
        }
        let mut report = Report::default();
        for emergency in [false, true] {
            let name = if emergency {
                origin::emergency_object(&page)
            } else {
                origin::manifest_object(&page)
            };
            let Some(bytes) = bucket.get(&name).await.map_err(|e| e.to_string())? else {
                continue;
            };
            let manifest = parse_manifest(&name, &bytes)?;
            if emergency {
                report.emergency = Some(manifest);
            } else {
                report.manifest = Some(manifest);
            }
        }
        reports.push((page, report));
    }
    Ok(reports)
}

/// Polls a bucket every `poll`.
async fn poll_bucket(
    settings: S3Settings,
    index: usize,
    poll: Duration,
    shared: Arc<Shared>,
    shutdown: Shutdown,
) {
    let bucket = match Bucket::new(&settings, poll.max(Duration::from_secs(5))) {
        Ok(bucket) => bucket,
        Err(e) => {
            tracing::error!(error = %e, "Cannot use this bucket; mirroring from the others.");
            return;
        }
    };
    shared.reader(index, Some(Reader::S3(Box::new(bucket.clone()))));
    let mut failed_before = false;
    while !shutdown.is_cancelled() {
        match read_bucket(&bucket).await {
            Ok(reports) => {
                for (page, report) in reports {
                    shared.report(index, &page, |r| *r = report);
                }
                shared.answering(index, true);
                failed_before = false;
            }
            Err(e) => {
                if !failed_before {
                    tracing::warn!(origin = %shared.names[index], error = %e, "Cannot read the bucket; keeping its last word.");
                }
                failed_before = true;
                shared.answering(index, false);
            }
        }
        shutdown.sleep(poll).await;
    }
}

/// Writes the chosen versions, on every change and once a second (a write
/// that failed is tried again; an origin that stopped answering changes
/// the choice).
async fn write(
    shared: Arc<Shared>,
    origin_dir: PathBuf,
    versions: IntCounterVec,
    shutdown: Shutdown,
) {
    // Per page and link (`true`: the notice), the version this writer made
    // live (`None`: none): only a choice that differs from it is copied out
    // of the lock and looked at on disk.
    let mut live: HashMap<(String, bool), Option<String>> = HashMap::new();
    // Per page and link, the version whose write last failed: logged once.
    let mut failing: HashMap<(String, bool), String> = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = shared.changed.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let changed = changed_choices(&shared, &live);
        if changed.is_empty() {
            continue;
        }
        let readers = shared
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for Wanted {
            page,
            emergency,
            wanted,
        } in changed
        {
            let page_dir = origin::page_dir(&origin_dir, &page);
            let (kind, link) = if emergency {
                (origin::EMERGENCY_VERSIONS, origin::EMERGENCY)
            } else {
                (origin::VERSIONS, origin::CURRENT)
            };
            let here = origin::resolve(&page_dir, link).map(|(v, _)| v);
            let key = (page.clone(), emergency);
            let outcome = match &wanted {
                Some((_, manifest)) if here.as_deref() == Some(manifest.version.as_str()) => {
                    live.insert(key, here);
                    continue;
                }
                None if here.is_none() || !emergency => {
                    live.insert(key, None);
                    continue;
                }
                // Every origin that has the page says the notice is down.
                None => origin::remove_link(&page_dir, link)
                    .map(|()| None)
                    .map_err(|e| e.to_string()),
                Some((from, manifest)) => {
                    fetch_and_write(&readers, *from, &page_dir, kind, link, manifest)
                        .await
                        .map(|()| Some(manifest.version.clone()))
                }
            };
            match outcome {
                Ok(version) => {
                    failing.remove(&key);
                    versions.with_label_values(&["mirrored"]).inc();
                    tracing::info!(page = %page, link, version = ?version, "Mirrored.");
                    live.insert(key, version);
                }
                Err(e) => {
                    versions.with_label_values(&["failed"]).inc();
                    let version = wanted.map(|(_, m)| m.version).unwrap_or_default();
                    if failing.get(&key) != Some(&version) {
                        tracing::warn!(page = %page, link, error = %e, "Cannot mirror a version; keeping the previous one.");
                        failing.insert(key, version);
                    }
                }
            }
        }
    }
}

/// One page's link whose chosen version differs from the one live.
struct Wanted {
    page: String,
    emergency: bool,
    /// The origin to fetch from first, and the manifest; `None`: no notice.
    wanted: Option<(usize, Manifest)>,
}

/// The choices (see [`choose`]) that differ from `live`, copied out of the
/// lock; the rest stays where it is.
fn changed_choices(shared: &Shared, live: &HashMap<(String, bool), Option<String>>) -> Vec<Wanted> {
    let heard = shared.heard.lock().unwrap_or_else(PoisonError::into_inner);
    let pages: BTreeSet<&String> = heard.iter().flat_map(|h| h.pages.keys()).collect();
    let mut changed = Vec::new();
    for page in pages {
        let Some(choice) = choose(&heard, page) else {
            continue;
        };
        for (emergency, wanted) in [(false, choice.manifest), (true, choice.emergency)] {
            let version = wanted.map(|(_, m)| m.version.clone());
            if live.get(&(page.clone(), emergency)) == Some(&version) {
                continue;
            }
            changed.push(Wanted {
                page: page.clone(),
                emergency,
                wanted: wanted.map(|(from, m)| (from, m.clone())),
            });
        }
    }
    changed
}

/// Fetches `manifest`'s blobs, from origin `from` first and then any
/// other, checks each against its hash, and writes the version.
async fn fetch_and_write(
    readers: &[Option<Reader>],
    from: usize,
    page_dir: &Path,
    kind: &'static str,
    link: &'static str,
    manifest: &Manifest,
) -> Result<(), String> {
    let order: Vec<&Reader> = std::iter::once(from)
        .chain((0..readers.len()).filter(|i| *i != from))
        .filter_map(|i| readers.get(i).and_then(Option::as_ref))
        .collect();
    let mut blobs: HashMap<String, Vec<u8>> = HashMap::new();
    for entry in manifest.files.values() {
        for sha in [Some(&entry.sha256), entry.gzip.as_ref(), entry.br.as_ref()]
            .into_iter()
            .flatten()
        {
            if blobs.contains_key(sha) {
                continue;
            }
            let name = origin::blob_object(&manifest.page, sha);
            let mut last_error = format!("no origin has {name}");
            for reader in &order {
                match reader.read(&name).await {
                    Ok(Some(bytes)) if origin::sha256_hex(&bytes) == *sha => {
                        blobs.insert(sha.clone(), bytes);
                        break;
                    }
                    Ok(Some(_)) => last_error = format!("{name} does not match its hash"),
                    Ok(None) => {}
                    Err(e) => last_error = e,
                }
            }
            if !blobs.contains_key(sha) {
                return Err(last_error);
            }
        }
    }
    let manifest = manifest.clone();
    let dir = page_dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        origin::write_version(&dir, kind, link, &manifest, &|sha| blobs.get(sha).cloned())
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(version: &str) -> Manifest {
        Manifest {
            page: "demo".into(),
            version: version.into(),
            ..Manifest::default()
        }
    }

    fn heard(answering: bool, live: Option<&str>, notice: Option<&str>) -> Heard {
        let mut pages = HashMap::new();
        pages.insert(
            "demo".to_owned(),
            Report {
                manifest: live.map(manifest),
                emergency: notice.map(manifest),
            },
        );
        Heard { answering, pages }
    }

    /// (origin, version) of the live version and of the notice.
    type Picked = (Option<(usize, String)>, Option<(usize, String)>);

    fn picked(heard: &[Heard]) -> Picked {
        let choice = choose(heard, "demo").expect("some origin has the page");
        let version = |c: Option<(usize, &Manifest)>| c.map(|(i, m)| (i, m.version.clone()));
        (version(choice.manifest), version(choice.emergency))
    }

    #[test]
    fn the_first_origin_wins_while_it_answers_even_when_older() {
        let origins = [
            heard(true, Some("01A"), None),
            heard(true, Some("01B"), None),
        ];
        assert_eq!(picked(&origins), (Some((0, "01A".into())), None));
    }

    #[test]
    fn a_silent_first_origin_hands_over_to_the_newest_word() {
        let origins = [
            heard(false, Some("01A"), None),
            heard(true, Some("01C"), None),
            heard(false, Some("01B"), Some("01N")),
        ];
        assert_eq!(
            picked(&origins),
            (Some((1, "01C".into())), Some((2, "01N".into())))
        );
    }

    #[test]
    fn every_origin_silent_keeps_the_last_words() {
        let origins = [
            heard(false, Some("01A"), None),
            heard(false, Some("01B"), None),
        ];
        assert_eq!(picked(&origins), (Some((1, "01B".into())), None));
    }

    #[test]
    fn a_first_origin_without_the_page_defers_to_the_others() {
        let origins = [
            Heard {
                answering: true,
                pages: HashMap::new(),
            },
            heard(true, Some("01B"), None),
        ];
        assert_eq!(picked(&origins), (Some((1, "01B".into())), None));
        assert!(choose(&origins, "other").is_none());
    }

    #[test]
    fn a_notice_taken_down_at_the_first_origin_is_down() {
        let origins = [
            heard(true, Some("01A"), None),
            heard(true, Some("01A"), Some("01N")),
        ];
        assert_eq!(picked(&origins), (Some((0, "01A".into())), None));
    }

    #[test]
    fn only_manifests_and_notices_are_page_objects() {
        assert_eq!(page_object("demo/manifest"), Some(("demo", false)));
        assert_eq!(page_object("demo/emergency"), Some(("demo", true)));
        assert_eq!(page_object("demo/blobs/abc"), None);
        assert_eq!(page_object("index.json"), None);
    }
}
