//! `type = "icmp"`: ICMP echo requests to a host; packet loss and round
//! trips.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{conditions, RawCheckCommon};
use crate::config::condition::{Condition, Placeholder};
use crate::config::{CheckTarget, Errors};

/// The fields of an icmp check besides the common ones.
pub const FIELDS: &[&str] = &["host", "count", "conditions", "degraded_if"];

/// What conditions of an icmp check may look at.
pub const PLACEHOLDERS: &[Placeholder] = &[
    Placeholder::PacketLoss,
    Placeholder::Rtt,
    Placeholder::ResponseTime,
];

/// Echo requests per run when the check does not say.
pub const DEFAULT_COUNT: u32 = 3;
/// Most echo requests per run.
pub const MAX_COUNT: u32 = 20;

/// An icmp check as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RawIcmpCheck {
    /// Id, regions, timing, thresholds.
    #[serde(flatten)]
    pub common: RawCheckCommon,
    /// Host name or IP address.
    #[serde(default)]
    pub host: Option<String>,
    /// Echo requests per run (default 3, at most 20).
    #[serde(default)]
    pub count: Option<u32>,
    /// Conditions that must all hold (`[PACKET_LOSS]`, `[RTT]`).
    #[serde(default)]
    pub conditions: Option<Vec<String>>,
    /// Conditions any of which makes a passing run `degraded`, e.g.
    /// `"[PACKET_LOSS] > 0"`.
    #[serde(default)]
    pub degraded_if: Option<Vec<String>>,
}

/// A validated icmp check. No reply at all is `down`; otherwise the
/// conditions decide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IcmpTarget {
    /// Host name or IP address.
    pub host: String,
    /// Echo requests per run.
    pub count: u32,
    /// Conditions that must all hold.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Conditions any of which makes a passing run degraded.
    #[serde(default)]
    pub degraded_if: Vec<Condition>,
}

impl RawIcmpCheck {
    /// Every field set (for tests of the field list).
    #[cfg(test)]
    pub(super) fn filled(common: RawCheckCommon) -> Self {
        Self {
            common,
            host: Some("127.0.0.1".into()),
            count: Some(3),
            conditions: Some(vec!["[PACKET_LOSS] < 50".into()]),
            degraded_if: Some(vec!["[PACKET_LOSS] > 0".into()]),
        }
    }
}

/// Validates what is particular to an icmp check.
pub(super) fn validate(errors: &mut Errors, at: &str, raw: &RawIcmpCheck) -> Option<CheckTarget> {
    let before = errors.0.len();
    match raw.host.as_deref() {
        None => errors.add(format!("{at}.host"), "an icmp check needs a host"),
        Some(host) if !super::is_host(host) => errors.add(
            format!("{at}.host"),
            format!("{host:?} is not a host name or IP address"),
        ),
        Some(_) => {}
    }
    let count = raw.count.unwrap_or(DEFAULT_COUNT);
    if !(1..=MAX_COUNT).contains(&count) {
        errors.add(
            format!("{at}.count"),
            format!("must be between 1 and {MAX_COUNT}, got {count}"),
        );
    }
    let conditions_ = conditions(
        errors,
        at,
        "conditions",
        &raw.conditions,
        "icmp",
        PLACEHOLDERS,
    );
    let degraded_if = conditions(
        errors,
        at,
        "degraded_if",
        &raw.degraded_if,
        "icmp",
        PLACEHOLDERS,
    );
    (errors.0.len() == before).then(|| {
        CheckTarget::Icmp(IcmpTarget {
            host: raw.host.clone().unwrap_or_default(),
            count,
            conditions: conditions_,
            degraded_if,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_count_are_checked() {
        let table: &[(Option<&str>, Option<u32>, &[&str])] = &[
            (Some("127.0.0.1"), None, &[]),
            (Some("::1"), Some(20), &[]),
            (Some("db.internal"), Some(1), &[]),
            (None, None, &["c.host"]),
            (Some("bad host!"), Some(0), &["c.host", "c.count"]),
            (Some("x"), Some(21), &["c.count"]),
        ];
        for (host, count, want) in table {
            let mut errors = Errors::default();
            let raw = RawIcmpCheck {
                host: host.map(str::to_owned),
                count: *count,
                ..RawIcmpCheck::default()
            };
            let target = validate(&mut errors, "c", &raw);
            let got: Vec<&str> = errors.0.iter().map(|e| e.location.as_str()).collect();
            assert_eq!(&got, want, "{host:?} {count:?}");
            assert_eq!(target.is_some(), want.is_empty());
        }
    }
}
