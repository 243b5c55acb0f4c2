//! The recorder's endpoints: SLA reports.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Endpoint;

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
    pub weights: StatusWeights,
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

/// The validated weights, in percent (0 to 100).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusWeights {
    /// Percent of time in `major_outage` counted as down.
    pub major_outage: f64,
    /// Percent of time in `partial_outage` counted as down.
    pub partial_outage: f64,
    /// Percent of time in `degraded_performance` counted as down.
    pub degraded_performance: f64,
}

impl Default for StatusWeights {
    /// Statuspage's: 100 %, 30 %, 0 %.
    fn default() -> Self {
        Self {
            major_outage: DEFAULT_MAJOR_OUTAGE,
            partial_outage: DEFAULT_PARTIAL_OUTAGE,
            degraded_performance: DEFAULT_DEGRADED_PERFORMANCE,
        }
    }
}

/// Default weight of `major_outage`, in percent.
pub const DEFAULT_MAJOR_OUTAGE: f64 = 100.0;

/// Default weight of `partial_outage`, in percent.
pub const DEFAULT_PARTIAL_OUTAGE: f64 = 30.0;

/// Default weight of `degraded_performance`, in percent.
pub const DEFAULT_DEGRADED_PERFORMANCE: f64 = 0.0;

// ---------------------------------------------------------------------------
// Endpoints.
// ---------------------------------------------------------------------------

/// The daemon that serves the endpoints below.
const OWNER: &str = "recorder";

/// A page's SLA report for a month or a year.
pub const SLA_REPORT: Endpoint<SlaReportRequest, SlaReport> =
    Endpoint::new("beacon.api.sla.report", OWNER);

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
