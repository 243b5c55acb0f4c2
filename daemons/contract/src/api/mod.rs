//! Request/reply types of the owners' API endpoints (`beacon.api.…`).
//!
//! Writes go to the owner of an entity, which validates, assigns ids and
//! appends an event. Every reply is an [`ApiReply`], so a client can always
//! tell "done", "your input is wrong (here is every error)" and "the server
//! failed" apart.
//!
//! One module per owner, all re-exported here: `decider` (components,
//! incidents, maintenance), `notifier` (subscribers), `recorder` (SLA
//! reports), `publisher` (changelog) and `keys` (the api daemon's HTTP API
//! keys). The page config's endpoints are in `beacon_page::config::api`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::incident::Incident;
use crate::maintenance::Window;
use crate::messages::{
    AffectedComponent, ChangelogEntry, ChannelKind, ComponentOverride, ComponentStatus, DedupMode,
    Impact, IncidentState, StatusRecord, Subscriber, SubscriberChannel,
};

/// One problem in a config, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConfigError {
    /// Where: a field path like `components[1].checks[0].url`, or `line 3, column 7`.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

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
    /// Someone else changed it first; nothing changed. Read `current`,
    /// then try again if it still makes sense.
    Conflict {
        /// What conflicted.
        message: String,
        /// The current state, when there is one to show.
        #[serde(skip_serializing_if = "Option::is_none")]
        current: Option<T>,
    },
}

impl<T> ApiReply<T> {
    /// An `Invalid` reply with one error at `location`.
    pub fn invalid(location: &str, message: impl Into<String>) -> Self {
        ApiReply::Invalid {
            errors: vec![ConfigError {
                location: location.to_owned(),
                message: message.into(),
            }],
        }
    }

    /// A `Failed` reply.
    pub fn failed(message: impl std::fmt::Display) -> Self {
        ApiReply::Failed {
            message: message.to_string(),
        }
    }
}

mod decider;
mod endpoint;
mod keys;
mod notifier;
mod publisher;
mod recorder;

pub use decider::*;
pub use endpoint::Endpoint;
pub use keys::*;
pub use notifier::*;
pub use publisher::*;
pub use recorder::*;
