//! SLA reports: per component uptime against its target, error budget,
//! and the page's incidents with their MTTR, for a month or a year.
//!
//! Uptime comes from [`crate::uptime`] over the raw events (exact whatever
//! the rollups' state); incidents are folded with
//! [`beacon_contract::incident::Incident::fold`] from the stored envelopes, so
//! the report agrees with what the decider shows.
//!
//! A large page's report comes in slices ([`SLA_REPORT_MAX_COMPONENTS`]
//! components each), and every slice's query would read the whole page's
//! events: ids in config order are spread over the table's key order, so
//! ClickHouse cannot skip any of them. The first slice of a report
//! therefore computes the whole page in one query and keeps it as a
//! [`Snapshot`]; the slices that follow (`after` set) are cut from it and
//! carry its end and generation time, so every slice of one report covers
//! the same period.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use beacon_contract::api::{
    ApiReply, SlaComponent, SlaIncidents, SlaPeriod, SlaReport, SlaReportRequest,
    SLA_REPORT_MAX_COMPONENTS,
};
use beacon_contract::event::Envelope;
use beacon_contract::incident::Incident;
use beacon_contract::messages::{IncidentEvent, IncidentLifecycle};
use beacon_contract::names::check_token;
use beacon_page::config::sla::StatusWeights;
use beacon_page::config::{Component, ConfigError, PageConfig};
use serde::Deserialize;

use crate::pages::Pages;
use crate::schema::INCIDENT_TABLE;
use crate::service::{ClickHouse, StoreError};
use crate::uptime::{quote, status_ms_sql, StatusMs, UptimeQuery, UptimeRow};

const MS_PER_MINUTE: f64 = 60_000.0;

/// A request that passed every check: what to compute.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan<'a> {
    /// The page.
    pub page: &'a PageConfig,
    /// The period as asked.
    pub period: SlaPeriod,
    /// Start of the period.
    pub from_ms: u64,
    /// End of the period, or now while it runs.
    pub to_ms: u64,
    /// The components of this slice.
    pub components: &'a [Component],
    /// The id to ask from for the next slice.
    pub next: Option<String>,
}

/// Checks a request against the pages and the clock; a problem names the
/// field (the reply is `Invalid` with it).
pub fn plan<'a>(
    request: &SlaReportRequest,
    page: Option<&'a PageConfig>,
    now_ms: u64,
) -> Result<Plan<'a>, ConfigError> {
    if let Err(e) = check_token(&request.page) {
        return Err(invalid(
            "page",
            format!("invalid page id {:?}: {e}", request.page),
        ));
    }
    let Some(page) = page else {
        return Err(invalid("page", format!("no page {:?}", request.page)));
    };
    let period = SlaPeriod::parse(&request.period).map_err(|e| invalid("period", e))?;
    let (from_ms, end_ms) = period.bounds_ms();
    if from_ms >= now_ms {
        return Err(invalid("period", format!("{period} has not begun yet")));
    }
    let limit = match request.limit {
        None => SLA_REPORT_MAX_COMPONENTS,
        Some(limit) if (1..=SLA_REPORT_MAX_COMPONENTS).contains(&limit) => limit,
        Some(limit) => {
            return Err(invalid(
                "limit",
                format!("must be between 1 and {SLA_REPORT_MAX_COMPONENTS}, got {limit}"),
            ))
        }
    } as usize;
    let start = match &request.after {
        None => 0,
        Some(after) => match page.components.iter().position(|c| &c.id == after) {
            Some(i) => i + 1,
            None => {
                return Err(invalid(
                    "after",
                    format!("page {} has no component {after:?}", page.id),
                ))
            }
        },
    };
    let end = (start + limit).min(page.components.len());
    let components = &page.components[start..end];
    let next = (end < page.components.len())
        .then(|| components.last().map(|c| c.id.clone()))
        .flatten();
    Ok(Plan {
        page,
        period,
        from_ms,
        to_ms: end_ms.min(now_ms),
        components,
        next,
    })
}

fn invalid(location: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        location: location.to_owned(),
        message: message.into(),
    }
}

/// One stored incident event.
#[derive(Debug, Deserialize, clickhouse::Row)]
struct EnvelopeRow {
    envelope: String,
}

/// How long a snapshot serves the slices after the first: a client reads
/// a report's slices back to back, and one that comes back later gets
/// fresh numbers.
pub const SNAPSHOT_TTL: Duration = Duration::from_secs(60);

/// Snapshots kept at once, the oldest dropped first: a few reports being
/// read at the same time, each at most a few MB.
pub const MAX_SNAPSHOTS: usize = 8;

/// A page's uptime for a period, every component, and its incidents, as
/// computed for the first slice of a report.
#[derive(Debug)]
pub struct Snapshot {
    page: String,
    period: SlaPeriod,
    weights: StatusWeights,
    /// End of the period it was computed to (now, while the period runs).
    to_ms: u64,
    generated_at_ms: u64,
    taken: Instant,
    rows: Vec<UptimeRow>,
    incidents: Vec<Incident>,
}

/// The snapshots of the reports being read. Owned by the endpoint, which
/// handles one request at a time.
#[derive(Debug, Default)]
pub struct Snapshots {
    kept: Vec<Snapshot>,
}

impl Snapshots {
    /// Where the snapshot is that a continuing slice of `plan` can be cut
    /// from: same page, period and weights, younger than [`SNAPSHOT_TTL`].
    fn find(&self, plan: &Plan<'_>) -> Option<usize> {
        self.kept.iter().position(|s| {
            s.page == plan.page.id
                && s.period == plan.period
                && s.weights == plan.page.sla.weights
                && s.taken.elapsed() < SNAPSHOT_TTL
        })
    }

    /// Keeps `snapshot` in place of an older one of the same report;
    /// returns where it is.
    fn keep(&mut self, snapshot: Snapshot) -> usize {
        self.kept.retain(|s| {
            (s.page != snapshot.page || s.period != snapshot.period)
                && s.taken.elapsed() < SNAPSHOT_TTL
        });
        if self.kept.len() >= MAX_SNAPSHOTS {
            self.kept.remove(0);
        }
        self.kept.push(snapshot);
        self.kept.len() - 1
    }
}

/// Serves one `sla.report` request: a continuing slice from the report's
/// snapshot when there is one, anything else from a fresh snapshot.
pub async fn handle(
    store: &ClickHouse,
    pages: &Pages,
    snapshots: &mut Snapshots,
    request: &SlaReportRequest,
    now_ms: u64,
) -> ApiReply<SlaReport> {
    let config = pages.get(&request.page);
    let mut plan = match plan(request, config.as_deref(), now_ms) {
        Ok(plan) => plan,
        Err(error) => {
            return ApiReply::Invalid {
                errors: vec![error],
            }
        }
    };
    let at = match snapshots.find(&plan) {
        Some(at) if request.after.is_some() => at,
        _ => match snapshot(store, &plan, now_ms).await {
            Ok(fresh) => snapshots.keep(fresh),
            Err(e) => return ApiReply::failed(format!("cannot read history from ClickHouse: {e}")),
        },
    };
    let kept = &snapshots.kept[at];
    plan.to_ms = kept.to_ms;
    ApiReply::Ok {
        result: assemble(&plan, &kept.rows, &kept.incidents, kept.generated_at_ms),
    }
}

/// Computes the whole page of `plan` (every component, not only the
/// slice) in one uptime query, and its incidents.
pub async fn snapshot(
    store: &ClickHouse,
    plan: &Plan<'_>,
    now_ms: u64,
) -> Result<Snapshot, StoreError> {
    let weights = plan.page.sla.weights;
    let rows: Vec<UptimeRow> = store
        .fetch(&status_ms_sql(&UptimeQuery {
            database: store.database(),
            page: &plan.page.id,
            components: None,
            from_ms: plan.from_ms,
            to_ms: plan.to_ms,
            by_day: false,
            weights,
        }))
        .await?;
    Ok(Snapshot {
        page: plan.page.id.clone(),
        period: plan.period,
        weights,
        to_ms: plan.to_ms,
        generated_at_ms: now_ms,
        taken: Instant::now(),
        rows,
        incidents: incidents(store, &plan.page.id).await?,
    })
}

/// Every incident of `page`, folded.
async fn incidents(store: &ClickHouse, page: &str) -> Result<Vec<Incident>, StoreError> {
    let sql = format!(
        "SELECT any(envelope) AS envelope FROM `{db}`.{INCIDENT_TABLE} \
         WHERE page = {page} GROUP BY event_id",
        db = store.database(),
        page = quote(page),
    );
    let rows: Vec<EnvelopeRow> = store.fetch(&sql).await?;
    let mut by_incident: HashMap<String, Vec<Envelope<IncidentEvent>>> = HashMap::new();
    for row in rows {
        match Envelope::<IncidentEvent>::decode(row.envelope.as_bytes()) {
            Ok(envelope) => by_incident
                .entry(envelope.data.incident.clone())
                .or_default()
                .push(envelope),
            // Stored envelopes decoded once already; one that no longer
            // does (a build that lost a kind) is skipped, not fatal.
            Err(e) => {
                tracing::warn!(page, error = %e, "Stored incident event is unreadable; left out of the report.")
            }
        }
    }
    Ok(by_incident
        .values()
        .filter_map(|events| Incident::fold(events, 0))
        .collect())
}

/// The report from the uptime rows and the folded incidents. Pure.
pub fn assemble(
    plan: &Plan<'_>,
    rows: &[UptimeRow],
    incidents: &[Incident],
    now_ms: u64,
) -> SlaReport {
    let weights = plan.page.sla.weights;
    let in_period: Vec<&Incident> = incidents
        .iter()
        .filter(|i| i.lifecycle == IncidentLifecycle::Open)
        .filter(|i| (plan.from_ms..plan.to_ms).contains(&i.created_at_ms))
        .collect();
    let repairs: Vec<u64> = in_period
        .iter()
        .filter_map(|i| i.resolved_at_ms.map(|r| r.saturating_sub(i.created_at_ms)))
        .collect();
    let mttr_minutes = (!repairs.is_empty())
        .then(|| repairs.iter().sum::<u64>() as f64 / repairs.len() as f64 / MS_PER_MINUTE);
    let by_component: HashMap<&str, &UptimeRow> =
        rows.iter().map(|r| (r.component.as_str(), r)).collect();
    let period_ms = plan.to_ms.saturating_sub(plan.from_ms);
    let components = plan
        .components
        .iter()
        .map(|component| {
            let row = by_component.get(component.id.as_str());
            let ms = row.map_or(
                StatusMs {
                    no_data: period_ms,
                    ..StatusMs::default()
                },
                |r| r.ms(),
            );
            // ClickHouse's own uptime; NaN when nothing was counted.
            let uptime = row.map(|r| r.uptime).filter(|u| u.is_finite());
            let counted = ms.counted() as f64;
            let downtime_minutes = ms.weighted_down(&weights) / MS_PER_MINUTE;
            let budget_minutes = (1.0 - component.sla_target / 100.0) * counted / MS_PER_MINUTE;
            let named = in_period
                .iter()
                .filter(|i| {
                    i.components.iter().any(|c| c.component == component.id)
                        || i.updates
                            .iter()
                            .any(|u| u.components.iter().any(|c| c.component == component.id))
                })
                .count();
            SlaComponent {
                component: component.id.clone(),
                name: component.name.clone(),
                target_percent: component.sla_target,
                uptime_percent: uptime.map(|u| u * 100.0),
                met: uptime.map(|u| u * 100.0 >= component.sla_target),
                operational_ms: ms.operational,
                degraded_ms: ms.degraded,
                partial_ms: ms.partial,
                major_ms: ms.major,
                maintenance_ms: ms.maintenance,
                no_data_ms: ms.no_data,
                downtime_minutes,
                budget_minutes,
                budget_used_percent: (budget_minutes > 0.0)
                    .then(|| downtime_minutes / budget_minutes * 100.0),
                budget_left_minutes: budget_minutes - downtime_minutes,
                incidents: u32::try_from(named).unwrap_or(u32::MAX),
            }
        })
        .collect();
    SlaReport {
        page: plan.page.id.clone(),
        page_name: plan.page.name.clone(),
        period: plan.period.to_string(),
        from_ms: plan.from_ms,
        to_ms: plan.to_ms,
        generated_at_ms: now_ms,
        weights,
        components,
        total_components: u32::try_from(plan.page.components.len()).unwrap_or(u32::MAX),
        next: plan.next.clone(),
        incidents: SlaIncidents {
            count: u32::try_from(in_period.len()).unwrap_or(u32::MAX),
            resolved: u32::try_from(repairs.len()).unwrap_or(u32::MAX),
            mttr_minutes,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_page::config::load;

    const NOW: u64 = 1_793_491_200_000 + 1_000; // just after October 2026

    fn page() -> PageConfig {
        load(
            r#"
            [page]
            id = "demo"
            name = "Demo"
            [sla]
            target = 99.9
            [[components]]
            id = "api"
            name = "API"
            sla_target = 99.99
            [[components]]
            id = "web"
            name = "Web"
            [[components]]
            id = "db"
            name = "DB"
            "#,
        )
        .expect("valid")
    }

    fn request(page: &str, period: &str) -> SlaReportRequest {
        SlaReportRequest {
            page: page.into(),
            period: period.into(),
            after: None,
            limit: None,
        }
    }

    fn refused(result: Result<Plan<'_>, ConfigError>) -> String {
        match result {
            Err(error) => error.to_string(),
            Ok(plan) => panic!("expected a refusal, got {plan:?}"),
        }
    }

    #[test]
    fn bad_requests_are_refused_naming_the_field() {
        let page = page();
        assert!(refused(plan(&request("demo", "2026-13"), Some(&page), NOW)).starts_with("period:"));
        assert!(refused(plan(&request("nope", "2026-10"), None, NOW)).contains("no page \"nope\""));
        assert!(refused(plan(&request("Bad Page", "2026-10"), None, NOW)).starts_with("page:"));
        assert!(refused(plan(&request("demo", "2027"), Some(&page), NOW)).contains("has not begun"));
        let mut slice = request("demo", "2026-10");
        slice.limit = Some(0);
        assert!(refused(plan(&slice, Some(&page), NOW)).starts_with("limit:"));
        slice.limit = None;
        slice.after = Some("ghost".into());
        assert!(refused(plan(&slice, Some(&page), NOW)).starts_with("after:"));
    }

    #[test]
    fn large_pages_come_in_slices_and_a_running_period_ends_now() {
        let page = page();
        let mut first = request("demo", "2026-10");
        first.limit = Some(2);
        let plan1 = plan(&first, Some(&page), NOW).expect("valid");
        assert_eq!(plan1.components.len(), 2);
        assert_eq!(plan1.next.as_deref(), Some("web"));
        first.after = plan1.next.clone();
        let plan2 = plan(&first, Some(&page), NOW).expect("valid");
        assert_eq!(plan2.components[0].id, "db");
        assert_eq!(plan2.next, None);

        let running = plan(&request("demo", "2026"), Some(&page), NOW).expect("valid");
        assert_eq!(running.to_ms, NOW);
    }

    #[test]
    fn a_snapshot_serves_its_own_report_only_and_few_are_kept() {
        let page = page();
        let october = plan(&request("demo", "2026-10"), Some(&page), NOW).expect("valid");
        let year = plan(&request("demo", "2026"), Some(&page), NOW).expect("valid");
        let taken = |plan: &Plan<'_>, page: &str, generated_at_ms: u64| Snapshot {
            page: page.into(),
            period: plan.period,
            weights: plan.page.sla.weights,
            to_ms: plan.to_ms,
            generated_at_ms,
            taken: Instant::now(),
            rows: Vec::new(),
            incidents: Vec::new(),
        };
        let mut snapshots = Snapshots::default();
        assert_eq!(snapshots.find(&october), None);
        snapshots.keep(taken(&october, "demo", 1));
        assert_eq!(snapshots.find(&year), None, "another period");
        // A new first slice replaces the report's snapshot.
        let at = snapshots.keep(taken(&october, "demo", 2));
        assert_eq!(snapshots.find(&october), Some(at));
        assert_eq!(snapshots.kept[at].generated_at_ms, 2);
        assert_eq!(snapshots.kept.len(), 1);
        // Other weights: the numbers would differ.
        let mut reweighted = page.clone();
        reweighted.sla.weights.partial_outage = 50.0;
        let other = plan(&request("demo", "2026-10"), Some(&reweighted), NOW).expect("valid");
        assert_eq!(snapshots.find(&other), None);
        for i in 0..2 * MAX_SNAPSHOTS {
            snapshots.keep(taken(&october, &format!("p{i}"), 3));
        }
        assert_eq!(snapshots.kept.len(), MAX_SNAPSHOTS);
    }

    #[test]
    fn budgets_and_targets_follow_the_uptime() {
        let page = page();
        let plan = plan(&request("demo", "2026-10"), Some(&page), NOW).expect("valid");
        let minute = 60_000;
        let row = |component: &str, major: u64, uptime: f64| UptimeRow {
            component: component.into(),
            bucket: 0,
            maintenance_ms: 0,
            no_data_ms: 0,
            operational_ms: 100_000 * minute - major,
            degraded_ms: 0,
            partial_ms: 0,
            major_ms: major,
            uptime,
        };
        // 100,000 counted minutes: 99.99 % allows 10 minutes, 99.9 % 100.
        let rows = vec![
            row("api", 5 * minute, 0.99995),
            row("web", 150 * minute, 0.9985),
        ];
        let report = assemble(&plan, &rows, &[], NOW);
        let api = &report.components[0];
        assert_eq!(api.met, Some(true));
        assert!((api.budget_minutes - 10.0).abs() < 1e-6, "{api:?}");
        assert!((api.budget_used_percent.expect("budget") - 50.0).abs() < 1e-6);
        assert!((api.budget_left_minutes - 5.0).abs() < 1e-6);
        let web = &report.components[1];
        assert_eq!(web.met, Some(false));
        assert!((web.budget_left_minutes + 50.0).abs() < 1e-6, "{web:?}");
        // A component with no status at all: nothing counted, all no data.
        let db = &report.components[2];
        assert_eq!((db.uptime_percent, db.met), (None, None));
        assert_eq!(db.no_data_ms, plan.to_ms - plan.from_ms);
        assert_eq!(report.incidents.count, 0);
        assert_eq!(report.incidents.mttr_minutes, None);
    }
}
