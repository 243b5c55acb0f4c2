//! `type = "http"`: an HTTP(S) request with status and body conditions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::RawCheckCommon;
use crate::config::{check_http_url, CheckTarget, Errors, HttpMethod};

/// The fields of a http check besides the common ones.
pub const FIELDS: &[&str] = &["url", "method", "expect_status", "body_contains"];

/// An http check as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RawHttpCheck {
    /// Id, regions, timing, thresholds.
    #[serde(flatten)]
    pub common: RawCheckCommon,
    /// The URL to request.
    #[serde(default)]
    pub url: Option<String>,
    /// `GET` (default), `HEAD` or `POST`.
    #[serde(default)]
    pub method: Option<String>,
    /// Acceptable status codes; default any 2xx.
    #[serde(default)]
    pub expect_status: Option<Vec<u16>>,
    /// Text the body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
}

impl RawHttpCheck {
    /// Every field set (for tests of the field list).
    #[cfg(test)]
    pub(super) fn filled(common: RawCheckCommon) -> Self {
        Self {
            common,
            url: Some("https://x".into()),
            method: Some("GET".into()),
            expect_status: Some(vec![200]),
            body_contains: Some("ok".into()),
        }
    }
}

/// Validates what is particular to an http check.
pub(super) fn validate(errors: &mut Errors, at: &str, raw: &RawHttpCheck) -> Option<CheckTarget> {
    let before = errors.0.len();
    let url = match &raw.url {
        Some(url) => {
            check_http_url(errors, &format!("{at}.url"), url);
            url.clone()
        }
        None => {
            errors.add(format!("{at}.url"), "an http check needs a url");
            String::new()
        }
    };
    let method = match raw
        .method
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("GET") => HttpMethod::Get,
        Some("HEAD") => HttpMethod::Head,
        Some("POST") => HttpMethod::Post,
        Some(other) => {
            errors.add(
                format!("{at}.method"),
                format!("unsupported method {other:?}; use GET, HEAD or POST"),
            );
            HttpMethod::Get
        }
    };
    let expect_status = raw.expect_status.clone().unwrap_or_default();
    for (k, code) in expect_status.iter().enumerate() {
        if !(100..=599).contains(code) {
            errors.add(
                format!("{at}.expect_status[{k}]"),
                format!("{code} is not an HTTP status code"),
            );
        }
    }
    (errors.0.len() == before).then_some(CheckTarget::Http {
        url,
        method,
        expect_status,
        body_contains: raw.body_contains.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: Option<&str>, method: Option<&str>, codes: &[u16]) -> RawHttpCheck {
        RawHttpCheck {
            url: url.map(str::to_owned),
            method: method.map(str::to_owned),
            expect_status: Some(codes.to_vec()),
            ..RawHttpCheck::default()
        }
    }

    #[test]
    fn each_rule_reports_at_its_field() {
        let table: &[(RawHttpCheck, &[&str])] = &[
            (
                check(Some("https://example.com/"), Some("head"), &[200]),
                &[],
            ),
            (check(None, None, &[]), &["c.url"]),
            (check(Some("ftp://example.com/"), None, &[]), &["c.url"]),
            (
                check(Some("https://example.com/"), Some("PUT"), &[]),
                &["c.method"],
            ),
            (
                check(Some("https://example.com/"), None, &[200, 99, 700]),
                &["c.expect_status[1]", "c.expect_status[2]"],
            ),
        ];
        for (raw, want) in table {
            let mut errors = Errors::default();
            let target = validate(&mut errors, "c", raw);
            let got: Vec<&str> = errors.0.iter().map(|e| e.location.as_str()).collect();
            assert_eq!(&got, want, "{raw:?}");
            assert_eq!(target.is_some(), want.is_empty());
        }
    }
}
