//! Probe results (`HEALTH`): what a check saw and how it went.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::Message;

/// The kind of check that produced a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// HTTP(S) request.
    Http,
    /// TCP connect.
    Tcp,
    /// ICMP echo (ping).
    Icmp,
    /// DNS query.
    Dns,
    /// Pushed to the probe's ingest endpoint (heartbeat, Alertmanager, JSON signal).
    Push,
}

impl CheckKind {
    /// Every kind.
    pub const ALL: [CheckKind; 5] = [
        CheckKind::Http,
        CheckKind::Tcp,
        CheckKind::Icmp,
        CheckKind::Dns,
        CheckKind::Push,
    ];

    /// The wire name, e.g. `http`; also the metric label and ClickHouse value.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Http => "http",
            CheckKind::Tcp => "tcp",
            CheckKind::Icmp => "icmp",
            CheckKind::Dns => "dns",
            CheckKind::Push => "push",
        }
    }
}

/// Why a check run failed, as a code the decider and dashboards can group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The run did not finish within the check's timeout.
    Timeout,
    /// The target refused the connection.
    Refused,
    /// The connection failed otherwise (unreachable, reset, closed early).
    Connect,
    /// The name did not resolve, or a DNS check got NXDOMAIN, SERVFAIL or
    /// other answers than expected.
    Dns,
    /// The TLS handshake failed (invalid, expired or untrusted certificate).
    Tls,
    /// The HTTP status was not an expected one.
    Status,
    /// A condition did not hold; `failed_condition` names it.
    Condition,
    /// The target answered something that is not the protocol (garbage).
    Protocol,
    /// The body was larger than the check's `max_body`.
    BodyTooLarge,
    /// Redirects looped or went on past the check's limit.
    Redirect,
    /// No ICMP echo reply came back.
    Unreachable,
    /// The probe may not do this (ICMP without ping sockets or raw sockets).
    Permission,
    /// A pushed heartbeat did not arrive in time.
    Late,
    /// A pushed Alertmanager alert is firing.
    Alert,
    /// A pushed JSON signal said the component is down or degraded.
    Signal,
}

impl ErrorKind {
    /// The wire name, e.g. `body_too_large`; also a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Refused => "refused",
            ErrorKind::Connect => "connect",
            ErrorKind::Dns => "dns",
            ErrorKind::Tls => "tls",
            ErrorKind::Status => "status",
            ErrorKind::Condition => "condition",
            ErrorKind::Protocol => "protocol",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::Redirect => "redirect",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Permission => "permission",
            ErrorKind::Late => "late",
            ErrorKind::Alert => "alert",
            ErrorKind::Signal => "signal",
        }
    }
}

/// Where the time of one check run went, in microseconds. A phase that did
/// not happen (a reused connection has no connect, plain HTTP no TLS) is
/// absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timings {
    /// Resolving the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_us: Option<u64>,
    /// Opening the TCP connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_us: Option<u64>,
    /// The TLS handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_us: Option<u64>,
    /// From sending the request to the first byte of the response (HTTP
    /// response head, TCP banner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte_us: Option<u64>,
    /// The whole run.
    pub total_us: u64,
}

/// What a check run observed, whether or not its conditions held: what
/// the conditions were evaluated against.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Observed {
    /// HTTP status of the final response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Response time in milliseconds (`[RESPONSE_TIME]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_time_ms: Option<u64>,
    /// When the server's TLS certificate expires (Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_expires_at_ms: Option<u64>,
    /// Body bytes read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_bytes: Option<u64>,
    /// Redirects followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirects: Option<u32>,
    /// ICMP: percent of echo requests without a reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_loss_percent: Option<f64>,
    /// ICMP: average round-trip time of the replies, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_avg_us: Option<u64>,
    /// ICMP: slowest round trip, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_max_us: Option<u64>,
    /// DNS: the response code, e.g. `NOERROR`, `NXDOMAIN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_rcode: Option<String>,
    /// DNS: the answers, as text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_answers: Vec<String>,
}

impl Observed {
    /// Whether nothing was observed.
    pub fn is_empty(&self) -> bool {
        self == &Observed::default()
    }
}

/// Whether one check run passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every condition held.
    Up,
    /// It worked, but slowly or only in part (the probe's own verdict; the
    /// decider also calls a result slow when its latency is over the
    /// check's `degraded_latency`).
    Degraded,
    /// A condition failed, or the target could not be reached.
    Down,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 3] = [Outcome::Up, Outcome::Degraded, Outcome::Down];

    /// The wire name, `up`, `degraded` or `down`; also the metric label and
    /// ClickHouse value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Up => "up",
            Outcome::Degraded => "degraded",
            Outcome::Down => "down",
        }
    }
}

/// One probe result. Subject: `beacon.health.{page}.{component}.{region}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthResult {
    /// Page id.
    pub page: String,
    /// Component id.
    pub component: String,
    /// Check id within the component.
    pub check: String,
    /// Probe region that ran the check.
    pub region: String,
    /// Check kind.
    pub kind: CheckKind,
    /// Up or down.
    pub outcome: Outcome,
    /// When the check started.
    pub started_at_ms: u64,
    /// How long the check took, in milliseconds.
    pub latency_ms: u64,
    /// HTTP status code, for HTTP checks that got a response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Why the check failed, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the check failed, as a code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
    /// The condition that did not hold, as written in the config, when
    /// `error_kind` is `condition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_condition: Option<String>,
    /// Where the time went, for kinds that have phases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
    /// What the run observed (status, response time, certificate expiry…).
    #[serde(default, skip_serializing_if = "Observed::is_empty")]
    pub observed: Observed,
}

impl HealthResult {
    /// A result of an HTTP check with only what names it, its outcome and
    /// its time: no latency, status, error, timings or observations. Tests
    /// and tools set the rest with struct update syntax:
    /// `HealthResult { latency_ms: 42, ..HealthResult::new(…) }`.
    pub fn new(
        page: &str,
        component: &str,
        check: &str,
        region: &str,
        outcome: Outcome,
        started_at_ms: u64,
    ) -> Self {
        Self {
            page: page.to_owned(),
            component: component.to_owned(),
            check: check.to_owned(),
            region: region.to_owned(),
            kind: CheckKind::Http,
            outcome,
            started_at_ms,
            latency_ms: 0,
            http_status: None,
            error: None,
            error_kind: None,
            failed_condition: None,
            timings: None,
            observed: Observed::default(),
        }
    }
}

impl Message for HealthResult {
    const KIND: &'static str = "health_result";
    const VERSION: u32 = 1;
}
