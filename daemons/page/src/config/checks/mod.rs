//! Check kinds. Each kind has a module with its raw fields and its own
//! validation; [`RawCheck`] registers them in one tagged enum, and
//! [`validate`] dispatches with one exhaustive `match`. Adding a kind is a
//! module, a variant and its arms here, nothing in shared structs.
//!
//! The fields every kind shares (id, regions, timing, thresholds) are
//! [`RawCheckCommon`], validated here once. Conditions (see
//! [`crate::config::condition`]) are parsed here for every kind that has
//! them, and refused when they look at something the kind does not observe.

pub mod dns;
pub mod http;
pub mod icmp;
pub mod push;
pub mod tcp;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::condition::{Condition, Placeholder};
use super::{fallback, Check, CheckTarget, Errors, KOfN, RawDefaults, MAX_INTERVAL, MIN_INTERVAL};

/// `[[components.checks]]`: one check, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RawCheck {
    /// An HTTP(S) request.
    Http(http::RawHttpCheck),
    /// A TCP connect.
    Tcp(tcp::RawTcpCheck),
    /// ICMP echo requests.
    Icmp(icmp::RawIcmpCheck),
    /// A DNS query.
    Dns(dns::RawDnsCheck),
    /// Status pushed to the probe's ingest endpoint.
    Push(push::RawPushCheck),
}

/// The check types, as written in `type`.
pub const KINDS: &[&str] = &["http", "tcp", "icmp", "dns", "push"];

/// Fields every check kind has.
pub const COMMON_FIELDS: &[&str] = &[
    "id",
    "regions",
    "interval",
    "timeout",
    "failure_threshold",
    "recovery_threshold",
    "failure_window",
    "recovery_window",
    "degraded_latency",
];

/// The fields of check kind `kind` besides the common ones.
fn fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "http" => http::FIELDS,
        "tcp" => tcp::FIELDS,
        "icmp" => icmp::FIELDS,
        "dns" => dns::FIELDS,
        "push" => push::FIELDS,
        _ => &[],
    }
}

/// Fields every check has.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RawCheckCommon {
    /// Check id within the component; defaults to the check type.
    #[serde(default)]
    pub id: Option<String>,
    /// Regions; default `defaults.regions`.
    #[serde(default)]
    pub regions: Option<Vec<String>>,
    /// Interval; default `defaults.interval`, then 30s.
    #[serde(default)]
    pub interval: Option<String>,
    /// Timeout; default `defaults.timeout`, then 5s.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Failure threshold; default `defaults.failure_threshold`, then 2.
    #[serde(default)]
    pub failure_threshold: Option<u32>,
    /// Recovery threshold; default `defaults.recovery_threshold`, then 2.
    #[serde(default)]
    pub recovery_threshold: Option<u32>,
    /// `"K of N"` failures that call a region down; default
    /// `defaults.failure_window`, then none (the threshold counts).
    #[serde(default)]
    pub failure_window: Option<String>,
    /// `"K of N"` successes that call a region up again.
    #[serde(default)]
    pub recovery_window: Option<String>,
    /// Latency over which a passing result is slow, e.g. `"800ms"`.
    #[serde(default)]
    pub degraded_latency: Option<String>,
}

/// Validates the check `table` at `at`, reporting every problem; the typed
/// check when there is none.
pub(super) fn validate(
    errors: &mut Errors,
    at: &str,
    table: &toml::Table,
    defaults: &RawDefaults,
) -> Option<Check> {
    let raw: RawCheck =
        super::read_tagged(errors, at, table, "check", KINDS, COMMON_FIELDS, fields)?;
    let before = errors.0.len();
    let (kind, common, target) = match &raw {
        RawCheck::Http(check) => ("http", &check.common, http::validate(errors, at, check)),
        RawCheck::Tcp(check) => ("tcp", &check.common, tcp::validate(errors, at, check)),
        RawCheck::Icmp(check) => ("icmp", &check.common, icmp::validate(errors, at, check)),
        RawCheck::Dns(check) => ("dns", &check.common, dns::validate(errors, at, check)),
        RawCheck::Push(check) => ("push", &check.common, push::validate(errors, at, check)),
    };
    // Common fields are checked even when the kind's are wrong, so every
    // problem shows at once.
    let check = validate_common(errors, at, kind, common, defaults, target);
    if let Some(check) = &check {
        if let CheckTarget::Push(_) = check.target {
            push::validate_regions(errors, at, &check.regions);
        }
    }
    if errors.0.len() > before {
        return None;
    }
    check
}

/// Parses the conditions of `field` at `at`, each reported at its own index
/// with the column of the problem; a condition on something a `kind` check
/// does not observe is refused too.
fn conditions(
    errors: &mut Errors,
    at: &str,
    field: &str,
    texts: &Option<Vec<String>>,
    kind: &str,
    allowed: &[Placeholder],
) -> Vec<Condition> {
    let mut parsed = Vec::new();
    for (i, text) in texts.iter().flatten().enumerate() {
        let location = format!("{at}.{field}[{i}]");
        match Condition::parse(text) {
            Ok(condition) if allowed.contains(&condition.placeholder()) => parsed.push(condition),
            Ok(condition) => errors.add(
                location,
                format!(
                    "{} does not apply to a {kind} check; use {}",
                    condition.placeholder().as_str(),
                    allowed
                        .iter()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Err(e) => errors.add(location, format!("{text:?}: {e}")),
        }
    }
    parsed
}

/// A host name (letters, digits, `-`, `_`, dots) or an IP address.
fn is_host(text: &str) -> bool {
    if text.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn validate_common(
    errors: &mut Errors,
    at: &str,
    kind: &str,
    raw: &RawCheckCommon,
    defaults: &RawDefaults,
    target: Option<CheckTarget>,
) -> Option<Check> {
    let id = raw.id.clone().unwrap_or_else(|| kind.to_owned());
    errors.token(&format!("{at}.id"), &id);

    let regions = match raw.regions.as_ref().or(defaults.regions.as_ref()) {
        Some(regions) => {
            super::check_regions(errors, &format!("{at}.regions"), regions);
            regions.clone()
        }
        None => {
            errors.add(
                format!("{at}.regions"),
                "no regions: set them here or in [defaults]",
            );
            Vec::new()
        }
    };

    let interval_text = raw
        .interval
        .as_deref()
        .or(defaults.interval.as_deref())
        .unwrap_or(fallback::INTERVAL);
    let timeout_text = raw
        .timeout
        .as_deref()
        .or(defaults.timeout.as_deref())
        .unwrap_or(fallback::TIMEOUT);
    let interval = errors.duration(&format!("{at}.interval"), interval_text);
    let timeout = errors.duration(&format!("{at}.timeout"), timeout_text);
    if let Some(interval) = interval {
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
            errors.add(
                format!("{at}.interval"),
                format!(
                    "must be between {MIN_INTERVAL:?} and {MAX_INTERVAL:?}, got {interval_text}"
                ),
            );
        }
    }
    if let (Some(interval), Some(timeout)) = (interval, timeout) {
        if timeout.is_zero() || timeout > interval {
            errors.add(format!("{at}.timeout"), format!("must be above zero and at most the interval ({interval_text}), got {timeout_text}"));
        }
    }
    let failure_threshold = raw
        .failure_threshold
        .or(defaults.failure_threshold)
        .unwrap_or(fallback::FAILURE_THRESHOLD);
    let recovery_threshold = raw
        .recovery_threshold
        .or(defaults.recovery_threshold)
        .unwrap_or(fallback::RECOVERY_THRESHOLD);
    errors.threshold(&format!("{at}.failure_threshold"), failure_threshold);
    errors.threshold(&format!("{at}.recovery_threshold"), recovery_threshold);
    // A field the check sets is reported at the check; one it inherits was
    // reported at `defaults` already and is only read here.
    let window = |errors: &mut Errors,
                  field: &str,
                  own: &Option<String>,
                  inherited: &Option<String>| {
        match (own, inherited) {
            (Some(text), _) => errors.k_of_n(&format!("{at}.{field}"), text),
            (None, Some(text)) => KOfN::parse(text).ok(),
            (None, None) => None,
        }
    };
    let failure_window = window(
        errors,
        "failure_window",
        &raw.failure_window,
        &defaults.failure_window,
    );
    let recovery_window = window(
        errors,
        "recovery_window",
        &raw.recovery_window,
        &defaults.recovery_window,
    );
    let degraded_latency = match (&raw.degraded_latency, &defaults.degraded_latency) {
        (Some(text), _) => {
            let latency = errors.duration(&format!("{at}.degraded_latency"), text);
            if latency.is_some_and(|l| l.is_zero()) {
                errors.add(format!("{at}.degraded_latency"), "must be above zero");
            }
            latency
        }
        (None, Some(text)) => humantime::parse_duration(text).ok(),
        (None, None) => None,
    };

    Some(Check {
        id,
        target: target?,
        regions,
        interval_ms: interval?.as_millis() as u64,
        timeout_ms: timeout?.as_millis() as u64,
        failure_threshold,
        recovery_threshold,
        failure_window,
        recovery_window,
        degraded_latency_ms: degraded_latency.map(|l| l.as_millis() as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys a fully filled raw check of each kind serializes to are
    /// exactly its field list, so the unknown-field check and the structs
    /// cannot drift apart.
    #[test]
    fn field_lists_match_the_structs() {
        let common = RawCheckCommon {
            id: Some("x".into()),
            regions: Some(vec![]),
            interval: Some("1s".into()),
            timeout: Some("1s".into()),
            failure_threshold: Some(1),
            recovery_threshold: Some(1),
            failure_window: Some("1 of 2".into()),
            recovery_window: Some("1 of 2".into()),
            degraded_latency: Some("1s".into()),
        };
        let samples = [
            RawCheck::Http(http::RawHttpCheck::filled(common.clone())),
            RawCheck::Tcp(tcp::RawTcpCheck::filled(common.clone())),
            RawCheck::Icmp(icmp::RawIcmpCheck::filled(common.clone())),
            RawCheck::Dns(dns::RawDnsCheck::filled(common.clone())),
            RawCheck::Push(push::RawPushCheck::filled(common)),
        ];
        for sample in samples {
            crate::config::assert_fields_match(&sample, COMMON_FIELDS, fields);
        }
    }
}
