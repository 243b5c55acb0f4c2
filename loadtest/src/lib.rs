//! Beacon load tests. Each scenario drives a real `nats-server` (a private
//! one started for the run, or one given with `--nats-url`), logs progress
//! on stderr and prints one JSON object on stdout.
//!
//! Machines are noisy, so absolute rates mean little on their own: later
//! scenarios report their figures as ratios against the `bus-baseline`
//! figures measured in the same run, on the same server.
//!
//! # Layout
//!
//! - [`cli`]: the command line, one subcommand per scenario.
//! - [`server`]: where the bus comes from: a private `nats-server` or a URL.
//! - [`api`]: the `api` scenario: incident updates through the HTTP API
//!   against the decider's bus API, same run.
//! - [`baseline`]: the `bus-baseline` scenario: core publish, JetStream
//!   publish (async and awaited acks) and consume-and-ack rates.
//! - [`core_bus`]: the `core-bus` scenario: core's pipelined publisher and
//!   batch consumer against the raw bus in the same run.
//! - [`decider`]: the `decider` scenario: results through a real decider
//!   against raw consume-and-ack, and result-to-status-change latency.
//! - [`lease_takeover`]: the `lease-takeover` scenario: kill -9 a lease
//!   holder, time the standby's takeover; and the hidden holder process.
//! - [`probe_fleet`]: the `probe-fleet` scenario: one probe process against
//!   local HTTP targets, side by side with blackbox_exporter; and the
//!   hidden HTTP target process.
//! - [`recorder`]: the `recorder` scenario: rows/s against raw consume and
//!   `clickhouse-client` in the same run, result-to-queryable latency, SLA
//!   report time.
//! - [`notifier`]: the `notifier` scenario: a million-subscriber fan-out
//!   through a real notifier against each loopback receiver's raw capacity
//!   in the same run.
//! - [`chaos`]: the `chaos` scenario: the whole stack under a seeded
//!   schedule of faults, and a check of every invariant.
//! - [`dns`]: the `dns-failover` scenario (an edge dies, how long until the
//!   responder stops handing it out) and `dns-rate` (queries per second
//!   against NSD, same run).
//! - [`detect`]: the `detect` scenario: outage to STATUS event, edge, live
//!   update, email and webhook, over many rounds, against the detection bound.
//! - [`regions`]: the `regions` scenario: three regions on this machine,
//!   rounds of losing one and cutting one off.
//! - [`pages`]: the `render`, `edge` (against nginx under wrk) and `sse`
//!   (10,000 live clients) scenarios.
//! - [`plot`]: any report as an SVG plot (`--plot`): latency and throughput
//!   over the run, and the key latency's distribution.
//! - [`report`]: pure arithmetic and the JSON shape: rates, medians, ratios.
//! - [`error`]: the error enum and its exit codes.

pub mod api;
pub mod baseline;
pub mod chaos;
pub mod cli;
pub mod core_bus;
pub mod decider;
pub mod detect;
pub mod dns;
pub mod error;
pub mod lease_takeover;
pub mod notifier;
pub mod pages;
pub mod plot;
pub mod probe_fleet;
pub mod recorder;
pub mod regions;
pub mod report;
pub mod server;

use std::io::Write;

use cli::{Cli, Scenario};
use error::LoadError;

/// Runs the scenario on the command line and returns its report as one
/// line of JSON, fields in the order the report types declare them; with
/// `--plot`, also writes its plot.
pub async fn run(cli: Cli) -> Result<String, LoadError> {
    let text = run_scenario(cli.scenario).await?;
    if let Some(path) = &cli.plot {
        let title = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["scenario"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "beacon-loadtest".to_owned());
        plot::write_svg(&text, &format!("beacon-loadtest {title}"), path)?;
        progress(&format!("Plot written to {}.", path.display()));
    }
    Ok(text)
}

/// The peer programs a scenario measures against or drives, with where
/// they come from, that are not installed: checked before anything starts.
pub fn missing_peers(scenario: &Scenario) -> Vec<String> {
    let peers: Vec<(String, &str)> = match scenario {
        Scenario::Edge(args) => vec![
            (args.nginx.clone(), "Debian package nginx"),
            (args.wrk.clone(), "Debian package wrk"),
        ],
        // blackbox_exporter is optional there: without it the report says
        // so and measures the probe alone.
        Scenario::Notifier(args) => vec![(
            args.smtp_sink.display().to_string(),
            "Debian package postfix",
        )],
        Scenario::DnsRate(_) => vec![("nsd".to_owned(), "Debian package nsd")],
        Scenario::Recorder(_) => vec![(
            "clickhouse-client".to_owned(),
            "Debian package clickhouse-client",
        )],
        _ => Vec::new(),
    };
    peers
        .into_iter()
        .filter(|(program, _)| probe_fleet::find_program(program).is_none())
        .map(|(program, from)| {
            format!("{program} is not installed ({from}; scripts/install-deps --bench)")
        })
        .collect()
}

async fn run_scenario(scenario: Scenario) -> Result<String, LoadError> {
    let missing = missing_peers(&scenario);
    if !missing.is_empty() {
        return Err(LoadError::Usage(missing.join("; ")));
    }
    match scenario {
        Scenario::BusBaseline(args) => {
            let report = baseline::run(&args).await?;
            serde_json::to_string(&report).map_err(|e| LoadError::Report(e.to_string()))
        }
        Scenario::CoreBus(args) => {
            let report = core_bus::run(&args).await?;
            serde_json::to_string(&report).map_err(|e| LoadError::Report(e.to_string()))
        }
        Scenario::LeaseTakeover(args) => {
            let report = lease_takeover::run(&args).await?;
            serde_json::to_string(&report).map_err(|e| LoadError::Report(e.to_string()))
        }
        Scenario::Decider(args) => {
            let report = decider::run(&args).await?;
            serde_json::to_string(&report).map_err(|e| LoadError::Report(e.to_string()))
        }
        Scenario::Api(args) => {
            let report = api::run(&args).await?;
            serde_json::to_string(&report).map_err(|e| LoadError::Report(e.to_string()))
        }
        Scenario::LeaseHold(args) => lease_takeover::hold(&args).await,
        Scenario::ProbeFleet(args) => {
            let report = probe_fleet::run(&args).await?;
            serde_json::to_string(&report).map_err(|e| LoadError::Report(e.to_string()))
        }
        Scenario::HttpTarget => probe_fleet::serve_target().await,
        Scenario::Notifier(args) => {
            let report = notifier::run(&args).await?;
            serde_json::to_string(&report).map_err(|e| LoadError::Report(e.to_string()))
        }
        Scenario::Render(args) => {
            let report = pages::render(&args)?;
            serde_json::to_string(&report).map_err(|e| LoadError::Report(e.to_string()))
        }
        Scenario::Edge(args) => {
            let report = pages::edge(&args).await?;
            serde_json::to_string(&report).map_err(|e| LoadError::Report(e.to_string()))
        }
        Scenario::Sse(args) => {
            let report = pages::sse(&args).await?;
            serde_json::to_string(&report).map_err(|e| LoadError::Report(e.to_string()))
        }
        Scenario::Chaos(args) => {
            let report = chaos::run(&args).await?;
            let text =
                serde_json::to_string(&report).map_err(|e| LoadError::Report(e.to_string()))?;
            if report.broken > 0 {
                return Err(LoadError::Broken {
                    invariants: report.broken,
                    report: text,
                });
            }
            Ok(text)
        }
        Scenario::Regions(args) => {
            let report = regions::run(&args).await?;
            serde_json::to_string(&report).map_err(|e| LoadError::Report(e.to_string()))
        }
        Scenario::DnsFailover(args) => {
            let report = dns::failover(&args).await?;
            serde_json::to_string(&report).map_err(|e| LoadError::Report(e.to_string()))
        }
        Scenario::DnsRate(args) => {
            let report = dns::rate(&args).await?;
            serde_json::to_string(&report).map_err(|e| LoadError::Report(e.to_string()))
        }
        Scenario::Detect(args) => {
            let report = detect::run(&args).await?;
            serde_json::to_string(&report).map_err(|e| LoadError::Report(e.to_string()))
        }
        Scenario::Plot(args) => {
            let text = std::fs::read_to_string(&args.report).map_err(|e| {
                LoadError::Usage(format!("cannot read {}: {e}", args.report.display()))
            })?;
            let name = args
                .report
                .file_stem()
                .map_or("report".into(), |s| s.to_string_lossy().into_owned());
            plot::write_svg(&text, &format!("beacon-loadtest {name}"), &args.out)?;
            Ok(serde_json::json!({"plot": args.out}).to_string())
        }
        Scenario::Recorder(args) => {
            let report = recorder::run(&args).await?;
            serde_json::to_string(&report).map_err(|e| LoadError::Report(e.to_string()))
        }
    }
}

/// One progress line on stderr. Failing to write it is ignored: progress is
/// a courtesy, and stdout carries the result.
pub fn progress(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "beacon-loadtest: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn every_missing_peer_is_named_before_anything_starts() {
        let cli = Cli::try_parse_from([
            "beacon-loadtest",
            "edge",
            "--nginx",
            "/nowhere/nginx",
            "--wrk",
            "no-such-wrk",
        ])
        .expect("flags parse");
        let missing = missing_peers(&cli.scenario);
        assert_eq!(missing.len(), 2, "{missing:?}");
        assert!(missing[0].contains("/nowhere/nginx") && missing[1].contains("no-such-wrk"));
        let detect = Cli::try_parse_from(["beacon-loadtest", "detect"]).expect("flags parse");
        assert!(missing_peers(&detect.scenario).is_empty());
        assert!(Cli::try_parse_from(["beacon-loadtest", "detect", "--rounds", "0"]).is_err());
    }
}
