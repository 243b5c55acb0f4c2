//! Check kinds: one module each, dispatched by one exhaustive `match`.

pub mod http;
pub mod tcp;

use std::time::{Duration, Instant};

use beacon_core::config::CheckTarget;
use beacon_core::messages::{CheckKind, Outcome};

/// What one run of a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutput {
    /// Up or down.
    pub outcome: Outcome,
    /// Time taken.
    pub latency: Duration,
    /// HTTP status, when there was a response.
    pub http_status: Option<u16>,
    /// Why it failed.
    pub error: Option<String>,
}

impl CheckOutput {
    fn up(started: Instant) -> Self {
        Self {
            outcome: Outcome::Up,
            latency: started.elapsed(),
            http_status: None,
            error: None,
        }
    }

    fn down(started: Instant, error: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Down,
            latency: started.elapsed(),
            http_status: None,
            error: Some(error.into()),
        }
    }
}

/// Shared clients the checks use, built once per probe.
#[derive(Debug, Clone)]
pub struct Clients {
    /// HTTP client (connection pooling off: every run measures a fresh connection).
    pub http: reqwest::Client,
}

impl Clients {
    /// Builds the clients.
    pub fn new() -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: http::client()?,
        })
    }
}

/// The kind of a target, as reported in results.
pub fn kind(target: &CheckTarget) -> CheckKind {
    match target {
        CheckTarget::Http { .. } => CheckKind::Http,
        CheckTarget::Tcp { .. } => CheckKind::Tcp,
    }
}

/// Runs one check, bounded by `timeout`. Never panics; every failure is a
/// `Down` output with the reason.
pub async fn run(clients: &Clients, target: &CheckTarget, timeout: Duration) -> CheckOutput {
    let started = Instant::now();
    let run = async {
        match target {
            CheckTarget::Http {
                url,
                method,
                expect_status,
                body_contains,
            } => {
                http::check(
                    &clients.http,
                    url,
                    *method,
                    expect_status,
                    body_contains.as_deref(),
                    started,
                )
                .await
            }
            CheckTarget::Tcp { address } => tcp::check(address, started).await,
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(output) => output,
        Err(_) => CheckOutput::down(started, format!("timed out after {timeout:?}")),
    }
}
