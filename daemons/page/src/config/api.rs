//! The page config's endpoints, served by the decider: `config.apply`
//! stores a validated page config, `config.get` reads it. They are declared
//! here rather than with the decider's other endpoints in `beacon-contract`
//! because their bodies are the page config itself.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use beacon_contract::api::Endpoint;
use beacon_contract::names;

use crate::config::{PageConfig, RawPageConfig};

/// `beacon.api.config.apply`: store a page config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyConfigRequest {
    /// The config as the operator wrote it; the decider validates it again.
    pub config: RawPageConfig,
    /// Apply only if the stored config is still at this KV revision (0: only
    /// if there is none). Without it, the apply still fails with a conflict
    /// when another apply lands between its read and its write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_revision: Option<u64>,
}

/// Result of `beacon.api.config.apply`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyConfigResult {
    /// Page id.
    pub page: String,
    /// KV revision of the stored config.
    pub revision: u64,
    /// False when the stored config was already identical.
    pub changed: bool,
}

/// `beacon.api.config.get`: read a stored page config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetConfigRequest {
    /// Page id.
    pub page: String,
}

/// Result of `beacon.api.config.get`.
pub type GetConfigResult = PageConfig;

/// Validate and store a page config.
pub const CONFIG_APPLY: Endpoint<ApplyConfigRequest, ApplyConfigResult> =
    Endpoint::new(names::api::CONFIG_APPLY, "decider");

/// Read back a stored page config.
pub const CONFIG_GET: Endpoint<GetConfigRequest, PageConfig> =
    Endpoint::new(names::api::CONFIG_GET, "decider");
