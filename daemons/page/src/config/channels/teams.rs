//! `type = "teams"`: Microsoft Teams incoming webhooks; each subscriber gives
//! its own webhook URL, so the channel needs nothing but its id and rate.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::RawChannelCommon;
use crate::config::ChannelProvider;

/// The fields of a teams channel besides the common ones.
pub const FIELDS: &[&str] = &[];

/// A teams channel as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RawTeamsChannel {
    /// Id and rate.
    #[serde(flatten)]
    pub common: RawChannelCommon,
}

/// A teams channel has nothing of its own to check.
pub(super) fn validate(_raw: &RawTeamsChannel) -> ChannelProvider {
    ChannelProvider::Teams
}
