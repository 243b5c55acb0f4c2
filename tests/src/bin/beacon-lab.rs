//! `beacon-lab`: three regions on this machine (see `beacon_tests::lab`),
//! a page checking a local target in every region, each region's page URL
//! printed; Ctrl-C stops everything.
//!
//! `beacon-lab [eu us ap]`: the three region names (exit 64 with every
//! problem when they cannot make a lab).

use std::process::ExitCode;

use beacon_tests::lab::{check_regions, Lab, REGIONS};
use beacon_tests::HttpTarget;

#[tokio::main]
async fn main() -> ExitCode {
    let mut names: Vec<String> = std::env::args().skip(1).collect();
    if names.is_empty() {
        names = REGIONS.iter().map(|r| r.to_string()).collect();
    }
    let regions = match check_regions(&names) {
        Ok(regions) => regions,
        Err(problems) => {
            for problem in problems {
                eprintln!("beacon-lab: {problem}");
            }
            return ExitCode::from(64);
        }
    };
    let target = HttpTarget::start().await;
    eprintln!(
        "beacon-lab: starting {} (NATS cluster, leaf servers, probes, deciders, publishers, notifiers, edges, recorders, HTTP APIs, DNS responders; one ClickHouse)",
        regions.join(", ")
    );
    let lab = Lab::start(regions, "lab", &target).await;
    for region in &lab.regions {
        println!(
            "{}: page {}/  api {}/api/v1/  dns: dig @{} -p {} {} A",
            region.name,
            region.edge_url,
            region.api_url,
            region.dns_addr.ip(),
            region.dns_addr.port(),
            beacon_tests::lab::LAB_HOST
        );
    }
    println!("history (ClickHouse): {}", lab.clickhouse.http_url());
    println!("target (all regions check it): {}", target.url());
    eprintln!("beacon-lab: running; Ctrl-C stops every region");
    let _ = tokio::signal::ctrl_c().await;
    drop(lab);
    ExitCode::SUCCESS
}
