//! Check kinds: one module each, dispatched by one exhaustive `match` in
//! [`run`]. Push checks are not run on a schedule; their module turns a
//! pushed payload into a verdict, and [`crate::ingest`] serves them.
//!
//! Every run ends in a [`CheckOutput`]: up, degraded or down, a typed
//! [`ErrorKind`], the condition that failed, where the time went and what
//! was observed. [`judge`] applies a check's conditions the same way for
//! every kind.

pub mod dns;
pub mod http;
pub mod icmp;
pub mod push;
pub mod tcp;

use std::time::{Duration, Instant};

use beacon_contract::messages::{ErrorKind, Observed, Outcome, Timings};
use beacon_page::config::condition::{Condition, Observation};
use beacon_page::config::CheckTarget;

/// What one run of a check found.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutput {
    /// Up, degraded or down.
    pub outcome: Outcome,
    /// Time taken.
    pub latency: Duration,
    /// Why it failed (or is degraded), for people.
    pub error: Option<String>,
    /// Why it failed, as a code.
    pub error_kind: Option<ErrorKind>,
    /// The condition that failed, as written.
    pub failed_condition: Option<String>,
    /// Where the time went.
    pub timings: Option<Timings>,
    /// What was observed.
    pub observed: Observed,
}

impl CheckOutput {
    /// A passing run.
    pub fn up(started: Instant) -> Self {
        Self {
            outcome: Outcome::Up,
            latency: started.elapsed(),
            error: None,
            error_kind: None,
            failed_condition: None,
            timings: None,
            observed: Observed::default(),
        }
    }

    /// A failed run of `kind`.
    pub fn down(started: Instant, kind: ErrorKind, error: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Down,
            error: Some(error.into()),
            error_kind: Some(kind),
            ..Self::up(started)
        }
    }

    /// Sets the outcome from a [`Verdict`].
    fn with_verdict(mut self, verdict: Verdict) -> Self {
        match verdict {
            Verdict::Up => {}
            Verdict::Degraded { condition, seen } => {
                self.outcome = Outcome::Degraded;
                self.error = Some(format!("degraded: {condition} ({seen})"));
                self.error_kind = Some(ErrorKind::Condition);
                self.failed_condition = Some(condition);
            }
            Verdict::Failed { condition, seen } => {
                self.outcome = Outcome::Down;
                self.error = Some(seen);
                self.error_kind = Some(ErrorKind::Condition);
                self.failed_condition = Some(condition);
            }
        }
        self
    }
}

/// What a check's conditions say about one observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every condition holds, no degrading one does.
    Up,
    /// Every condition holds, but `condition` of `degraded_if` does too.
    Degraded {
        /// The degrading condition as written.
        condition: String,
        /// What was seen.
        seen: String,
    },
    /// `condition` does not hold.
    Failed {
        /// The condition as written.
        condition: String,
        /// What was seen instead.
        seen: String,
    },
}

/// Applies `conditions` (all must hold, first failure wins) and then
/// `degraded_if` (any holding one degrades) to `seen`. Pure.
pub fn judge(
    conditions: &[Condition],
    degraded_if: &[Condition],
    seen: &Observation<'_>,
) -> Verdict {
    for condition in conditions {
        if let Err(seen) = condition.evaluate(seen) {
            return Verdict::Failed {
                condition: condition.text().to_owned(),
                seen,
            };
        }
    }
    for condition in degraded_if {
        if condition.evaluate(seen).is_ok() {
            return Verdict::Degraded {
                condition: condition.text().to_owned(),
                seen: condition.describe_seen(seen),
            };
        }
    }
    Verdict::Up
}

/// Shared clients the checks use, built once per probe.
#[derive(Clone)]
pub struct Clients {
    /// HTTP connections, pooled per target.
    pub http: http::HttpClient,
    /// ICMP sockets.
    pub icmp: icmp::IcmpClients,
    /// DNS resolvers per nameserver.
    pub dns: dns::Resolvers,
}

impl Clients {
    /// Builds the clients. ICMP sockets are opened on first use, so a host
    /// without ping sockets still runs every other kind.
    pub fn new(http: http::HttpClient) -> Self {
        Self {
            http,
            icmp: icmp::IcmpClients::default(),
            dns: dns::Resolvers::default(),
        }
    }
}

/// Runs one check, bounded by `timeout`. Never panics; every failure is a
/// `Down` output with its kind and reason. A push target has nothing to
/// run and comes back `Down` as a bug would: the scheduler never calls this
/// for one.
pub async fn run(clients: &Clients, target: &CheckTarget, timeout: Duration) -> CheckOutput {
    let started = Instant::now();
    let run = async {
        match target {
            CheckTarget::Http(http) => clients.http.check(http, started).await,
            CheckTarget::Tcp(tcp) => tcp::check(tcp, started).await,
            CheckTarget::Icmp(icmp) => clients.icmp.check(icmp, timeout, started).await,
            CheckTarget::Dns(dns) => clients.dns.check(dns, timeout, started).await,
            CheckTarget::Push(_) => {
                CheckOutput::down(started, ErrorKind::Protocol, "push checks are not polled")
            }
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(output) => output,
        Err(_) => CheckOutput::down(
            started,
            ErrorKind::Timeout,
            format!("timed out after {}", humanize(timeout)),
        ),
    }
}

/// `1.5s`, `300ms`.
pub fn humanize(duration: Duration) -> String {
    if duration.as_millis() < 1000 {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{}s", duration.as_secs_f64())
    }
}

/// Microseconds, saturating.
pub fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// The IO error kind of a failed connect, as an [`ErrorKind`].
pub fn connect_error_kind(error: &std::io::Error) -> ErrorKind {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => ErrorKind::Refused,
        std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Connect,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conditions(texts: &[&str]) -> Vec<Condition> {
        texts
            .iter()
            .map(|t| Condition::parse(t).expect("parses"))
            .collect()
    }

    #[test]
    fn judge_reports_the_first_failing_then_the_first_degrading_condition() {
        let seen = Observation {
            status: Some(200),
            response_time: Some(Duration::from_millis(450)),
            ..Observation::default()
        };
        let table: &[(&[&str], &[&str], Verdict)] = &[
            (&["[STATUS] == 200"], &[], Verdict::Up),
            (
                &["[STATUS] == 200", "[STATUS] == 204", "[STATUS] == 500"],
                &[],
                Verdict::Failed {
                    condition: "[STATUS] == 204".into(),
                    seen: "[STATUS] was 200".into(),
                },
            ),
            (
                &["[STATUS] == 200"],
                &["[RESPONSE_TIME] > 1s", "[RESPONSE_TIME] > 400"],
                Verdict::Degraded {
                    condition: "[RESPONSE_TIME] > 400".into(),
                    seen: "[RESPONSE_TIME] was 450ms".into(),
                },
            ),
            (
                &["[STATUS] == 201"],
                &["[RESPONSE_TIME] > 400"],
                Verdict::Failed {
                    condition: "[STATUS] == 201".into(),
                    seen: "[STATUS] was 200".into(),
                },
            ),
        ];
        for (all, degraded, want) in table {
            assert_eq!(
                &judge(&conditions(all), &conditions(degraded), &seen),
                want,
                "{all:?} {degraded:?}"
            );
        }
    }
}
