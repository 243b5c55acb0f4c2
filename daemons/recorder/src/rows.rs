//! Pure mapping from bus messages to ClickHouse rows.
//!
//! Field names and order match the columns in [`crate::schema`];
//! field types are what ClickHouse's `RowBinary` format expects for each
//! column: `DateTime` is seconds as `u32`, `Date` is days as `u16`, and
//! absent values are stored as `0` or `''` because the columns are not
//! `Nullable` (cheaper to store and to query).

use beacon_core::event::Envelope;
use beacon_core::messages::{HealthResult, StatusChange};
use serde::Serialize;

const MS_PER_SECOND: u64 = 1_000;
const MS_PER_DAY: u64 = 86_400 * MS_PER_SECOND;

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
    /// The evidence could not be written as JSON.
    #[error("cannot encode evidence as JSON: {0}")]
    Evidence(String),
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
    /// `up` or `down`.
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
    /// When the change happened, in seconds (`DateTime`).
    pub changed_at: u32,
    /// When the change happened, in milliseconds.
    pub changed_at_ms: u64,
    /// UTC day of the change, in days since the epoch (`Date`).
    pub day: u16,
}

impl HealthRow {
    /// Maps a probe result envelope to its row.
    pub fn from_envelope(envelope: &Envelope<HealthResult>) -> Result<Self, RowError> {
        let result = &envelope.data;
        let (started_at, day) = seconds_and_day("started_at_ms", result.started_at_ms)?;
        Ok(Self {
            event_id: envelope.id.to_string(),
            hlc: envelope.hlc.to_string(),
            origin: envelope.origin.clone(),
            page: result.page.clone(),
            component: result.component.clone(),
            check_id: result.check.clone(),
            region: result.region.clone(),
            kind: result.kind.as_str().to_owned(),
            outcome: result.outcome.as_str().to_owned(),
            started_at,
            started_at_ms: result.started_at_ms,
            latency_ms: result.latency_ms,
            http_status: result.http_status.unwrap_or(0),
            error: result.error.clone().unwrap_or_default(),
            day,
        })
    }
}

impl StatusRow {
    /// Maps a status change envelope to its row.
    ///
    /// A status change carries no time of its own; it happened when the
    /// decider stamped it, so the envelope's HLC wall time is used.
    pub fn from_envelope(envelope: &Envelope<StatusChange>) -> Result<Self, RowError> {
        let change = &envelope.data;
        let changed_at_ms = envelope.hlc.wall_ms;
        let (changed_at, day) = seconds_and_day("hlc", changed_at_ms)?;
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
        })
    }
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
    use beacon_core::event::EventId;
    use beacon_core::hlc::Hlc;
    use beacon_core::messages::{
        CheckKind, ComponentStatus, Evidence, Outcome, RegionEvidence, RegionState,
    };

    /// 2024-03-01T12:00:00.250Z.
    const MARCH_1_MS: u64 = 1_709_294_400_250;
    /// Days from 1970-01-01 to 2024-03-01.
    const MARCH_1_DAY: u16 = 19_783;

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
        let row =
            HealthRow::from_envelope(&health(Some(503), Some("bad gateway"), MARCH_1_MS)).unwrap();
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
        let row = HealthRow::from_envelope(&health(None, None, MARCH_1_MS)).unwrap();
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
            let row = HealthRow::from_envelope(&envelope).unwrap();
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
    fn a_time_beyond_datetime_is_refused_not_truncated() {
        let err = HealthRow::from_envelope(&health(None, None, u64::MAX)).unwrap_err();
        assert_eq!(
            err,
            RowError::TimeOutOfRange {
                field: "started_at_ms",
                ms: u64::MAX
            }
        );
        assert!(StatusRow::from_envelope(&change(None, u64::MAX)).is_err());
    }

    #[test]
    fn status_change_maps_every_column() {
        let envelope = change(Some(ComponentStatus::Operational), MARCH_1_MS);
        let row = StatusRow::from_envelope(&envelope).unwrap();
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
        let row = StatusRow::from_envelope(&change(None, MARCH_1_MS)).unwrap();
        assert_eq!(row.from_status, "");
    }
}
