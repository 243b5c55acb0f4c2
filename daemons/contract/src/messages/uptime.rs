//! Daily uptime rollups (KV `uptime`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::Message;

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
