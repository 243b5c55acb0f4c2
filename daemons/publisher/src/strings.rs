//! Every word the rendered site shows people, in one place, so a
//! translation is one more [`Strings`] value. Renderers never spell user
//! text themselves; they take it from here. Operator text (names,
//! incident updates, changelog entries) is not here: it is the operator's.

use beacon_contract::messages::{ComponentStatus, Impact, IncidentState, MaintenancePhase};

/// The user-visible strings of a page, for one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strings {
    /// BCP 47 language tag, for `<html lang>` and feeds.
    pub lang: &'static str,
    /// `{page} status` in the title.
    pub title_suffix: &'static str,
    /// Page indicator descriptions (also the Statuspage `status.description`).
    pub all_operational: &'static str,
    /// Some components have no status yet, the rest are operational.
    pub partly_checked: &'static str,
    /// No component has a status yet.
    pub waiting: &'static str,
    /// Worst is maintenance.
    pub under_maintenance: &'static str,
    /// Worst is degraded.
    pub degraded: &'static str,
    /// Worst is a partial outage.
    pub partial_outage: &'static str,
    /// Worst is a major outage.
    pub major_outage: &'static str,
    /// A component with no decision yet.
    pub no_data: &'static str,
    /// Heading of components without a group.
    pub other_components: &'static str,
    /// Heading of the active incidents.
    pub active_incidents: &'static str,
    /// Heading of maintenance in progress.
    pub maintenance_now: &'static str,
    /// Heading of upcoming maintenance.
    pub upcoming_maintenance: &'static str,
    /// Heading and link of the incident history.
    pub incident_history: &'static str,
    /// Shown when the history is empty.
    pub no_incidents: &'static str,
    /// Heading and link of the changelog.
    pub changelog: &'static str,
    /// Shown when the changelog is empty.
    pub no_changelog: &'static str,
    /// Uptime list label.
    pub uptime_90_days: &'static str,
    /// `{percent} uptime` after a number.
    pub uptime_word: &'static str,
    /// A day without data in the uptime bars.
    pub day_no_data: &'static str,
    /// A day spent under maintenance.
    pub day_maintenance: &'static str,
    /// `{count} days without data`, after a number.
    pub days_without_data: &'static str,
    /// "90 days ago" under the bars.
    pub days_ago: &'static str,
    /// "Today" under the bars.
    pub today: &'static str,
    /// "Generated at" in the footer.
    pub generated_at: &'static str,
    /// Link text: the JSON API.
    pub json_api: &'static str,
    /// Link text: the Atom feed.
    pub atom_feed: &'static str,
    /// Link text: the RSS feed.
    pub rss_feed: &'static str,
    /// Link text: the maintenance calendar.
    pub calendar: &'static str,
    /// Link text: back to the status page.
    pub back_to_status: &'static str,
    /// Label before an incident's impact.
    pub impact: &'static str,
    /// Label before affected components.
    pub affected: &'static str,
    /// Heading of a postmortem.
    pub postmortem: &'static str,
    /// Label before a maintenance window's times.
    pub scheduled: &'static str,
    /// Newer page of a paged list.
    pub newer: &'static str,
    /// Older page of a paged list.
    pub older: &'static str,
    /// Live-update notice while the page is not live.
    pub live_off: &'static str,
    /// Feed title suffix for incidents.
    pub incidents_feed: &'static str,
    /// Feed title suffix for the changelog.
    pub changelog_feed: &'static str,
    /// Calendar name suffix.
    pub maintenance_calendar: &'static str,
    /// Text of the status badge's left half.
    pub badge_label: &'static str,
    /// Link to open the full status page (widget).
    pub view_status: &'static str,
}

/// English.
pub const EN: Strings = Strings {
    lang: "en",
    title_suffix: "status",
    all_operational: "All Systems Operational",
    partly_checked: "Operational so far; some components are not checked yet",
    waiting: "Waiting for the first checks",
    under_maintenance: "Service Under Maintenance",
    degraded: "Degraded Performance",
    partial_outage: "Partial System Outage",
    major_outage: "Major System Outage",
    no_data: "No data yet",
    other_components: "Other",
    active_incidents: "Active incidents",
    maintenance_now: "Maintenance in progress",
    upcoming_maintenance: "Upcoming maintenance",
    incident_history: "Incident history",
    no_incidents: "No incidents reported.",
    changelog: "Changelog",
    no_changelog: "Nothing published yet.",
    uptime_90_days: "Uptime over the last 90 days",
    uptime_word: "uptime",
    day_no_data: "no data",
    day_maintenance: "maintenance",
    days_without_data: "days without data",
    days_ago: "90 days ago",
    today: "Today",
    generated_at: "Generated at",
    json_api: "JSON API",
    atom_feed: "Atom",
    rss_feed: "RSS",
    calendar: "Maintenance calendar",
    back_to_status: "Back to the status page",
    impact: "Impact",
    affected: "Affected",
    postmortem: "Postmortem",
    scheduled: "Scheduled",
    newer: "Newer",
    older: "Older",
    live_off: "Live updates paused; this page refreshes itself.",
    incidents_feed: "incidents",
    changelog_feed: "changelog",
    maintenance_calendar: "maintenance",
    badge_label: "status",
    view_status: "View status page",
};

impl Strings {
    /// A component status for people.
    pub fn status(&self, status: Option<ComponentStatus>) -> &'static str {
        match status {
            None => self.no_data,
            Some(ComponentStatus::Operational) => "Operational",
            Some(ComponentStatus::DegradedPerformance) => "Degraded performance",
            Some(ComponentStatus::PartialOutage) => "Partial outage",
            Some(ComponentStatus::MajorOutage) => "Major outage",
            Some(ComponentStatus::UnderMaintenance) => "Under maintenance",
        }
    }

    /// An incident state for people.
    pub fn incident_state(&self, state: IncidentState) -> &'static str {
        match state {
            IncidentState::Investigating => "Investigating",
            IncidentState::Identified => "Identified",
            IncidentState::Monitoring => "Monitoring",
            IncidentState::Resolved => "Resolved",
        }
    }

    /// An impact for people.
    pub fn impact_level(&self, impact: Impact) -> &'static str {
        match impact {
            Impact::None => "None",
            Impact::Minor => "Minor",
            Impact::Major => "Major",
            Impact::Critical => "Critical",
        }
    }

    /// A maintenance phase for people.
    pub fn phase(&self, phase: MaintenancePhase) -> &'static str {
        match phase {
            MaintenancePhase::Scheduled => "Scheduled",
            MaintenancePhase::InProgress => "In progress",
            MaintenancePhase::Verifying => "Verifying",
            MaintenancePhase::Completed => "Completed",
            MaintenancePhase::Cancelled => "Cancelled",
        }
    }

    /// A changelog category for people.
    pub fn category(&self, category: &str) -> &'static str {
        match category {
            "new_feature" => "New feature",
            "improvement" => "Improvement",
            "fix" => "Fix",
            "announcement" => "Announcement",
            _ => "Update",
        }
    }
}
