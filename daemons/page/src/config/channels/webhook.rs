//! `type = "webhook"`: signed webhooks to URLs subscribers give.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{required, RawChannelCommon};
use crate::config::{ChannelProvider, Errors};

/// The fields of a webhook channel besides the common ones.
pub const FIELDS: &[&str] = &["secret_env"];

/// A webhook channel as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RawWebhookChannel {
    /// Id and rate.
    #[serde(flatten)]
    pub common: RawChannelCommon,
    /// Name of the environment variable holding the signing secret.
    #[serde(default)]
    pub secret_env: Option<String>,
}

/// Validates what is particular to a webhook channel: it must sign.
pub(super) fn validate(
    errors: &mut Errors,
    at: &str,
    raw: &RawWebhookChannel,
) -> Option<ChannelProvider> {
    let before = errors.0.len();
    let secret_env = required(errors, at, "webhook", "secret_env", &raw.secret_env);
    (errors.0.len() == before).then_some(ChannelProvider::Webhook { secret_env })
}
