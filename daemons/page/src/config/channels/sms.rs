//! `type = "sms"`: a Twilio account.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{required, RawChannelCommon};
use crate::config::{check_http_url, ChannelProvider, Errors};

/// The fields of a sms channel besides the common ones.
pub const FIELDS: &[&str] = &["from", "endpoint", "secret_env", "pool"];

/// An sms channel as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RawSmsChannel {
    /// Id and rate.
    #[serde(flatten)]
    pub common: RawChannelCommon,
    /// Sender number, E.164.
    #[serde(default)]
    pub from: Option<String>,
    /// Twilio API base URL.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Name of the environment variable holding `ACCOUNT_SID:AUTH_TOKEN`.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// More sender numbers of the same account, E.164.
    #[serde(default)]
    pub pool: Option<Vec<String>>,
}

/// Validates what is particular to an sms channel.
pub(super) fn validate(
    errors: &mut Errors,
    at: &str,
    raw: &RawSmsChannel,
) -> Option<ChannelProvider> {
    let before = errors.0.len();
    let from = required(errors, at, "sms", "from", &raw.from);
    let api_base = required(errors, at, "sms", "endpoint", &raw.endpoint);
    let secret_env = required(errors, at, "sms", "secret_env", &raw.secret_env);
    if !from.is_empty() && !is_e164(&from) {
        errors.add(
            format!("{at}.from"),
            format!("{from:?} is not an E.164 phone number like +15551234567"),
        );
    }
    if !api_base.is_empty() {
        check_http_url(errors, &format!("{at}.endpoint"), &api_base);
    }
    let pool = raw.pool.clone().unwrap_or_default();
    for (i, number) in pool.iter().enumerate() {
        if !is_e164(number) {
            errors.add(
                format!("{at}.pool[{i}]"),
                format!("{number:?} is not an E.164 phone number like +15551234567"),
            );
        }
    }
    (errors.0.len() == before).then_some(ChannelProvider::Sms {
        from,
        api_base,
        secret_env,
        pool,
    })
}

/// `+` and 8 to 15 digits.
pub fn is_e164(text: &str) -> bool {
    let digits = text.strip_prefix('+').unwrap_or("");
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_e164() {
        for (text, ok) in [
            ("+15551234567", true),
            ("15551234567", false),
            ("+1555", false),
            ("+1555123456789012", false),
            ("+1555-123-4567", false),
        ] {
            assert_eq!(is_e164(text), ok, "{text}");
        }
    }
}
