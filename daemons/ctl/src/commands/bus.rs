//! `beaconctl bus ensure|verify`: apply the bus topology (streams, KV
//! buckets, the object store) as an operator, or check it.
//!
//! Daemons whose NATS users may not edit streams only verify at start; an
//! operator with the admin user runs `bus ensure` once per upgrade.

use std::time::Duration;

use async_nats::jetstream;
use beacon_contract::topology::{self, Action, Found, Outcome, Topology, TOPOLOGY_VERSION};
use beacon_runtime::connect::NatsArgs;
use serde::Serialize;

use crate::cli::{BusCommand, OutputFormat};
use crate::commands::connect;
use crate::exit::CtlError;
use crate::output;

/// One row of the report.
#[derive(Debug, Serialize)]
struct Row {
    what: &'static str,
    name: String,
    result: &'static str,
    /// The version recorded on the bus, where one was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded_version: Option<u32>,
}

/// The whole report.
#[derive(Debug, Serialize)]
struct Report {
    topology_version: u32,
    parts: Vec<Row>,
}

/// Runs `bus ensure` or `bus verify`.
pub async fn run(
    nats: &NatsArgs,
    command: &BusCommand,
    format: OutputFormat,
    timeout: Duration,
) -> Result<(), CtlError> {
    let (replicas, regions) = match command {
        BusCommand::Ensure { replicas, regions } => (*replicas, regions.as_slice()),
        BusCommand::Verify { replicas } => (*replicas, &[][..]),
    };
    if replicas == 0 {
        return Err(CtlError::BadArgument {
            flag: "--replicas",
            reason: "must be at least 1".to_owned(),
        });
    }
    let problems = region_problems(regions);
    if !problems.is_empty() {
        return Err(CtlError::BadArgument {
            flag: "--regions",
            reason: problems.join("; "),
        });
    }
    let topology = Topology {
        replicas,
        ..Topology::default()
    };
    let client = connect(nats).await?;
    let js = jetstream::ContextBuilder::new()
        .timeout(timeout)
        .build(client.clone());
    let bus = |e: topology::EnsureError| CtlError::Bus {
        what: "bus topology".to_owned(),
        reason: e.to_string(),
    };
    let (rows, missing) = match command {
        BusCommand::Ensure { .. } => {
            let mut outcomes = topology::ensure(&js, &topology).await.map_err(bus)?;
            if !regions.is_empty() {
                outcomes.extend(
                    topology::ensure_regions(&client, &js, regions)
                        .await
                        .map_err(bus)?,
                );
            }
            (
                outcomes.iter().map(ensured_row).collect::<Vec<_>>(),
                Vec::new(),
            )
        }
        BusCommand::Verify { .. } => {
            let found = topology::verify(&js, &topology).await.map_err(bus)?;
            let missing = topology::not_ready(&found);
            (found.iter().map(verified_row).collect(), missing)
        }
    };
    let report = Report {
        topology_version: TOPOLOGY_VERSION,
        parts: rows,
    };
    let text = match format {
        // `lib::run` refuses csv for this command before it runs.
        OutputFormat::Table | OutputFormat::Csv => {
            let rows: Vec<Vec<String>> = report
                .parts
                .iter()
                .map(|row| {
                    vec![
                        row.what.to_owned(),
                        row.name.clone(),
                        row.result.to_owned(),
                        row.recorded_version
                            .map_or_else(|| "-".to_owned(), |v| v.to_string()),
                    ]
                })
                .collect();
            format!(
                "topology version {TOPOLOGY_VERSION}\n{}",
                output::table(&["KIND", "NAME", "RESULT", "RECORDED"], &rows)
            )
        }
        OutputFormat::Json => output::json(&report)?,
    };
    output::print(&text)?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CtlError::Bus {
            what: "bus topology not in place".to_owned(),
            reason: format!("{}; run `beaconctl bus ensure`", missing.join("; ")),
        })
    }
}

/// Why `--regions` cannot be applied: every problem, one line each.
fn region_problems(regions: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for region in regions {
        if let Err(e) = beacon_contract::names::check_token(region) {
            problems.push(format!("region {region:?}: {e}"));
        } else if region == "global" {
            problems.push("region \"global\" is the name of no region (it is what a daemon without --region writes as)".to_owned());
        }
        if !seen.insert(region) {
            problems.push(format!("region {region:?} is named twice"));
        }
    }
    problems
}

fn ensured_row(outcome: &Outcome<Action>) -> Row {
    Row {
        what: outcome.what,
        name: outcome.name.clone(),
        result: outcome.result.as_str(),
        recorded_version: match outcome.result {
            Action::LeftNewer { recorded } => Some(recorded),
            _ => Some(TOPOLOGY_VERSION),
        },
    }
}

fn verified_row(outcome: &Outcome<Found>) -> Row {
    let (result, recorded_version) = match outcome.result {
        Found::Missing => ("missing", None),
        Found::Older { recorded } => ("older", Some(recorded)),
        Found::Current { recorded } => ("ok", Some(recorded)),
    };
    Row {
        what: outcome.what,
        name: outcome.name.clone(),
        result,
        recorded_version,
    }
}

#[cfg(test)]
mod tests {
    use super::region_problems;

    #[test]
    fn regions_must_be_distinct_tokens_and_not_global() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(region_problems(&names(&["eu", "us", "ap"])).is_empty());
        let problems = region_problems(&names(&["eu", "eu", "a b", "global"]));
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("named twice")));
        assert!(problems.iter().any(|p| p.contains("\"a b\"")));
        assert!(problems.iter().any(|p| p.contains("global")));
    }
}
