//! Notices and their delivery (`NOTIFY` batches and `DELIVERIES` receipts).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::*;
use crate::event::Message;

/// Channel kinds a delivery can go out on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// Email.
    Email,
    /// SMS.
    Sms,
    /// Webhook.
    Webhook,
    /// Slack.
    Slack,
    /// Teams.
    Teams,
}

impl ChannelKind {
    /// Every kind, in the order a very large audience is served: email,
    /// then webhooks, Slack and Teams, then SMS.
    pub const ALL: [ChannelKind; 5] = [
        ChannelKind::Email,
        ChannelKind::Webhook,
        ChannelKind::Slack,
        ChannelKind::Teams,
        ChannelKind::Sms,
    ];

    /// The subject token, e.g. `email`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Email => "email",
            ChannelKind::Sms => "sms",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Teams => "teams",
        }
    }

    /// The kind with this wire name.
    pub fn parse(text: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// Which queue a delivery batch waits in: urgent batches (new and resolved
/// incidents, confirmations) go before normal ones.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// First.
    Urgent,
    /// When no urgent batch waits.
    Normal,
}

impl Lane {
    /// Both lanes, urgent first.
    pub const ALL: [Lane; 2] = [Lane::Urgent, Lane::Normal];

    /// The subject token, e.g. `urgent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Urgent => "urgent",
            Lane::Normal => "normal",
        }
    }
}

/// What a notice tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// An incident was opened (created, or a proposal confirmed).
    IncidentCreated,
    /// An incident has a new update.
    IncidentUpdated,
    /// An incident was resolved.
    IncidentResolved,
    /// Maintenance was announced.
    MaintenanceScheduled,
    /// Maintenance begins soon.
    MaintenanceReminded,
    /// Maintenance began.
    MaintenanceStarted,
    /// Maintenance is over.
    MaintenanceCompleted,
    /// A component changed status (pages that opt in).
    ComponentStatus,
    /// The weekly changelog digest.
    Digest,
    /// The double opt-in message of a new email endpoint.
    Confirmation,
}

impl NoticeKind {
    /// The wire name, e.g. `incident_created`; also a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::IncidentCreated => "incident_created",
            NoticeKind::IncidentUpdated => "incident_updated",
            NoticeKind::IncidentResolved => "incident_resolved",
            NoticeKind::MaintenanceScheduled => "maintenance_scheduled",
            NoticeKind::MaintenanceReminded => "maintenance_reminded",
            NoticeKind::MaintenanceStarted => "maintenance_started",
            NoticeKind::MaintenanceCompleted => "maintenance_completed",
            NoticeKind::ComponentStatus => "component_status",
            NoticeKind::Digest => "digest",
            NoticeKind::Confirmation => "confirmation",
        }
    }
}

/// A component named in a notice, with its title and status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoticeComponent {
    /// Component id.
    pub id: String,
    /// Title.
    pub name: String,
    /// Status it shows, when the notice says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ComponentStatus>,
}

/// One changelog entry in a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DigestEntry {
    /// Entry id.
    pub entry: String,
    /// Title.
    pub title: String,
    /// Body, markdown (escaped where rendered).
    pub body: String,
    /// Category, e.g. `feature`.
    pub category: String,
    /// When it was published (Unix milliseconds).
    pub at_ms: u64,
}

/// What a notice is about, with what each channel needs to render it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum NoticeSubject {
    /// An incident, in its newest state.
    Incident {
        /// Incident id.
        id: String,
        /// Title.
        title: String,
        /// Impact.
        impact: Impact,
        /// State.
        state: IncidentState,
        /// Affected components.
        components: Vec<NoticeComponent>,
        /// Timeline, newest first (at most a few).
        updates: Vec<IncidentUpdate>,
        /// When it was opened.
        created_at_ms: u64,
        /// When it last changed.
        updated_at_ms: u64,
        /// When it was resolved, if it is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resolved_at_ms: Option<u64>,
    },
    /// A maintenance window.
    Maintenance {
        /// Maintenance id.
        id: String,
        /// Title.
        title: String,
        /// Text for users.
        body: String,
        /// Phase.
        phase: MaintenancePhase,
        /// Start (Unix milliseconds).
        starts_at_ms: u64,
        /// End.
        ends_at_ms: u64,
        /// Components under maintenance.
        components: Vec<NoticeComponent>,
    },
    /// A component's status change.
    Component {
        /// The component, with its new status.
        component: NoticeComponent,
        /// Status before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<ComponentStatus>,
        /// Status now.
        to: ComponentStatus,
    },
    /// Changelog entries since the last digest.
    Digest {
        /// The entries, oldest first.
        entries: Vec<DigestEntry>,
    },
    /// A link to confirm an email endpoint; the sender signs it.
    Confirmation,
}

/// One message's content, the same for every recipient: each channel
/// renders it, adding the recipient's own signed links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    /// Unique per message content (`{thread}.{send}`, or `confirm.{nonce}`);
    /// each delivery's idempotency key is `{notice}:{subscriber}:{channel}`.
    pub id: String,
    /// What it tells.
    pub kind: NoticeKind,
    /// Page title.
    pub page_name: String,
    /// Public URL of the page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_url: Option<String>,
    /// What it is about.
    pub subject: NoticeSubject,
    /// When the newest change it tells of happened (Unix milliseconds).
    pub at_ms: u64,
    /// Updates folded into this message by the batching window (1: none).
    #[serde(default = "one")]
    pub updates: u32,
}

fn one() -> u32 {
    1
}

impl Notice {
    /// The idempotency key of one delivery of this notice.
    pub fn key(&self, subscriber: &str, channel: ChannelKind) -> String {
        format!("{}:{subscriber}:{}", self.id, channel.as_str())
    }
}

/// A batch of deliveries for one channel. Subject:
/// `beacon.notify.{channel}.{lane}` (work queue).
///
/// Version 2: the batch carries the notice itself (each sender renders it)
/// and its lane; subscribers are named by id only, never by address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyBatch {
    /// Channel kind.
    pub channel: ChannelKind,
    /// Page id.
    pub page: String,
    /// Urgent or normal.
    pub lane: Lane,
    /// What to tell.
    pub notice: Notice,
    /// Subscriber ids; each delivery's idempotency key is
    /// `{notice.id}:{subscriber}:{channel}`.
    pub subscribers: Vec<String>,
}

impl Message for NotifyBatch {
    const KIND: &'static str = "notify_batch";
    const VERSION: u32 = 2;
}

/// How one delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// The provider accepted it.
    Delivered,
    /// A retryable failure; it will be tried again.
    Retrying,
    /// Gave up; kept as a dead letter.
    Dead,
}

impl DeliveryOutcome {
    /// The wire name; also the subject token and a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Retrying => "retrying",
            DeliveryOutcome::Dead => "dead",
        }
    }
}

/// A delivery receipt. Subject: `beacon.delivery.{channel}.{outcome}`.
///
/// It names the subscriber by id and never carries an address or a
/// provider's free text (which may echo one), so erasing a subscriber from
/// KV `subscribers` leaves no plaintext address in `DELIVERIES` or in the
/// recorder's `delivery_receipts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryReceipt {
    /// Channel kind.
    pub channel: ChannelKind,
    /// Page id.
    pub page: String,
    /// Subscriber id.
    pub subscriber: String,
    /// The key the provider saw; duplicates carry the same key.
    pub idempotency_key: String,
    /// How it ended.
    pub outcome: DeliveryOutcome,
    /// Attempts so far.
    pub attempts: u32,
    /// Provider status or error code, for people (never an address).
    #[serde(default)]
    pub detail: String,
}

impl Message for DeliveryReceipt {
    const KIND: &'static str = "delivery_receipt";
    const VERSION: u32 = 1;
}
