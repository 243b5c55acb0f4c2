//! `chaos` end to end, short: the whole stack under a seeded schedule that
//! strikes every kind of fault once, and the checker's verdict. Needs the
//! daemons of the same profile (`cargo build --workspace --bins`).

use std::process::Command;

fn chaos(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_beacon-loadtest"))
        .arg("chaos")
        .args(args)
        .output()
        .expect("run beacon-loadtest chaos");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_short_seeded_run_strikes_every_fault_kind_and_keeps_every_invariant() {
    // Seed 3 over 100 s with faults about 5 s apart draws each of the six
    // kinds at least once (the plan's tests pin the drawing).
    let (code, stdout, stderr) = chaos(&[
        "--seed",
        "3",
        "--duration",
        "100s",
        "--fault-every",
        "5s",
        "--incident-every",
        "30s",
        "--subscribers",
        "1500",
        "--few",
        "100",
        "--settle",
        "180s",
    ]);
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("a JSON report ({e}): {stdout}\n{stderr}"));
    let broken: Vec<&serde_json::Value> = report["invariants"]
        .as_array()
        .expect("invariants")
        .iter()
        .filter(|v| v["held"] != true)
        .collect();
    assert!(broken.is_empty(), "broken: {broken:#?}\n{stderr}");
    assert_eq!(code, Some(0), "{stderr}");
    for (kind, count) in report["faults"].as_object().expect("faults") {
        assert!(
            count.as_u64() >= Some(1),
            "no {kind} fault struck: {report}"
        );
    }
    let workload = &report["workload"];
    assert!(workload["fan_outs"].as_u64() >= Some(1), "{report}");
    assert!(
        workload["deliveries_due"].as_u64() >= Some(1500),
        "{report}"
    );
    assert_eq!(workload["deliveries_due"], workload["deliveries_received"]);
    // Every invariant was checked against something.
    for verdict in report["invariants"].as_array().expect("invariants") {
        assert!(verdict["checked"].as_u64() >= Some(1), "{verdict}");
    }
}

#[test]
fn a_schedule_that_cannot_run_is_refused_with_exit_64_and_every_reason() {
    let (code, stdout, stderr) = chaos(&[
        "--seed",
        "x",
        "--duration",
        "20s",
        "--faults",
        "kill,meteor",
    ]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("--seed \"x\""), "{stderr}");
    assert!(stderr.contains("too short for one fault"), "{stderr}");
    assert!(stderr.contains("unknown fault kind \"meteor\""), "{stderr}");
}
