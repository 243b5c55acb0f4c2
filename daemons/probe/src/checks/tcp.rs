//! TCP checks: a connect succeeds or it does not.

use std::time::Instant;

use super::CheckOutput;

/// Runs one TCP check (the caller bounds it with the timeout).
pub async fn check(address: &str, started: Instant) -> CheckOutput {
    match tokio::net::TcpStream::connect(address).await {
        Ok(_) => CheckOutput::up(started),
        Err(e) => CheckOutput::down(started, format!("connect failed: {e}")),
    }
}
