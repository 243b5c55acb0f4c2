//! `beacon-demo`: the whole stack on one machine, for people to look at.
//!
//! Starts a real nats-server and clickhouse-server (data under
//! `.beacon/demo/`), three demo targets on the ports `examples/demo.toml`
//! checks, a mail catcher on the port of the demo's email channel, every
//! Beacon daemon as its own process (two probe regions, the HTTP API behind
//! the edge's sign-up paths, the DNS responder), applies the demo config with `beaconctl`, and
//! prints the page URL. The website target goes down for a while every few
//! minutes so the page has something to show; mail the notifier sends
//! (confirmations, incident updates) is printed with its first link.
//! Ctrl-C stops everything: daemons get SIGTERM and shut down cleanly, then
//! the servers are stopped.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use beacon_testkit::daemon::binary;
use beacon_testkit::receivers::smtp::{Mail, SmtpSink};
use beacon_testkit::{free_port, ClickHouseServer, DaemonProcess, NatsServer};
use beacon_tests::HttpTarget;

/// The demo's webhook signing key (a real deployment keeps its own in the
/// notifier's environment).
const DEMO_WEBHOOK_SECRET: &str = "demo-webhook-signing-key-0123456789";
/// Ports of the demo targets, as in `examples/demo.toml`.
const API_PORT: u16 = 18081;
const WEB_PORT: u16 = 18082;
const DB_PORT: u16 = 18083;
/// The host name the demo's DNS responder answers for.
const DEMO_HOST: &str = "status.demo.test";
/// The mail catcher, where `examples/demo.toml`'s email channel sends.
const SMTP_ADDRESS: &str = "127.0.0.1:2525";

/// A random secret for the notifier's signed links, new every run.
fn link_secret() -> String {
    let mut bytes = [0u8; 32];
    if let Ok(mut urandom) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = urandom.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One line per mail: who, what, and the first link in it.
fn describe(mail: &Mail) -> String {
    let text = mail.decoded();
    let link = text
        .split_whitespace()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        .map(|w| w.trim_end_matches(['>', '"', ')', '.']))
        .unwrap_or("");
    format!(
        "Mail to {}: {}\n  {link}",
        mail.to.join(", "),
        mail.header("Subject").unwrap_or_default()
    )
}

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

    // Ctrl-C reaches this process only; it then stops the daemons before
    // NATS and ClickHouse, so no daemon loses its bus with work in flight.
    beacon_testkit::own_process_groups();
    eprintln!("Starting nats-server and clickhouse-server...");
    let nats = NatsServer::start();
    let clickhouse = ClickHouseServer::start();

    let mailbox = match SmtpSink::start_on(SMTP_ADDRESS).await {
        Ok(mailbox) => mailbox,
        Err(e) => {
            eprintln!("beacon-demo: cannot start the mail catcher on {SMTP_ADDRESS}: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let api_port = free_port();
    let edge_url = format!("http://127.0.0.1:{edge_port}");

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
    // The DNS responder hands out the one edge (checked at its page) for
    // status.demo.test, and the page's status in TXT.
    let dns_port = free_port();
    let dns_config = state.join("beacon-dns.toml");
    let written = std::fs::write(
        &dns_config,
        format!(
            "ttl = \"10s\"\n[[edges]]\nname = \"local\"\naddresses = [\"127.0.0.1\"]\n\
             check = \"{edge_url}/api/v2/status.json\"\n\
             [[hosts]]\nname = \"{DEMO_HOST}\"\npage = \"demo\"\n"
        ),
    );
    if let Err(e) = written {
        eprintln!("beacon-demo: cannot write {}: {e}", dns_config.display());
        return std::process::ExitCode::from(1);
    }
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
        // The demo page's webhook channel signs with the key its
        // `secret_env` names (examples/demo.toml); without it every
        // webhook delivery would fail.
        DaemonProcess::spawn_with_admin_env(
            "beacon-notifier",
            with(
                nats_args(),
                &[
                    s("--public-url"),
                    format!("{edge_url}/api/v2/subscribers"),
                    s("--signing-secret"),
                    link_secret(),
                ],
            ),
            &[("BEACON_WEBHOOK_SECRET", DEMO_WEBHOOK_SECRET)],
        ),
        DaemonProcess::spawn_with_admin(
            "beacon-api",
            with(
                nats_args(),
                &[s("--listen"), format!("127.0.0.1:{api_port}")],
            ),
        ),
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
                s("--api-url"),
                format!("http://127.0.0.1:{api_port}"),
            ],
        ),
        DaemonProcess::spawn_with_admin(
            "beacon-dns",
            with(
                nats_args(),
                &[
                    s("--listen"),
                    format!("127.0.0.1:{dns_port}"),
                    s("--config"),
                    dns_config.display().to_string(),
                    s("--state-dir"),
                    state.join("dns").display().to_string(),
                ],
            ),
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
    println!("  HTTP API:      http://127.0.0.1:{api_port}/api/v1 (keys: beaconctl apikey create)");
    println!("  Mail catcher:  {SMTP_ADDRESS} (mail is printed here)");
    println!("  DNS:           dig @127.0.0.1 -p {dns_port} _status.{DEMO_HOST} TXT +short");
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
    println!(
        "  Subscribe:     curl -d 'subscriber[email]=you@example.com' {edge_url}/api/v2/subscribers.json"
    );
    println!("The website goes down for 40s every 2 minutes. Ctrl-C stops everything.");

    let mut ticker = tokio::time::interval(Duration::from_secs(20));
    let mut tick = 0u32;
    let mut mail_check = tokio::time::interval(Duration::from_secs(1));
    let mut mails_shown = 0;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = mail_check.tick() => {
                let mails = mailbox.mails();
                for mail in mails.iter().skip(mails_shown) {
                    println!("{}", describe(mail));
                }
                mails_shown = mails.len();
            }
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
