//! `beaconctl sla report --page P (--month YYYY-MM | --year YYYY)`: a
//! page's SLA report, computed by the recorder from ClickHouse and fetched
//! over the bus (`beacon.api.sla.report`), slice by slice for large pages.

use std::time::Duration;

use beacon_contract::api::{SlaPeriod, SlaReport, SlaReportRequest};
use beacon_contract::names::check_token;
use beacon_runtime::connect::NatsArgs;

use crate::cli::OutputFormat;
use crate::commands::connect;
use crate::exit::CtlError;
use crate::output;
use crate::request;

/// Runs `sla report`. Flags are checked before connecting, so a month
/// that does not parse never reaches the bus.
pub async fn report(
    nats: &NatsArgs,
    page: &str,
    month: Option<&str>,
    year: Option<&str>,
    format: OutputFormat,
    timeout: Duration,
) -> Result<(), CtlError> {
    check_token(page).map_err(|e| CtlError::BadArgument {
        flag: "--page",
        reason: format!("{page:?} {e}"),
    })?;
    let (flag, period) = match (month, year) {
        (Some(month), None) => ("--month", month),
        (None, Some(year)) => ("--year", year),
        _ => {
            return Err(CtlError::BadArgument {
                flag: "--month/--year",
                reason: "give exactly one of --month YYYY-MM or --year YYYY".into(),
            })
        }
    };
    let parsed =
        SlaPeriod::parse(period).map_err(|reason| CtlError::BadArgument { flag, reason })?;
    let is_month = matches!(parsed, SlaPeriod::Month { .. });
    if is_month != (flag == "--month") {
        return Err(CtlError::BadArgument {
            flag,
            reason: format!(
                "{period:?} is a {}",
                if is_month {
                    "month; use --month"
                } else {
                    "year; use --year"
                }
            ),
        });
    }
    let client = connect(nats).await?;
    let mut report: Option<SlaReport> = None;
    let mut after = None;
    loop {
        let slice: SlaReport = request::call(
            &client,
            beacon_contract::api::SLA_REPORT,
            &SlaReportRequest {
                page: page.to_owned(),
                period: parsed.to_string(),
                after: after.clone(),
                limit: None,
            },
            timeout,
        )
        .await?;
        after = slice.next.clone();
        report = Some(match report {
            None => slice,
            Some(mut whole) => {
                whole.components.extend(slice.components);
                whole
            }
        });
        if after.is_none() {
            break;
        }
    }
    let Some(mut report) = report else {
        return Err(CtlError::Internal("no report slice arrived".into()));
    };
    report.next = None;
    let text = match format {
        OutputFormat::Table => table(&report),
        OutputFormat::Csv => csv(&report),
        OutputFormat::Json => output::json(&report)?,
    };
    output::print(&text)
}

fn percent(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.decimals$}"))
}

/// The report for people: a heading, one line per component, the incidents.
pub fn table(report: &SlaReport) -> String {
    let mut text = format!(
        "SLA report: {} ({}), {}, {} to {}\n\n",
        report.page_name,
        report.page,
        report.period,
        output::utc_timestamp(report.from_ms),
        output::utc_timestamp(report.to_ms)
    );
    let rows: Vec<Vec<String>> = report
        .components
        .iter()
        .map(|c| {
            vec![
                c.component.clone(),
                percent(c.uptime_percent, 4),
                format!("{}", c.target_percent),
                match c.met {
                    Some(true) => "yes".to_owned(),
                    Some(false) => "NO".to_owned(),
                    None => "n/a".to_owned(),
                },
                format!("{:.1}", c.downtime_minutes),
                format!("{:.1}", c.budget_minutes),
                percent(c.budget_used_percent, 1),
                format!("{:.1}", c.budget_left_minutes),
                format!("{:.1}", c.maintenance_ms as f64 / 60_000.0),
                c.incidents.to_string(),
            ]
        })
        .collect();
    text.push_str(&output::table(
        &[
            "COMPONENT",
            "UPTIME %",
            "TARGET %",
            "MET",
            "DOWNTIME MIN",
            "BUDGET MIN",
            "BUDGET USED %",
            "BUDGET LEFT MIN",
            "MAINTENANCE MIN",
            "INCIDENTS",
        ],
        &rows,
    ));
    let downtime: f64 = report.components.iter().map(|c| c.downtime_minutes).sum();
    text.push_str(&format!(
        "\nIncidents: {} ({} resolved), MTTR {} min; downtime {:.1} min in all.\n\
         Weights: major outage {} %, partial outage {} %, degraded performance {} %; maintenance and time before a component's first status are left out.\n",
        report.incidents.count,
        report.incidents.resolved,
        percent(report.incidents.mttr_minutes, 1),
        downtime,
        report.weights.major_outage,
        report.weights.partial_outage,
        report.weights.degraded_performance,
    ));
    text
}

/// One CSV line per component, with the page's incident figures on each.
pub fn csv(report: &SlaReport) -> String {
    let headers = [
        "page",
        "period",
        "component",
        "name",
        "uptime_percent",
        "target_percent",
        "met",
        "downtime_minutes",
        "budget_minutes",
        "budget_used_percent",
        "budget_left_minutes",
        "operational_ms",
        "degraded_ms",
        "partial_ms",
        "major_ms",
        "maintenance_ms",
        "no_data_ms",
        "incidents",
        "page_incidents",
        "page_mttr_minutes",
    ];
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let rows: Vec<Vec<String>> = report
        .components
        .iter()
        .map(|c| {
            vec![
                report.page.clone(),
                report.period.clone(),
                c.component.clone(),
                c.name.clone(),
                opt(c.uptime_percent),
                c.target_percent.to_string(),
                c.met.map(|m| m.to_string()).unwrap_or_default(),
                c.downtime_minutes.to_string(),
                c.budget_minutes.to_string(),
                opt(c.budget_used_percent),
                c.budget_left_minutes.to_string(),
                c.operational_ms.to_string(),
                c.degraded_ms.to_string(),
                c.partial_ms.to_string(),
                c.major_ms.to_string(),
                c.maintenance_ms.to_string(),
                c.no_data_ms.to_string(),
                c.incidents.to_string(),
                report.incidents.count.to_string(),
                opt(report.incidents.mttr_minutes),
            ]
        })
        .collect();
    output::csv(&headers, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_contract::api::{SlaComponent, SlaIncidents};

    fn report() -> SlaReport {
        SlaReport {
            page: "demo".into(),
            page_name: "Demo, Inc.".into(),
            period: "2026-10".into(),
            from_ms: 1_790_812_800_000,
            to_ms: 1_793_491_200_000,
            generated_at_ms: 1_793_491_200_000,
            weights: Default::default(),
            components: vec![SlaComponent {
                component: "api".into(),
                name: "API \"v2\", public".into(),
                target_percent: 99.9,
                uptime_percent: Some(99.95),
                met: Some(true),
                operational_ms: 100,
                degraded_ms: 0,
                partial_ms: 0,
                major_ms: 5,
                maintenance_ms: 120_000,
                no_data_ms: 0,
                downtime_minutes: 22.32,
                budget_minutes: 44.6,
                budget_used_percent: Some(50.0),
                budget_left_minutes: 22.28,
                incidents: 1,
            }],
            total_components: 1,
            next: None,
            incidents: SlaIncidents {
                count: 1,
                resolved: 1,
                mttr_minutes: Some(22.0),
            },
        }
    }

    #[test]
    fn the_table_shows_uptime_target_budget_and_incidents() {
        let text = table(&report());
        assert!(text.starts_with("SLA report: Demo, Inc. (demo), 2026-10, 2026-10-01T00:00:00Z to 2026-11-01T00:00:00Z\n"), "{text}");
        assert!(
            text.contains("api        99.9500   99.9      yes  22.3"),
            "{text}"
        );
        assert!(
            text.contains("Incidents: 1 (1 resolved), MTTR 22.0 min"),
            "{text}"
        );
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let text = csv(&report());
        let mut lines = text.lines();
        assert!(lines
            .next()
            .expect("header")
            .starts_with("page,period,component,name,uptime_percent"));
        let line = lines.next().expect("a row");
        assert!(
            line.starts_with("demo,2026-10,api,\"API \"\"v2\"\", public\",99.95,99.9,true,"),
            "{line}"
        );
    }
}
