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

/// Every probe result: `beacon.health.>`.
pub const ALL_HEALTH: &str = "beacon.health.>";
/// The stream a region writes to in its own JetStream domain while it is
/// cut off from the others: `REGIONAL_{region}` (see ARCHITECTURE.md,
/// "Regions"). The global INCIDENTS, MAINTENANCE and CHANGELOG streams
/// source it.
pub fn regional_stream(region: &str) -> String {
    format!("REGIONAL_{region}")
}

/// What a region writes to its regional stream, by kind (`incident`,
/// `maintenance`, `changelog`): `beacon.regional.{region}.{kind}.>`. Sourced into the
/// global stream as `beacon.{kind}.>`.
pub fn regional_filter(region: &str, kind: &str) -> String {
    format!("{SUBJECT_ROOT}.regional.{region}.{kind}.>")
}

/// The regional subject of one incident, maintenance window or changelog
/// entry:
/// `beacon.regional.{region}.{kind}.{page}.{id}`, which becomes
/// `beacon.{kind}.{page}.{id}` in the global stream.
pub fn regional_subject(region: &str, kind: &str, page: &str, id: &str) -> String {
    format!("{SUBJECT_ROOT}.regional.{region}.{kind}.{page}.{id}")
}

/// The kinds of event a region may write while cut off, each with its
/// global stream.
pub const REGIONAL_KINDS: [(&str, &str); 3] = [
    ("incident", STREAM_INCIDENTS),
    ("maintenance", STREAM_MAINTENANCE),
    ("changelog", STREAM_CHANGELOG),
];

/// Every incident event: `beacon.incident.>`.
pub const ALL_INCIDENTS: &str = "beacon.incident.>";
/// Every maintenance event: `beacon.maintenance.>`.
pub const ALL_MAINTENANCE: &str = "beacon.maintenance.>";
/// Every changelog event: `beacon.changelog.>`.
pub const ALL_CHANGELOG: &str = "beacon.changelog.>";
/// Every status change: `beacon.status.>`.
pub const ALL_STATUS: &str = "beacon.status.>";
/// Every delivery receipt: `beacon.delivery.>`.
pub const ALL_DELIVERIES: &str = "beacon.delivery.>";
/// Every probe region's heartbeat: `beacon.probe.*.heartbeat`.
pub const ALL_PROBE_HEARTBEATS: &str = "beacon.probe.*.heartbeat";
/// Every verdict on a probe region: `beacon.probe.*.verdict`.
pub const ALL_PROBE_VERDICTS: &str = "beacon.probe.*.verdict";

/// Every probe result of one page: `beacon.health.{page}.>`.
pub fn page_health_filter(page: &str) -> String {
    format!("{SUBJECT_ROOT}.health.{page}.>")
}

/// Every changelog event of one page: `beacon.changelog.{page}.>`.
pub fn page_changelog_filter(page: &str) -> String {
    format!("{SUBJECT_ROOT}.changelog.{page}.>")
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

/// Request/reply subjects served by the owner of each entity (NATS micro
/// services): the group, and the two subjects whose typed endpoints live
/// with the page config.
pub mod api {
    /// Service group every endpoint lives under. The endpoints themselves
    /// are declared with their types in [`crate::api`] (and the page
    /// config's in `beacon_page::config::api`).
    pub const GROUP: &str = "beacon.api";
    /// The page config's `config.apply`, typed in `beacon_page::config::api`.
    pub const CONFIG_APPLY: &str = "beacon.api.config.apply";
    /// The page config's `config.get`, typed in `beacon_page::config::api`.
    pub const CONFIG_GET: &str = "beacon.api.config.get";
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
