//! Mirrors the `pages` object store into the edge's origin directory, so an
//! edge in another place needs no shared disk. It watches the store (every
//! page's latest manifest first, then each new one), fetches the blobs a
//! manifest names and writes them as a version with the same atomic
//! layout the publisher uses; the loader then serves it like any other.
//! While NATS is away nothing changes locally: the edge keeps serving what
//! it has.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::object_store::ObjectStore;
use beacon_page::origin::{self, Manifest};
use beacon_runtime::connect::NatsArgs;
use beacon_runtime::shutdown::{Backoff, Shutdown};
use futures::StreamExt;
use prometheus::IntCounterVec;
use tokio::io::AsyncReadExt;

async fn read_object(store: &ObjectStore, name: &str) -> Result<Vec<u8>, String> {
    let mut object = store.get(name).await.map_err(|e| format!("{name}: {e}"))?;
    let mut bytes = Vec::new();
    object
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(bytes)
}

/// Fetches `manifest`'s blobs and writes the version into `origin_dir`,
/// unless it is already the current one there.
pub async fn mirror_version(
    store: &ObjectStore,
    origin_dir: &std::path::Path,
    manifest: &Manifest,
) -> Result<bool, String> {
    if beacon_contract::names::check_token(&manifest.page).is_err() {
        return Err(format!(
            "manifest names an invalid page {:?}",
            manifest.page
        ));
    }
    let page_dir = origin::page_dir(origin_dir, &manifest.page);
    if origin::resolve(&page_dir, origin::CURRENT).is_some_and(|(v, _)| v == manifest.version) {
        return Ok(false);
    }
    let mut blobs: HashMap<String, Vec<u8>> = HashMap::new();
    for entry in manifest.files.values() {
        for sha in [Some(&entry.sha256), entry.gzip.as_ref(), entry.br.as_ref()]
            .into_iter()
            .flatten()
        {
            if blobs.contains_key(sha) {
                continue;
            }
            let bytes = read_object(store, &origin::blob_object(&manifest.page, sha)).await?;
            if origin::sha256_hex(&bytes) != *sha {
                return Err(format!(
                    "blob {sha} of {} does not match its hash",
                    manifest.page
                ));
            }
            blobs.insert(sha.clone(), bytes);
        }
    }
    let manifest = manifest.clone();
    let dir = page_dir.clone();
    tokio::task::spawn_blocking(move || {
        origin::write_version(&dir, origin::VERSIONS, origin::CURRENT, &manifest, &|sha| {
            blobs.get(sha).cloned()
        })
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    Ok(true)
}

/// Runs the mirror until shutdown: connects (retrying), watches, mirrors.
pub async fn run(nats: NatsArgs, origin_dir: PathBuf, versions: IntCounterVec, shutdown: Shutdown) {
    let client = match beacon_runtime::connect::connect(&nats, "beacon-edge-mirror", &shutdown)
        .await
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "Mirror cannot connect to NATS; serving the local copy only.");
            return;
        }
    };
    let js = async_nats::jetstream::new(client);
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    while !shutdown.is_cancelled() {
        let store = match js
            .get_object_store(beacon_contract::names::OBJECT_PAGES)
            .await
        {
            Ok(store) => store,
            Err(e) => {
                tracing::warn!(error = %e, "Mirror cannot open the object store, retrying.");
                shutdown.sleep(backoff.next_delay()).await;
                continue;
            }
        };
        let mut watch = match store.watch_with_history().await {
            Ok(watch) => watch,
            Err(e) => {
                tracing::warn!(error = %e, "Mirror cannot watch the object store, retrying.");
                shutdown.sleep(backoff.next_delay()).await;
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
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
            if info.deleted || !info.name.ends_with("/manifest") {
                continue;
            }
            let outcome = async {
                let bytes = read_object(&store, &info.name).await?;
                let manifest: Manifest =
                    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", info.name))?;
                mirror_version(&store, &origin_dir, &manifest).await
            }
            .await;
            match outcome {
                Ok(true) => {
                    versions.with_label_values(&["mirrored"]).inc();
                    tracing::info!(object = %info.name, "Mirrored a new version.");
                }
                Ok(false) => {}
                Err(e) => {
                    // A newer manifest will follow, or the re-watch retries it.
                    versions.with_label_values(&["failed"]).inc();
                    tracing::warn!(error = %e, "Cannot mirror a version; keeping the previous one.");
                }
            }
            backoff.reset(Duration::from_millis(200));
        }
        shutdown.sleep(backoff.next_delay()).await;
    }
}
