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
    /// ICMP echo (ping).
    Icmp,
    /// DNS query.
    Dns,
    /// Pushed to the probe's ingest endpoint (heartbeat, Alertmanager, JSON signal).
    Push,
}

impl CheckKind {
    /// Every kind.
    pub const ALL: [CheckKind; 5] = [
        CheckKind::Http,
        CheckKind::Tcp,
        CheckKind::Icmp,
        CheckKind::Dns,
        CheckKind::Push,
    ];

    /// The wire name, e.g. `http`; also the metric label and ClickHouse value.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Http => "http",
            CheckKind::Tcp => "tcp",
            CheckKind::Icmp => "icmp",
            CheckKind::Dns => "dns",
            CheckKind::Push => "push",
        }
    }
}

/// Why a check run failed, as a code the decider and dashboards can group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The run did not finish within the check's timeout.
    Timeout,
    /// The target refused the connection.
    Refused,
    /// The connection failed otherwise (unreachable, reset, closed early).
    Connect,
    /// The name did not resolve, or a DNS check got NXDOMAIN, SERVFAIL or
    /// other answers than expected.
    Dns,
    /// The TLS handshake failed (invalid, expired or untrusted certificate).
    Tls,
    /// The HTTP status was not an expected one.
    Status,
    /// A condition did not hold; `failed_condition` names it.
    Condition,
    /// The target answered something that is not the protocol (garbage).
    Protocol,
    /// The body was larger than the check's `max_body`.
    BodyTooLarge,
    /// Redirects looped or went on past the check's limit.
    Redirect,
    /// No ICMP echo reply came back.
    Unreachable,
    /// The probe may not do this (ICMP without ping sockets or raw sockets).
    Permission,
    /// A pushed heartbeat did not arrive in time.
    Late,
    /// A pushed Alertmanager alert is firing.
    Alert,
    /// A pushed JSON signal said the component is down or degraded.
    Signal,
}

impl ErrorKind {
    /// The wire name, e.g. `body_too_large`; also a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Refused => "refused",
            ErrorKind::Connect => "connect",
            ErrorKind::Dns => "dns",
            ErrorKind::Tls => "tls",
            ErrorKind::Status => "status",
            ErrorKind::Condition => "condition",
            ErrorKind::Protocol => "protocol",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::Redirect => "redirect",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Permission => "permission",
            ErrorKind::Late => "late",
            ErrorKind::Alert => "alert",
            ErrorKind::Signal => "signal",
        }
    }
}

/// Where the time of one check run went, in microseconds. A phase that did
/// not happen (a reused connection has no connect, plain HTTP no TLS) is
/// absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timings {
    /// Resolving the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_us: Option<u64>,
    /// Opening the TCP connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_us: Option<u64>,
    /// The TLS handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_us: Option<u64>,
    /// From sending the request to the first byte of the response (HTTP
    /// response head, TCP banner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte_us: Option<u64>,
    /// The whole run.
    pub total_us: u64,
}

/// What a check run observed, whether or not its conditions held: what
/// the conditions were evaluated against.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Observed {
    /// HTTP status of the final response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Response time in milliseconds (`[RESPONSE_TIME]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_time_ms: Option<u64>,
    /// When the server's TLS certificate expires (Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_expires_at_ms: Option<u64>,
    /// Body bytes read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_bytes: Option<u64>,
    /// Redirects followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirects: Option<u32>,
    /// ICMP: percent of echo requests without a reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_loss_percent: Option<f64>,
    /// ICMP: average round-trip time of the replies, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_avg_us: Option<u64>,
    /// ICMP: slowest round trip, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_max_us: Option<u64>,
    /// DNS: the response code, e.g. `NOERROR`, `NXDOMAIN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_rcode: Option<String>,
    /// DNS: the answers, as text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_answers: Vec<String>,
}

impl Observed {
    /// Whether nothing was observed.
    pub fn is_empty(&self) -> bool {
        self == &Observed::default()
    }
}

/// Whether one check run passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every condition held.
    Up,
    /// It worked, but slowly or only in part (the probe's own verdict; the
    /// decider also calls a result slow when its latency is over the
    /// check's `degraded_latency`).
    Degraded,
    /// A condition failed, or the target could not be reached.
    Down,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 3] = [Outcome::Up, Outcome::Degraded, Outcome::Down];

    /// The wire name, `up`, `degraded` or `down`; also the metric label and
    /// ClickHouse value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Up => "up",
            Outcome::Degraded => "degraded",
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
    /// Why the check failed, as a code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
    /// The condition that did not hold, as written in the config, when
    /// `error_kind` is `condition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_condition: Option<String>,
    /// Where the time went, for kinds that have phases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
    /// What the run observed (status, response time, certificate expiry…).
    #[serde(default, skip_serializing_if = "Observed::is_empty")]
    pub observed: Observed,
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

/// What happened to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentAction {
    /// The decider drafted it from a status change; an operator must
    /// confirm or dismiss it.
    Proposed,
    /// An operator opened it.
    Created,
    /// An operator confirmed a proposed incident.
    Confirmed,
    /// An operator dismissed a proposed incident.
    Dismissed,
    /// A progress update on the timeline.
    Updated,
    /// Title, impact or affected components corrected, no timeline entry.
    Edited,
    /// It is over (the resolving update is on the timeline).
    Resolved,
    /// The postmortem was published.
    Postmortem,
}

impl IncidentAction {
    /// The wire name, e.g. `proposed`; also a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentAction::Proposed => "proposed",
            IncidentAction::Created => "created",
            IncidentAction::Confirmed => "confirmed",
            IncidentAction::Dismissed => "dismissed",
            IncidentAction::Updated => "updated",
            IncidentAction::Edited => "edited",
            IncidentAction::Resolved => "resolved",
            IncidentAction::Postmortem => "postmortem",
        }
    }
}

/// Statuspage's incident states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
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

impl IncidentState {
    /// The wire name, e.g. `investigating`.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Investigating => "investigating",
            IncidentState::Identified => "identified",
            IncidentState::Monitoring => "monitoring",
            IncidentState::Resolved => "resolved",
        }
    }
}

/// Statuspage's incident impact levels.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
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

impl Impact {
    /// The wire name, e.g. `major`.
    pub fn as_str(self) -> &'static str {
        match self {
            Impact::None => "none",
            Impact::Minor => "minor",
            Impact::Major => "major",
            Impact::Critical => "critical",
        }
    }
}

/// Whether an incident is a draft, real, or thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentLifecycle {
    /// Proposed by the decider, waiting for an operator.
    Proposed,
    /// Confirmed or created by an operator: shown on pages, notified.
    Open,
    /// Dismissed by an operator: never shown.
    Dismissed,
}

impl IncidentLifecycle {
    /// The wire name, e.g. `open`.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentLifecycle::Proposed => "proposed",
            IncidentLifecycle::Open => "open",
            IncidentLifecycle::Dismissed => "dismissed",
        }
    }
}

/// A component named by an incident, and the status it shows meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AffectedComponent {
    /// Component id.
    pub component: String,
    /// Status shown for it.
    pub status: ComponentStatus,
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentUpdate {
    /// Update id, unique within the incident (a lowercase ULID).
    pub id: String,
    /// The incident's state from this update on.
    pub state: IncidentState,
    /// What operators told users, markdown (escaped where rendered).
    pub body: String,
    /// Status of each affected component from this update on.
    #[serde(default)]
    pub components: Vec<AffectedComponent>,
    /// When it was written (Unix milliseconds).
    pub at_ms: u64,
    /// Who wrote it (`decider`, an operator, an API key id).
    pub actor: String,
}

/// An incident event. Subject: `beacon.incident.{page}.{incident}`.
///
/// An incident is a fold over its events (see
/// [`crate::incident::Incident::fold`]): each optional field is a
/// last-writer-wins register ordered by the envelope's HLC, and timeline
/// updates form a set keyed by id, so the same events in any order give the
/// same incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentEvent {
    /// Page id.
    pub page: String,
    /// Incident id (a lowercase ULID).
    pub incident: String,
    /// What happened.
    pub action: IncidentAction,
    /// Who did it.
    pub actor: String,
    /// When (Unix milliseconds).
    pub at_ms: u64,
    /// Draft, open or dismissed, when this event sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<IncidentLifecycle>,
    /// Title, when this event sets it (escaped at render time, never here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Impact, when this event sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<Impact>,
    /// State, when this event sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<IncidentState>,
    /// Affected components, when this event sets them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<AffectedComponent>>,
    /// A timeline entry, when this event adds one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<IncidentUpdate>,
    /// Postmortem, markdown, when this event sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postmortem: Option<String>,
    /// For a proposal: the evidence behind it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// For a dismissal: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl IncidentEvent {
    /// An event of `action` that sets nothing yet.
    pub fn new(
        page: &str,
        incident: &str,
        action: IncidentAction,
        actor: &str,
        at_ms: u64,
    ) -> Self {
        Self {
            page: page.to_owned(),
            incident: incident.to_owned(),
            action,
            actor: actor.to_owned(),
            at_ms,
            lifecycle: None,
            title: None,
            impact: None,
            state: None,
            components: None,
            update: None,
            postmortem: None,
            evidence: None,
            reason: None,
        }
    }
}

impl Message for IncidentEvent {
    const KIND: &'static str = "incident_event";
    const VERSION: u32 = 1;
}

/// Lifecycle of a maintenance window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaintenancePhase {
    /// Announced for later.
    Scheduled,
    /// Running now: its components show `under_maintenance`.
    InProgress,
    /// Work done, checking; automation is back.
    Verifying,
    /// Over.
    Completed,
    /// Called off.
    Cancelled,
}

impl MaintenancePhase {
    /// The wire name, e.g. `in_progress`.
    pub fn as_str(self) -> &'static str {
        match self {
            MaintenancePhase::Scheduled => "scheduled",
            MaintenancePhase::InProgress => "in_progress",
            MaintenancePhase::Verifying => "verifying",
            MaintenancePhase::Completed => "completed",
            MaintenancePhase::Cancelled => "cancelled",
        }
    }

    /// Whether the window is over for good.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            MaintenancePhase::Completed | MaintenancePhase::Cancelled
        )
    }
}

/// What happened to a maintenance window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceAction {
    /// Announced (a one-off window, a recurring series, or one occurrence
    /// of a series).
    Scheduled,
    /// Its details changed.
    Updated,
    /// The reminder before the start.
    Reminded,
    /// It began (at its time, or early by an operator).
    Started,
    /// Work done, checking.
    Verifying,
    /// It ended.
    Completed,
    /// Called off.
    Cancelled,
}

impl MaintenanceAction {
    /// The wire name, e.g. `reminded`; also a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            MaintenanceAction::Scheduled => "scheduled",
            MaintenanceAction::Updated => "updated",
            MaintenanceAction::Reminded => "reminded",
            MaintenanceAction::Started => "started",
            MaintenanceAction::Verifying => "verifying",
            MaintenanceAction::Completed => "completed",
            MaintenanceAction::Cancelled => "cancelled",
        }
    }
}

/// A maintenance event. Subject: `beacon.maintenance.{page}.{id}`.
///
/// Every event carries the window's whole state after it; the window is the
/// event with the highest HLC (see [`crate::maintenance`]), and whether the
/// reminder went out is whether any event says `reminded`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceEvent {
    /// Page id.
    pub page: String,
    /// Maintenance id (a lowercase ULID; an occurrence of a series is
    /// `{series}-{start in minutes, hex}`).
    pub maintenance: String,
    /// What happened.
    pub action: MaintenanceAction,
    /// Who did it (`decider` for what happens at its time).
    pub actor: String,
    /// When (Unix milliseconds).
    pub at_ms: u64,
    /// Phase after this event.
    pub phase: MaintenancePhase,
    /// Title.
    pub title: String,
    /// Text for users, markdown.
    #[serde(default)]
    pub body: String,
    /// Window start (Unix milliseconds); for a series, its first occurrence.
    pub starts_at_ms: u64,
    /// Window end; for a series, the end of its first occurrence.
    pub ends_at_ms: u64,
    /// Components under maintenance.
    #[serde(default)]
    pub components: Vec<String>,
    /// For a recurring series: its rule, an RFC 5545 `RRULE:` line or a
    /// five-field cron expression (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<String>,
    /// For an occurrence: the series it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    /// How long before the start the reminder goes out (0: none).
    #[serde(default)]
    pub remind_before_ms: u64,
    /// How long it stays `verifying` after its end before it completes
    /// (0: it completes at its end).
    #[serde(default)]
    pub verify_ms: u64,
}

impl Message for MaintenanceEvent {
    const KIND: &'static str = "maintenance_event";
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

/// A probe's sign of life. Subject: `beacon.probe.{region}.heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeHeartbeat {
    /// The probe's region.
    pub region: String,
    /// The probe process (several may serve one region).
    pub probe: String,
    /// When it was sent (Unix milliseconds).
    pub at_ms: u64,
    /// Time until the next heartbeat; later than twice this is late.
    pub interval_ms: u64,
    /// Checks the probe runs.
    pub checks: u32,
    /// The canary's latest result: a check of something known to work,
    /// so a failure means the probe's own network is broken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryResult>,
}

impl Message for ProbeHeartbeat {
    const KIND: &'static str = "probe_heartbeat";
    const VERSION: u32 = 1;
}

/// A canary check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryResult {
    /// Up or down.
    pub outcome: Outcome,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The decider's verdict on a probe region. Subject:
/// `beacon.probe.{region}.verdict`. A suspect region's results are left out
/// of every component's count: a probe problem, never a customer incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeVerdict {
    /// The region.
    pub region: String,
    /// Whether its results are left out.
    pub suspect: bool,
    /// Why, for people.
    pub reason: String,
    /// Checks with a recent result from the region.
    pub checks: u32,
    /// Of those, failing.
    pub failing: u32,
    /// When decided (Unix milliseconds).
    pub at_ms: u64,
}

impl Message for ProbeVerdict {
    const KIND: &'static str = "probe_verdict";
    const VERSION: u32 = 1;
}

/// An HTTP API key as the api daemon stores it: the value under `{id}` in
/// KV `apikeys`. Only a hash of the secret is kept; the key itself is shown
/// once, when it is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRecord {
    /// Key id: the public part of the key, `bk_{id}_…`.
    pub id: String,
    /// The page it may act on.
    pub page: String,
    /// A name for people, e.g. `ci deploys`.
    pub name: String,
    /// What it may do, e.g. `incidents:write`.
    pub scopes: Vec<crate::api::ApiScope>,
    /// SHA-256 of the secret part, lowercase hex.
    pub secret_sha256: String,
    /// Requests per minute it may make.
    pub rate_per_minute: u32,
    /// When it was created (Unix milliseconds).
    pub created_at_ms: u64,
    /// Who created it.
    pub created_by: String,
    /// When it was revoked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<u64>,
}

impl Message for ApiKeyRecord {
    const KIND: &'static str = "api_key";
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
    /// Category: `new_feature`, `improvement`, `fix` or `announcement`
    /// ([`CHANGELOG_CATEGORIES`]; the publisher's API refuses others).
    pub category: String,
    /// Components the entry is about.
    #[serde(default)]
    pub components: Vec<String>,
    /// `true` when this event withdraws the entry.
    #[serde(default)]
    pub withdrawn: bool,
    /// Publication date shown with the entry (Unix milliseconds); 0 in
    /// entries written before it existed, which show the event's time.
    #[serde(default)]
    pub published_at_ms: u64,
    /// Images uploaded with the entry: file names under the page's
    /// `assets/` (the bytes are in the `pages` object store).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Who wrote this version of the entry.
    #[serde(default)]
    pub actor: String,
}

/// The categories a changelog entry may have.
pub const CHANGELOG_CATEGORIES: [&str; 4] = ["new_feature", "improvement", "fix", "announcement"];

impl Message for ChangelogEntry {
    const KIND: &'static str = "changelog_entry";
    const VERSION: u32 = 1;
}

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

/// Channel kinds a delivery can go out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
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

/// One send of a notice thread: who got it is what the rule says, applied
/// to the subscribers in turn ([`NoticeThread`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThreadSend {
    /// Its place in the thread, from 0.
    pub index: u32,
    /// When it was planned (Unix milliseconds).
    pub at_ms: u64,
    /// What caused it: the event or update id, or `flush-{after}`.
    pub source: String,
    /// Components the news is about; a subscriber is in the audience when
    /// its filter names one of them (or it has no filter).
    pub components: Vec<String>,
    /// None: sent at once, to the audience whose window is closed (and to
    /// instant subscribers). Some(k): the window flush of those whose last
    /// message was send `k`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u32>,
    /// Notice id.
    pub notice: String,
    /// Batches per channel, fixed when planned so a replay makes the same
    /// batches.
    pub chunks: Vec<SendChunks>,
    /// Whether every batch is in `NOTIFY`.
    pub published: bool,
}

/// How many batches one channel of a send has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendChunks {
    /// Channel kind.
    pub channel: ChannelKind,
    /// Number of batches.
    pub count: u32,
}

/// A window flush waiting for its time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingFlush {
    /// The send whose recipients' window it closes.
    pub after: u32,
    /// When (Unix milliseconds).
    pub due_ms: u64,
    /// Components of the updates it holds.
    pub components: Vec<String>,
}

/// The notifier planner's memory of one thread of news (an incident, a
/// maintenance window, a component's status, the digest): the value under
/// `{page}.{thread}` in KV `notices`. It lists sends, never recipients, so
/// it stays small for a million subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoticeThread {
    /// Page id.
    pub page: String,
    /// Thread id, e.g. `incident-01j…`, `component-api`, `digest`.
    pub thread: String,
    /// Sends so far, in order.
    pub sends: Vec<ThreadSend>,
    /// Window flushes waiting.
    #[serde(default)]
    pub pending: Vec<PendingFlush>,
    /// The newest notice: what a flush sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<Notice>,
    /// Lane of the newest notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_lane: Option<Lane>,
}

impl Message for NoticeThread {
    const KIND: &'static str = "notice_thread";
    const VERSION: u32 = 1;
}

/// What became of each delivery of one batch: the value under the batch's
/// event id in KV `ledger`. A redelivered batch sends only what is still
/// pending, so a restart does not resend what a provider accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryLedger {
    /// One character per subscriber of the batch, in its order:
    /// `.` not sent yet, `r` failed and will be retried, `d` delivered,
    /// `x` given up, `s` skipped (no such subscriber or endpoint any more).
    pub states: String,
}

impl Message for DeliveryLedger {
    const KIND: &'static str = "delivery_ledger";
    const VERSION: u32 = 1;
}

/// Why an address may not be subscribed again without its owner's consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    /// Its owner's data was erased (GDPR).
    Erased,
}

/// A suppressed address: the value under `{page}.{hash}` in KV
/// `suppressions`, where the hash is a keyed hash of the address. Operator
/// adds and imports refuse it; a double opt-in (its owner's consent) lifts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Suppression {
    /// Page id.
    pub page: String,
    /// Why.
    pub reason: SuppressionReason,
    /// When (Unix milliseconds).
    pub at_ms: u64,
}

impl Message for Suppression {
    const KIND: &'static str = "suppression";
    const VERSION: u32 = 1;
}

/// One day of one component's uptime.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
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
    /// Of `down_ms`, milliseconds in partial outage.
    #[serde(default)]
    pub partial_ms: u64,
    /// Of `down_ms`, milliseconds in major outage.
    #[serde(default)]
    pub major_ms: u64,
    /// Of `up_ms`, milliseconds under maintenance (a window in progress
    /// or `under_maintenance`): left out of uptime.
    #[serde(default)]
    pub maintenance_ms: u64,
    /// Milliseconds before the component's first status: left out too.
    #[serde(default)]
    pub no_data_ms: u64,
    /// Uptime in percent with the page's status weights, maintenance and
    /// time without data left out; none when nothing was counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_percent: Option<f64>,
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
        for kind in CheckKind::ALL {
            assert_eq!(wire(&kind), format!("\"{}\"", kind.as_str()));
        }
        for kind in [ErrorKind::Timeout, ErrorKind::BodyTooLarge, ErrorKind::Late] {
            assert_eq!(wire(&kind), format!("\"{}\"", kind.as_str()));
        }
        for outcome in Outcome::ALL {
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
