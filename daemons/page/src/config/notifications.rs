//! How a page notifies its subscribers: `[notifications]`.
//!
//! - `window`: the batching window per subscriber and incident. The first
//!   update goes at once; later ones within the window are held and sent
//!   as one message with the newest state when it closes (default 15m; 0s
//!   sends every update at once).
//! - `component_status`: whether component status changes notify too
//!   (changes an incident or maintenance explains, and inhibited ones, never do).
//! - `sms_impacts`: which news may go out by SMS: incident impacts
//!   (`none`, `minor`, `major`, `critical`) and `maintenance`. Default
//!   `major` and `critical`: SMS is for what cannot wait.
//! - `digest_every`: how often the changelog digest goes to the
//!   subscribers who asked for it (default 7d).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Errors;
use beacon_contract::messages::Impact;

/// `[notifications]` as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNotifications {
    /// Batching window per subscriber and incident, e.g. `15m`; `0s` for none.
    #[serde(default)]
    pub window: Option<String>,
    /// Notify component status changes too (default false).
    #[serde(default)]
    pub component_status: Option<bool>,
    /// What may go out by SMS: `none`, `minor`, `major`, `critical`,
    /// `maintenance` (default `["major", "critical"]`).
    #[serde(default)]
    pub sms_impacts: Option<Vec<String>>,
    /// How often the changelog digest goes out, e.g. `7d`.
    #[serde(default)]
    pub digest_every: Option<String>,
}

/// What news may go out by SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmsImpact {
    /// Incidents of impact none.
    None,
    /// Minor incidents (and partial outages, degraded performance).
    Minor,
    /// Major incidents (and major outages).
    Major,
    /// Critical incidents.
    Critical,
    /// Maintenance announcements.
    Maintenance,
}

impl SmsImpact {
    /// Every word, as written.
    pub const ALL: [SmsImpact; 5] = [
        SmsImpact::None,
        SmsImpact::Minor,
        SmsImpact::Major,
        SmsImpact::Critical,
        SmsImpact::Maintenance,
    ];

    /// The word, e.g. `major`.
    pub fn as_str(self) -> &'static str {
        match self {
            SmsImpact::None => "none",
            SmsImpact::Minor => "minor",
            SmsImpact::Major => "major",
            SmsImpact::Critical => "critical",
            SmsImpact::Maintenance => "maintenance",
        }
    }

    /// The word for an incident impact.
    pub fn of(impact: Impact) -> SmsImpact {
        match impact {
            Impact::None => SmsImpact::None,
            Impact::Minor => SmsImpact::Minor,
            Impact::Major => SmsImpact::Major,
            Impact::Critical => SmsImpact::Critical,
        }
    }
}

/// The validated `[notifications]` of a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notifications {
    /// Batching window, in milliseconds (0: none).
    pub window_ms: u64,
    /// Whether component status changes notify.
    pub component_status: bool,
    /// What may go out by SMS.
    pub sms_impacts: Vec<SmsImpact>,
    /// Time between changelog digests, in milliseconds.
    pub digest_every_ms: u64,
}

/// Default batching window: 15 minutes.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Default digest period: a week.
pub const DEFAULT_DIGEST_EVERY: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest batching window accepted.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

impl Default for Notifications {
    fn default() -> Self {
        Self {
            window_ms: DEFAULT_WINDOW.as_millis() as u64,
            component_status: false,
            sms_impacts: vec![SmsImpact::Major, SmsImpact::Critical],
            digest_every_ms: DEFAULT_DIGEST_EVERY.as_millis() as u64,
        }
    }
}

impl Notifications {
    /// Whether news of `impact` may go out by SMS.
    pub fn sms_allows(&self, impact: SmsImpact) -> bool {
        self.sms_impacts.contains(&impact)
    }
}

/// Checks `[notifications]` and returns it with the defaults filled in.
pub(super) fn validate(errors: &mut Errors, raw: &RawNotifications) -> Notifications {
    let mut notifications = Notifications::default();
    if let Some(text) = &raw.window {
        match humantime::parse_duration(text) {
            Ok(window) if window <= MAX_WINDOW => {
                notifications.window_ms = window.as_millis() as u64
            }
            Ok(_) => errors.add(
                "notifications.window",
                format!("must be at most 24h, got {text}"),
            ),
            Err(e) => errors.add(
                "notifications.window",
                format!("{text:?} is not a duration (e.g. \"15m\"): {e}"),
            ),
        }
    }
    if let Some(on) = raw.component_status {
        notifications.component_status = on;
    }
    if let Some(words) = &raw.sms_impacts {
        let mut impacts = Vec::new();
        for (i, word) in words.iter().enumerate() {
            match SmsImpact::ALL.into_iter().find(|w| w.as_str() == word) {
                Some(impact) if !impacts.contains(&impact) => impacts.push(impact),
                Some(_) => errors.add(
                    format!("notifications.sms_impacts[{i}]"),
                    format!("{word:?} is named twice"),
                ),
                None => errors.add(
                    format!("notifications.sms_impacts[{i}]"),
                    format!(
                        "{word:?} is not one of {}",
                        SmsImpact::ALL.map(SmsImpact::as_str).join(", ")
                    ),
                ),
            }
        }
        notifications.sms_impacts = impacts;
    }
    if let Some(text) = &raw.digest_every {
        match humantime::parse_duration(text) {
            Ok(every) if every >= Duration::from_secs(1) => {
                notifications.digest_every_ms = every.as_millis() as u64
            }
            Ok(_) => errors.add("notifications.digest_every", "must be at least 1s"),
            Err(e) => errors.add(
                "notifications.digest_every",
                format!("{text:?} is not a duration (e.g. \"7d\"): {e}"),
            ),
        }
    }
    notifications
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_every_error() {
        let mut errors = Errors::default();
        assert_eq!(
            validate(&mut errors, &RawNotifications::default()),
            Notifications::default()
        );
        assert!(errors.0.is_empty());

        let raw = RawNotifications {
            window: Some("2 days".into()),
            component_status: Some(true),
            sms_impacts: Some(vec!["major".into(), "huge".into(), "major".into()]),
            digest_every: Some("soon".into()),
        };
        let mut errors = Errors::default();
        let got = validate(&mut errors, &raw);
        let locations: Vec<&str> = errors.0.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(
            locations,
            [
                "notifications.window",
                "notifications.sms_impacts[1]",
                "notifications.sms_impacts[2]",
                "notifications.digest_every"
            ]
        );
        assert!(got.component_status);
        assert_eq!(got.sms_impacts, [SmsImpact::Major]);

        let mut errors = Errors::default();
        let zero = validate(
            &mut errors,
            &RawNotifications {
                window: Some("0s".into()),
                ..RawNotifications::default()
            },
        );
        assert!(errors.0.is_empty());
        assert_eq!(zero.window_ms, 0);
    }
}
