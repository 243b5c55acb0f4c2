//! Channel kinds. Each kind has a module with its raw fields and its own
//! validation; [`RawChannel`] registers them in one tagged enum, and
//! [`validate`] dispatches with one exhaustive `match`.

pub mod email;
pub mod slack;
pub mod sms;
pub mod teams;
pub mod webhook;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{fallback, Channel, Errors};

/// `[[channels]]`: one channel and its provider account, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RawChannel {
    /// SMTP relay.
    Email(email::RawEmailChannel),
    /// Twilio API.
    Sms(sms::RawSmsChannel),
    /// Signed webhooks.
    Webhook(webhook::RawWebhookChannel),
    /// Slack incoming webhooks.
    Slack(slack::RawSlackChannel),
    /// Teams incoming webhooks.
    Teams(teams::RawTeamsChannel),
}

/// The channel types, as written in `type`.
pub const KINDS: &[&str] = &["email", "sms", "webhook", "slack", "teams"];

/// Fields every channel kind has.
pub const COMMON_FIELDS: &[&str] = &[
    "id",
    "rate_per_second",
    "burst",
    "concurrency",
    "destination_rate_per_second",
];

/// The fields of channel kind `kind` besides the common ones.
fn fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "email" => email::FIELDS,
        "sms" => sms::FIELDS,
        "webhook" => webhook::FIELDS,
        "slack" => slack::FIELDS,
        "teams" => teams::FIELDS,
        _ => &[],
    }
}

/// Fields every channel has.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RawChannelCommon {
    /// Channel id.
    #[serde(default)]
    pub id: String,
    /// Most messages per second the provider account accepts; default 10.
    #[serde(default)]
    pub rate_per_second: Option<u32>,
    /// Most messages at once above the rate; default the rate.
    #[serde(default)]
    pub burst: Option<u32>,
    /// Most deliveries in flight at once; default 16.
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// Most messages per second to one destination URL; default 5 (Slack: 1).
    #[serde(default)]
    pub destination_rate_per_second: Option<u32>,
}

/// Validates the channel `table` at `at`, reporting every problem; the
/// typed channel when there is none.
pub(super) fn validate(errors: &mut Errors, at: &str, table: &toml::Table) -> Option<Channel> {
    let raw: RawChannel =
        super::read_tagged(errors, at, table, "channel", KINDS, COMMON_FIELDS, fields)?;
    let before = errors.0.len();
    let (common, provider) = match &raw {
        RawChannel::Email(c) => (&c.common, email::validate(errors, at, c)),
        RawChannel::Sms(c) => (&c.common, sms::validate(errors, at, c)),
        RawChannel::Webhook(c) => (&c.common, webhook::validate(errors, at, c)),
        RawChannel::Slack(c) => (&c.common, Some(slack::validate(c))),
        RawChannel::Teams(c) => (&c.common, Some(teams::validate(c))),
    };
    errors.token(&format!("{at}.id"), &common.id);
    let rate_per_second = common.rate_per_second.unwrap_or(fallback::RATE_PER_SECOND);
    let burst = common.burst.unwrap_or(rate_per_second.max(1));
    let concurrency = common.concurrency.unwrap_or(fallback::CONCURRENCY);
    // Slack's incoming webhooks take one message a second.
    let destination_default = match &raw {
        RawChannel::Slack(_) => 1,
        _ => fallback::DESTINATION_RATE,
    };
    let destination_rate_per_second = common
        .destination_rate_per_second
        .unwrap_or(destination_default);
    for (field, value, max) in [
        ("rate_per_second", rate_per_second, 1_000_000),
        ("burst", burst, 1_000_000),
        ("concurrency", concurrency, 10_000),
        (
            "destination_rate_per_second",
            destination_rate_per_second,
            1_000_000,
        ),
    ] {
        if !(1..=max).contains(&value) {
            errors.add(
                format!("{at}.{field}"),
                format!("must be between 1 and {max}, got {value}"),
            );
        }
    }
    if errors.0.len() > before {
        return None;
    }
    Some(Channel {
        id: common.id.clone(),
        provider: provider?,
        rate_per_second,
        burst,
        concurrency,
        destination_rate_per_second,
    })
}

/// `value` when it is set and not blank; otherwise an error saying the
/// `kind` channel needs `field`, and an empty string.
fn required(
    errors: &mut Errors,
    at: &str,
    kind: &str,
    field: &str,
    value: &Option<String>,
) -> String {
    match value {
        Some(v) if !v.trim().is_empty() => v.clone(),
        _ => {
            errors.add(
                format!("{at}.{field}"),
                format!("{kind} channels need {field}"),
            );
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_lists_match_the_structs() {
        let common = RawChannelCommon {
            id: "x".into(),
            rate_per_second: Some(1),
            burst: Some(1),
            concurrency: Some(1),
            destination_rate_per_second: Some(1),
        };
        let some = || Some("x".to_owned());
        let samples = [
            RawChannel::Email(email::RawEmailChannel {
                common: common.clone(),
                from: some(),
                endpoint: some(),
                secret_env: some(),
                tls: some(),
            }),
            RawChannel::Sms(sms::RawSmsChannel {
                common: common.clone(),
                from: some(),
                endpoint: some(),
                secret_env: some(),
                pool: Some(vec!["+15551234567".into()]),
            }),
            RawChannel::Webhook(webhook::RawWebhookChannel {
                common: common.clone(),
                secret_env: some(),
            }),
            RawChannel::Slack(slack::RawSlackChannel {
                common: common.clone(),
            }),
            RawChannel::Teams(teams::RawTeamsChannel { common }),
        ];
        for sample in samples {
            crate::config::assert_fields_match(&sample, COMMON_FIELDS, fields);
        }
    }
}
