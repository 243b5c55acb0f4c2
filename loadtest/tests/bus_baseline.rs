//! `bus-baseline` end to end on a private nats-server, with small counts.

use std::process::Command;

#[test]
fn prints_one_json_report_with_runs_medians_and_ratios() {
    let output = Command::new(env!("CARGO_BIN_EXE_beacon-loadtest"))
        .args([
            "bus-baseline",
            "--messages",
            "2000",
            "--runs",
            "2",
            "--phase-timeout",
            "60s",
        ])
        .output()
        .expect("run beacon-loadtest");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Deleted stream BASELINE_"), "{stderr}");

    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    assert_eq!(
        stdout.lines().count(),
        1,
        "one JSON object on one line: {stdout}"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["scenario"], "bus-baseline");
    assert_eq!(report["messages"], 2000);
    assert_eq!(report["sync_messages"], 100);
    assert_eq!(report["payload_bytes"], 256);
    assert!(report["nats_server_version"]
        .as_str()
        .is_some_and(|v| !v.is_empty()));
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2);
    for key in [
        "core_publish_msgs_per_s",
        "js_publish_async_msgs_per_s",
        "js_publish_sync_msgs_per_s",
        "js_consume_ack_msgs_per_s",
    ] {
        for run in runs {
            assert!(run[key].as_f64().is_some_and(|r| r > 0.0), "{key} in {run}");
        }
        assert!(
            report["median"][key].as_f64().is_some_and(|r| r > 0.0),
            "median {key}"
        );
    }
    for key in ["js_async_vs_core", "js_sync_vs_core", "consume_vs_js_async"] {
        assert!(
            report["ratios"][key].as_f64().is_some_and(|r| r > 0.0),
            "ratio {key}"
        );
    }
}

#[test]
fn unreachable_nats_exits_69() {
    let port = beacon_testkit::free_port();
    let output = Command::new(env!("CARGO_BIN_EXE_beacon-loadtest"))
        .args([
            "bus-baseline",
            "--nats-url",
            &format!("nats://127.0.0.1:{port}"),
        ])
        .output()
        .expect("run beacon-loadtest");
    assert_eq!(output.status.code(), Some(69));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot connect to NATS"), "{stderr}");
}
