//! The api daemon's stored keys (KV `apikeys`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::Message;

/// An HTTP API key as the api daemon stores it: the value under `{id}` in
/// KV `apikeys`. Only a hash of the secret is kept; the key itself is shown
/// once, when it is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRecord {
    /// Key id: the public part of the key, `bk_{id}_…`.
    pub id: String,
    /// The page it may act on.
    pub page: String,
    /// A name for people, e.g. `ci deploys`.
    pub name: String,
    /// What it may do, e.g. `incidents:write`.
    pub scopes: Vec<crate::api::ApiScope>,
    /// SHA-256 of the secret part, lowercase hex.
    pub secret_sha256: String,
    /// Requests per minute it may make.
    pub rate_per_minute: u32,
    /// When it was created (Unix milliseconds).
    pub created_at_ms: u64,
    /// Who created it.
    pub created_by: String,
    /// When it was revoked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<u64>,
}

impl Message for ApiKeyRecord {
    const KIND: &'static str = "api_key";
    const VERSION: u32 = 1;
}
