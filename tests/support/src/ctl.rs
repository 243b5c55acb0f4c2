//! The one way tests run `beaconctl`: against a NATS URL, as actor
//! `tester`, with a bus timeout of 10 s and the whole run bounded.

use std::process::Output;
use std::time::Duration;

/// How long `beaconctl` may wait for an owner's answer (`--timeout`).
pub const BUS_TIMEOUT: &str = "10s";
/// How long one run may take before the test fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `beaconctl --nats-url {nats_url} --timeout 10s ARGS`.
///
/// # Panics
///
/// Panics when the binary cannot be started or takes longer than
/// [`RUN_TIMEOUT`].
pub async fn run(nats_url: &str, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(crate::daemon::binary("beaconctl"));
    command
        .arg("--nats-url")
        .arg(nats_url)
        .arg("--timeout")
        .arg(BUS_TIMEOUT)
        .args(args)
        .env("BEACON_ACTOR", "tester");
    tokio::time::timeout(RUN_TIMEOUT, command.output())
        .await
        .expect("beaconctl finishes")
        .expect("run beaconctl")
}

/// Its standard output, after checking it succeeded.
///
/// # Panics
///
/// Panics with `what`, the exit code and standard error when it failed.
pub fn stdout_of_success(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({:?}): {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
