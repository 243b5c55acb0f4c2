//! What `TXT _status.<host>` says: each page's components' statuses as
//! last known, folded from KV `status`, kept on disk so the answer
//! survives NATS being gone and the responder restarting without it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use beacon_contract::messages::ComponentStatus;
use serde::{Deserialize, Serialize};

/// Every page's components and their statuses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statuses {
    /// page → component → status.
    pub pages: BTreeMap<String, BTreeMap<String, ComponentStatus>>,
    /// When the last change was folded in (Unix ms); 0 before any.
    #[serde(default)]
    pub updated_at_ms: u64,
}

/// The shared view the DNS handler reads.
pub type StatusView = Arc<ArcSwap<Statuses>>;

/// The order the TXT record lists statuses in: the worst first.
const REPORTED: [ComponentStatus; 4] = [
    ComponentStatus::MajorOutage,
    ComponentStatus::PartialOutage,
    ComponentStatus::DegradedPerformance,
    ComponentStatus::UnderMaintenance,
];

/// Longest TXT character-string.
const MAX_STRING: usize = 255;

impl Statuses {
    /// Sets one component's status; true when it changed.
    pub fn set(&mut self, page: &str, component: &str, status: ComponentStatus) -> bool {
        let components = self.pages.entry(page.to_owned()).or_default();
        components.insert(component.to_owned(), status) != Some(status)
    }

    /// Forgets one component; true when it was known.
    pub fn remove(&mut self, page: &str, component: &str) -> bool {
        let Some(components) = self.pages.get_mut(page) else {
            return false;
        };
        let removed = components.remove(component).is_some();
        if components.is_empty() {
            self.pages.remove(page);
        }
        removed
    }

    /// The TXT strings for `page`: `operational` when every component is,
    /// else one string per status, worst first, naming its components
    /// (`major_outage: api, web`); `unknown` for a page never heard of.
    /// A string longer than a TXT string may be is cut at a component
    /// boundary and ends with ` +N`, the number of components left out.
    pub fn txt(&self, page: &str) -> Vec<String> {
        let Some(components) = self.pages.get(page) else {
            return vec!["unknown".to_owned()];
        };
        let mut strings = Vec::new();
        for status in REPORTED {
            let names: Vec<&str> = components
                .iter()
                .filter(|(_, s)| **s == status)
                .map(|(name, _)| name.as_str())
                .collect();
            if names.is_empty() {
                continue;
            }
            strings.push(listing(status.as_str(), &names));
        }
        if strings.is_empty() {
            strings.push(ComponentStatus::Operational.as_str().to_owned());
        }
        strings
    }
}

/// `status: a, b, c`, at most [`MAX_STRING`] bytes: components that do not
/// fit are counted as `+N`.
fn listing(status: &str, names: &[&str]) -> String {
    let mut text = format!("{status}: ");
    for (i, name) in names.iter().enumerate() {
        let separator = if i == 0 { "" } else { ", " };
        let rest = names.len() - i;
        let tail = format!(" +{rest}");
        if text.len() + separator.len() + name.len() + tail.len() > MAX_STRING {
            text.push_str(&tail);
            return text;
        }
        text.push_str(separator);
        text.push_str(name);
    }
    text
}

/// Where the last known statuses are kept.
#[derive(Debug, Clone)]
pub struct StatusFile {
    path: PathBuf,
}

impl StatusFile {
    /// The file `status.json` in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            path: dir.join("status.json"),
        }
    }

    /// The statuses stored, or none when there is no file yet. An
    /// unreadable file is reported and treated as none.
    pub fn load(&self) -> Statuses {
        match std::fs::read(&self.path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(statuses) => statuses,
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "The stored statuses are unreadable; starting from none.");
                    Statuses::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Statuses::default(),
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "Cannot read the stored statuses; starting from none.");
                Statuses::default()
            }
        }
    }

    /// Stores `statuses` atomically (a temporary file renamed over it).
    pub fn save(&self, statuses: &Statuses) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(statuses).map_err(std::io::Error::other)?;
        let temporary = self.path.with_extension("json.tmp");
        std::fs::write(&temporary, bytes)?;
        std::fs::rename(&temporary, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ComponentStatus::*;

    fn page(components: &[(&str, ComponentStatus)]) -> Statuses {
        let mut statuses = Statuses::default();
        for (name, status) in components {
            statuses.set("acme", name, *status);
        }
        statuses
    }

    /// Components and their statuses, the TXT strings.
    type Case<'a> = (&'a [(&'a str, ComponentStatus)], &'a [&'a str]);

    #[test]
    fn txt_table() {
        let cases: &[Case] = &[
            (
                &[("api", Operational), ("web", Operational)],
                &["operational"],
            ),
            (
                &[
                    ("web", MajorOutage),
                    ("api", MajorOutage),
                    ("db", Operational),
                ],
                &["major_outage: api, web"],
            ),
            (
                &[
                    ("api", DegradedPerformance),
                    ("web", MajorOutage),
                    ("db", UnderMaintenance),
                    ("cdn", PartialOutage),
                ],
                &[
                    "major_outage: web",
                    "partial_outage: cdn",
                    "degraded_performance: api",
                    "under_maintenance: db",
                ],
            ),
        ];
        for (components, expected) in cases {
            assert_eq!(page(components).txt("acme"), *expected, "{components:?}");
        }
        assert_eq!(Statuses::default().txt("acme"), vec!["unknown"]);
    }

    #[test]
    fn a_long_listing_fits_one_txt_string_and_says_how_many_are_left_out() {
        let names: Vec<String> = (0..40).map(|i| format!("component-{i:02}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let text = listing("major_outage", &refs);
        assert!(text.len() <= MAX_STRING, "{}", text.len());
        let shown = text.matches("component-").count();
        assert!(text.ends_with(&format!(" +{}", 40 - shown)), "{text}");
    }

    #[test]
    fn set_and_remove_say_whether_anything_changed() {
        let mut statuses = Statuses::default();
        assert!(statuses.set("acme", "api", MajorOutage));
        assert!(!statuses.set("acme", "api", MajorOutage));
        assert!(statuses.remove("acme", "api"));
        assert!(!statuses.remove("acme", "api"));
        assert!(statuses.pages.is_empty());
    }

    #[test]
    fn statuses_survive_a_restart_on_disk() {
        let dir = tempfile::tempdir().expect("dir");
        let file = StatusFile::in_dir(dir.path());
        assert_eq!(file.load(), Statuses::default());
        let statuses = page(&[("api", PartialOutage)]);
        file.save(&statuses).expect("save");
        assert_eq!(file.load(), statuses);
        std::fs::write(dir.path().join("status.json"), b"{not json").expect("write");
        assert_eq!(file.load(), Statuses::default());
    }
}
