//! ICMP checks with `surge-ping`: `count` echo requests, packet loss and
//! round trips. The probe opens unprivileged ping sockets (`SOCK_DGRAM`,
//! allowed where `net.ipv4.ping_group_range` includes its group) and falls
//! back to raw sockets (root or `CAP_NET_RAW`); where neither is allowed,
//! every ICMP check fails with kind `permission` and says what is missing.
//! Sockets are opened once, on first use, and shared by every check.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use beacon_contract::messages::{ErrorKind, Observed, Outcome, Timings};
use beacon_page::config::condition::Observation;
use beacon_page::config::IcmpTarget;
use surge_ping::{Client, Config, PingIdentifier, PingSequence, ICMP};
use tokio::sync::OnceCell;

use super::{judge, micros, CheckOutput};

/// The ping sockets, one per address family, opened on first use.
#[derive(Clone, Default)]
pub struct IcmpClients {
    v4: Arc<OnceCell<Result<Client, String>>>,
    v6: Arc<OnceCell<Result<Client, String>>>,
}

impl IcmpClients {
    async fn client(&self, ip: IpAddr) -> Result<&Client, String> {
        let (cell, kind) = match ip {
            IpAddr::V4(_) => (&self.v4, ICMP::V4),
            IpAddr::V6(_) => (&self.v6, ICMP::V6),
        };
        cell.get_or_init(|| async move { open(kind) })
            .await
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Runs one ICMP check within `timeout`.
    pub async fn check(
        &self,
        target: &IcmpTarget,
        timeout: Duration,
        started: Instant,
    ) -> CheckOutput {
        let mut timings = Timings::default();
        let ip = match target.host.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => {
                let dns_started = Instant::now();
                match tokio::net::lookup_host((target.host.as_str(), 0)).await {
                    Ok(mut found) => match found.next() {
                        Some(address) => {
                            timings.dns_us = Some(micros(dns_started.elapsed()));
                            address.ip()
                        }
                        None => {
                            return CheckOutput::down(
                                started,
                                ErrorKind::Dns,
                                format!("{} has no address", target.host),
                            )
                        }
                    },
                    Err(e) => {
                        return CheckOutput::down(
                            started,
                            ErrorKind::Dns,
                            format!("cannot resolve {}: {e}", target.host),
                        )
                    }
                }
            }
        };
        let client = match self.client(ip).await {
            Ok(client) => client,
            Err(e) => return CheckOutput::down(started, ErrorKind::Permission, e),
        };
        // Each echo gets an equal share of the time left, keeping a little
        // for the bookkeeping so the run ends before the caller's timeout.
        let per_ping = timeout.mul_f64(0.9) / target.count.max(1);
        let mut pinger = client.pinger(ip, PingIdentifier(rand::random())).await;
        pinger.timeout(per_ping);
        let payload = [0u8; 56];
        let mut rtts = Vec::new();
        let mut last_error = None;
        for seq in 0..target.count {
            match pinger.ping(PingSequence(seq as u16), &payload).await {
                Ok((_, rtt)) => rtts.push(rtt),
                Err(surge_ping::SurgeError::Timeout { .. }) => {}
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        let lost = target.count as usize - rtts.len();
        let loss = lost as f64 * 100.0 / f64::from(target.count.max(1));
        let avg = (!rtts.is_empty()).then(|| rtts.iter().sum::<Duration>() / rtts.len() as u32);
        let max = rtts.iter().max().copied();
        let latency = started.elapsed();
        let mut output = CheckOutput::up(started);
        output.timings = Some(Timings {
            total_us: micros(latency),
            ..timings
        });
        output.observed = Observed {
            response_time_ms: Some(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX)),
            packet_loss_percent: Some(loss),
            rtt_avg_us: avg.map(micros),
            rtt_max_us: max.map(micros),
            ..Observed::default()
        };
        if rtts.is_empty() {
            output.outcome = Outcome::Down;
            output.error_kind = Some(ErrorKind::Unreachable);
            output.error = Some(match last_error {
                Some(e) => format!("no echo reply from {ip} ({} sent): {e}", target.count),
                None => format!("no echo reply from {ip} ({} sent)", target.count),
            });
            return output;
        }
        let seen = Observation {
            response_time: Some(latency),
            packet_loss_percent: Some(loss),
            rtt: avg,
            ..Observation::default()
        };
        output.with_verdict(judge(&target.conditions, &target.degraded_if, &seen))
    }
}

/// Opens a ping socket: unprivileged first, raw second.
fn open(kind: ICMP) -> Result<Client, String> {
    let dgram = Config::builder().kind(kind).build();
    let first = match Client::new(&dgram) {
        Ok(client) => return Ok(client),
        Err(e) => e,
    };
    let raw = Config::builder()
        .kind(kind)
        .sock_type_hint(socket2::Type::RAW)
        .build();
    match Client::new(&raw) {
        Ok(client) => Ok(client),
        Err(second) => Err(format!(
            "cannot open an ICMP socket (ping socket: {first}; raw socket: {second}): allow unprivileged ping sockets for the probe's group with `sysctl net.ipv4.ping_group_range=\"0 2147483647\"`, or grant the probe CAP_NET_RAW"
        )),
    }
}
