//! Product changelog entries (`CHANGELOG`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::Message;

/// A product changelog entry. Subject: `beacon.changelog.{page}.{entry}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangelogEntry {
    /// Page id.
    pub page: String,
    /// Entry id.
    pub entry: String,
    /// Title.
    pub title: String,
    /// Body, markdown.
    pub body_markdown: String,
    /// Category: `new_feature`, `improvement`, `fix` or `announcement`
    /// ([`CHANGELOG_CATEGORIES`]; the publisher's API refuses others).
    pub category: String,
    /// Components the entry is about.
    #[serde(default)]
    pub components: Vec<String>,
    /// `true` when this event withdraws the entry.
    #[serde(default)]
    pub withdrawn: bool,
    /// Publication date shown with the entry (Unix milliseconds); 0 in
    /// entries written before it existed, which show the event's time.
    #[serde(default)]
    pub published_at_ms: u64,
    /// Images uploaded with the entry: file names under the page's
    /// `assets/` (the bytes are in the `pages` object store).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Who wrote this version of the entry.
    #[serde(default)]
    pub actor: String,
}

/// The categories a changelog entry may have.
pub const CHANGELOG_CATEGORIES: [&str; 4] = ["new_feature", "improvement", "fix", "announcement"];

impl Message for ChangelogEntry {
    const KIND: &'static str = "changelog_entry";
    const VERSION: u32 = 1;
}
