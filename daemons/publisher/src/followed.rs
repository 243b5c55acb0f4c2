//! Page configs and changelogs as followed (the cluster's streams, plus
//! what the region wrote in its own stream while cut off): what the
//! follower renders from, and what the changelog API answers from while
//! the region is cut off from the cluster. Shared between the two tasks;
//! cheap to clone.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use beacon_contract::api::ChangelogView;
use beacon_contract::event::Envelope;
use beacon_contract::messages::ChangelogEntry;
use beacon_page::config::PageConfig;

use crate::changelog::Changelog;

#[derive(Debug, Default)]
struct State {
    pages: HashMap<String, PageConfig>,
    changelogs: HashMap<String, Changelog>,
}

/// The followed page configs and changelogs.
#[derive(Debug, Clone, Default)]
pub struct Followed {
    state: Arc<RwLock<State>>,
}

impl Followed {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A page's config as followed; `None` removes it.
    pub fn set_page(&self, page: &str, config: Option<PageConfig>) {
        let mut state = self.write();
        match config {
            Some(config) => state.pages.insert(page.to_owned(), config),
            None => state.pages.remove(page),
        };
    }

    /// Folds one more changelog event in (`sequence` 0 for one the cluster
    /// has not stored yet).
    pub fn apply_changelog(&self, envelope: &Envelope<ChangelogEntry>, sequence: u64) {
        self.write()
            .changelogs
            .entry(envelope.data.page.clone())
            .or_default()
            .apply(envelope, sequence);
    }

    /// A page's config.
    pub fn page(&self, page: &str) -> Option<PageConfig> {
        self.read().pages.get(page).cloned()
    }

    /// How many pages have a config.
    pub fn page_count(&self) -> usize {
        self.read().pages.len()
    }

    /// One changelog entry, withdrawn or not.
    pub fn entry(&self, page: &str, entry: &str) -> Option<ChangelogView> {
        self.read()
            .changelogs
            .get(page)
            .and_then(|log| log.get(entry))
            .cloned()
    }

    /// A page's changelog, as the API lists it.
    pub fn list(&self, page: &str, all: bool) -> Vec<ChangelogView> {
        self.read()
            .changelogs
            .get(page)
            .map(|log| log.list(all))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_contract::hlc::HlcClock;

    fn entry(title: &str) -> ChangelogEntry {
        ChangelogEntry {
            page: "acme".into(),
            entry: "e1".into(),
            title: title.into(),
            body_markdown: String::new(),
            category: "added".into(),
            components: vec![],
            withdrawn: false,
            published_at_ms: 1,
            images: vec![],
            actor: "op".into(),
        }
    }

    #[test]
    fn a_regional_write_and_its_later_cluster_copy_fold_once_and_the_latest_wins() {
        let clock = HlcClock::new();
        let followed = Followed::default();
        let first = Envelope::new(&clock, "eu", entry("first"));
        let second = Envelope::new(&clock, "us", entry("second"));
        followed.apply_changelog(&first, 4);
        followed.apply_changelog(&second, 0);
        followed.apply_changelog(&second, 9);
        let view = followed.entry("acme", "e1").expect("the entry");
        assert_eq!(view.entry.title, "second");
        assert_eq!(view.revision, 9);
        assert_eq!(followed.list("acme", false).len(), 1);
        assert!(followed.entry("acme", "e2").is_none());
    }
}
