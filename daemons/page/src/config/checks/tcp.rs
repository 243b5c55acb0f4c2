//! `type = "tcp"`: a TCP connect to `host:port`, optionally sending a line
//! and expecting a banner.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{conditions, RawCheckCommon};
use crate::config::condition::{Condition, Placeholder};
use crate::config::{check_host_port, CheckTarget, Errors};

/// The fields of a tcp check besides the common ones.
pub const FIELDS: &[&str] = &["address", "send", "expect", "conditions", "degraded_if"];

/// What conditions of a tcp check may look at.
pub const PLACEHOLDERS: &[Placeholder] = &[Placeholder::ResponseTime, Placeholder::Banner];

/// Longest `send` or `expect` accepted, in bytes.
pub const MAX_PAYLOAD: usize = 4096;

/// A tcp check as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RawTcpCheck {
    /// Id, regions, timing, thresholds.
    #[serde(flatten)]
    pub common: RawCheckCommon,
    /// `host:port` to connect to.
    #[serde(default)]
    pub address: Option<String>,
    /// Text sent once connected (e.g. `"PING\r\n"`).
    #[serde(default)]
    pub send: Option<String>,
    /// Text the server must send back (a banner such as `"SSH-2.0"`);
    /// read until it appears, the connection closes or the timeout.
    #[serde(default)]
    pub expect: Option<String>,
    /// Conditions that must all hold (`[RESPONSE_TIME]`, `[BANNER]`).
    #[serde(default)]
    pub conditions: Option<Vec<String>>,
    /// Conditions any of which makes a passing run `degraded`.
    #[serde(default)]
    pub degraded_if: Option<Vec<String>>,
}

/// A validated tcp check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpTarget {
    /// `host:port`.
    pub address: String,
    /// Sent once connected.
    #[serde(default)]
    pub send: Option<String>,
    /// Expected in what the server sends.
    #[serde(default)]
    pub expect: Option<String>,
    /// Conditions that must all hold.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Conditions any of which makes a passing run degraded.
    #[serde(default)]
    pub degraded_if: Vec<Condition>,
}

impl TcpTarget {
    /// A plain connect check of `address`.
    pub fn connect(address: &str) -> Self {
        Self {
            address: address.to_owned(),
            send: None,
            expect: None,
            conditions: Vec::new(),
            degraded_if: Vec::new(),
        }
    }
}

impl RawTcpCheck {
    /// Every field set (for tests of the field list).
    #[cfg(test)]
    pub(super) fn filled(common: RawCheckCommon) -> Self {
        Self {
            common,
            address: Some("db:5432".into()),
            send: Some("PING\r\n".into()),
            expect: Some("PONG".into()),
            conditions: Some(vec!["[BANNER] contains PONG".into()]),
            degraded_if: Some(vec!["[RESPONSE_TIME] > 1s".into()]),
        }
    }
}

/// Validates what is particular to a tcp check.
pub(super) fn validate(errors: &mut Errors, at: &str, raw: &RawTcpCheck) -> Option<CheckTarget> {
    let before = errors.0.len();
    match &raw.address {
        Some(address) => check_host_port(errors, &format!("{at}.address"), address),
        None => errors.add(
            format!("{at}.address"),
            "a tcp check needs an address (host:port)",
        ),
    }
    for (field, value) in [("send", &raw.send), ("expect", &raw.expect)] {
        match value {
            Some(text) if text.is_empty() || text.len() > MAX_PAYLOAD => errors.add(
                format!("{at}.{field}"),
                format!("must be 1 to {MAX_PAYLOAD} bytes"),
            ),
            _ => {}
        }
    }
    let conditions_ = conditions(
        errors,
        at,
        "conditions",
        &raw.conditions,
        "tcp",
        PLACEHOLDERS,
    );
    let degraded_if = conditions(
        errors,
        at,
        "degraded_if",
        &raw.degraded_if,
        "tcp",
        PLACEHOLDERS,
    );
    (errors.0.len() == before).then(|| {
        CheckTarget::Tcp(TcpTarget {
            address: raw.address.clone().unwrap_or_default(),
            send: raw.send.clone(),
            expect: raw.expect.clone(),
            conditions: conditions_,
            degraded_if,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_needs_a_host_and_a_port() {
        let table: &[(Option<&str>, bool)] = &[
            (Some("db.internal:5432"), true),
            (Some("[::1]:80"), true),
            (Some("no-port"), false),
            (Some(":80"), false),
            (Some("db:0"), false),
            (None, false),
        ];
        for (address, ok) in table {
            let mut errors = Errors::default();
            let raw = RawTcpCheck {
                address: address.map(str::to_owned),
                ..RawTcpCheck::default()
            };
            assert_eq!(
                validate(&mut errors, "c", &raw).is_some(),
                *ok,
                "{address:?}"
            );
        }
    }

    #[test]
    fn send_expect_and_conditions_are_checked() {
        let mut errors = Errors::default();
        let raw = RawTcpCheck {
            address: Some("db:1".into()),
            send: Some(String::new()),
            conditions: Some(vec!["[STATUS] == 200".into()]),
            ..RawTcpCheck::default()
        };
        assert!(validate(&mut errors, "c", &raw).is_none());
        let got: Vec<&str> = errors.0.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(got, ["c.send", "c.conditions[0]"]);
    }
}
