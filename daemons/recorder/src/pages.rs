//! The page configs the recorder needs for weights, targets and component
//! lists, kept equal to KV `config` by following the bucket.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_nats::jetstream::kv;
use beacon_contract::event::Envelope;
use beacon_page::config::PageConfig;
use beacon_runtime::buckets::{self, Change};
use beacon_runtime::shutdown::Shutdown;

/// Every page's config, shared read-mostly by the rollups and the API.
#[derive(Debug, Clone, Default)]
pub struct Pages(Arc<RwLock<HashMap<String, Arc<PageConfig>>>>);

impl Pages {
    /// The config of `page`, if there is one.
    pub fn get(&self, page: &str) -> Option<Arc<PageConfig>> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(page)
            .cloned()
    }

    /// Every page's config, sorted by page id.
    pub fn all(&self) -> Vec<Arc<PageConfig>> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        let mut pages: Vec<Arc<PageConfig>> = map.values().cloned().collect();
        pages.sort_by(|a, b| a.id.cmp(&b.id));
        pages
    }

    /// Sets (or with `None` removes) a page's config.
    pub fn set(&self, page: &str, config: Option<PageConfig>) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        match config {
            Some(config) => map.insert(page.to_owned(), Arc::new(config)),
            None => map.remove(page),
        };
    }
}

/// Keeps `pages` equal to KV `config` until shutdown; says on `loaded`
/// once the stored configs are all in.
pub async fn follow(
    store: kv::Store,
    pages: Pages,
    loaded: tokio::sync::watch::Sender<bool>,
    shutdown: Shutdown,
) {
    let mut changes = buckets::follow(store, &shutdown);
    while let Some(change) = changes.recv().await {
        match change {
            Change::Entry(entry) => match entry.operation {
                kv::Operation::Put => match Envelope::<PageConfig>::decode(&entry.value) {
                    Ok(envelope) => pages.set(&entry.key, Some(envelope.data)),
                    Err(e) => {
                        tracing::error!(page = %entry.key, error = %e,
                            "Stored page config is unreadable; keeping the previous one.");
                    }
                },
                kv::Operation::Delete | kv::Operation::Purge => pages.set(&entry.key, None),
            },
            Change::CaughtUp => {
                let _ = loaded.send(true);
            }
        }
    }
}
