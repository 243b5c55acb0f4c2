//! `type = "tcp"`: a TCP connect to `host:port`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::RawCheckCommon;
use crate::config::{check_host_port, CheckTarget, Errors};

/// The fields of a tcp check besides the common ones.
pub const FIELDS: &[&str] = &["address"];

/// A tcp check as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RawTcpCheck {
    /// Id, regions, timing, thresholds.
    #[serde(flatten)]
    pub common: RawCheckCommon,
    /// `host:port` to connect to.
    #[serde(default)]
    pub address: Option<String>,
}

impl RawTcpCheck {
    /// Every field set (for tests of the field list).
    #[cfg(test)]
    pub(super) fn filled(common: RawCheckCommon) -> Self {
        Self {
            common,
            address: Some("db:5432".into()),
        }
    }
}

/// Validates what is particular to a tcp check.
pub(super) fn validate(errors: &mut Errors, at: &str, raw: &RawTcpCheck) -> Option<CheckTarget> {
    match &raw.address {
        Some(address) => {
            let before = errors.0.len();
            check_host_port(errors, &format!("{at}.address"), address);
            (errors.0.len() == before).then_some(CheckTarget::Tcp {
                address: address.clone(),
            })
        }
        None => {
            errors.add(
                format!("{at}.address"),
                "a tcp check needs an address (host:port)",
            );
            None
        }
    }
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
            assert_eq!(errors.0.is_empty(), *ok, "{address:?}");
        }
    }
}
