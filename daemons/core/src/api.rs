//! Request/reply types of the owners' API endpoints (`beacon.api.…`).
//!
//! Writes go to the owner of an entity, which validates, assigns ids and
//! appends an event. Every reply is an [`ApiReply`], so a client can always
//! tell "done", "your input is wrong (here is every error)" and "the server
//! failed" apart.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, PageConfig, RawPageConfig};

/// Reply envelope of every endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ApiReply<T> {
    /// Done.
    Ok {
        /// The result.
        result: T,
    },
    /// The request was refused; nothing changed.
    Invalid {
        /// Every problem, with where it is.
        errors: Vec<ConfigError>,
    },
    /// The server could not do it; retrying may help.
    Failed {
        /// What went wrong.
        message: String,
    },
}

/// `beacon.api.config.apply`: store a page config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyConfigRequest {
    /// The config as the operator wrote it; the decider validates it again.
    pub config: RawPageConfig,
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
