//! `core-bus`, `lease-takeover` and `probe-fleet` end to end on a private nats-server,
//! with small counts: real processes, real `kill -9`.

use std::process::Command;

fn run(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_beacon-loadtest"))
        .args(args)
        .output()
        .expect("run beacon-loadtest");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(&stdout).expect("JSON report")
}

#[test]
fn core_bus_measures_core_against_raw_in_the_same_run() {
    let report = run(&["core-bus", "--messages", "3000", "--runs", "1"]);
    assert_eq!(report["scenario"], "core-bus");
    for key in [
        "raw_publish_async_msgs_per_s",
        "core_publish_pipelined_msgs_per_s",
        "raw_consume_ack_msgs_per_s",
        "core_batch_consume_msgs_per_s",
    ] {
        assert!(
            report["median"][key].as_f64().is_some_and(|v| v > 0.0),
            "median.{key}: {report}"
        );
    }
    assert!(report["ratios"]["pipelined_publish_vs_raw_async"].is_number());
}

#[test]
fn a_killed_lease_holder_is_replaced_within_the_bound() {
    let report = run(&["lease-takeover", "--kills", "2"]);
    assert_eq!(report["scenario"], "lease-takeover");
    let takeovers = report["takeovers_ms"].as_array().expect("takeovers");
    assert_eq!(takeovers.len(), 2, "{report}");
    let max = report["max_ms"].as_u64().expect("max");
    assert!(
        max > 0 && max <= 5_000,
        "takeover after kill -9 took {max} ms: {report}"
    );
}

#[test]
fn probe_fleet_reports_every_phase_with_small_numbers() {
    // Needs the beacon-probe binary of the same profile
    // (`cargo build --workspace --bins`); blackbox_exporter is optional.
    let report = run(&[
        "probe-fleet",
        "--keepalive-rate",
        "200",
        "--new-connection-rate",
        "100",
        "--interval",
        "1s",
        "--warmup",
        "1s",
        "--measure",
        "2s",
        "--memory-checks",
        "2000",
        "--blackbox-workers",
        "4",
    ]);
    assert_eq!(report["scenario"], "probe-fleet");
    for phase in ["keepalive", "new_connection"] {
        let rate = report[phase]["checks_per_s"].as_f64().expect("rate");
        assert!(rate > 50.0, "{phase} ran {rate}/s: {report}");
        assert_eq!(report[phase]["failed"], 0, "{phase}: {report}");
    }
    assert_eq!(report["memory"]["scheduled_checks"], 2000, "{report}");
    assert!(report["memory"]["rss_mib"]
        .as_f64()
        .is_some_and(|m| m > 0.0));
    assert!(report["blackbox"].is_object() || report["blackbox_skipped"].is_string());
}
