//! Pure renderers: a page's state in, file bytes out. No I/O, so every
//! output is a unit or golden test. Everything an operator wrote is
//! escaped here (HTML, XML, iCal) or sanitized (markdown); JSON is written
//! by serde with `<`, `>` and `&` escaped as well, so no field can close a
//! `<script>` a consumer embeds it in.
//!
//! - [`api`]: the Statuspage v2 JSON endpoints.
//! - [`html`]: the status page, incident pages, history, changelog pages.
//! - [`feeds`]: Atom and RSS for incidents and the changelog.
//! - [`ical`]: the maintenance calendars.
//! - [`assets`]: `live.json`, `live.js`, `widget.js` and SVG badges.

pub mod api;
pub mod assets;
pub mod feeds;
pub mod html;
pub mod ical;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, UNIX_EPOCH};

use beacon_contract::api::ChangelogView;
use beacon_contract::degradation::Level;
use beacon_contract::incident::Incident;
use beacon_contract::maintenance::Window;
use beacon_contract::messages::{
    ComponentStatus, IncidentLifecycle, IncidentState, MaintenanceEvent, MaintenancePhase,
    StatusRecord, UptimeRollup,
};
use beacon_page::config::PageConfig;

use crate::strings::Strings;

/// Incidents in `incidents.json` and the feeds: the most recent ones.
pub const RECENT_INCIDENTS: usize = 50;
/// Changelog entries per changelog page.
pub const CHANGELOG_PAGE_SIZE: usize = 10;
/// Days of uptime bars.
pub const UPTIME_DAYS: usize = 90;

/// A maintenance window as the publisher keeps it: the fold, and every
/// event in HLC order (the timeline, and the iCal `SEQUENCE`).
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceItem {
    /// The folded window.
    pub window: Window,
    /// Its events, oldest first.
    pub events: Vec<MaintenanceEvent>,
}

/// Everything a page render reads.
#[derive(Debug, Clone)]
pub struct PageState<'a> {
    /// Validated config.
    pub config: &'a PageConfig,
    /// Current status records by component id.
    pub statuses: &'a HashMap<String, StatusRecord>,
    /// Daily uptime rollups by component id.
    pub uptime: &'a HashMap<String, UptimeRollup>,
    /// Every folded incident of the page, any lifecycle; only open ones
    /// are shown.
    pub incidents: &'a [Incident],
    /// Every maintenance window of the page; series and cancelled windows
    /// are not shown.
    pub maintenance: &'a [MaintenanceItem],
    /// Changelog entries, newest first, withdrawn ones left out.
    pub changelog: &'a [ChangelogView],
    /// Uploaded assets by file name.
    pub assets: &'a BTreeMap<String, Vec<u8>>,
    /// Render time, ms since the epoch.
    pub generated_at_ms: u64,
    /// Words for people.
    pub strings: &'a Strings,
    /// The degradation level the publisher sees as it renders (an edge
    /// raises it in what it serves when it sees worse).
    pub degradation: Level,
}

/// RFC 3339 UTC with milliseconds, as Statuspage writes times.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// RFC 3339 UTC in seconds, for feeds.
pub fn rfc3339_seconds(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn datetime(ms: u64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// `2026-11-27`, the UTC day of `ms`.
pub fn day(ms: u64) -> String {
    datetime(ms).format("%Y-%m-%d").to_string()
}

/// `27 Nov 2026, 17:05 UTC`, for people.
pub fn human_time(ms: u64) -> String {
    datetime(ms).format("%-d %b %Y, %H:%M UTC").to_string()
}

/// RFC 2822, for RSS.
pub fn rfc2822(ms: u64) -> String {
    datetime(ms)
        .format("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

/// `20261127T170500Z`, for iCal.
pub fn ical_time(ms: u64) -> String {
    datetime(ms).format("%Y%m%dT%H%M%SZ").to_string()
}

impl PageState<'_> {
    /// A component's status; `None` before the decider decided anything for
    /// it. Such a component is never shown as operational: the page says it
    /// has no status yet, and the Statuspage API leaves it out (Statuspage
    /// has no "unknown") and names it under `beacon_undecided`.
    pub fn status_of(&self, component: &str) -> Option<ComponentStatus> {
        self.statuses.get(component).map(|r| r.status)
    }

    /// Components with no status yet.
    pub fn undecided(&self) -> Vec<&str> {
        self.config
            .components
            .iter()
            .filter(|c| self.status_of(&c.id).is_none())
            .map(|c| c.id.as_str())
            .collect()
    }

    /// The worst status across components with one (by user impact);
    /// `None` when no component has a status yet.
    pub fn worst(&self) -> Option<ComponentStatus> {
        self.config
            .components
            .iter()
            .filter_map(|c| self.status_of(&c.id))
            .max_by_key(|s| s.severity())
    }

    /// Statuspage's page indicator and its description.
    pub fn indicator(&self) -> (&'static str, &'static str) {
        let s = self.strings;
        match self.worst() {
            None => ("none", s.waiting),
            Some(ComponentStatus::Operational) if !self.undecided().is_empty() => {
                ("none", s.partly_checked)
            }
            Some(ComponentStatus::Operational) => ("none", s.all_operational),
            Some(ComponentStatus::UnderMaintenance) => ("maintenance", s.under_maintenance),
            Some(ComponentStatus::DegradedPerformance) => ("minor", s.degraded),
            Some(ComponentStatus::PartialOutage) => ("major", s.partial_outage),
            Some(ComponentStatus::MajorOutage) => ("critical", s.major_outage),
        }
    }

    /// When the component entered its current status.
    pub fn updated_at(&self, component: &str) -> u64 {
        self.statuses
            .get(component)
            .map_or(self.generated_at_ms, |r| r.since_ms)
    }

    /// The earliest time Beacon knows of the component: its first day with
    /// uptime data, or its current status's start.
    pub fn created_at(&self, component: &str) -> u64 {
        let first_day = self.uptime.get(component).and_then(|rollup| {
            rollup
                .days
                .iter()
                .find(|d| d.uptime_percent.is_some() || d.up_ms + d.degraded_ms + d.down_ms > 0)
                .and_then(|d| day_start_ms(&d.date))
        });
        let since = self.statuses.get(component).map(|r| r.since_ms);
        match (first_day, since) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => self.generated_at_ms,
        }
    }

    /// Confirmed or created incidents, never proposed or dismissed ones,
    /// newest first.
    pub fn public_incidents(&self) -> Vec<&Incident> {
        let mut out: Vec<&Incident> = self
            .incidents
            .iter()
            .filter(|i| i.lifecycle == IncidentLifecycle::Open)
            .collect();
        out.sort_by(|a, b| (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id)));
        out
    }

    /// Public incidents not yet resolved, newest first.
    pub fn unresolved_incidents(&self) -> Vec<&Incident> {
        self.public_incidents()
            .into_iter()
            .filter(|i| i.state != IncidentState::Resolved)
            .collect()
    }

    /// Windows that are shown: single windows (series are announced as
    /// occurrences) that are not cancelled, latest start first.
    pub fn public_maintenance(&self) -> Vec<&MaintenanceItem> {
        let mut out: Vec<&MaintenanceItem> = self
            .maintenance
            .iter()
            .filter(|m| !m.window.is_series())
            .filter(|m| m.window.state.phase != MaintenancePhase::Cancelled)
            .collect();
        out.sort_by(|a, b| {
            (b.window.state.starts_at_ms, &b.window.state.maintenance)
                .cmp(&(a.window.state.starts_at_ms, &a.window.state.maintenance))
        });
        out
    }

    /// Scheduled windows, soonest first.
    pub fn upcoming_maintenance(&self) -> Vec<&MaintenanceItem> {
        let mut out: Vec<&MaintenanceItem> = self
            .public_maintenance()
            .into_iter()
            .filter(|m| m.window.state.phase == MaintenancePhase::Scheduled)
            .collect();
        out.reverse();
        out
    }

    /// Windows in progress or verifying.
    pub fn active_maintenance(&self) -> Vec<&MaintenanceItem> {
        self.public_maintenance()
            .into_iter()
            .filter(|m| {
                matches!(
                    m.window.state.phase,
                    MaintenancePhase::InProgress | MaintenancePhase::Verifying
                )
            })
            .collect()
    }

    /// A component's name, or its id when the config no longer has it.
    pub fn component_name<'b>(&'b self, id: &'b str) -> &'b str {
        self.config.component(id).map_or(id, |c| c.name.as_str())
    }

    /// The absolute URL of `path` under the page's configured `url`, or
    /// `path` itself (relative) when the page has none.
    pub fn link(&self, path: &str) -> String {
        match self.config.url.as_deref() {
            Some(url) => format!("{}/{path}", url.trim_end_matches('/')),
            None => path.to_owned(),
        }
    }
}

/// Start of a `YYYY-MM-DD` day in Unix milliseconds.
pub fn day_start_ms(date: &str) -> Option<u64> {
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let ms = day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
    u64::try_from(ms).ok()
}

/// JSON safe to paste into HTML: see [`beacon_page::safe_json`].
pub fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    beacon_page::safe_json(value)
}

/// Every file of a page's site: (relative path, bytes).
pub fn site(state: &PageState<'_>) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![
        ("index.html".to_owned(), html::index(state)),
        ("history.html".to_owned(), html::history(state)),
    ];
    files.extend(api::files(state));
    for incident in state.public_incidents() {
        files.push((
            format!("incidents/{}.html", incident.id),
            html::incident_page(state, incident),
        ));
    }
    files.extend(html::changelog_pages(state));
    files.extend(feeds::files(state));
    files.extend(ical::files(state));
    files.extend(assets::files(state));
    for (name, bytes) in state.assets {
        files.push((format!("assets/{name}"), bytes.clone()));
    }
    files
}
