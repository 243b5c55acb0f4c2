//! The notifier's endpoints: subscribers, their links and SMS replies.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::*;

// ---------------------------------------------------------------------------
// Subscribers (served by the notifier).
// ---------------------------------------------------------------------------

/// Most rows in one `subscriber.import` request: the request stays well
/// under the bus's 1 MiB message limit.
pub const SUBSCRIBER_IMPORT_MAX_ROWS: usize = 1000;

/// Most subscribers in one `subscriber.list` reply.
pub const SUBSCRIBER_LIST_MAX: u32 = 1000;

/// What a new subscriber asks for: one row of an import, or the body of an
/// add.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscriber {
    /// Where to deliver, in order of preference; at most one per channel kind.
    pub endpoints: Vec<SubscriberChannel>,
    /// Components of interest; empty means the whole page.
    #[serde(default)]
    pub components: Vec<String>,
    /// Components whose updates go at once, never held in a batching window.
    #[serde(default)]
    pub instant: Vec<String>,
    /// Every endpoint (default), or the first one only.
    #[serde(default)]
    pub dedup: DedupMode,
    /// Get the changelog digest by email.
    #[serde(default)]
    pub digest: bool,
}

/// `beacon.api.subscriber.add`: subscribe.
///
/// Public sign-up sends `confirmed: false`: email endpoints then wait for
/// their double opt-in (a single-use link that expires), and an address
/// erased before may subscribe again this way only. Operators may send
/// `confirmed: true` for people who agreed elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddSubscriberRequest {
    /// Page id.
    pub page: String,
    /// The subscriber.
    pub subscriber: NewSubscriber,
    /// Skip the double opt-in (operators only).
    #[serde(default)]
    pub confirmed: bool,
    /// Who asks (an operator, an API key id, `public`).
    pub actor: String,
}

/// A subscriber as the API shows it: the record without its confirmation
/// nonces, and the secret its webhook deliveries are signed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriberView {
    /// The subscriber.
    pub subscriber: Subscriber,
    /// `whsec_…`: the Standard Webhooks secret of its webhook endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

/// `beacon.api.subscriber.import`: subscribe many at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportSubscribersRequest {
    /// Page id.
    pub page: String,
    /// At most [`SUBSCRIBER_IMPORT_MAX_ROWS`] subscribers.
    pub rows: Vec<NewSubscriber>,
    /// Skip the double opt-in (the people agreed elsewhere).
    #[serde(default)]
    pub confirmed: bool,
    /// Who asks.
    pub actor: String,
}

/// Result of `subscriber.import`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportResult {
    /// Rows that became new subscribers.
    pub created: u32,
    /// Rows whose first address the page already has (left as they are).
    pub existing: u32,
    /// Rows refused, each with its errors (locations are
    /// `rows[i].endpoints[k]…`); nothing was stored for them.
    pub refused: Vec<ConfigError>,
}

/// `beacon.api.subscriber.list`: a page's subscribers, in id order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSubscribersRequest {
    /// Page id.
    pub page: String,
    /// Only subscribers after this id (the previous reply's `next`).
    #[serde(default)]
    pub after: Option<String>,
    /// Most subscribers in the reply; default and at most [`SUBSCRIBER_LIST_MAX`].
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Result of `subscriber.list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriberList {
    /// This slice, in id order (confirmation nonces left out).
    pub subscribers: Vec<Subscriber>,
    /// Subscribers the page has in all.
    pub total: u64,
    /// Ask again with `after` set to this; none at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `beacon.api.subscriber.show` and `.remove`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriberRequest {
    /// Page id.
    pub page: String,
    /// Subscriber id.
    pub subscriber: String,
    /// Who asks (recorded in logs for `remove`).
    #[serde(default)]
    pub actor: String,
}

/// Result of `subscriber.remove`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemovedSubscriber {
    /// Page id.
    pub page: String,
    /// Subscriber id.
    pub subscriber: String,
}

/// `beacon.api.subscriber.confirm` and `.unsubscribe`: a signed link's token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// The `token` parameter of the link.
    pub token: String,
}

/// Result of `subscriber.unsubscribe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Unsubscribed {
    /// Page id.
    pub page: String,
    /// Subscriber id.
    pub subscriber: String,
    /// The endpoint removed.
    pub channel: ChannelKind,
    /// Whether that was its last endpoint, so the subscriber is gone.
    pub removed_subscriber: bool,
}

/// `beacon.api.subscriber.erase`: erase an address, or a subscriber, and
/// everything that names it in plaintext; a keyed hash stays so it is not
/// imported again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// Page id.
    pub page: String,
    /// An email address, phone number or URL: every subscriber of the
    /// page with it is erased.
    #[serde(default)]
    pub address: Option<String>,
    /// Or one subscriber with all its addresses.
    #[serde(default)]
    pub subscriber: Option<String>,
    /// Who asks.
    pub actor: String,
}

/// Result of `subscriber.erase`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Erased {
    /// Subscribers erased.
    pub subscribers: Vec<String>,
    /// Addresses now suppressed (as keyed hashes).
    pub suppressed: u32,
}

// ---------------------------------------------------------------------------
// Endpoints.
// ---------------------------------------------------------------------------

/// The daemon that serves the endpoints below.
const OWNER: &str = "notifier";

/// Subscribe (operators, and public sign-up with double opt-in).
pub const SUBSCRIBER_ADD: Endpoint<AddSubscriberRequest, SubscriberView> =
    Endpoint::new("beacon.api.subscriber.add", OWNER);

/// Subscribe many at once (CSV import).
pub const SUBSCRIBER_IMPORT: Endpoint<ImportSubscribersRequest, ImportResult> =
    Endpoint::new("beacon.api.subscriber.import", OWNER);

/// A page's subscribers, in slices.
pub const SUBSCRIBER_LIST: Endpoint<ListSubscribersRequest, SubscriberList> =
    Endpoint::new("beacon.api.subscriber.list", OWNER);

/// One subscriber.
pub const SUBSCRIBER_SHOW: Endpoint<SubscriberRequest, SubscriberView> =
    Endpoint::new("beacon.api.subscriber.show", OWNER);

/// Remove a subscriber (operators).
pub const SUBSCRIBER_REMOVE: Endpoint<SubscriberRequest, RemovedSubscriber> =
    Endpoint::new("beacon.api.subscriber.remove", OWNER);

/// Follow a double opt-in link.
pub const SUBSCRIBER_CONFIRM: Endpoint<LinkRequest, SubscriberView> =
    Endpoint::new("beacon.api.subscriber.confirm", OWNER);

/// Follow a signed unsubscribe link.
pub const SUBSCRIBER_UNSUBSCRIBE: Endpoint<LinkRequest, Unsubscribed> =
    Endpoint::new("beacon.api.subscriber.unsubscribe", OWNER);

/// Erase every trace of an address (GDPR).
pub const SUBSCRIBER_ERASE: Endpoint<EraseRequest, Erased> =
    Endpoint::new("beacon.api.subscriber.erase", OWNER);
