//! `type = "push"`: status pushed to the probe's ingest endpoint instead of
//! polled: a cron job's heartbeat, an Alertmanager webhook (version 4), or a
//! generic JSON signal. Each push check has its own token; the config holds
//! only the token's SHA-256, so KV `config` never holds a secret.
//!
//! A push check belongs to exactly one region: the probe of that region
//! serves its ingest route, keeps its state and publishes its results (the
//! heartbeat's lateness is a timer in one place). `interval` is how often
//! a heartbeat must arrive, and how often the current state of the other
//! formats is published again so the decider does not call it stale.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::RawCheckCommon;
use crate::config::{CheckTarget, Errors};

/// The fields of a push check besides the common ones.
pub const FIELDS: &[&str] = &["format", "token_sha256", "grace", "degraded_severities"];

/// What is pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PushFormat {
    /// A ping (any body) every `interval`; a late one is a failure.
    Heartbeat,
    /// Prometheus Alertmanager webhook payloads, version 4: down while any
    /// alert of the check is firing.
    Alertmanager,
    /// `{"status": "up" | "degraded" | "down", "message": "…"}`.
    Json,
}

impl PushFormat {
    /// The name as written in `format`.
    pub fn as_str(self) -> &'static str {
        match self {
            PushFormat::Heartbeat => "heartbeat",
            PushFormat::Alertmanager => "alertmanager",
            PushFormat::Json => "json",
        }
    }
}

/// A push check as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RawPushCheck {
    /// Id, regions (exactly one), interval, thresholds.
    #[serde(flatten)]
    pub common: RawCheckCommon,
    /// `heartbeat`, `alertmanager` or `json`.
    #[serde(default)]
    pub format: Option<String>,
    /// SHA-256 of the check's bearer token, 64 hex digits
    /// (`printf %s "$TOKEN" | sha256sum`).
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// Heartbeats: how late a ping may be before it is a failure (default
    /// a tenth of the interval).
    #[serde(default)]
    pub grace: Option<String>,
    /// Alertmanager: values of the `severity` label that make a firing
    /// alert `degraded` rather than `down` (default none).
    #[serde(default)]
    pub degraded_severities: Option<Vec<String>>,
}

/// A validated push check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PushTarget {
    /// What is pushed.
    pub format: PushFormat,
    /// SHA-256 of the bearer token, lowercase hex.
    pub token_sha256: String,
    /// Heartbeats: lateness allowed, in milliseconds; `None`: a tenth of
    /// the interval.
    #[serde(default)]
    pub grace_ms: Option<u64>,
    /// Alertmanager: severities that mean degraded.
    #[serde(default)]
    pub degraded_severities: Vec<String>,
}

impl RawPushCheck {
    /// Every field set (for tests of the field list).
    #[cfg(test)]
    pub(super) fn filled(common: RawCheckCommon) -> Self {
        Self {
            common,
            format: Some("heartbeat".into()),
            token_sha256: Some("0".repeat(64)),
            grace: Some("5s".into()),
            degraded_severities: Some(vec!["warning".into()]),
        }
    }
}

/// Validates what is particular to a push check.
pub(super) fn validate(errors: &mut Errors, at: &str, raw: &RawPushCheck) -> Option<CheckTarget> {
    let before = errors.0.len();
    let format = match raw.format.as_deref() {
        Some("heartbeat") => Some(PushFormat::Heartbeat),
        Some("alertmanager") => Some(PushFormat::Alertmanager),
        Some("json") => Some(PushFormat::Json),
        Some(other) => {
            errors.add(
                format!("{at}.format"),
                format!("unknown push format {other:?}; use heartbeat, alertmanager or json"),
            );
            None
        }
        None => {
            errors.add(
                format!("{at}.format"),
                "a push check needs a format: heartbeat, alertmanager or json",
            );
            None
        }
    };
    let token = raw.token_sha256.as_deref().unwrap_or_default();
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        errors.add(
            format!("{at}.token_sha256"),
            "must be the SHA-256 of the check's token as 64 hex digits (printf %s \"$TOKEN\" | sha256sum)",
        );
    }
    let grace = raw
        .grace
        .as_deref()
        .and_then(|text| errors.duration(&format!("{at}.grace"), text));
    if raw.grace.is_some() && format != Some(PushFormat::Heartbeat) {
        errors.add(format!("{at}.grace"), "only heartbeats have a grace period");
    }
    if raw.degraded_severities.is_some() && format != Some(PushFormat::Alertmanager) {
        errors.add(
            format!("{at}.degraded_severities"),
            "only alertmanager checks have severities",
        );
    }
    (errors.0.len() == before).then(|| {
        CheckTarget::Push(PushTarget {
            format: format.unwrap_or(PushFormat::Heartbeat),
            token_sha256: token.to_ascii_lowercase(),
            grace_ms: grace.map(|g| g.as_millis() as u64),
            degraded_severities: raw.degraded_severities.clone().unwrap_or_default(),
        })
    })
}

/// A push check runs in exactly one region (see the module doc).
pub(super) fn validate_regions(errors: &mut Errors, at: &str, regions: &[String]) {
    if regions.len() != 1 {
        errors.add(
            format!("{at}.regions"),
            format!(
                "a push check belongs to exactly one region (the probe that serves its ingest route), got {}",
                regions.len()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_reports_at_its_field() {
        let ok = |f: fn(&mut RawPushCheck)| {
            let mut raw = RawPushCheck {
                format: Some("heartbeat".into()),
                token_sha256: Some("ab".repeat(32)),
                ..RawPushCheck::default()
            };
            f(&mut raw);
            raw
        };
        let table: Vec<(RawPushCheck, &[&str])> = vec![
            (ok(|_| {}), &[]),
            (ok(|r| r.grace = Some("30s".into())), &[]),
            (ok(|r| r.format = None), &["c.format"]),
            (ok(|r| r.format = Some("nagios".into())), &["c.format"]),
            (
                ok(|r| r.token_sha256 = Some("secret".into())),
                &["c.token_sha256"],
            ),
            (ok(|r| r.token_sha256 = None), &["c.token_sha256"]),
            (ok(|r| r.grace = Some("soon".into())), &["c.grace"]),
            (
                ok(|r| r.degraded_severities = Some(vec![])),
                &["c.degraded_severities"],
            ),
        ];
        for (raw, want) in table {
            let mut errors = Errors::default();
            let target = validate(&mut errors, "c", &raw);
            let got: Vec<&str> = errors.0.iter().map(|e| e.location.as_str()).collect();
            assert_eq!(got, want, "{raw:?}");
            assert_eq!(target.is_some(), want.is_empty());
        }
    }
}
