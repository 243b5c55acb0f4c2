//! Request/reply types of the owners' API endpoints (`beacon.api.…`).
//!
//! Writes go to the owner of an entity, which validates, assigns ids and
//! appends an event. Every reply is an [`ApiReply`], so a client can always
//! tell "done", "your input is wrong (here is every error)" and "the server
//! failed" apart.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, PageConfig, RawPageConfig};
use crate::incident::Incident;
use crate::maintenance::Window;
use crate::messages::{
    AffectedComponent, ChangelogEntry, ChannelKind, ComponentOverride, ComponentStatus, DedupMode,
    Impact, IncidentState, StatusRecord, Subscriber, SubscriberChannel,
};

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

/// `beacon.api.config.apply`: store a page config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyConfigRequest {
    /// The config as the operator wrote it; the decider validates it again.
    pub config: RawPageConfig,
    /// Apply only if the stored config is still at this KV revision (0: only
    /// if there is none). Without it, the apply still fails with a conflict
    /// when another apply lands between its read and its write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_revision: Option<u64>,
}

/// Result of `beacon.api.config.apply`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyConfigResult {
    /// Page id.
    pub page: String,
    /// KV revision of the stored config.
    pub revision: u64,
    /// False when the stored config was already identical.
    pub changed: bool,
}

/// `beacon.api.config.get`: read a stored page config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetConfigRequest {
    /// Page id.
    pub page: String,
}

/// Result of `beacon.api.config.get`.
pub type GetConfigResult = PageConfig;

// ---------------------------------------------------------------------------
// Components.
// ---------------------------------------------------------------------------

/// `beacon.api.component.set`: override a component's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetComponentRequest {
    /// Page id.
    pub page: String,
    /// Component id.
    pub component: String,
    /// The status to show.
    pub status: ComponentStatus,
    /// Why, for people.
    #[serde(default)]
    pub reason: String,
    /// How long it applies, in milliseconds; none: until cleared.
    #[serde(default)]
    pub expires_in_ms: Option<u64>,
    /// Who asks (an operator's name, an API key id).
    pub actor: String,
}

/// `beacon.api.component.clear`: hand a component back to automation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearComponentRequest {
    /// Page id.
    pub page: String,
    /// Component id.
    pub component: String,
    /// Who asks.
    pub actor: String,
}

/// `beacon.api.component.explain` and `.list` name a page, and a component
/// for `explain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentRequest {
    /// Page id.
    pub page: String,
    /// Component id (`explain`); ignored by `list`.
    #[serde(default)]
    pub component: Option<String>,
}

/// One component as `list` and `explain` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentView {
    /// Page id.
    pub page: String,
    /// Component id.
    pub component: String,
    /// Name.
    pub name: String,
    /// Whether it has checks (automation decides it).
    pub automated: bool,
    /// The stored status record; none before the first decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<StatusRecord>,
    /// The operator override, if one is set (active or expired).
    #[serde(default, rename = "override", skip_serializing_if = "Option::is_none")]
    pub manual_override: Option<ComponentOverride>,
    /// Maintenance windows in progress that cover it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintenance: Vec<String>,
    /// Active incidents that name it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incidents: Vec<String>,
    /// Components it depends on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

// ---------------------------------------------------------------------------
// Incidents.
// ---------------------------------------------------------------------------

/// `beacon.api.incident.list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListIncidentsRequest {
    /// Page id.
    pub page: String,
    /// Include resolved and dismissed incidents.
    #[serde(default)]
    pub all: bool,
}

/// `beacon.api.incident.show`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShowIncidentRequest {
    /// Page id.
    pub page: String,
    /// Incident id.
    pub incident: String,
}

/// `beacon.api.incident.create`: open an incident directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIncidentRequest {
    /// Page id.
    pub page: String,
    /// Title.
    pub title: String,
    /// Impact.
    pub impact: Impact,
    /// State of the first update (default investigating).
    #[serde(default)]
    pub state: Option<IncidentState>,
    /// The first update's text.
    #[serde(default)]
    pub body: String,
    /// Affected components and the status each should show.
    #[serde(default)]
    pub components: Vec<AffectedComponent>,
    /// Who asks.
    pub actor: String,
    /// A key the client chose: the same key creates one incident, however
    /// often the request is retried within the bus's dedup window.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `beacon.api.incident.update`, `.resolve`, `.confirm`, `.dismiss` and
/// `.postmortem`: a change to one incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeIncidentRequest {
    /// Page id.
    pub page: String,
    /// Incident id.
    pub incident: String,
    /// The revision the client saw; refused with a conflict when the
    /// incident changed since. None: the revision the server reads.
    #[serde(default)]
    pub expected_revision: Option<u64>,
    /// New state (`update`; `resolve` sets resolved).
    #[serde(default)]
    pub state: Option<IncidentState>,
    /// Update text, dismissal reason or postmortem.
    #[serde(default)]
    pub body: String,
    /// New title (`confirm`, `update`).
    #[serde(default)]
    pub title: Option<String>,
    /// New impact (`confirm`, `update`).
    #[serde(default)]
    pub impact: Option<Impact>,
    /// Affected components with their status from now on; none keeps them
    /// (`resolve` sets them all operational).
    #[serde(default)]
    pub components: Option<Vec<AffectedComponent>>,
    /// Who asks.
    pub actor: String,
    /// A key the client chose: a change repeated with the same key makes
    /// one timeline entry, however often it is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Result of `incident.list`.
pub type IncidentList = Vec<Incident>;

// ---------------------------------------------------------------------------
// Maintenance.
// ---------------------------------------------------------------------------

/// `beacon.api.maintenance.schedule`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleMaintenanceRequest {
    /// Page id.
    pub page: String,
    /// Title.
    pub title: String,
    /// Text for users.
    #[serde(default)]
    pub body: String,
    /// Start (Unix milliseconds); for a series, its first occurrence's.
    pub starts_at_ms: u64,
    /// End; for a series, the first occurrence's (every occurrence lasts as long).
    pub ends_at_ms: u64,
    /// Components under maintenance.
    pub components: Vec<String>,
    /// `RRULE:FREQ=WEEKLY;BYDAY=TU` (RFC 5545) or a five-field cron
    /// expression in UTC, for a recurring series.
    #[serde(default)]
    pub recurrence: Option<String>,
    /// How long before the start the reminder goes out; default one hour, 0: none.
    #[serde(default)]
    pub remind_before_ms: Option<u64>,
    /// How long it stays verifying after its end; default 0 (completes at the end).
    #[serde(default)]
    pub verify_ms: Option<u64>,
    /// Who asks.
    pub actor: String,
    /// A key the client chose: the same key schedules one window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// `beacon.api.maintenance.start`, `.verify`, `.complete`, `.cancel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeMaintenanceRequest {
    /// Page id.
    pub page: String,
    /// Maintenance id.
    pub maintenance: String,
    /// The revision the client saw (optional, as for incidents).
    #[serde(default)]
    pub expected_revision: Option<u64>,
    /// Text for users.
    #[serde(default)]
    pub body: String,
    /// Who asks.
    pub actor: String,
}

/// `beacon.api.maintenance.list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListMaintenanceRequest {
    /// Page id.
    pub page: String,
    /// Include completed and cancelled windows.
    #[serde(default)]
    pub all: bool,
}

/// Result of `maintenance.list`.
pub type MaintenanceList = Vec<Window>;

// ---------------------------------------------------------------------------
// Changelog (served by the publisher).
// ---------------------------------------------------------------------------

/// Largest image accepted with a changelog entry, in bytes (before base64):
/// a request must stay under the bus's 1 MiB message limit.
pub const CHANGELOG_IMAGE_MAX_BYTES: usize = 512 * 1024;

/// An image uploaded with a changelog entry; it becomes `assets/{name}` of
/// the page, so the entry's markdown shows it with `![alt](assets/{name})`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangelogImage {
    /// File name: lowercase letters, digits, `-`, `_` and one `.` before a
    /// `png`, `jpg`, `jpeg`, `gif` or `webp` extension.
    pub name: String,
    /// The bytes, base64 (standard alphabet, padded).
    pub data_base64: String,
}

/// `beacon.api.changelog.publish`: publish a new entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishChangelogRequest {
    /// Page id.
    pub page: String,
    /// Title.
    pub title: String,
    /// Body, markdown (rendered to sanitized HTML).
    pub body_markdown: String,
    /// `new_feature`, `improvement`, `fix` or `announcement`.
    pub category: String,
    /// Components the entry is about.
    #[serde(default)]
    pub components: Vec<String>,
    /// Publication date (Unix milliseconds); none: now.
    #[serde(default)]
    pub published_at_ms: Option<u64>,
    /// Images to upload as assets of the page.
    #[serde(default)]
    pub images: Vec<ChangelogImage>,
    /// Who asks.
    pub actor: String,
    /// A key the client chose: the same key publishes one entry, however
    /// often the request is retried within the bus's dedup window.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `beacon.api.changelog.edit`: change an entry; fields left out keep
/// their value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EditChangelogRequest {
    /// Page id.
    pub page: String,
    /// Entry id.
    pub entry: String,
    /// The revision the client saw; refused with a conflict when the entry
    /// changed since. None: the revision the server reads.
    #[serde(default)]
    pub expected_revision: Option<u64>,
    /// New title.
    #[serde(default)]
    pub title: Option<String>,
    /// New body.
    #[serde(default)]
    pub body_markdown: Option<String>,
    /// New category.
    #[serde(default)]
    pub category: Option<String>,
    /// New components.
    #[serde(default)]
    pub components: Option<Vec<String>>,
    /// New publication date.
    #[serde(default)]
    pub published_at_ms: Option<u64>,
    /// Images to add (an image of the same name is replaced).
    #[serde(default)]
    pub images: Vec<ChangelogImage>,
    /// Who asks.
    pub actor: String,
}

/// `beacon.api.changelog.delete`: withdraw an entry from the page and feeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteChangelogRequest {
    /// Page id.
    pub page: String,
    /// Entry id.
    pub entry: String,
    /// The revision the client saw (optional, as for edits).
    #[serde(default)]
    pub expected_revision: Option<u64>,
    /// Who asks.
    pub actor: String,
}

/// `beacon.api.changelog.list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListChangelogRequest {
    /// Page id.
    pub page: String,
    /// Include withdrawn entries.
    #[serde(default)]
    pub all: bool,
}

/// A changelog entry as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangelogView {
    /// The entry's latest state.
    pub entry: ChangelogEntry,
    /// When it was first published (Unix milliseconds, event time).
    pub created_at_ms: u64,
    /// When it last changed.
    pub updated_at_ms: u64,
    /// Stream sequence of its latest event: the revision an edit names.
    pub revision: u64,
}

/// Result of `changelog.list`, newest publication first.
pub type ChangelogList = Vec<ChangelogView>;

// ---------------------------------------------------------------------------
// SLA reports (served by the recorder).
// ---------------------------------------------------------------------------

/// Most components in one `sla.report` reply: a reply must stay under the
/// bus's 1 MiB message limit, and a component's line is well under 1 KiB.
pub const SLA_REPORT_MAX_COMPONENTS: u32 = 500;

/// `beacon.api.sla.report`: a page's SLA report for a month or a year.
/// Large pages come in slices: ask again with `after` set to the reply's
/// `next` until it is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaReportRequest {
    /// Page id.
    pub page: String,
    /// `YYYY-MM` for a month or `YYYY` for a year, in UTC.
    pub period: String,
    /// Only components after this id in the page's order (the previous
    /// reply's `next`); none: from the first.
    #[serde(default)]
    pub after: Option<String>,
    /// Most components in the reply; default and at most
    /// [`SLA_REPORT_MAX_COMPONENTS`].
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A report period: one UTC month or one UTC year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaPeriod {
    /// A month.
    Month {
        /// Year, e.g. 2026.
        year: i32,
        /// Month, 1 to 12.
        month: u32,
    },
    /// A year.
    Year {
        /// Year, e.g. 2026.
        year: i32,
    },
}

/// Years a period may fall in: anything else is a typo, not a report.
pub const SLA_YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

impl SlaPeriod {
    /// Parses `2026-10` (a month) or `2026` (a year); the error says why not.
    pub fn parse(text: &str) -> Result<SlaPeriod, String> {
        let bad = |why: &str| {
            format!(
                "{text:?} is not a period: {why}; write YYYY-MM (e.g. 2026-10) or YYYY (e.g. 2026)"
            )
        };
        let year_of = |digits: &str| -> Result<i32, String> {
            if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad("the year must be four digits"));
            }
            let year: i32 = digits
                .parse()
                .map_err(|_| bad("the year must be four digits"))?;
            if !SLA_YEARS.contains(&year) {
                return Err(bad("the year must be 1970 or later"));
            }
            Ok(year)
        };
        match text.split_once('-') {
            None => Ok(SlaPeriod::Year {
                year: year_of(text)?,
            }),
            Some((year, month)) => {
                let year = year_of(year)?;
                if month.len() != 2 || !month.chars().all(|c| c.is_ascii_digit()) {
                    return Err(bad("the month must be two digits, 01 to 12"));
                }
                let month: u32 = month
                    .parse()
                    .map_err(|_| bad("the month must be 01 to 12"))?;
                if !(1..=12).contains(&month) {
                    return Err(bad("the month must be 01 to 12"));
                }
                Ok(SlaPeriod::Month { year, month })
            }
        }
    }

    /// Start (inclusive) and end (exclusive), in Unix milliseconds.
    pub fn bounds_ms(&self) -> (u64, u64) {
        let (start, end) = match *self {
            SlaPeriod::Month { year, month } => {
                let next = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                (
                    days_from_civil(year, month),
                    days_from_civil(next.0, next.1),
                )
            }
            SlaPeriod::Year { year } => (days_from_civil(year, 1), days_from_civil(year + 1, 1)),
        };
        let ms = |days: i64| u64::try_from(days).unwrap_or(0) * 86_400_000;
        (ms(start), ms(end))
    }
}

impl std::fmt::Display for SlaPeriod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlaPeriod::Month { year, month } => write!(f, "{year:04}-{month:02}"),
            SlaPeriod::Year { year } => write!(f, "{year:04}"),
        }
    }
}

/// Days since 1970-01-01 of the first day of `month` in `year` (proleptic
/// Gregorian; Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i32, month: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Result of `beacon.api.sla.report`: one slice of a page's components.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaReport {
    /// Page id.
    pub page: String,
    /// Page title.
    pub page_name: String,
    /// The period as asked, `YYYY-MM` or `YYYY`.
    pub period: String,
    /// Start of the period (Unix milliseconds).
    pub from_ms: u64,
    /// End of the period, or the time of the report while the period runs.
    pub to_ms: u64,
    /// When the report was made.
    pub generated_at_ms: u64,
    /// The page's status weights, in percent.
    pub weights: crate::config::sla::StatusWeights,
    /// Components of the page in this slice, in the page's order.
    pub components: Vec<SlaComponent>,
    /// Components the page has in all.
    pub total_components: u32,
    /// Ask again with `after` set to this for the next slice; none at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The page's incidents that began in the period.
    pub incidents: SlaIncidents,
}

/// One component's line in an SLA report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaComponent {
    /// Component id.
    pub component: String,
    /// Component title.
    pub name: String,
    /// Uptime it promises, in percent.
    pub target_percent: f64,
    /// Uptime in the period, in percent, with the page's weights;
    /// maintenance and time before its first status left out. None when
    /// nothing was counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_percent: Option<f64>,
    /// Whether the uptime reached the target; none when nothing was counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
    /// Milliseconds operational.
    pub operational_ms: u64,
    /// Milliseconds in degraded performance.
    pub degraded_ms: u64,
    /// Milliseconds in partial outage.
    pub partial_ms: u64,
    /// Milliseconds in major outage.
    pub major_ms: u64,
    /// Milliseconds under maintenance (left out).
    pub maintenance_ms: u64,
    /// Milliseconds before its first status (left out).
    pub no_data_ms: u64,
    /// Downtime with the weights applied, in minutes.
    pub downtime_minutes: f64,
    /// Downtime the target allows over the counted time, in minutes.
    pub budget_minutes: f64,
    /// Share of that budget used, in percent (above 100 when overspent);
    /// none when the budget is zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_used_percent: Option<f64>,
    /// Budget left, in minutes (negative when overspent).
    pub budget_left_minutes: f64,
    /// Incidents that began in the period and named it.
    pub incidents: u32,
}

/// A page's incidents in a report period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaIncidents {
    /// Incidents opened or confirmed (not dismissed, not mere proposals)
    /// that began in the period.
    pub count: u32,
    /// Of those, resolved.
    pub resolved: u32,
    /// Mean time from the first event to the resolution of the resolved
    /// ones, in minutes; none when none is resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mttr_minutes: Option<f64>,
}

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

/// `beacon.api.subscriber.sms_inbound`: an SMS the provider received for
/// us, as its webhook posted it, for the notifier to check and act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsInboundRequest {
    /// The full URL the provider posted to (it is part of what it signs).
    pub url: String,
    /// The form parameters, as posted.
    pub params: std::collections::BTreeMap<String, String>,
    /// The `X-Twilio-Signature` header.
    pub signature: String,
}

/// What an inbound SMS did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmsAction {
    /// STOP and its synonyms: the number's SMS endpoints are stopped.
    Stop,
    /// START and its synonyms: they are active again.
    Start,
    /// Anything else: nothing changed.
    Ignored,
}

/// Result of `subscriber.sms_inbound`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsInboundResult {
    /// What it did.
    pub action: SmsAction,
    /// Subscribers changed.
    pub changed: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_and_bound_in_utc() {
        let table: &[(&str, Option<(u64, u64)>)] = &[
            // 2026-10-01T00:00:00Z to 2026-11-01T00:00:00Z.
            ("2026-10", Some((1_790_812_800_000, 1_793_491_200_000))),
            // December rolls into the next year.
            ("2025-12", Some((1_764_547_200_000, 1_767_225_600_000))),
            // A leap February has 29 days.
            ("2024-02", Some((1_706_745_600_000, 1_709_251_200_000))),
            ("2026", Some((1_767_225_600_000, 1_798_761_600_000))),
            ("1970-01", Some((0, 2_678_400_000))),
            ("2026-13", None),
            ("2026-00", None),
            ("2026-1", None),
            ("26-10", None),
            ("october", None),
            ("", None),
            ("2026-10-01", None),
            ("1969", None),
            ("+2026", None),
        ];
        for (text, want) in table {
            let got = SlaPeriod::parse(text).map(|p| p.bounds_ms());
            match (got, want) {
                (Ok(got), Some(want)) => assert_eq!(&got, want, "{text}"),
                (Err(e), None) => assert!(e.contains("YYYY-MM"), "{text}: {e}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
        assert_eq!(
            SlaPeriod::parse("2026-03").expect("parses").to_string(),
            "2026-03"
        );
    }
}

// ---------------------------------------------------------------------------
// HTTP API keys (served by the api daemon).
// ---------------------------------------------------------------------------

/// What an HTTP API key may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum ApiScope {
    /// Read incidents.
    #[serde(rename = "incidents:read")]
    IncidentsRead,
    /// Create and update incidents.
    #[serde(rename = "incidents:write")]
    IncidentsWrite,
    /// Read components and their status.
    #[serde(rename = "components:read")]
    ComponentsRead,
    /// Set and clear component statuses.
    #[serde(rename = "components:write")]
    ComponentsWrite,
    /// Read maintenance windows.
    #[serde(rename = "maintenance:read")]
    MaintenanceRead,
    /// Schedule and change maintenance windows.
    #[serde(rename = "maintenance:write")]
    MaintenanceWrite,
    /// Publish changelog entries.
    #[serde(rename = "changelog:write")]
    ChangelogWrite,
    /// Read changelog entries (including withdrawn ones).
    #[serde(rename = "changelog:read")]
    ChangelogRead,
    /// Read subscribers.
    #[serde(rename = "subscribers:read")]
    SubscribersRead,
    /// Add and remove subscribers.
    #[serde(rename = "subscribers:write")]
    SubscribersWrite,
}

impl ApiScope {
    /// Every scope.
    pub const ALL: [ApiScope; 10] = [
        ApiScope::IncidentsRead,
        ApiScope::IncidentsWrite,
        ApiScope::ComponentsRead,
        ApiScope::ComponentsWrite,
        ApiScope::MaintenanceRead,
        ApiScope::MaintenanceWrite,
        ApiScope::ChangelogWrite,
        ApiScope::ChangelogRead,
        ApiScope::SubscribersRead,
        ApiScope::SubscribersWrite,
    ];

    /// The wire name, e.g. `incidents:write`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiScope::IncidentsRead => "incidents:read",
            ApiScope::IncidentsWrite => "incidents:write",
            ApiScope::ComponentsRead => "components:read",
            ApiScope::ComponentsWrite => "components:write",
            ApiScope::MaintenanceRead => "maintenance:read",
            ApiScope::MaintenanceWrite => "maintenance:write",
            ApiScope::ChangelogWrite => "changelog:write",
            ApiScope::ChangelogRead => "changelog:read",
            ApiScope::SubscribersRead => "subscribers:read",
            ApiScope::SubscribersWrite => "subscribers:write",
        }
    }

    /// The scope named `text`.
    pub fn parse(text: &str) -> Option<ApiScope> {
        ApiScope::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether holding `self` allows what `needed` guards: a write scope
    /// also reads.
    pub fn allows(self, needed: ApiScope) -> bool {
        use ApiScope as S;
        self == needed
            || matches!(
                (self, needed),
                (S::IncidentsWrite, S::IncidentsRead)
                    | (S::ComponentsWrite, S::ComponentsRead)
                    | (S::MaintenanceWrite, S::MaintenanceRead)
                    | (S::ChangelogWrite, S::ChangelogRead)
                    | (S::SubscribersWrite, S::SubscribersRead)
            )
    }
}

/// `beacon.api.apikey.create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// The page the key may act on.
    pub page: String,
    /// A name for people.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<ApiScope>,
    /// Requests per minute (default 600).
    #[serde(default)]
    pub rate_per_minute: Option<u32>,
    /// Who asks.
    pub actor: String,
}

/// An API key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyView {
    /// Key id.
    pub id: String,
    /// Page.
    pub page: String,
    /// Name.
    pub name: String,
    /// Scopes.
    pub scopes: Vec<ApiScope>,
    /// Requests per minute.
    pub rate_per_minute: u32,
    /// Created (Unix milliseconds).
    pub created_at_ms: u64,
    /// By whom.
    pub created_by: String,
    /// Revoked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<u64>,
}

/// Result of `apikey.create`: the key, shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatedApiKey {
    /// The whole key, `bk_{id}_{secret}`; only its hash is stored.
    pub key: String,
    /// What was stored.
    pub view: ApiKeyView,
}

/// `beacon.api.apikey.list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListApiKeysRequest {
    /// Only the keys of this page.
    #[serde(default)]
    pub page: Option<String>,
}

/// `beacon.api.apikey.revoke`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeApiKeyRequest {
    /// Key id.
    pub id: String,
    /// Who asks.
    pub actor: String,
}
