//! Pure mapping from bus messages to ClickHouse rows.
//!
//! Field names and order match the columns in [`crate::schema`];
//! field types are what ClickHouse's `RowBinary` format expects for each
//! column: `DateTime` is seconds as `u32`, `Date` is days as `u16`, and
//! absent values are stored as `0` or `''` because the columns are not
//! `Nullable` (cheaper to store and to query).

use beacon_contract::event::Envelope;
use beacon_contract::messages::{
    DeliveryReceipt, HealthResult, IncidentEvent, MaintenanceEvent, StatusChange,
};
use serde::Serialize;

const MS_PER_SECOND: u64 = 1_000;
const MS_PER_DAY: u64 = 86_400 * MS_PER_SECOND;

/// Earliest time a Beacon event can carry: 2000-01-01T00:00:00Z. Anything
/// before is a clock that was never set (0 is 1970), not history.
pub const EARLIEST_MS: u64 = 946_684_800_000;

/// How far ahead of the recorder's clock an event may be: clocks drift,
/// but a result from tomorrow would be counted in a day that has not
/// happened.
pub const MAX_AHEAD_MS: u64 = MS_PER_DAY;

/// Why a message cannot become a row. Permanent: the same message will
/// never map, so it is dead-lettered rather than retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// A time outside what `DateTime` can hold (1970 to 2106).
    #[error("{field} = {ms} ms is outside the range ClickHouse DateTime can store")]
    TimeOutOfRange {
        /// Which field.
        field: &'static str,
        /// Its value, in milliseconds since the Unix epoch.
        ms: u64,
    },
    /// A time before 2000: an unset clock.
    #[error("{field} = {ms} ms is before 2000-01-01, an impossible time for an event")]
    TimeTooEarly {
        /// Which field.
        field: &'static str,
        /// Its value.
        ms: u64,
    },
    /// A time more than a day ahead of the recorder's clock.
    #[error("{field} = {ms} ms is more than a day ahead of the recorder's clock ({now_ms} ms)")]
    TimeInFuture {
        /// Which field.
        field: &'static str,
        /// Its value.
        ms: u64,
        /// The recorder's clock.
        now_ms: u64,
    },
    /// The evidence could not be written as JSON.
    #[error("cannot encode evidence as JSON: {0}")]
    Evidence(String),
}

impl RowError {
    /// A short, bounded label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            RowError::TimeOutOfRange { .. }
            | RowError::TimeTooEarly { .. }
            | RowError::TimeInFuture { .. } => "impossible_time",
            RowError::Evidence(_) => "unencodable",
        }
    }
}

/// One row of `health_results`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, clickhouse::Row)]
pub struct HealthRow {
    /// Event id (ULID).
    pub event_id: String,
    /// HLC timestamp in its sortable text form.
    pub hlc: String,
    /// Region or `global` of the process that published the event.
    pub origin: String,
    /// Page id.
    pub page: String,
    /// Component id.
    pub component: String,
    /// Check id.
    pub check_id: String,
    /// Probe region that ran the check.
    pub region: String,
    /// Check kind, e.g. `http`.
    pub kind: String,
    /// `up`, `degraded` or `down`.
    pub outcome: String,
    /// When the check started, in seconds (`DateTime`).
    pub started_at: u32,
    /// When the check started, in milliseconds.
    pub started_at_ms: u64,
    /// How long the check took.
    pub latency_ms: u64,
    /// HTTP status, `0` when there was none.
    pub http_status: u16,
    /// Error text, empty when there was none.
    pub error: String,
    /// UTC day the check started, in days since the epoch (`Date`).
    pub day: u16,
}

/// One row of `status_changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, clickhouse::Row)]
pub struct StatusRow {
    /// Event id (ULID).
    pub event_id: String,
    /// HLC timestamp in its sortable text form.
    pub hlc: String,
    /// Page id.
    pub page: String,
    /// Component id.
    pub component: String,
    /// Status before, empty for a component's first status.
    pub from_status: String,
    /// Status after.
    pub to_status: String,
    /// The rule that decided.
    pub rule: String,
    /// Event id of the probe result that triggered the change.
    pub trigger: String,
    /// The whole evidence, as JSON.
    pub evidence: String,
    /// When the change was stamped, in seconds (`DateTime`).
    pub changed_at: u32,
    /// When the change was stamped (the HLC's wall time), in milliseconds.
    pub changed_at_ms: u64,
    /// UTC day of `changed_at`, in days since the epoch (`Date`).
    pub day: u16,
    /// When the change took effect: its `at_ms`, or the HLC time for
    /// events that do not say. Uptime is computed on this.
    pub at_ms: u64,
    /// What set the status: `automatic`, `override`, `maintenance`, `incident`.
    pub source: String,
    /// 1 while the component is flapping.
    pub flapping: u8,
    /// Why the change must not notify (`depends_on`, …), empty if it may.
    pub inhibited: String,
    /// The incident the change proposed, empty if none.
    pub proposal: String,
}

/// One row of `incident_events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, clickhouse::Row)]
pub struct IncidentRow {
    /// Event id.
    pub event_id: String,
    /// HLC timestamp.
    pub hlc: String,
    /// Origin region.
    pub origin: String,
    /// Page id.
    pub page: String,
    /// Incident id.
    pub incident: String,
    /// What happened, e.g. `resolved`.
    pub action: String,
    /// Who did it.
    pub actor: String,
    /// When.
    pub at_ms: u64,
    /// Lifecycle this event sets, empty if none.
    pub lifecycle: String,
    /// Title this event sets, empty if none.
    pub title: String,
    /// Impact this event sets, empty if none.
    pub impact: String,
    /// State this event sets, empty if none.
    pub state: String,
    /// Affected components this event sets.
    pub components: Vec<String>,
    /// Their statuses, in the same order.
    pub component_statuses: Vec<String>,
    /// Id of the timeline update this event adds, empty if none.
    pub update_id: String,
    /// Postmortem this event sets, empty if none.
    pub postmortem: String,
    /// Dismissal reason, empty if none.
    pub reason: String,
    /// The whole envelope, as JSON, for folding.
    pub envelope: String,
    /// UTC day of `at_ms`.
    pub day: u16,
}

/// One row of `incident_updates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, clickhouse::Row)]
pub struct IncidentUpdateRow {
    /// Event id that wrote it.
    pub event_id: String,
    /// That event's HLC timestamp.
    pub hlc: String,
    /// Page id.
    pub page: String,
    /// Incident id.
    pub incident: String,
    /// Update id.
    pub update_id: String,
    /// Incident state from this update on.
    pub state: String,
    /// Text for users.
    pub body: String,
    /// Affected components.
    pub components: Vec<String>,
    /// Their statuses.
    pub component_statuses: Vec<String>,
    /// When it was written.
    pub at_ms: u64,
    /// Who wrote it.
    pub actor: String,
    /// UTC day of `at_ms`.
    pub day: u16,
}

/// One row of `maintenance_events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, clickhouse::Row)]
pub struct MaintenanceRow {
    /// Event id.
    pub event_id: String,
    /// HLC timestamp.
    pub hlc: String,
    /// Origin region.
    pub origin: String,
    /// Page id.
    pub page: String,
    /// Maintenance id.
    pub maintenance: String,
    /// What happened, e.g. `started`.
    pub action: String,
    /// Who did it.
    pub actor: String,
    /// When.
    pub at_ms: u64,
    /// Phase after the event.
    pub phase: String,
    /// Title.
    pub title: String,
    /// Text for users.
    pub body: String,
    /// Planned start.
    pub starts_at_ms: u64,
    /// Planned end.
    pub ends_at_ms: u64,
    /// Components under maintenance.
    pub components: Vec<String>,
    /// Recurrence rule of a series, empty if none.
    pub recurrence: String,
    /// Series of an occurrence, empty if none.
    pub series: String,
    /// Reminder lead time.
    pub remind_before_ms: u64,
    /// Verification period.
    pub verify_ms: u64,
    /// The whole envelope, as JSON.
    pub envelope: String,
    /// UTC day of `at_ms`.
    pub day: u16,
}

/// One row of `delivery_receipts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, clickhouse::Row)]
pub struct DeliveryRow {
    /// Event id.
    pub event_id: String,
    /// HLC timestamp.
    pub hlc: String,
    /// Origin region.
    pub origin: String,
    /// Page id.
    pub page: String,
    /// Channel kind.
    pub channel: String,
    /// Subscriber id.
    pub subscriber: String,
    /// The key the provider saw.
    pub idempotency_key: String,
    /// `delivered`, `retrying` or `dead`.
    pub outcome: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Provider response or error.
    pub detail: String,
    /// When the receipt was written (its HLC time).
    pub at_ms: u64,
    /// UTC day of `at_ms`.
    pub day: u16,
}

impl HealthRow {
    /// Maps a probe result envelope to its row; `now_ms` is the recorder's
    /// clock, to refuse results from the future. Takes the envelope by
    /// value: probe results are the busy stream, and their strings move
    /// into the row instead of being copied.
    pub fn from_envelope(envelope: Envelope<HealthResult>, now_ms: u64) -> Result<Self, RowError> {
        let result = envelope.data;
        let (started_at, day) = plausible("started_at_ms", result.started_at_ms, now_ms)?;
        Ok(Self {
            event_id: envelope.id.to_string(),
            hlc: envelope.hlc.to_string(),
            origin: envelope.origin,
            page: result.page,
            component: result.component,
            check_id: result.check,
            region: result.region,
            kind: result.kind.as_str().to_owned(),
            outcome: result.outcome.as_str().to_owned(),
            started_at,
            started_at_ms: result.started_at_ms,
            latency_ms: result.latency_ms,
            http_status: result.http_status.unwrap_or(0),
            error: result.error.unwrap_or_default(),
            day,
        })
    }
}

impl StatusRow {
    /// Maps a status change envelope to its row.
    ///
    /// `changed_at` is when the decider stamped it (the HLC wall time);
    /// `at_ms` is when it took effect, which events before `at_ms` existed
    /// leave at 0: those take effect when stamped.
    pub fn from_envelope(envelope: &Envelope<StatusChange>, now_ms: u64) -> Result<Self, RowError> {
        let change = &envelope.data;
        let changed_at_ms = envelope.hlc.wall_ms;
        let (changed_at, day) = plausible("hlc", changed_at_ms, now_ms)?;
        let at_ms = if change.at_ms == 0 {
            changed_at_ms
        } else {
            plausible("at_ms", change.at_ms, now_ms)?;
            change.at_ms
        };
        let evidence = serde_json::to_string(&change.evidence)
            .map_err(|e| RowError::Evidence(e.to_string()))?;
        Ok(Self {
            event_id: envelope.id.to_string(),
            hlc: envelope.hlc.to_string(),
            page: change.page.clone(),
            component: change.component.clone(),
            from_status: change
                .from
                .map(|s| s.as_str())
                .unwrap_or_default()
                .to_owned(),
            to_status: change.to.as_str().to_owned(),
            rule: change.evidence.rule.clone(),
            trigger: change
                .evidence
                .trigger
                .map(|t| t.to_string())
                .unwrap_or_default(),
            evidence,
            changed_at,
            changed_at_ms,
            day,
            at_ms,
            source: change.source.as_str().to_owned(),
            flapping: u8::from(change.flapping),
            inhibited: change
                .inhibited
                .as_ref()
                .map(|i| i.reason.as_str().to_owned())
                .unwrap_or_default(),
            proposal: change.proposal.clone().unwrap_or_default(),
        })
    }
}

impl IncidentRow {
    /// Maps an incident event to its row, and to the row of the timeline
    /// update it adds, if it adds one.
    pub fn from_envelope(
        envelope: &Envelope<IncidentEvent>,
        now_ms: u64,
    ) -> Result<(Self, Option<IncidentUpdateRow>), RowError> {
        let event = &envelope.data;
        let (_, day) = plausible("at_ms", event.at_ms, now_ms)?;
        let whole =
            serde_json::to_string(envelope).map_err(|e| RowError::Evidence(e.to_string()))?;
        let (components, component_statuses) = match &event.components {
            Some(list) => list
                .iter()
                .map(|c| (c.component.clone(), c.status.as_str().to_owned()))
                .unzip(),
            None => (Vec::new(), Vec::new()),
        };
        let update = match &event.update {
            Some(update) => {
                let (_, update_day) = plausible("update.at_ms", update.at_ms, now_ms)?;
                let (components, component_statuses) = update
                    .components
                    .iter()
                    .map(|c| (c.component.clone(), c.status.as_str().to_owned()))
                    .unzip();
                Some(IncidentUpdateRow {
                    event_id: envelope.id.to_string(),
                    hlc: envelope.hlc.to_string(),
                    page: event.page.clone(),
                    incident: event.incident.clone(),
                    update_id: update.id.clone(),
                    state: update.state.as_str().to_owned(),
                    body: update.body.clone(),
                    components,
                    component_statuses,
                    at_ms: update.at_ms,
                    actor: update.actor.clone(),
                    day: update_day,
                })
            }
            None => None,
        };
        let row = Self {
            event_id: envelope.id.to_string(),
            hlc: envelope.hlc.to_string(),
            origin: envelope.origin.clone(),
            page: event.page.clone(),
            incident: event.incident.clone(),
            action: event.action.as_str().to_owned(),
            actor: event.actor.clone(),
            at_ms: event.at_ms,
            lifecycle: event
                .lifecycle
                .map(|l| l.as_str().to_owned())
                .unwrap_or_default(),
            title: event.title.clone().unwrap_or_default(),
            impact: event
                .impact
                .map(|i| i.as_str().to_owned())
                .unwrap_or_default(),
            state: event
                .state
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            components,
            component_statuses,
            update_id: event
                .update
                .as_ref()
                .map(|u| u.id.clone())
                .unwrap_or_default(),
            postmortem: event.postmortem.clone().unwrap_or_default(),
            reason: event.reason.clone().unwrap_or_default(),
            envelope: whole,
            day,
        };
        Ok((row, update))
    }
}

impl MaintenanceRow {
    /// Maps a maintenance event to its row.
    pub fn from_envelope(
        envelope: &Envelope<MaintenanceEvent>,
        now_ms: u64,
    ) -> Result<Self, RowError> {
        let event = &envelope.data;
        let (_, day) = plausible("at_ms", event.at_ms, now_ms)?;
        let whole =
            serde_json::to_string(envelope).map_err(|e| RowError::Evidence(e.to_string()))?;
        Ok(Self {
            event_id: envelope.id.to_string(),
            hlc: envelope.hlc.to_string(),
            origin: envelope.origin.clone(),
            page: event.page.clone(),
            maintenance: event.maintenance.clone(),
            action: event.action.as_str().to_owned(),
            actor: event.actor.clone(),
            at_ms: event.at_ms,
            phase: event.phase.as_str().to_owned(),
            title: event.title.clone(),
            body: event.body.clone(),
            starts_at_ms: event.starts_at_ms,
            ends_at_ms: event.ends_at_ms,
            components: event.components.clone(),
            recurrence: event.recurrence.clone().unwrap_or_default(),
            series: event.series.clone().unwrap_or_default(),
            remind_before_ms: event.remind_before_ms,
            verify_ms: event.verify_ms,
            envelope: whole,
            day,
        })
    }
}

impl DeliveryRow {
    /// Maps a delivery receipt to its row; it happened when stamped.
    pub fn from_envelope(
        envelope: &Envelope<DeliveryReceipt>,
        now_ms: u64,
    ) -> Result<Self, RowError> {
        let receipt = &envelope.data;
        let at_ms = envelope.hlc.wall_ms;
        let (_, day) = plausible("hlc", at_ms, now_ms)?;
        Ok(Self {
            event_id: envelope.id.to_string(),
            hlc: envelope.hlc.to_string(),
            origin: envelope.origin.clone(),
            page: receipt.page.clone(),
            channel: receipt.channel.as_str().to_owned(),
            subscriber: receipt.subscriber.clone(),
            idempotency_key: receipt.idempotency_key.clone(),
            outcome: outcome_name(receipt.outcome).to_owned(),
            attempts: receipt.attempts,
            detail: receipt.detail.clone(),
            at_ms,
            day,
        })
    }
}

fn outcome_name(outcome: beacon_contract::messages::DeliveryOutcome) -> &'static str {
    use beacon_contract::messages::DeliveryOutcome as O;
    match outcome {
        O::Delivered => "delivered",
        O::Retrying => "retrying",
        O::Dead => "dead",
    }
}

/// Checks that `ms` is a time an event can carry (2000 or later, at most a
/// day ahead of `now_ms`, within `DateTime`) and splits it into `DateTime`
/// seconds and a `Date` day.
pub fn plausible(field: &'static str, ms: u64, now_ms: u64) -> Result<(u32, u16), RowError> {
    if ms < EARLIEST_MS {
        return Err(RowError::TimeTooEarly { field, ms });
    }
    if ms > now_ms.saturating_add(MAX_AHEAD_MS) {
        return Err(RowError::TimeInFuture { field, ms, now_ms });
    }
    seconds_and_day(field, ms)
}

/// Splits milliseconds into `DateTime` seconds and a `Date` day number.
fn seconds_and_day(field: &'static str, ms: u64) -> Result<(u32, u16), RowError> {
    let out_of_range = || RowError::TimeOutOfRange { field, ms };
    let seconds = u32::try_from(ms / MS_PER_SECOND).map_err(|_| out_of_range())?;
    // Every second a u32 holds falls on a day below u16::MAX, so this
    // cannot fail once the line above passed; it is checked anyway rather
    // than truncated.
    let day = u16::try_from(ms / MS_PER_DAY).map_err(|_| out_of_range())?;
    Ok((seconds, day))
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_contract::event::EventId;
    use beacon_contract::hlc::Hlc;
    use beacon_contract::messages::{
        CheckKind, ComponentStatus, Evidence, Outcome, RegionEvidence, RegionState,
    };

    /// 2024-03-01T12:00:00.250Z.
    const MARCH_1_MS: u64 = 1_709_294_400_250;
    /// Days from 1970-01-01 to 2024-03-01.
    const MARCH_1_DAY: u16 = 19_783;
    /// The recorder's clock in these tests: a week after March 1.
    const NOW: u64 = MARCH_1_MS + 7 * MS_PER_DAY;

    fn id(text: &str) -> EventId {
        text.parse().unwrap()
    }

    fn health(
        http_status: Option<u16>,
        error: Option<&str>,
        started_at_ms: u64,
    ) -> Envelope<HealthResult> {
        Envelope::with_id(
            id("01HQ0000000000000000000001"),
            Hlc::new(MARCH_1_MS + 5, 2),
            "eu",
            HealthResult {
                page: "acme".into(),
                component: "api".into(),
                check: "home".into(),
                region: "eu-west".into(),
                kind: CheckKind::Http,
                outcome: Outcome::Down,
                started_at_ms,
                latency_ms: 1234,
                http_status,
                error: error.map(str::to_owned),
                error_kind: None,
                failed_condition: None,
                timings: None,
                observed: Default::default(),
            },
        )
    }

    fn change(from: Option<ComponentStatus>, wall_ms: u64) -> Envelope<StatusChange> {
        Envelope::with_id(
            id("01HQ0000000000000000000002"),
            Hlc::new(wall_ms, 0),
            "global",
            StatusChange {
                page: "acme".into(),
                component: "api".into(),
                from,
                to: ComponentStatus::MajorOutage,
                at_ms: 0,
                source: Default::default(),
                flapping: false,
                inhibited: None,
                proposal: None,
                evidence: Evidence {
                    rule: "quorum: 2 of 2 regions down".into(),
                    trigger: Some(id("01HQ0000000000000000000001")),
                    regions: vec![RegionEvidence {
                        region: "eu-west".into(),
                        state: RegionState::Down,
                        consecutive_failures: 3,
                        consecutive_successes: 0,
                        last_result: None,
                        last_error: Some("timeout".into()),
                        since_ms: None,
                        last_seen_ms: None,
                        samples: vec![],
                    }],
                },
            },
        )
    }

    #[test]
    fn health_result_maps_every_column() {
        let row = HealthRow::from_envelope(health(Some(503), Some("bad gateway"), MARCH_1_MS), NOW)
            .unwrap();
        assert_eq!(
            row,
            HealthRow {
                event_id: "01HQ0000000000000000000001".into(),
                hlc: "1709294400255-00002".into(),
                origin: "eu".into(),
                page: "acme".into(),
                component: "api".into(),
                check_id: "home".into(),
                region: "eu-west".into(),
                kind: "http".into(),
                outcome: "down".into(),
                started_at: 1_709_294_400,
                started_at_ms: MARCH_1_MS,
                latency_ms: 1234,
                http_status: 503,
                error: "bad gateway".into(),
                day: MARCH_1_DAY,
            }
        );
    }

    #[test]
    fn absent_optional_fields_become_zero_and_empty() {
        let row = HealthRow::from_envelope(health(None, None, MARCH_1_MS), NOW).unwrap();
        assert_eq!((row.http_status, row.error.as_str()), (0, ""));
    }

    #[test]
    fn kinds_and_outcomes_use_their_wire_names() {
        for (kind, outcome_value) in [
            (CheckKind::Http, Outcome::Up),
            (CheckKind::Tcp, Outcome::Down),
        ] {
            let want_kind = serde_json::to_value(kind).unwrap();
            let want_outcome = serde_json::to_value(outcome_value).unwrap();
            let mut envelope = health(None, None, MARCH_1_MS);
            envelope.data.kind = kind;
            envelope.data.outcome = outcome_value;
            let row = HealthRow::from_envelope(envelope, NOW).unwrap();
            assert_eq!(want_kind, row.kind);
            assert_eq!(want_outcome, row.outcome);
        }
    }

    #[test]
    fn times_split_into_seconds_and_days_at_the_edges() {
        let table: &[(u64, Option<(u32, u16)>)] = &[
            (0, Some((0, 0))),
            (999, Some((0, 0))),
            (MS_PER_DAY - 1, Some((86_399, 0))),
            (MS_PER_DAY, Some((86_400, 1))),
            (MARCH_1_MS, Some((1_709_294_400, MARCH_1_DAY))),
            // The last second DateTime holds: 2106-02-07T06:28:15Z.
            (u64::from(u32::MAX) * 1000 + 999, Some((u32::MAX, 49_710))),
            (u64::from(u32::MAX) * 1000 + 1000, None),
            (u64::MAX, None),
        ];
        for (ms, want) in table {
            let got = seconds_and_day("t", *ms).ok();
            assert_eq!(&got, want, "ms = {ms}");
        }
    }

    #[test]
    fn impossible_times_are_refused_not_truncated() {
        let far = u64::from(u32::MAX) * 1000 + 1000;
        let err = HealthRow::from_envelope(health(None, None, far), far).unwrap_err();
        assert_eq!(
            err,
            RowError::TimeOutOfRange {
                field: "started_at_ms",
                ms: far
            }
        );
        let err = HealthRow::from_envelope(health(None, None, u64::MAX), NOW).unwrap_err();
        assert!(matches!(err, RowError::TimeInFuture { .. }), "{err}");
        assert!(err.to_string().contains("ahead of the recorder's clock"));
        let err = HealthRow::from_envelope(health(None, None, 0), NOW).unwrap_err();
        assert!(matches!(err, RowError::TimeTooEarly { .. }), "{err}");
        assert_eq!(err.label(), "impossible_time");
        assert!(StatusRow::from_envelope(&change(None, u64::MAX), NOW).is_err());
        // A day ahead is clock drift, not impossible.
        assert!(HealthRow::from_envelope(health(None, None, NOW + MAX_AHEAD_MS), NOW).is_ok());
        let mut late = change(None, MARCH_1_MS);
        late.data.at_ms = NOW + 2 * MAX_AHEAD_MS;
        assert!(StatusRow::from_envelope(&late, NOW).is_err());
    }

    #[test]
    fn a_status_change_takes_effect_at_its_own_time_or_when_stamped() {
        let mut envelope = change(None, MARCH_1_MS);
        assert_eq!(
            StatusRow::from_envelope(&envelope, NOW).unwrap().at_ms,
            MARCH_1_MS
        );
        envelope.data.at_ms = MARCH_1_MS - 5_000;
        envelope.data.flapping = true;
        let row = StatusRow::from_envelope(&envelope, NOW).unwrap();
        assert_eq!(
            (row.at_ms, row.flapping, row.source.as_str()),
            (MARCH_1_MS - 5_000, 1, "automatic")
        );
    }

    #[test]
    fn status_change_maps_every_column() {
        let envelope = change(Some(ComponentStatus::Operational), MARCH_1_MS);
        let row = StatusRow::from_envelope(&envelope, NOW).unwrap();
        assert_eq!(row.event_id, "01HQ0000000000000000000002");
        assert_eq!(row.hlc, "1709294400250-00000");
        assert_eq!((row.page.as_str(), row.component.as_str()), ("acme", "api"));
        assert_eq!(
            (row.from_status.as_str(), row.to_status.as_str()),
            ("operational", "major_outage")
        );
        assert_eq!(row.rule, "quorum: 2 of 2 regions down");
        assert_eq!(row.trigger, "01HQ0000000000000000000001");
        assert_eq!(
            (row.changed_at, row.changed_at_ms, row.day),
            (1_709_294_400, MARCH_1_MS, MARCH_1_DAY)
        );
        let evidence: Evidence = serde_json::from_str(&row.evidence).unwrap();
        assert_eq!(evidence, envelope.data.evidence);
    }

    #[test]
    fn a_first_status_has_an_empty_from() {
        let row = StatusRow::from_envelope(&change(None, MARCH_1_MS), NOW).unwrap();
        assert_eq!(row.from_status, "");
    }
}
