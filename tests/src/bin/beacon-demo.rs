//! `beacon-demo`: the whole stack on one machine, for people to look at.
//!
//! Starts a real nats-server and clickhouse-server (data under
//! `.beacon/demo/`), three demo targets on the ports `examples/demo.toml`
//! checks, every Beacon daemon as its own process (two probe regions),
//! applies the demo config with `beaconctl`, and prints the page URL. The
//! website target goes down for a while every few minutes so the page has
//! something to show. Ctrl-C stops everything: daemons get SIGTERM and
//! shut down cleanly, then the servers are stopped.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use beacon_testkit::daemon::binary;
use beacon_testkit::{ClickHouseServer, DaemonProcess, NatsServer};
use beacon_tests::HttpTarget;

/// Ports of the demo targets, as in `examples/demo.toml`.
const API_PORT: u16 = 18081;
const WEB_PORT: u16 = 18082;
const DB_PORT: u16 = 18083;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let edge_port: u16 = std::env::var("BEACON_DEMO_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let root = workspace_root();
    let state = root.join(".beacon/demo");
    let origin = state.join("origin");
    if let Err(e) = std::fs::create_dir_all(&origin) {
        eprintln!("beacon-demo: cannot create {}: {e}", origin.display());
        return std::process::ExitCode::from(1);
    }

    eprintln!("Starting nats-server and clickhouse-server...");
    let nats = NatsServer::start();
    let clickhouse = ClickHouseServer::start();

    let mut targets = Vec::new();
    for port in [API_PORT, WEB_PORT, DB_PORT] {
        match HttpTarget::start_on(port).await {
            Ok(target) => targets.push(target),
            Err(e) => {
                eprintln!("beacon-demo: cannot start the demo target on port {port}: {e}");
                return std::process::ExitCode::from(1);
            }
        }
    }

    let nats_args = || vec!["--nats-url".to_owned(), nats.url()];
    let with = |mut base: Vec<String>, extra: &[String]| {
        base.extend_from_slice(extra);
        base
    };
    let s = |v: &str| v.to_owned();
    eprintln!("Starting Beacon daemons...");
    let mut daemons = vec![
        DaemonProcess::spawn_with_admin("beacon-decider", nats_args()),
        DaemonProcess::spawn_with_admin(
            "beacon-probe",
            with(nats_args(), &[s("--region"), s("eu")]),
        ),
        DaemonProcess::spawn_with_admin(
            "beacon-probe",
            with(nats_args(), &[s("--region"), s("us")]),
        ),
        DaemonProcess::spawn_with_admin(
            "beacon-recorder",
            with(nats_args(), &[s("--clickhouse-url"), clickhouse.http_url()]),
        ),
        DaemonProcess::spawn_with_admin("beacon-notifier", nats_args()),
        DaemonProcess::spawn_with_admin(
            "beacon-publisher",
            with(nats_args(), &[s("--origin"), origin.display().to_string()]),
        ),
        DaemonProcess::spawn_with_admin(
            "beacon-edge",
            vec![
                s("--origin"),
                origin.display().to_string(),
                s("--page"),
                s("demo"),
                s("--listen"),
                format!("127.0.0.1:{edge_port}"),
            ],
        ),
    ];
    for daemon in &daemons {
        daemon.wait_ready(Duration::from_secs(60)).await;
    }

    let config = root.join("examples/demo.toml");
    let applied = Command::new(binary("beaconctl"))
        .args(["--nats-url", &nats.url(), "apply", "-f"])
        .arg(&config)
        .status();
    match applied {
        Ok(status) if status.success() => {}
        other => {
            eprintln!("beacon-demo: beaconctl apply failed: {other:?}");
            return std::process::ExitCode::from(1);
        }
    }

    println!();
    println!("Beacon demo is running.");
    println!("  Status page:   http://127.0.0.1:{edge_port}/");
    println!("  Summary JSON:  http://127.0.0.1:{edge_port}/api/v2/summary.json");
    println!("  NATS:          {}", nats.url());
    println!("  ClickHouse:    {}", clickhouse.http_url());
    for daemon in &daemons {
        println!(
            "  {:<17} admin {}/metrics",
            daemon.name(),
            daemon.admin_url()
        );
    }
    println!(
        "  Try: target/debug/beaconctl --nats-url {} status",
        nats.url()
    );
    println!("The website goes down for 40s every 2 minutes. Ctrl-C stops everything.");

    let mut ticker = tokio::time::interval(Duration::from_secs(20));
    let mut tick = 0u32;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = ticker.tick() => {
                tick += 1;
                // Six ticks make the two-minute cycle; down on ticks 4 and 5.
                let web = &mut targets[1];
                match tick % 6 {
                    4 if web.is_up() => { web.down(); eprintln!("Demo: website target is now DOWN."); }
                    0 if !web.is_up() => { web.up().await; eprintln!("Demo: website target is back UP."); }
                    _ => {}
                }
            }
        }
    }

    eprintln!("Stopping...");
    for daemon in daemons.iter_mut().rev() {
        let status = daemon.terminate();
        eprintln!("  {} exited: {status}", daemon.name());
    }
    drop(daemons);
    drop(clickhouse);
    drop(nats);
    eprintln!("Stopped.");
    std::process::ExitCode::SUCCESS
}
