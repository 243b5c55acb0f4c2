//! Publishing to the `pages` object store, which every edge mirrors: the
//! version's files as content-addressed blobs (`{page}/blobs/{sha256}`,
//! uploaded once), then the manifest (`{page}/manifest`) as the one
//! switch. A mirror that reads the manifest finds every blob it names.
//! Blobs only the versions before the last [`origin::KEEP_VERSIONS`]
//! referenced are deleted, so a mirror still fetching a recent version
//! finishes it.

use std::collections::{HashMap, HashSet, VecDeque};

use async_nats::jetstream::object_store::ObjectStore;
use beacon_page::origin;

use crate::follow::referenced_blobs;
use crate::site::Built;

/// The object store as an origin.
pub struct ObjectOrigin {
    store: ObjectStore,
    /// Blob names known to be stored.
    uploaded: HashSet<String>,
    /// Per page, the blob names of its recent versions, newest last.
    recent: HashMap<String, VecDeque<HashSet<String>>>,
}

impl ObjectOrigin {
    /// An origin on `store`.
    pub fn new(store: ObjectStore) -> Self {
        Self {
            store,
            uploaded: HashSet::new(),
            recent: HashMap::new(),
        }
    }

    /// Uploads what is missing of `built`, then switches its page's
    /// manifest to it, then deletes blobs no recent version needs.
    pub async fn publish(&mut self, built: &Built) -> Result<(), String> {
        let page = &built.manifest.page;
        let names = referenced_blobs(&built.manifest);
        for name in &names {
            if self.uploaded.contains(name) {
                continue;
            }
            let Some(sha) = name.rsplit('/').next() else {
                continue;
            };
            let Some(bytes) = built.blobs.get(sha) else {
                return Err(format!("no bytes for {name}"));
            };
            self.store
                .put(name.as_str(), &mut bytes.as_slice())
                .await
                .map_err(|e| format!("cannot store {name}: {e}"))?;
            self.uploaded.insert(name.clone());
        }
        let manifest = serde_json::to_vec(&built.manifest).map_err(|e| e.to_string())?;
        let manifest_name = origin::manifest_object(page);
        self.store
            .put(manifest_name.as_str(), &mut manifest.as_slice())
            .await
            .map_err(|e| format!("cannot store {manifest_name}: {e}"))?;

        let recent = self.recent.entry(page.clone()).or_default();
        recent.push_back(names);
        if recent.len() > origin::KEEP_VERSIONS + 1 {
            if let Some(old) = recent.pop_front() {
                let still_used: HashSet<&String> = recent.iter().flatten().collect();
                for name in old.iter().filter(|n| !still_used.contains(n)) {
                    // A blob left behind costs space, not correctness.
                    if let Err(e) = self.store.delete(name).await {
                        tracing::debug!(blob = %name, error = %e, "Cannot delete an old blob.");
                    }
                    self.uploaded.remove(name);
                }
            }
        }
        Ok(())
    }
}
