//! `type = "email"`: an SMTP relay account.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{required, RawChannelCommon};
use crate::config::{check_host_port, ChannelProvider, Errors, SmtpTls};

/// The fields of an email channel besides the common ones.
pub const FIELDS: &[&str] = &["from", "endpoint", "secret_env", "tls"];

/// An email channel as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RawEmailChannel {
    /// Id and rate.
    #[serde(flatten)]
    pub common: RawChannelCommon,
    /// Sender address.
    #[serde(default)]
    pub from: Option<String>,
    /// SMTP relay `host:port`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Name of the environment variable holding the relay credentials,
    /// `USER:PASSWORD`, if it needs any.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// `starttls` (default), `tls`, or `none` (a relay on the same host, a test sink).
    #[serde(default)]
    pub tls: Option<String>,
}

/// Validates what is particular to an email channel.
pub(super) fn validate(
    errors: &mut Errors,
    at: &str,
    raw: &RawEmailChannel,
) -> Option<ChannelProvider> {
    let before = errors.0.len();
    let from = required(errors, at, "email", "from", &raw.from);
    let relay = required(errors, at, "email", "endpoint", &raw.endpoint);
    // Header injection: the sender goes into a header as is.
    if !from.is_empty() && (!from.contains('@') || from.contains(['\r', '\n', '<', '>'])) {
        errors.add(
            format!("{at}.from"),
            format!("{from:?} is not an email address"),
        );
    }
    if !relay.is_empty() {
        check_host_port(errors, &format!("{at}.endpoint"), &relay);
    }
    let tls = match raw.tls.as_deref() {
        None | Some("starttls") => SmtpTls::Starttls,
        Some("tls") => SmtpTls::Tls,
        Some("none") => SmtpTls::None,
        Some(other) => {
            errors.add(
                format!("{at}.tls"),
                format!("{other:?} is not one of starttls, tls, none"),
            );
            SmtpTls::Starttls
        }
    };
    (errors.0.len() == before).then_some(ChannelProvider::Email {
        from,
        relay,
        secret_env: raw.secret_env.clone(),
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_and_relay_are_checked() {
        let table: &[(Option<&str>, Option<&str>, &[&str])] = &[
            (
                Some("status@example.com"),
                Some("smtp.example.com:587"),
                &[],
            ),
            (None, None, &["c.from", "c.endpoint"]),
            (Some("nobody"), Some("smtp:587"), &["c.from"]),
            (Some("a@b\r\nBcc: x@y"), Some("smtp:587"), &["c.from"]),
            (Some("a@b"), Some("smtp"), &["c.endpoint"]),
        ];
        for (from, endpoint, want) in table {
            let raw = RawEmailChannel {
                from: from.map(str::to_owned),
                endpoint: endpoint.map(str::to_owned),
                ..RawEmailChannel::default()
            };
            let mut errors = Errors::default();
            let provider = validate(&mut errors, "c", &raw);
            let got: Vec<&str> = errors.0.iter().map(|e| e.location.as_str()).collect();
            assert_eq!(&got, want, "{raw:?}");
            assert_eq!(provider.is_some(), want.is_empty());
        }
    }
}
