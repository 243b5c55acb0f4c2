//! Component status: the status vocabulary, status changes with their evidence (`STATUS`), the current record (KV `status`) and operators' overrides (KV `overrides`).

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

/// What one region's state machine concluded about a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegionState {
    /// No conclusion yet (too few results).
    Unknown,
    /// Passing past the recovery threshold.
    Up,
    /// Passing, but slow past the failure threshold.
    Degraded,
    /// Failing past the failure threshold.
    Down,
    /// No result for three intervals: left out of the count.
    Stale,
    /// The region's probe is suspect (it fails most of its checks at once,
    /// or its canary fails): left out of the count, reported as a probe
    /// problem.
    Suspect,
}

impl RegionState {
    /// The wire name, e.g. `stale`.
    pub fn as_str(self) -> &'static str {
        match self {
            RegionState::Unknown => "unknown",
            RegionState::Up => "up",
            RegionState::Degraded => "degraded",
            RegionState::Down => "down",
            RegionState::Stale => "stale",
            RegionState::Suspect => "suspect",
        }
    }

    /// Whether the region is left out of the quorum count.
    pub fn is_excluded(self) -> bool {
        matches!(self, RegionState::Stale | RegionState::Suspect)
    }
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
    /// When the region entered its state (Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// When the region's latest result was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_ms: Option<u64>,
    /// Ids of recent results that led to the region's state, newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<EventId>,
}

impl RegionEvidence {
    /// A region in `state` with no counts, results or times.
    pub fn new(region: &str, state: RegionState) -> Self {
        Self {
            region: region.to_owned(),
            state,
            consecutive_failures: 0,
            consecutive_successes: 0,
            last_result: None,
            last_error: None,
            since_ms: None,
            last_seen_ms: None,
            samples: Vec::new(),
        }
    }
}

/// Why a component has the status it has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// The rule that decided, e.g. `quorum: 2 of 3 regions down (quorum 2)`.
    pub rule: String,
    /// The probe result that triggered the decision; none when time,
    /// an operator or a maintenance window did.
    #[serde(default)]
    pub trigger: Option<EventId>,
    /// Every region's state at decision time.
    pub regions: Vec<RegionEvidence>,
}

/// What set a component's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusSource {
    /// The decider, from probe evidence.
    #[default]
    Automatic,
    /// An operator's override.
    Override,
    /// A maintenance window in progress.
    Maintenance,
    /// An open incident's latest update.
    Incident,
}

impl StatusSource {
    /// The wire name, e.g. `override`; also a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusSource::Automatic => "automatic",
            StatusSource::Override => "override",
            StatusSource::Maintenance => "maintenance",
            StatusSource::Incident => "incident",
        }
    }
}

/// Why a status change must not page anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InhibitReason {
    /// A component it depends on is down.
    DependsOn,
    /// The component is flapping.
    Flapping,
    /// A maintenance window covers it.
    Maintenance,
}

impl InhibitReason {
    /// The wire name, e.g. `depends_on`; also a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            InhibitReason::DependsOn => "depends_on",
            InhibitReason::Flapping => "flapping",
            InhibitReason::Maintenance => "maintenance",
        }
    }
}

/// A status change that proposes no incident and notifies no one, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Inhibition {
    /// Why, as a code.
    pub reason: InhibitReason,
    /// Why, for people: `depends on db, which is major_outage`.
    pub detail: String,
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
    /// When the change was decided (Unix milliseconds).
    #[serde(default)]
    pub at_ms: u64,
    /// What set the status.
    #[serde(default)]
    pub source: StatusSource,
    /// Whether the component is flapping: its status holds at the worst
    /// recent state until it is stable again.
    #[serde(default)]
    pub flapping: bool,
    /// Set when this change must not propose an incident or notify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inhibited: Option<Inhibition>,
    /// Id of the incident this change proposed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<String>,
    /// Why.
    pub evidence: Evidence,
}

impl StatusChange {
    /// Whether subscribers should hear of this change.
    pub fn notifies(&self) -> bool {
        self.inhibited.is_none()
    }
}

impl Message for StatusChange {
    const KIND: &'static str = "status_change";
    const VERSION: u32 = 1;
}

/// One automatic status change remembered for flap detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecentChange {
    /// When (Unix milliseconds).
    pub at_ms: u64,
    /// The status automation decided.
    pub status: ComponentStatus,
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
    /// Status before the change.
    #[serde(default)]
    pub from: Option<ComponentStatus>,
    /// What set the status.
    #[serde(default)]
    pub source: StatusSource,
    /// What automation alone decides (before overrides, maintenance,
    /// incidents and flap holding); none before its first decision.
    #[serde(default)]
    pub automatic: Option<ComponentStatus>,
    /// Whether the component is flapping.
    #[serde(default)]
    pub flapping: bool,
    /// The change's inhibition, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inhibited: Option<Inhibition>,
    /// The incident the change proposed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<String>,
    /// Automatic changes within the flap window, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<RecentChange>,
}

impl StatusRecord {
    /// A record of an automatic change to `status`, with nothing else set.
    pub fn new(
        page: &str,
        component: &str,
        status: ComponentStatus,
        since_ms: u64,
        change: EventId,
        evidence: Evidence,
    ) -> Self {
        Self {
            page: page.to_owned(),
            component: component.to_owned(),
            status,
            since_ms,
            change,
            evidence,
            from: None,
            source: StatusSource::Automatic,
            automatic: Some(status),
            flapping: false,
            inhibited: None,
            proposal: None,
            recent: Vec::new(),
        }
    }

    /// The status-change event this record was written for: what a retry
    /// publishes if the record landed and the event did not.
    pub fn change_event(&self) -> StatusChange {
        StatusChange {
            page: self.page.clone(),
            component: self.component.clone(),
            from: self.from,
            to: self.status,
            at_ms: self.since_ms,
            source: self.source,
            flapping: self.flapping,
            inhibited: self.inhibited.clone(),
            proposal: self.proposal.clone(),
            evidence: self.evidence.clone(),
        }
    }
}

impl Message for StatusRecord {
    const KIND: &'static str = "status_record";
    const VERSION: u32 = 1;
}

/// An operator's override of a component's status: the value under
/// `{page}.{component}` in KV `overrides`. A cleared override is kept with
/// `status: None`, so the last writer wins by HLC whichever came first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentOverride {
    /// Page id.
    pub page: String,
    /// Component id.
    pub component: String,
    /// The status to show; `None` once cleared.
    pub status: Option<ComponentStatus>,
    /// Why, for people.
    #[serde(default)]
    pub reason: String,
    /// Who set or cleared it.
    pub actor: String,
    /// When it stops applying (Unix milliseconds); `None`: until cleared.
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
}

impl ComponentOverride {
    /// Whether it applies at `now_ms`.
    pub fn active_at(&self, now_ms: u64) -> bool {
        self.status.is_some() && self.expires_at_ms.is_none_or(|at| now_ms < at)
    }
}

impl Message for ComponentOverride {
    const KIND: &'static str = "component_override";
    const VERSION: u32 = 1;
}
