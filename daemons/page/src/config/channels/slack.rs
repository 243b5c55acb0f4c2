//! `type = "slack"`: Slack incoming webhooks; each subscriber gives its own
//! webhook URL, so the channel needs nothing but its id and rate.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::RawChannelCommon;
use crate::config::ChannelProvider;

/// The fields of a slack channel besides the common ones.
pub const FIELDS: &[&str] = &[];

/// A slack channel as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RawSlackChannel {
    /// Id and rate.
    #[serde(flatten)]
    pub common: RawChannelCommon,
}

/// A slack channel has nothing of its own to check.
pub(super) fn validate(_raw: &RawSlackChannel) -> ChannelProvider {
    ChannelProvider::Slack
}
