//! Bodies of every message and KV value in the design.
//!
//! Each body implements [`Message`] with a stable kind and a version, and
//! travels inside an [`Envelope`](crate::event::Envelope). Times inside bodies
//! are milliseconds since the Unix epoch (`*_ms`), because 18.16-era
//! ClickHouse, JSON readers and shells all agree on integers.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::{EventId, Message};

/// Status of a component, in Statuspage's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    /// Working normally.
    Operational,
    /// Working, but slow.
    DegradedPerformance,
    /// Failing for some users or regions.
    PartialOutage,
    /// Failing for everyone.
    MajorOutage,
    /// Down on purpose, inside a maintenance window.
    UnderMaintenance,
}

impl ComponentStatus {
    /// Every status, in order of increasing severity (maintenance last).
    pub const ALL: [ComponentStatus; 5] = [
        ComponentStatus::Operational,
        ComponentStatus::DegradedPerformance,
        ComponentStatus::PartialOutage,
        ComponentStatus::MajorOutage,
        ComponentStatus::UnderMaintenance,
    ];

    /// The wire name, e.g. `major_outage`.
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentStatus::Operational => "operational",
            ComponentStatus::DegradedPerformance => "degraded_performance",
            ComponentStatus::PartialOutage => "partial_outage",
            ComponentStatus::MajorOutage => "major_outage",
            ComponentStatus::UnderMaintenance => "under_maintenance",
        }
    }

    /// Words for people, e.g. `Major outage`.
    pub fn label(self) -> &'static str {
        match self {
            ComponentStatus::Operational => "Operational",
            ComponentStatus::DegradedPerformance => "Degraded performance",
            ComponentStatus::PartialOutage => "Partial outage",
            ComponentStatus::MajorOutage => "Major outage",
            ComponentStatus::UnderMaintenance => "Under maintenance",
        }
    }

    /// How bad it is for users, used to roll components up into a page status.
    pub fn severity(self) -> u8 {
        match self {
            ComponentStatus::Operational => 0,
            ComponentStatus::UnderMaintenance => 1,
            ComponentStatus::DegradedPerformance => 2,
            ComponentStatus::PartialOutage => 3,
            ComponentStatus::MajorOutage => 4,
        }
    }
}

/// The kind of check that produced a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// HTTP(S) request.
    Http,
    /// TCP connect.
    Tcp,
}

impl CheckKind {
    /// The wire name, e.g. `http`; also the metric label and ClickHouse value.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Http => "http",
            CheckKind::Tcp => "tcp",
        }
    }
}

/// Whether one check run passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every condition held.
    Up,
    /// A condition failed, or the target could not be reached.
    Down,
}

impl Outcome {
    /// The wire name, `up` or `down`; also the metric label and ClickHouse value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Up => "up",
            Outcome::Down => "down",
        }
    }
}

/// One probe result. Subject: `beacon.health.{page}.{component}.{region}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthResult {
    /// Page id.
    pub page: String,
    /// Component id.
    pub component: String,
    /// Check id within the component.
    pub check: String,
    /// Probe region that ran the check.
    pub region: String,
    /// Check kind.
    pub kind: CheckKind,
    /// Up or down.
    pub outcome: Outcome,
    /// When the check started.
    pub started_at_ms: u64,
    /// How long the check took, in milliseconds.
    pub latency_ms: u64,
    /// HTTP status code, for HTTP checks that got a response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Why the check failed, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Message for HealthResult {
    const KIND: &'static str = "health_result";
    const VERSION: u32 = 1;
}

/// What one region's state machine concluded about a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegionState {
    /// No conclusion yet (too few results).
    Unknown,
    /// Passing past the recovery threshold.
    Up,
    /// Failing past the failure threshold.
    Down,
}

/// One region's part of the evidence behind a status decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegionEvidence {
    /// Region id.
    pub region: String,
    /// The region's concluded state.
    pub state: RegionState,
    /// Consecutive failures seen from this region.
    pub consecutive_failures: u32,
    /// Consecutive successes seen from this region.
    pub consecutive_successes: u32,
    /// Id of the latest result from this region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<EventId>,
    /// Error of the latest failing result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Why a component has the status it has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// The rule that decided, e.g. `quorum: 2 of 2 regions down`.
    pub rule: String,
    /// The probe result that triggered the decision.
    pub trigger: EventId,
    /// Every region's state at decision time.
    pub regions: Vec<RegionEvidence>,
}

/// A component changed status. Subject: `beacon.status.{page}.{component}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// Page id.
    pub page: String,
    /// Component id.
    pub component: String,
    /// Status before, if there was one.
    #[serde(default)]
    pub from: Option<ComponentStatus>,
    /// Status now.
    pub to: ComponentStatus,
    /// Why.
    pub evidence: Evidence,
}

impl Message for StatusChange {
    const KIND: &'static str = "status_change";
    const VERSION: u32 = 1;
}

/// Current status of a component: the value under `{page}.{component}` in KV `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRecord {
    /// Page id.
    pub page: String,
    /// Component id.
    pub component: String,
    /// Current status.
    pub status: ComponentStatus,
    /// When the component entered this status.
    pub since_ms: u64,
    /// Id of the status-change event that set it.
    pub change: EventId,
    /// Why.
    pub evidence: Evidence,
}

impl Message for StatusRecord {
    const KIND: &'static str = "status_record";
    const VERSION: u32 = 1;
}

/// What happened to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentAction {
    /// An operator opened it.
    Created,
    /// The decider drafted it from a status change; an operator must confirm.
    Proposed,
    /// An operator confirmed a proposed incident.
    Confirmed,
    /// A progress update.
    Updated,
    /// It is over.
    Resolved,
    /// The postmortem was published.
    Postmortem,
}

/// Statuspage's incident states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// Looking into it.
    Investigating,
    /// Cause known.
    Identified,
    /// Fix applied, watching.
    Monitoring,
    /// Over.
    Resolved,
}

/// Statuspage's incident impact levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Impact {
    /// No impact.
    None,
    /// Minor.
    Minor,
    /// Major.
    Major,
    /// Critical.
    Critical,
}

/// An incident event. Subject: `beacon.incident.{page}.{incident}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentEvent {
    /// Page id.
    pub page: String,
    /// Incident id.
    pub incident: String,
    /// What happened.
    pub action: IncidentAction,
    /// Title, as the operator wrote it (escaped at render time, never here).
    pub title: String,
    /// State after this event.
    pub state: IncidentState,
    /// Impact after this event.
    pub impact: Impact,
    /// Update text, markdown.
    #[serde(default)]
    pub body: String,
    /// Affected components and their status during the incident.
    #[serde(default)]
    pub components: Vec<AffectedComponent>,
}

impl Message for IncidentEvent {
    const KIND: &'static str = "incident_event";
    const VERSION: u32 = 1;
}

/// A component named by an incident or maintenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AffectedComponent {
    /// Component id.
    pub component: String,
    /// Status shown for it.
    pub status: ComponentStatus,
}

/// Lifecycle of a maintenance window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaintenancePhase {
    /// Announced for later.
    Scheduled,
    /// Running now.
    InProgress,
    /// Work done, checking.
    Verifying,
    /// Over.
    Completed,
    /// Called off.
    Cancelled,
}

/// A maintenance event. Subject: `beacon.maintenance.{page}.{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceEvent {
    /// Page id.
    pub page: String,
    /// Maintenance id.
    pub maintenance: String,
    /// Phase after this event.
    pub phase: MaintenancePhase,
    /// Title.
    pub title: String,
    /// Update text, markdown.
    #[serde(default)]
    pub body: String,
    /// Window start.
    pub starts_at_ms: u64,
    /// Window end.
    pub ends_at_ms: u64,
    /// Components under maintenance.
    #[serde(default)]
    pub components: Vec<String>,
}

impl Message for MaintenanceEvent {
    const KIND: &'static str = "maintenance_event";
    const VERSION: u32 = 1;
}

/// A product changelog entry. Subject: `beacon.changelog.{page}.{entry}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangelogEntry {
    /// Page id.
    pub page: String,
    /// Entry id.
    pub entry: String,
    /// Title.
    pub title: String,
    /// Body, markdown.
    pub body_markdown: String,
    /// Category, e.g. `feature`, `fix`.
    pub category: String,
    /// Components the entry is about.
    #[serde(default)]
    pub components: Vec<String>,
    /// `true` when this event withdraws the entry.
    #[serde(default)]
    pub withdrawn: bool,
}

impl Message for ChangelogEntry {
    const KIND: &'static str = "changelog_entry";
    const VERSION: u32 = 1;
}

/// Where a subscriber wants to be told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

/// A subscriber: the value under `{page}.{subscriber}` in KV `subscribers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscriber {
    /// Page id.
    pub page: String,
    /// Subscriber id.
    pub subscriber: String,
    /// Where to deliver.
    pub channel: SubscriberChannel,
    /// Components of interest; empty means all.
    #[serde(default)]
    pub components: Vec<String>,
    /// Whether the subscriber confirmed (double opt-in).
    pub confirmed: bool,
    /// Token for confirmation and unsubscribe links.
    pub token: String,
}

impl Message for Subscriber {
    const KIND: &'static str = "subscriber";
    const VERSION: u32 = 1;
}

/// Channel kinds a delivery can go out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
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
}

/// A batch of deliveries for one channel. Subject: `beacon.notify.{channel}` (work queue).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyBatch {
    /// Channel kind.
    pub channel: ChannelKind,
    /// Page id.
    pub page: String,
    /// The event the batch tells about.
    pub source_event: EventId,
    /// Subscriber ids; each delivery's idempotency key is `{source_event}:{subscriber}`.
    pub subscribers: Vec<String>,
    /// Subject line or title.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
}

impl Message for NotifyBatch {
    const KIND: &'static str = "notify_batch";
    const VERSION: u32 = 1;
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

/// A delivery receipt. Subject: `beacon.delivery.{channel}.{outcome}`.
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
    /// Provider response or error, for people.
    #[serde(default)]
    pub detail: String,
}

impl Message for DeliveryReceipt {
    const KIND: &'static str = "delivery_receipt";
    const VERSION: u32 = 1;
}

/// One day of one component's uptime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DayRollup {
    /// The day, `YYYY-MM-DD` in UTC.
    pub date: String,
    /// Milliseconds operational (or under maintenance).
    pub up_ms: u64,
    /// Milliseconds degraded.
    pub degraded_ms: u64,
    /// Milliseconds in partial or major outage.
    pub down_ms: u64,
}

/// Daily uptime of a component: the value under `{page}.{component}` in KV `uptime`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UptimeRollup {
    /// Page id.
    pub page: String,
    /// Component id.
    pub component: String,
    /// Most recent days, oldest first.
    pub days: Vec<DayRollup>,
}

impl Message for UptimeRollup {
    const KIND: &'static str = "uptime_rollup";
    const VERSION: u32 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Labels and ClickHouse values use `as_str`; they must equal the wire names.
    #[test]
    fn as_str_matches_the_serde_names() {
        let wire = |value: &dyn erased::Wire| value.json();
        for kind in [CheckKind::Http, CheckKind::Tcp] {
            assert_eq!(wire(&kind), format!("\"{}\"", kind.as_str()));
        }
        for outcome in [Outcome::Up, Outcome::Down] {
            assert_eq!(wire(&outcome), format!("\"{}\"", outcome.as_str()));
        }
        for status in ComponentStatus::ALL {
            assert_eq!(wire(&status), format!("\"{}\"", status.as_str()));
        }
        for channel in [
            ChannelKind::Email,
            ChannelKind::Sms,
            ChannelKind::Webhook,
            ChannelKind::Slack,
            ChannelKind::Teams,
        ] {
            assert_eq!(wire(&channel), format!("\"{}\"", channel.as_str()));
        }
    }

    mod erased {
        pub trait Wire {
            fn json(&self) -> String;
        }
        impl<T: serde::Serialize> Wire for T {
            fn json(&self) -> String {
                serde_json::to_string(self).unwrap_or_default()
            }
        }
    }
}
