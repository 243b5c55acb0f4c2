//! Uptime and SLA settings of a page: how much each status counts as
//! downtime, and the uptime each component promises.
//!
//! `[sla]` in the page file sets the page's weights and its default target;
//! a component may set its own `sla_target`. Everything is in percent, as
//! operators and contracts write it: `target = 99.95`, `partial_outage = 30`.
//! The defaults follow Statuspage: a major outage counts 100 %, a partial
//! outage 30 %, degraded performance 0 %; the target is 99.9 %.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use beacon_contract::api::{
    StatusWeights, DEFAULT_DEGRADED_PERFORMANCE, DEFAULT_MAJOR_OUTAGE, DEFAULT_PARTIAL_OUTAGE,
};

use super::Errors;

/// `[sla]` as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSla {
    /// The uptime each component promises, in percent (default 99.9), e.g.
    /// `99.95`; a component's own `sla_target` wins.
    #[serde(default)]
    pub target: Option<f64>,
    /// How much of the time in each status counts as downtime, in percent.
    #[serde(default)]
    pub weights: RawWeights,
}

/// `[sla.weights]` as written: percent of the time counted as down.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWeights {
    /// Default 100.
    #[serde(default)]
    pub major_outage: Option<f64>,
    /// Default 30.
    #[serde(default)]
    pub partial_outage: Option<f64>,
    /// Default 0.
    #[serde(default)]
    pub degraded_performance: Option<f64>,
}

/// The validated `[sla]` of a page.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sla {
    /// The page's default target, in percent.
    pub target: f64,
    /// Downtime weights.
    pub weights: StatusWeights,
}

impl Default for Sla {
    fn default() -> Self {
        Self {
            target: DEFAULT_TARGET,
            weights: StatusWeights::default(),
        }
    }
}

/// Default target, in percent.
pub const DEFAULT_TARGET: f64 = 99.9;

/// For serde: a component stored before targets existed promises the default.
pub fn default_target() -> f64 {
    DEFAULT_TARGET
}

/// Checks `[sla]` and returns it with the defaults filled in.
pub(super) fn validate(errors: &mut Errors, raw: &RawSla) -> Sla {
    let target = match raw.target {
        Some(target) => check_target(errors, "sla.target", target),
        None => DEFAULT_TARGET,
    };
    let mut weight = |field: &str, value: Option<f64>, default: f64| match value {
        None => default,
        Some(value) if value.is_finite() && (0.0..=100.0).contains(&value) => value,
        Some(value) => {
            errors.add(
                format!("sla.weights.{field}"),
                format!("must be a percentage between 0 and 100, got {value}"),
            );
            default
        }
    };
    let weights = StatusWeights {
        major_outage: weight(
            "major_outage",
            raw.weights.major_outage,
            DEFAULT_MAJOR_OUTAGE,
        ),
        partial_outage: weight(
            "partial_outage",
            raw.weights.partial_outage,
            DEFAULT_PARTIAL_OUTAGE,
        ),
        degraded_performance: weight(
            "degraded_performance",
            raw.weights.degraded_performance,
            DEFAULT_DEGRADED_PERFORMANCE,
        ),
    };
    Sla { target, weights }
}

/// Checks one target (percent, above 0, at most 100); returns it, or the
/// default after reporting the error.
pub(super) fn check_target(errors: &mut Errors, location: &str, target: f64) -> f64 {
    if target.is_finite() && target > 0.0 && target <= 100.0 {
        target
    } else {
        errors.add(
            location,
            format!(
                "must be an uptime percentage above 0 and at most 100, e.g. 99.9; got {target}"
            ),
        );
        DEFAULT_TARGET
    }
}
