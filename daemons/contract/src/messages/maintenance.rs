//! Maintenance events (`MAINTENANCE`): a window's schedule and phases.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::Message;

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
