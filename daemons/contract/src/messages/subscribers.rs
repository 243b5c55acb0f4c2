//! Subscribers (KV `subscribers`): endpoints, confirmation and preferences.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::*;
use crate::event::Message;

/// Where a subscriber wants to be told: one address of one channel kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SubscriberChannel {
    /// Email by SMTP.
    Email {
        /// Address.
        address: String,
    },
    /// SMS through the Twilio API.
    Sms {
        /// E.164 phone number.
        phone: String,
    },
    /// Signed HTTP POST.
    Webhook {
        /// Target URL.
        url: String,
    },
    /// Slack incoming webhook.
    Slack {
        /// Incoming-webhook URL.
        url: String,
    },
    /// Microsoft Teams incoming webhook.
    Teams {
        /// Incoming-webhook URL.
        url: String,
    },
}

impl SubscriberChannel {
    /// The channel kind.
    pub fn kind(&self) -> ChannelKind {
        match self {
            SubscriberChannel::Email { .. } => ChannelKind::Email,
            SubscriberChannel::Sms { .. } => ChannelKind::Sms,
            SubscriberChannel::Webhook { .. } => ChannelKind::Webhook,
            SubscriberChannel::Slack { .. } => ChannelKind::Slack,
            SubscriberChannel::Teams { .. } => ChannelKind::Teams,
        }
    }

    /// The address, phone number or URL.
    pub fn address(&self) -> &str {
        match self {
            SubscriberChannel::Email { address } => address,
            SubscriberChannel::Sms { phone } => phone,
            SubscriberChannel::Webhook { url }
            | SubscriberChannel::Slack { url }
            | SubscriberChannel::Teams { url } => url,
        }
    }

    /// A channel of `kind` at `address`.
    pub fn new(kind: ChannelKind, address: impl Into<String>) -> Self {
        let address = address.into();
        match kind {
            ChannelKind::Email => SubscriberChannel::Email { address },
            ChannelKind::Sms => SubscriberChannel::Sms { phone: address },
            ChannelKind::Webhook => SubscriberChannel::Webhook { url: address },
            ChannelKind::Slack => SubscriberChannel::Slack { url: address },
            ChannelKind::Teams => SubscriberChannel::Teams { url: address },
        }
    }
}

/// Whether an endpoint gets messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndpointState {
    /// Waiting for the double opt-in (email): gets only its confirmation.
    Pending,
    /// Gets messages.
    Active,
    /// The subscriber said STOP (SMS), or the provider says they did;
    /// START makes it active again.
    Stopped,
    /// The endpoint refused for good (a webhook answered 410 Gone).
    Disabled,
}

impl EndpointState {
    /// The wire name, e.g. `active`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointState::Pending => "pending",
            EndpointState::Active => "active",
            EndpointState::Stopped => "stopped",
            EndpointState::Disabled => "disabled",
        }
    }
}

/// A double opt-in waiting for its link to be followed. The link is signed
/// by the notifier over the nonce and the expiry; the nonce is cleared when
/// it is used, so a link works once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingConfirmation {
    /// Random, hex; part of what the link signs.
    pub nonce: String,
    /// When the link stops working (Unix milliseconds).
    pub expires_at_ms: u64,
}

/// One of a subscriber's endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriberEndpoint {
    /// Kind and address.
    pub channel: SubscriberChannel,
    /// Whether it gets messages.
    pub state: EndpointState,
    /// When it entered its state (Unix milliseconds).
    pub since_ms: u64,
    /// The double opt-in in progress, while `pending`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<PendingConfirmation>,
}

/// How a subscriber with several endpoints wants an update.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DedupMode {
    /// On every active endpoint.
    #[default]
    Every,
    /// Once: on the first active endpoint, in the subscriber's order, that
    /// the update may go to.
    First,
}

impl DedupMode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DedupMode::Every => "every",
            DedupMode::First => "first",
        }
    }
}

/// A subscriber: the value under `{page}.{subscriber}` in KV `subscribers`.
///
/// Version 2: a subscriber has endpoints (at most one per channel kind, in
/// order of preference) instead of one channel, so an update can be sent
/// once across them. No plaintext address is kept anywhere else: delivery
/// batches, receipts and the ledger name subscribers by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscriber {
    /// Page id.
    pub page: String,
    /// Subscriber id (a lowercase ULID the notifier assigns).
    pub subscriber: String,
    /// Where to deliver, in order of preference; one per channel kind.
    pub endpoints: Vec<SubscriberEndpoint>,
    /// Components of interest; empty means the whole page.
    #[serde(default)]
    pub components: Vec<String>,
    /// Components whose updates go at once, never held in a batching window.
    #[serde(default)]
    pub instant: Vec<String>,
    /// Every endpoint, or the first one only.
    #[serde(default)]
    pub dedup: DedupMode,
    /// Whether to get the weekly changelog digest (email).
    #[serde(default)]
    pub digest: bool,
    /// When it was created (Unix milliseconds).
    pub created_at_ms: u64,
}

impl Subscriber {
    /// The endpoint of `kind`, if it has one.
    pub fn endpoint(&self, kind: ChannelKind) -> Option<&SubscriberEndpoint> {
        self.endpoints.iter().find(|e| e.channel.kind() == kind)
    }
}

impl Message for Subscriber {
    const KIND: &'static str = "subscriber";
    const VERSION: u32 = 2;
}
