//! Bodies of every message and KV value in the design.
//!
//! Each body implements [`Message`](crate::event::Message) with a stable kind and a version, and
//! travels inside an [`Envelope`](crate::event::Envelope). Times inside bodies
//! are milliseconds since the Unix epoch (`*_ms`), because 18.16-era
//! ClickHouse, JSON readers and shells all agree on integers.
//!
//! What only one daemon reads or writes stays with that daemon: the
//! notifier's KV `notices`, `ledger` and `suppressions` records
//! (`beacon_notifier::records`), the api daemon's KV `apikeys` record
//! (`beacon_api::keys`). One module per stream or bucket, all re-exported
//! here:
//!
//! - `status`: the status vocabulary, `STATUS` changes with their evidence,
//!   KV `status` records and KV `overrides`.
//! - `health`: `HEALTH` probe results.
//! - `incident`, `maintenance`: `INCIDENTS` and `MAINTENANCE` events.
//! - `probes`: `PROBES` heartbeats and verdicts.
//! - `changelog`: `CHANGELOG` entries.
//! - `subscribers`: KV `subscribers`.
//! - `deliveries`: notices, `NOTIFY` batches and `DELIVERIES` receipts.
//! - `uptime`: KV `uptime` rollups.

mod changelog;
mod deliveries;
mod health;
mod incident;
mod maintenance;
mod probes;
mod status;
mod subscribers;
mod uptime;

pub use changelog::*;
pub use deliveries::*;
pub use health::*;
pub use incident::*;
pub use maintenance::*;
pub use probes::*;
pub use status::*;
pub use subscribers::*;
pub use uptime::*;

#[cfg(test)]
mod tests {
    use super::*;

    /// Labels and ClickHouse values use `as_str`; they must equal the wire names.
    #[test]
    fn as_str_matches_the_serde_names() {
        let wire = |value: &dyn erased::Wire| value.json();
        for kind in CheckKind::ALL {
            assert_eq!(wire(&kind), format!("\"{}\"", kind.as_str()));
        }
        for kind in [ErrorKind::Timeout, ErrorKind::BodyTooLarge, ErrorKind::Late] {
            assert_eq!(wire(&kind), format!("\"{}\"", kind.as_str()));
        }
        for outcome in Outcome::ALL {
            assert_eq!(wire(&outcome), format!("\"{}\"", outcome.as_str()));
        }
        for status in ComponentStatus::ALL {
            assert_eq!(wire(&status), format!("\"{}\"", status.as_str()));
        }
        for channel in [
            ChannelKind::Email,
            ChannelKind::Sms,
            ChannelKind::Webhook,
            ChannelKind::Slack,
            ChannelKind::Teams,
        ] {
            assert_eq!(wire(&channel), format!("\"{}\"", channel.as_str()));
        }
    }

    mod erased {
        pub trait Wire {
            fn json(&self) -> String;
        }
        impl<T: serde::Serialize> Wire for T {
            fn json(&self) -> String {
                serde_json::to_string(self).unwrap_or_default()
            }
        }
    }
}
