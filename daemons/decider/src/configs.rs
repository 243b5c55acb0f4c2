//! Page configs as every decider instance sees them: a local copy of KV
//! `config`, fed by a watch, with each page's components indexed by id so
//! a probe result finds its component in O(1).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_nats::jetstream::kv;
use beacon_contract::event::Envelope;
use beacon_page::config::{Component, PageConfig};
use beacon_runtime::buckets::{self, Change};
use beacon_runtime::daemon::Daemon;
use tokio::sync::broadcast;

/// One page's config with its components indexed.
#[derive(Debug)]
pub struct Page {
    /// The config.
    pub config: PageConfig,
    /// KV revision it was stored at.
    pub revision: u64,
    index: HashMap<String, usize>,
}

impl Page {
    /// Indexes `config`.
    pub fn new(config: PageConfig, revision: u64) -> Self {
        let index = config
            .components
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        Self {
            config,
            revision,
            index,
        }
    }

    /// The component with this id.
    pub fn component(&self, id: &str) -> Option<&Component> {
        self.index.get(id).map(|&i| &self.config.components[i])
    }
}

/// Every page's config, shared read-mostly between the API, the watch and
/// the engine; announces each page that changed.
#[derive(Debug, Clone)]
pub struct Configs {
    pages: Arc<RwLock<HashMap<String, Arc<Page>>>>,
    changed: broadcast::Sender<String>,
}

impl Default for Configs {
    fn default() -> Self {
        Self {
            pages: Arc::default(),
            changed: broadcast::channel(1024).0,
        }
    }
}

impl Configs {
    /// The config of `page`, if any.
    pub fn get(&self, page: &str) -> Option<Arc<Page>> {
        self.pages
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(page)
            .cloned()
    }

    /// Every page id.
    pub fn pages(&self) -> Vec<String> {
        let mut pages: Vec<String> = self
            .pages
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        pages.sort();
        pages
    }

    /// Page ids whose config changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.changed.subscribe()
    }

    /// Sets (or with `None` removes) a page's config.
    pub fn set(&self, page: &str, config: Option<Page>) {
        {
            let mut map = self.pages.write().unwrap_or_else(|p| p.into_inner());
            match config {
                Some(config) => map.insert(page.to_owned(), Arc::new(config)),
                None => map.remove(page),
            };
        }
        let _ = self.changed.send(page.to_owned());
    }
}

/// Keeps `configs` equal to KV `config` until shutdown; reports on
/// `loaded` once the stored configs are all in.
pub async fn watch(
    daemon: Daemon,
    store: kv::Store,
    configs: Configs,
    loaded: tokio::sync::watch::Sender<bool>,
) {
    let mut changes = buckets::follow(store, &daemon.process.shutdown);
    while let Some(change) = changes.recv().await {
        match change {
            Change::Entry(entry) => apply_entry(&configs, &entry),
            Change::CaughtUp => {
                let _ = loaded.send(true);
            }
        }
    }
}

fn apply_entry(configs: &Configs, entry: &kv::Entry) {
    match entry.operation {
        kv::Operation::Put => match Envelope::<PageConfig>::decode(&entry.value) {
            Ok(envelope) => {
                if configs
                    .get(&entry.key)
                    .is_some_and(|p| p.revision == entry.revision)
                {
                    return;
                }
                tracing::info!(page = %entry.key, revision = entry.revision, "Page config loaded.");
                configs.set(&entry.key, Some(Page::new(envelope.data, entry.revision)));
            }
            Err(e) => {
                tracing::error!(page = %entry.key, error = %e, "Stored page config is unreadable; keeping the previous one.")
            }
        },
        kv::Operation::Delete | kv::Operation::Purge => {
            tracing::info!(page = %entry.key, "Page config removed.");
            configs.set(&entry.key, None);
        }
    }
}
