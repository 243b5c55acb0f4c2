//! The api daemon's endpoints: HTTP API keys.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Endpoint;

// ---------------------------------------------------------------------------
// HTTP API keys (served by the api daemon).
// ---------------------------------------------------------------------------

/// What an HTTP API key may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum ApiScope {
    /// Read incidents.
    #[serde(rename = "incidents:read")]
    IncidentsRead,
    /// Create and update incidents.
    #[serde(rename = "incidents:write")]
    IncidentsWrite,
    /// Read components and their status.
    #[serde(rename = "components:read")]
    ComponentsRead,
    /// Set and clear component statuses.
    #[serde(rename = "components:write")]
    ComponentsWrite,
    /// Read maintenance windows.
    #[serde(rename = "maintenance:read")]
    MaintenanceRead,
    /// Schedule and change maintenance windows.
    #[serde(rename = "maintenance:write")]
    MaintenanceWrite,
    /// Publish changelog entries.
    #[serde(rename = "changelog:write")]
    ChangelogWrite,
    /// Read changelog entries (including withdrawn ones).
    #[serde(rename = "changelog:read")]
    ChangelogRead,
    /// Read subscribers.
    #[serde(rename = "subscribers:read")]
    SubscribersRead,
    /// Add and remove subscribers.
    #[serde(rename = "subscribers:write")]
    SubscribersWrite,
}

impl ApiScope {
    /// Every scope.
    pub const ALL: [ApiScope; 10] = [
        ApiScope::IncidentsRead,
        ApiScope::IncidentsWrite,
        ApiScope::ComponentsRead,
        ApiScope::ComponentsWrite,
        ApiScope::MaintenanceRead,
        ApiScope::MaintenanceWrite,
        ApiScope::ChangelogWrite,
        ApiScope::ChangelogRead,
        ApiScope::SubscribersRead,
        ApiScope::SubscribersWrite,
    ];

    /// The wire name, e.g. `incidents:write`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiScope::IncidentsRead => "incidents:read",
            ApiScope::IncidentsWrite => "incidents:write",
            ApiScope::ComponentsRead => "components:read",
            ApiScope::ComponentsWrite => "components:write",
            ApiScope::MaintenanceRead => "maintenance:read",
            ApiScope::MaintenanceWrite => "maintenance:write",
            ApiScope::ChangelogWrite => "changelog:write",
            ApiScope::ChangelogRead => "changelog:read",
            ApiScope::SubscribersRead => "subscribers:read",
            ApiScope::SubscribersWrite => "subscribers:write",
        }
    }

    /// The scope named `text`.
    pub fn parse(text: &str) -> Option<ApiScope> {
        ApiScope::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether holding `self` allows what `needed` guards: a write scope
    /// also reads.
    pub fn allows(self, needed: ApiScope) -> bool {
        use ApiScope as S;
        self == needed
            || matches!(
                (self, needed),
                (S::IncidentsWrite, S::IncidentsRead)
                    | (S::ComponentsWrite, S::ComponentsRead)
                    | (S::MaintenanceWrite, S::MaintenanceRead)
                    | (S::ChangelogWrite, S::ChangelogRead)
                    | (S::SubscribersWrite, S::SubscribersRead)
            )
    }
}

/// `beacon.api.apikey.create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// The page the key may act on.
    pub page: String,
    /// A name for people.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<ApiScope>,
    /// Requests per minute (default 600).
    #[serde(default)]
    pub rate_per_minute: Option<u32>,
    /// Who asks.
    pub actor: String,
}

/// An API key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyView {
    /// Key id.
    pub id: String,
    /// Page.
    pub page: String,
    /// Name.
    pub name: String,
    /// Scopes.
    pub scopes: Vec<ApiScope>,
    /// Requests per minute.
    pub rate_per_minute: u32,
    /// Created (Unix milliseconds).
    pub created_at_ms: u64,
    /// By whom.
    pub created_by: String,
    /// Revoked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<u64>,
}

/// Result of `apikey.create`: the key, shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatedApiKey {
    /// The whole key, `bk_{id}_{secret}`; only its hash is stored.
    pub key: String,
    /// What was stored.
    pub view: ApiKeyView,
}

/// `beacon.api.apikey.list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListApiKeysRequest {
    /// Only the keys of this page.
    #[serde(default)]
    pub page: Option<String>,
}

/// `beacon.api.apikey.revoke`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeApiKeyRequest {
    /// Key id.
    pub id: String,
    /// Who asks.
    pub actor: String,
}

// ---------------------------------------------------------------------------
// Endpoints.
// ---------------------------------------------------------------------------

/// The daemon that serves the endpoints below.
const OWNER: &str = "api daemon";

/// Create an HTTP API key (shown once).
pub const APIKEY_CREATE: Endpoint<CreateApiKeyRequest, CreatedApiKey> =
    Endpoint::new("beacon.api.apikey.create", OWNER);

/// List HTTP API keys (never their secrets).
pub const APIKEY_LIST: Endpoint<ListApiKeysRequest, Vec<ApiKeyView>> =
    Endpoint::new("beacon.api.apikey.list", OWNER);

/// Revoke an HTTP API key.
pub const APIKEY_REVOKE: Endpoint<RevokeApiKeyRequest, ApiKeyView> =
    Endpoint::new("beacon.api.apikey.revoke", OWNER);
