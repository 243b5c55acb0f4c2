//! `type = "http"`: an HTTP(S) request with method, headers, body,
//! redirects, a body-size cap, TLS settings, an expected status and
//! conditions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{conditions, RawCheckCommon};
use crate::config::condition::{Condition, Placeholder};
use crate::config::{check_http_url, CheckTarget, Errors, HttpMethod};

/// The fields of a http check besides the common ones.
pub const FIELDS: &[&str] = &[
    "url",
    "method",
    "headers",
    "body",
    "follow_redirects",
    "max_redirects",
    "expect_status",
    "body_contains",
    "max_body_bytes",
    "tls_skip_verify",
    "keep_alive",
    "conditions",
    "degraded_if",
];

/// What conditions of a http check may look at.
pub const PLACEHOLDERS: &[Placeholder] = &[
    Placeholder::Status,
    Placeholder::ResponseTime,
    Placeholder::Body,
    Placeholder::Header,
    Placeholder::CertificateExpiration,
];

/// Body bytes read when the check does not say.
pub const DEFAULT_MAX_BODY: u64 = 1024 * 1024;
/// Largest `max_body_bytes` accepted.
pub const MAX_MAX_BODY: u64 = 64 * 1024 * 1024;
/// Redirects followed when the check does not say.
pub const DEFAULT_MAX_REDIRECTS: u32 = 5;

/// An http check as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RawHttpCheck {
    /// Id, regions, timing, thresholds.
    #[serde(flatten)]
    pub common: RawCheckCommon,
    /// The URL to request.
    #[serde(default)]
    pub url: Option<String>,
    /// `GET` (default), `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE` or `OPTIONS`.
    #[serde(default)]
    pub method: Option<String>,
    /// Request headers.
    #[serde(default)]
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    /// Request body.
    #[serde(default)]
    pub body: Option<String>,
    /// Whether redirects are followed (default true).
    #[serde(default)]
    pub follow_redirects: Option<bool>,
    /// Most redirects followed (default 5); more is a failure.
    #[serde(default)]
    pub max_redirects: Option<u32>,
    /// Acceptable status codes; default any 2xx.
    #[serde(default)]
    pub expect_status: Option<Vec<u16>>,
    /// Text the body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// Most body bytes read (default 1 MiB); a larger body is a failure.
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// Accept any certificate (self-signed, wrong name, expired); its
    /// expiry is still observed.
    #[serde(default)]
    pub tls_skip_verify: Option<bool>,
    /// Reuse pooled connections to the target (default true); false opens a
    /// new connection for every run, so connect and TLS time are measured.
    #[serde(default)]
    pub keep_alive: Option<bool>,
    /// Conditions that must all hold, e.g. `"[BODY].status == UP"`.
    #[serde(default)]
    pub conditions: Option<Vec<String>>,
    /// Conditions any of which makes a passing run `degraded`.
    #[serde(default)]
    pub degraded_if: Option<Vec<String>>,
}

/// A validated http check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpTarget {
    /// URL.
    pub url: String,
    /// Method.
    pub method: HttpMethod,
    /// Request headers, in name order.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Request body.
    #[serde(default)]
    pub body: Option<String>,
    /// Whether redirects are followed.
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    /// Most redirects followed.
    #[serde(default = "default_max_redirects")]
    pub max_redirects: u32,
    /// Acceptable status codes; empty means any 2xx.
    pub expect_status: Vec<u16>,
    /// Text the body must contain.
    pub body_contains: Option<String>,
    /// Most body bytes read.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// Accept any certificate.
    #[serde(default)]
    pub tls_skip_verify: bool,
    /// Reuse pooled connections.
    #[serde(default = "yes")]
    pub keep_alive: bool,
    /// Conditions that must all hold.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Conditions any of which makes a passing run degraded.
    #[serde(default)]
    pub degraded_if: Vec<Condition>,
}

fn yes() -> bool {
    true
}

fn default_max_redirects() -> u32 {
    DEFAULT_MAX_REDIRECTS
}

fn default_max_body() -> u64 {
    DEFAULT_MAX_BODY
}

impl RawHttpCheck {
    /// Every field set (for tests of the field list).
    #[cfg(test)]
    pub(super) fn filled(common: RawCheckCommon) -> Self {
        Self {
            common,
            url: Some("https://x".into()),
            method: Some("GET".into()),
            headers: Some([("a".to_owned(), "b".to_owned())].into()),
            body: Some("{}".into()),
            follow_redirects: Some(true),
            max_redirects: Some(3),
            expect_status: Some(vec![200]),
            body_contains: Some("ok".into()),
            max_body_bytes: Some(1024),
            tls_skip_verify: Some(false),
            keep_alive: Some(true),
            conditions: Some(vec!["[STATUS] == 200".into()]),
            degraded_if: Some(vec!["[RESPONSE_TIME] > 1s".into()]),
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
        Some("PUT") => HttpMethod::Put,
        Some("PATCH") => HttpMethod::Patch,
        Some("DELETE") => HttpMethod::Delete,
        Some("OPTIONS") => HttpMethod::Options,
        Some(other) => {
            errors.add(
                format!("{at}.method"),
                format!("unsupported method {other:?}; use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS"),
            );
            HttpMethod::Get
        }
    };
    let mut headers = Vec::new();
    for (name, value) in raw.headers.iter().flatten() {
        let where_ = format!("{at}.headers.{name}");
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            errors.add(&where_, format!("{name:?} is not a valid header name"));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            errors.add(&where_, "a header value may not contain line breaks");
        }
        if name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case("content-length") {
            errors.add(&where_, format!("{name} is set by the probe"));
        }
        headers.push((name.clone(), value.clone()));
    }
    let expect_status = raw.expect_status.clone().unwrap_or_default();
    for (k, code) in expect_status.iter().enumerate() {
        if !(100..=599).contains(code) {
            errors.add(
                format!("{at}.expect_status[{k}]"),
                format!("{code} is not an HTTP status code"),
            );
        }
    }
    let max_redirects = raw.max_redirects.unwrap_or(DEFAULT_MAX_REDIRECTS);
    if max_redirects > 30 {
        errors.add(
            format!("{at}.max_redirects"),
            format!("must be at most 30, got {max_redirects}"),
        );
    }
    let max_body_bytes = raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY);
    if !(1..=MAX_MAX_BODY).contains(&max_body_bytes) {
        errors.add(
            format!("{at}.max_body_bytes"),
            format!("must be between 1 and {MAX_MAX_BODY}, got {max_body_bytes}"),
        );
    }
    let conditions_ = conditions(
        errors,
        at,
        "conditions",
        &raw.conditions,
        "http",
        PLACEHOLDERS,
    );
    let degraded_if = conditions(
        errors,
        at,
        "degraded_if",
        &raw.degraded_if,
        "http",
        PLACEHOLDERS,
    );
    (errors.0.len() == before).then_some(CheckTarget::Http(HttpTarget {
        url,
        method,
        headers,
        body: raw.body.clone(),
        follow_redirects: raw.follow_redirects.unwrap_or(true),
        max_redirects,
        expect_status,
        body_contains: raw.body_contains.clone(),
        max_body_bytes,
        tls_skip_verify: raw.tls_skip_verify.unwrap_or(false),
        keep_alive: raw.keep_alive.unwrap_or(true),
        conditions: conditions_,
        degraded_if,
    }))
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
        let ok = Some("https://example.com/");
        let table: &[(RawHttpCheck, &[&str])] = &[
            (check(ok, Some("head"), &[200]), &[]),
            (check(None, None, &[]), &["c.url"]),
            (check(Some("ftp://example.com/"), None, &[]), &["c.url"]),
            (check(ok, Some("TRACE"), &[]), &["c.method"]),
            (
                check(ok, None, &[200, 99, 700]),
                &["c.expect_status[1]", "c.expect_status[2]"],
            ),
            (
                RawHttpCheck {
                    headers: Some(
                        [
                            ("bad name".to_owned(), "v".to_owned()),
                            ("x-ok".to_owned(), "a\r\nb".to_owned()),
                            ("Host".to_owned(), "h".to_owned()),
                        ]
                        .into(),
                    ),
                    ..check(ok, None, &[])
                },
                &["c.headers.Host", "c.headers.bad name", "c.headers.x-ok"],
            ),
            (
                RawHttpCheck {
                    max_body_bytes: Some(0),
                    max_redirects: Some(99),
                    ..check(ok, None, &[])
                },
                &["c.max_redirects", "c.max_body_bytes"],
            ),
            (
                RawHttpCheck {
                    conditions: Some(vec![
                        "[STATUS] == 200".into(),
                        "[STATUS] == ok".into(),
                        "[PACKET_LOSS] < 1".into(),
                    ]),
                    degraded_if: Some(vec!["[RESPONSE_TIME] > soon".into()]),
                    ..check(ok, None, &[])
                },
                &["c.conditions[1]", "c.conditions[2]", "c.degraded_if[0]"],
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
