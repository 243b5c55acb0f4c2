//! `type = "dns"`: a DNS query of one record type, optionally to a chosen
//! nameserver, with expected answers. NXDOMAIN, SERVFAIL and every other
//! error code are failures.

use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{conditions, RawCheckCommon};
use crate::config::condition::{Condition, Placeholder};
use crate::config::{CheckTarget, Errors};

/// The fields of a dns check besides the common ones.
pub const FIELDS: &[&str] = &[
    "name",
    "record_type",
    "nameserver",
    "expect_answers",
    "conditions",
    "degraded_if",
];

/// What conditions of a dns check may look at.
pub const PLACEHOLDERS: &[Placeholder] = &[
    Placeholder::DnsRcode,
    Placeholder::Answers,
    Placeholder::ResponseTime,
];

/// Record types a dns check may ask for.
pub const RECORD_TYPES: &[&str] = &["A", "AAAA", "CNAME", "MX", "NS", "TXT", "SOA", "SRV", "PTR"];

/// A dns check as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RawDnsCheck {
    /// Id, regions, timing, thresholds.
    #[serde(flatten)]
    pub common: RawCheckCommon,
    /// The name to query, e.g. `api.example.com`.
    #[serde(default)]
    pub name: Option<String>,
    /// `A` (default), `AAAA`, `CNAME`, `MX`, `NS`, `TXT`, `SOA`, `SRV` or `PTR`.
    #[serde(default)]
    pub record_type: Option<String>,
    /// `ip` or `ip:port` of the nameserver to ask (UDP, then TCP when the
    /// answer is truncated); default the probe host's resolvers.
    #[serde(default)]
    pub nameserver: Option<String>,
    /// Answers that must all be present (e.g. `["192.0.2.10"]`); without
    /// them, any answer passes and none fails.
    #[serde(default)]
    pub expect_answers: Option<Vec<String>>,
    /// Conditions that must all hold (`[DNS_RCODE]`, `[ANSWERS]`).
    #[serde(default)]
    pub conditions: Option<Vec<String>>,
    /// Conditions any of which makes a passing run `degraded`.
    #[serde(default)]
    pub degraded_if: Option<Vec<String>>,
}

/// A validated dns check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsTarget {
    /// Name to query.
    pub name: String,
    /// Record type, uppercase.
    pub record_type: String,
    /// Nameserver; `None` for the host's resolvers.
    #[serde(default)]
    pub nameserver: Option<SocketAddr>,
    /// Answers that must be present.
    #[serde(default)]
    pub expect_answers: Vec<String>,
    /// Conditions that must all hold.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Conditions any of which makes a passing run degraded.
    #[serde(default)]
    pub degraded_if: Vec<Condition>,
}

impl RawDnsCheck {
    /// Every field set (for tests of the field list).
    #[cfg(test)]
    pub(super) fn filled(common: RawCheckCommon) -> Self {
        Self {
            common,
            name: Some("example.com".into()),
            record_type: Some("A".into()),
            nameserver: Some("127.0.0.1:53".into()),
            expect_answers: Some(vec!["192.0.2.1".into()]),
            conditions: Some(vec!["[DNS_RCODE] == NOERROR".into()]),
            degraded_if: Some(vec!["[RESPONSE_TIME] > 1s".into()]),
        }
    }
}

/// Parses `ip` or `ip:port` (port 53 by default).
pub fn parse_nameserver(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return (addr.port() != 0).then_some(addr);
    }
    let ip = text
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .ok()?;
    Some(SocketAddr::new(ip, 53))
}

/// Validates what is particular to a dns check.
pub(super) fn validate(errors: &mut Errors, at: &str, raw: &RawDnsCheck) -> Option<CheckTarget> {
    let before = errors.0.len();
    match raw.name.as_deref() {
        None => errors.add(format!("{at}.name"), "a dns check needs a name to query"),
        Some(name) if !super::is_host(name.trim_end_matches('.')) => errors.add(
            format!("{at}.name"),
            format!("{name:?} is not a domain name"),
        ),
        Some(_) => {}
    }
    let record_type = raw
        .record_type
        .as_deref()
        .unwrap_or("A")
        .to_ascii_uppercase();
    if !RECORD_TYPES.contains(&record_type.as_str()) {
        errors.add(
            format!("{at}.record_type"),
            format!(
                "unsupported record type {record_type:?}; use one of {}",
                RECORD_TYPES.join(", ")
            ),
        );
    }
    let nameserver = match raw.nameserver.as_deref() {
        None => None,
        Some(text) => {
            let parsed = parse_nameserver(text);
            if parsed.is_none() {
                errors.add(
                    format!("{at}.nameserver"),
                    format!("{text:?} is not an IP address or ip:port"),
                );
            }
            parsed
        }
    };
    let expect_answers = raw.expect_answers.clone().unwrap_or_default();
    for (k, answer) in expect_answers.iter().enumerate() {
        if answer.trim().is_empty() {
            errors.add(format!("{at}.expect_answers[{k}]"), "must not be empty");
        }
    }
    let conditions_ = conditions(
        errors,
        at,
        "conditions",
        &raw.conditions,
        "dns",
        PLACEHOLDERS,
    );
    let degraded_if = conditions(
        errors,
        at,
        "degraded_if",
        &raw.degraded_if,
        "dns",
        PLACEHOLDERS,
    );
    (errors.0.len() == before).then(|| {
        CheckTarget::Dns(DnsTarget {
            name: raw.name.clone().unwrap_or_default(),
            record_type,
            nameserver,
            expect_answers,
            conditions: conditions_,
            degraded_if,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_reports_at_its_field() {
        let ok = |f: fn(&mut RawDnsCheck)| {
            let mut raw = RawDnsCheck {
                name: Some("api.example.com".into()),
                ..RawDnsCheck::default()
            };
            f(&mut raw);
            raw
        };
        let table: Vec<(RawDnsCheck, &[&str])> = vec![
            (ok(|_| {}), &[]),
            (ok(|r| r.nameserver = Some("127.0.0.1:5353".into())), &[]),
            (ok(|r| r.nameserver = Some("::1".into())), &[]),
            (ok(|r| r.record_type = Some("aaaa".into())), &[]),
            (ok(|r| r.name = None), &["c.name"]),
            (ok(|r| r.name = Some("bad name".into())), &["c.name"]),
            (
                ok(|r| r.record_type = Some("AXFR".into())),
                &["c.record_type"],
            ),
            (
                ok(|r| r.nameserver = Some("dns.google".into())),
                &["c.nameserver"],
            ),
            (
                ok(|r| r.expect_answers = Some(vec![" ".into()])),
                &["c.expect_answers[0]"],
            ),
            (
                ok(|r| r.conditions = Some(vec!["[STATUS] == 200".into()])),
                &["c.conditions[0]"],
            ),
        ];
        for (raw, want) in table {
            let mut errors = Errors::default();
            let target = validate(&mut errors, "c", &raw);
            let got: Vec<&str> = errors.0.iter().map(|e| e.location.as_str()).collect();
            assert_eq!(got, want, "{raw:?}");
            assert_eq!(target.is_some(), want.is_empty());
        }
        assert_eq!(
            parse_nameserver("10.0.0.1"),
            Some("10.0.0.1:53".parse().expect("addr"))
        );
    }
}
