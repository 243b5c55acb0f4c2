//! Names of every stream, subject, KV bucket and object store on the bus.
//!
//! This module is the single source of truth for the bus contract: daemons
//! never spell a subject by hand. `schemas/` and ARCHITECTURE.md describe the
//! same table.

use std::time::Duration;

/// Prefix shared by every Beacon subject.
pub const SUBJECT_ROOT: &str = "beacon";

/// Probe results stream.
pub const STREAM_HEALTH: &str = "HEALTH";
/// Status-change events stream.
pub const STREAM_STATUS: &str = "STATUS";
/// Incident events stream.
pub const STREAM_INCIDENTS: &str = "INCIDENTS";
/// Maintenance events stream.
pub const STREAM_MAINTENANCE: &str = "MAINTENANCE";
/// Changelog events stream.
pub const STREAM_CHANGELOG: &str = "CHANGELOG";
/// Work queue of notification delivery batches.
pub const STREAM_NOTIFY: &str = "NOTIFY";
/// Delivery receipts.
pub const STREAM_DELIVERIES: &str = "DELIVERIES";
/// Poison messages that a consumer terminated, kept for inspection and replay.
pub const STREAM_DEADLETTER: &str = "DEADLETTER";
/// Probe heartbeats and the decider's verdicts on probe regions.
pub const STREAM_PROBES: &str = "PROBES";

/// KV bucket with the current status of every component.
pub const KV_STATUS: &str = "status";
/// KV bucket with the validated config of every page.
pub const KV_CONFIG: &str = "config";
/// KV bucket with subscribers.
pub const KV_SUBSCRIBERS: &str = "subscribers";
/// KV bucket with daily uptime rollups.
pub const KV_UPTIME: &str = "uptime";
/// KV bucket with the leases of singleton roles: `{role}.{partition}`.
pub const KV_LEASES: &str = "leases";
/// KV bucket with durable timers: `{owner}.{timer}`.
pub const KV_TIMERS: &str = "timers";
/// KV bucket with operators' status overrides: `{page}.{component}`.
pub const KV_OVERRIDES: &str = "overrides";
/// KV bucket with the HTTP API's keys (hashed): `{id}`.
pub const KV_APIKEYS: &str = "apikeys";
/// KV bucket with the notifier planner's threads: `{page}.{thread}`.
pub const KV_NOTICES: &str = "notices";
/// KV bucket with what became of each delivery batch: `{batch event id}`.
pub const KV_LEDGER: &str = "ledger";
/// KV bucket with suppressed addresses (keyed hashes): `{page}.{hash}`.
pub const KV_SUPPRESSIONS: &str = "suppressions";
/// Object store with rendered pages.
pub const OBJECT_PAGES: &str = "pages";

/// How long the server remembers `Nats-Msg-Id`s to drop duplicate publishes.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(2 * 60);

/// Why a subject token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is empty.
    #[error("must not be empty")]
    Empty,
    /// The token is longer than [`MAX_TOKEN_LEN`].
    #[error("must be at most {MAX_TOKEN_LEN} characters")]
    TooLong,
    /// The token contains a character outside `[a-z0-9_-]`.
    #[error("may contain only lowercase letters, digits, '-' and '_' (found {0:?})")]
    BadChar(char),
}

/// Longest identifier accepted as a subject token.
pub const MAX_TOKEN_LEN: usize = 64;

/// Checks that `token` is safe to use as one subject token and as a KV key part.
///
/// Page, component, region and check identifiers end up inside subjects
/// (`beacon.health.{page}.{component}.{region}`), so `.`, `*`, `>` and
/// whitespace would change the meaning of a subject. A small lowercase
/// alphabet also keeps them safe in file names and URLs.
pub fn check_token(token: &str) -> Result<(), TokenError> {
    if token.is_empty() {
        return Err(TokenError::Empty);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong);
    }
    match token
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        Some(c) => Err(TokenError::BadChar(c)),
        None => Ok(()),
    }
}

/// Subject of a probe result: `beacon.health.{page}.{component}.{region}`.
pub fn health_subject(page: &str, component: &str, region: &str) -> String {
    format!("{SUBJECT_ROOT}.health.{page}.{component}.{region}")
}

/// Subject of a status change: `beacon.status.{page}.{component}`.
pub fn status_subject(page: &str, component: &str) -> String {
    format!("{SUBJECT_ROOT}.status.{page}.{component}")
}

/// Subject of an incident event: `beacon.incident.{page}.{incident}`.
pub fn incident_subject(page: &str, incident: &str) -> String {
    format!("{SUBJECT_ROOT}.incident.{page}.{incident}")
}

/// Subject of a maintenance event: `beacon.maintenance.{page}.{id}`.
pub fn maintenance_subject(page: &str, id: &str) -> String {
    format!("{SUBJECT_ROOT}.maintenance.{page}.{id}")
}

/// Subject of a changelog event: `beacon.changelog.{page}.{entry}`.
pub fn changelog_subject(page: &str, entry: &str) -> String {
    format!("{SUBJECT_ROOT}.changelog.{page}.{entry}")
}

/// Subject of a probe's heartbeat: `beacon.probe.{region}.heartbeat`.
pub fn probe_heartbeat_subject(region: &str) -> String {
    format!("{SUBJECT_ROOT}.probe.{region}.heartbeat")
}

/// Subject of the decider's verdict on a probe region:
/// `beacon.probe.{region}.verdict`.
pub fn probe_verdict_subject(region: &str) -> String {
    format!("{SUBJECT_ROOT}.probe.{region}.verdict")
}

/// Subject of a delivery batch for one channel kind and lane:
/// `beacon.notify.{channel}.{lane}`.
pub fn notify_subject(channel: &str, lane: &str) -> String {
    format!("{SUBJECT_ROOT}.notify.{channel}.{lane}")
}

/// Subject of a delivery receipt: `beacon.delivery.{channel}.{outcome}`.
pub fn delivery_subject(channel: &str, outcome: &str) -> String {
    format!("{SUBJECT_ROOT}.delivery.{channel}.{outcome}")
}

/// Subject a dead letter is kept under: `beacon.deadletter.{stream}.{consumer}`.
pub fn deadletter_subject(stream: &str, consumer: &str) -> String {
    format!(
        "{SUBJECT_ROOT}.deadletter.{}.{}",
        stream.to_ascii_lowercase(),
        consumer
    )
}

/// KV key of one component in the `status` bucket: `{page}.{component}`.
pub fn status_key(page: &str, component: &str) -> String {
    format!("{page}.{component}")
}

/// Splits a `{page}.{component}` key back into its parts.
pub fn split_component_key(key: &str) -> Option<(&str, &str)> {
    let (page, component) = key.split_once('.')?;
    if check_token(page).is_err() || check_token(component).is_err() {
        return None;
    }
    Some((page, component))
}

/// Request/reply subjects served by the owner of each entity (NATS micro services).
pub mod api {
    /// Service group every endpoint lives under.
    pub const GROUP: &str = "beacon.api";
    /// Decider: validate and store a page config.
    pub const CONFIG_APPLY: &str = "beacon.api.config.apply";
    /// Decider: read back a stored page config.
    pub const CONFIG_GET: &str = "beacon.api.config.get";
    /// Decider: override a component's status.
    pub const COMPONENT_SET: &str = "beacon.api.component.set";
    /// Decider: clear a component's override.
    pub const COMPONENT_CLEAR: &str = "beacon.api.component.clear";
    /// Decider: a component's status, evidence and what holds it.
    pub const COMPONENT_EXPLAIN: &str = "beacon.api.component.explain";
    /// Decider: every component of a page with its status.
    pub const COMPONENT_LIST: &str = "beacon.api.component.list";
    /// Decider: incidents of a page.
    pub const INCIDENT_LIST: &str = "beacon.api.incident.list";
    /// Decider: one incident with its timeline.
    pub const INCIDENT_SHOW: &str = "beacon.api.incident.show";
    /// Decider: open an incident.
    pub const INCIDENT_CREATE: &str = "beacon.api.incident.create";
    /// Decider: add an update to an incident's timeline.
    pub const INCIDENT_UPDATE: &str = "beacon.api.incident.update";
    /// Decider: correct an incident's title, impact or components (no
    /// timeline entry).
    pub const INCIDENT_EDIT: &str = "beacon.api.incident.edit";
    /// Decider: resolve an incident.
    pub const INCIDENT_RESOLVE: &str = "beacon.api.incident.resolve";
    /// Decider: confirm a proposed incident.
    pub const INCIDENT_CONFIRM: &str = "beacon.api.incident.confirm";
    /// Decider: dismiss a proposed incident.
    pub const INCIDENT_DISMISS: &str = "beacon.api.incident.dismiss";
    /// Decider: publish a resolved incident's postmortem.
    pub const INCIDENT_POSTMORTEM: &str = "beacon.api.incident.postmortem";
    /// Decider: schedule a maintenance window or series.
    pub const MAINTENANCE_SCHEDULE: &str = "beacon.api.maintenance.schedule";
    /// Decider: start a scheduled window now.
    pub const MAINTENANCE_START: &str = "beacon.api.maintenance.start";
    /// Decider: move a running window to verifying.
    pub const MAINTENANCE_VERIFY: &str = "beacon.api.maintenance.verify";
    /// Decider: complete a window now.
    pub const MAINTENANCE_COMPLETE: &str = "beacon.api.maintenance.complete";
    /// Decider: cancel a window or series.
    pub const MAINTENANCE_CANCEL: &str = "beacon.api.maintenance.cancel";
    /// Decider: maintenance windows of a page.
    pub const MAINTENANCE_LIST: &str = "beacon.api.maintenance.list";
    /// API daemon: create an HTTP API key (shown once).
    pub const APIKEY_CREATE: &str = "beacon.api.apikey.create";
    /// API daemon: list HTTP API keys (never their secrets).
    pub const APIKEY_LIST: &str = "beacon.api.apikey.list";
    /// API daemon: revoke an HTTP API key.
    pub const APIKEY_REVOKE: &str = "beacon.api.apikey.revoke";
    /// Recorder: a page's SLA report for a month or a year.
    pub const SLA_REPORT: &str = "beacon.api.sla.report";
    /// Notifier: subscribe (operators, and public sign-up with double opt-in).
    pub const SUBSCRIBER_ADD: &str = "beacon.api.subscriber.add";
    /// Notifier: subscribe many at once (CSV import).
    pub const SUBSCRIBER_IMPORT: &str = "beacon.api.subscriber.import";
    /// Notifier: a page's subscribers, in slices.
    pub const SUBSCRIBER_LIST: &str = "beacon.api.subscriber.list";
    /// Notifier: one subscriber.
    pub const SUBSCRIBER_SHOW: &str = "beacon.api.subscriber.show";
    /// Notifier: remove a subscriber (operators).
    pub const SUBSCRIBER_REMOVE: &str = "beacon.api.subscriber.remove";
    /// Notifier: follow a double opt-in link.
    pub const SUBSCRIBER_CONFIRM: &str = "beacon.api.subscriber.confirm";
    /// Notifier: follow a signed unsubscribe link.
    pub const SUBSCRIBER_UNSUBSCRIBE: &str = "beacon.api.subscriber.unsubscribe";
    /// Notifier: erase every trace of an address (GDPR).
    pub const SUBSCRIBER_ERASE: &str = "beacon.api.subscriber.erase";
    /// Notifier: an inbound SMS (STOP, START) as the provider's webhook posted it.
    pub const SUBSCRIBER_SMS_INBOUND: &str = "beacon.api.subscriber.sms_inbound";
    /// Publisher: publish a changelog entry.
    pub const CHANGELOG_PUBLISH: &str = "beacon.api.changelog.publish";
    /// Publisher: change a changelog entry.
    pub const CHANGELOG_EDIT: &str = "beacon.api.changelog.edit";
    /// Publisher: withdraw a changelog entry.
    pub const CHANGELOG_DELETE: &str = "beacon.api.changelog.delete";
    /// Publisher: a page's changelog entries.
    pub const CHANGELOG_LIST: &str = "beacon.api.changelog.list";
}

/// The partition of `key` (e.g. a page id) among `partitions`: FNV-1a over
/// its bytes, modulo the count. Stable across processes, builds and
/// platforms, which `std`'s randomly seeded hasher is not.
pub fn partition_of(key: &str, partitions: u32) -> u32 {
    (fnv1a(key.as_bytes()) % u64::from(partitions.max(1))) as u32
}

/// The 64-bit FNV-1a hash of `bytes`: tiny, stable and well spread for
/// short keys.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked() {
        let table: &[(&str, Result<(), TokenError>)] = &[
            ("api", Ok(())),
            ("eu-west_1", Ok(())),
            ("", Err(TokenError::Empty)),
            ("a.b", Err(TokenError::BadChar('.'))),
            ("a*", Err(TokenError::BadChar('*'))),
            ("a>", Err(TokenError::BadChar('>'))),
            ("A", Err(TokenError::BadChar('A'))),
            ("a b", Err(TokenError::BadChar(' '))),
        ];
        for (token, want) in table {
            assert_eq!(&check_token(token), want, "token {token:?}");
        }
        assert_eq!(check_token(&"a".repeat(65)), Err(TokenError::TooLong));
    }

    #[test]
    fn subjects_follow_the_contract() {
        assert_eq!(health_subject("p", "c", "r"), "beacon.health.p.c.r");
        assert_eq!(status_subject("p", "c"), "beacon.status.p.c");
        assert_eq!(
            deadletter_subject("HEALTH", "decider"),
            "beacon.deadletter.health.decider"
        );
        assert_eq!(split_component_key("p.c"), Some(("p", "c")));
        assert_eq!(split_component_key("p"), None);
        assert_eq!(split_component_key("p.c.d"), None);
    }
}
