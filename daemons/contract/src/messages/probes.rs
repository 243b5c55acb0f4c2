//! Probes' own health (`PROBES`): heartbeats, canaries and the decider's verdict on a region.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::*;
use crate::event::Message;

/// A probe's sign of life. Subject: `beacon.probe.{region}.heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeHeartbeat {
    /// The probe's region.
    pub region: String,
    /// The probe process (several may serve one region).
    pub probe: String,
    /// When it was sent (Unix milliseconds).
    pub at_ms: u64,
    /// Time until the next heartbeat; later than twice this is late.
    pub interval_ms: u64,
    /// Checks the probe runs.
    pub checks: u32,
    /// The canary's latest result: a check of something known to work,
    /// so a failure means the probe's own network is broken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryResult>,
}

impl Message for ProbeHeartbeat {
    const KIND: &'static str = "probe_heartbeat";
    const VERSION: u32 = 1;
}

/// A canary check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryResult {
    /// Up or down.
    pub outcome: Outcome,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The decider's verdict on a probe region. Subject:
/// `beacon.probe.{region}.verdict`. A suspect region's results are left out
/// of every component's count: a probe problem, never a customer incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeVerdict {
    /// The region.
    pub region: String,
    /// Whether its results are left out.
    pub suspect: bool,
    /// Why, for people.
    pub reason: String,
    /// Checks with a recent result from the region.
    pub checks: u32,
    /// Of those, failing.
    pub failing: u32,
    /// When decided (Unix milliseconds).
    pub at_ms: u64,
}

impl Message for ProbeVerdict {
    const KIND: &'static str = "probe_verdict";
    const VERSION: u32 = 1;
}
