//! The publisher's endpoints: the product changelog.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::*;

// ---------------------------------------------------------------------------
// Changelog (served by the publisher).
// ---------------------------------------------------------------------------

/// Largest image accepted with a changelog entry, in bytes (before base64):
/// a request must stay under the bus's 1 MiB message limit.
pub const CHANGELOG_IMAGE_MAX_BYTES: usize = 512 * 1024;

/// An image uploaded with a changelog entry; it becomes `assets/{name}` of
/// the page, so the entry's markdown shows it with `![alt](assets/{name})`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangelogImage {
    /// File name: lowercase letters, digits, `-`, `_` and one `.` before a
    /// `png`, `jpg`, `jpeg`, `gif` or `webp` extension.
    pub name: String,
    /// The bytes, base64 (standard alphabet, padded).
    pub data_base64: String,
}

/// `beacon.api.changelog.publish`: publish a new entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishChangelogRequest {
    /// Page id.
    pub page: String,
    /// Title.
    pub title: String,
    /// Body, markdown (rendered to sanitized HTML).
    pub body_markdown: String,
    /// `new_feature`, `improvement`, `fix` or `announcement`.
    pub category: String,
    /// Components the entry is about.
    #[serde(default)]
    pub components: Vec<String>,
    /// Publication date (Unix milliseconds); none: now.
    #[serde(default)]
    pub published_at_ms: Option<u64>,
    /// Images to upload as assets of the page.
    #[serde(default)]
    pub images: Vec<ChangelogImage>,
    /// Who asks.
    pub actor: String,
    /// A key the client chose: the same key publishes one entry, however
    /// often the request is retried within the bus's dedup window.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `beacon.api.changelog.edit`: change an entry; fields left out keep
/// their value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EditChangelogRequest {
    /// Page id.
    pub page: String,
    /// Entry id.
    pub entry: String,
    /// The revision the client saw; refused with a conflict when the entry
    /// changed since. None: the revision the server reads.
    #[serde(default)]
    pub expected_revision: Option<u64>,
    /// New title.
    #[serde(default)]
    pub title: Option<String>,
    /// New body.
    #[serde(default)]
    pub body_markdown: Option<String>,
    /// New category.
    #[serde(default)]
    pub category: Option<String>,
    /// New components.
    #[serde(default)]
    pub components: Option<Vec<String>>,
    /// New publication date.
    #[serde(default)]
    pub published_at_ms: Option<u64>,
    /// Images to add (an image of the same name is replaced).
    #[serde(default)]
    pub images: Vec<ChangelogImage>,
    /// Who asks.
    pub actor: String,
}

/// `beacon.api.changelog.delete`: withdraw an entry from the page and feeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteChangelogRequest {
    /// Page id.
    pub page: String,
    /// Entry id.
    pub entry: String,
    /// The revision the client saw (optional, as for edits).
    #[serde(default)]
    pub expected_revision: Option<u64>,
    /// Who asks.
    pub actor: String,
}

/// `beacon.api.changelog.list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListChangelogRequest {
    /// Page id.
    pub page: String,
    /// Include withdrawn entries.
    #[serde(default)]
    pub all: bool,
}

/// A changelog entry as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangelogView {
    /// The entry's latest state.
    pub entry: ChangelogEntry,
    /// When it was first published (Unix milliseconds, event time).
    pub created_at_ms: u64,
    /// When it last changed.
    pub updated_at_ms: u64,
    /// Stream sequence of its latest event: the revision an edit names.
    pub revision: u64,
}

/// Result of `changelog.list`, newest publication first.
pub type ChangelogList = Vec<ChangelogView>;

// ---------------------------------------------------------------------------
// Endpoints.
// ---------------------------------------------------------------------------

/// The daemon that serves the endpoints below.
const OWNER: &str = "publisher";

/// Publish a changelog entry.
pub const CHANGELOG_PUBLISH: Endpoint<PublishChangelogRequest, ChangelogView> =
    Endpoint::new("beacon.api.changelog.publish", OWNER);

/// Change a changelog entry.
pub const CHANGELOG_EDIT: Endpoint<EditChangelogRequest, ChangelogView> =
    Endpoint::new("beacon.api.changelog.edit", OWNER);

/// Withdraw a changelog entry.
pub const CHANGELOG_DELETE: Endpoint<DeleteChangelogRequest, ChangelogView> =
    Endpoint::new("beacon.api.changelog.delete", OWNER);

/// A page's changelog entries.
pub const CHANGELOG_LIST: Endpoint<ListChangelogRequest, ChangelogList> =
    Endpoint::new("beacon.api.changelog.list", OWNER);
