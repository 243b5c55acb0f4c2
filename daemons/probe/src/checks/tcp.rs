//! TCP checks: connect, optionally send a line, optionally read until an
//! expected banner appears. Times DNS (for names), connect and the first
//! byte of what the server sends.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use beacon_contract::messages::{ErrorKind, Observed, Timings};
use beacon_page::config::condition::{Observation, Placeholder};
use beacon_page::config::TcpTarget;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{connect_error_kind, judge, micros, CheckOutput};

/// Most bytes read while looking for the banner.
const MAX_BANNER: usize = 16 * 1024;

/// Runs one TCP check (the caller bounds it with the timeout).
pub async fn check(target: &TcpTarget, started: Instant) -> CheckOutput {
    let mut timings = Timings::default();
    let fail = |kind, message: String, timings: Timings| {
        let mut output = CheckOutput::down(started, kind, message);
        output.timings = Some(Timings {
            total_us: micros(output.latency),
            ..timings
        });
        output
    };
    let addresses = match resolve(&target.address, &mut timings).await {
        Ok(addresses) => addresses,
        Err(e) => return fail(ErrorKind::Dns, e, timings),
    };
    let connect_started = Instant::now();
    let mut stream = None;
    let mut last_error = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let mut stream = match (stream, last_error) {
        (Some(stream), _) => stream,
        (None, Some(e)) => {
            return fail(
                connect_error_kind(&e),
                format!("connect failed: {e}"),
                timings,
            )
        }
        (None, None) => return fail(ErrorKind::Dns, "the name has no address".into(), timings),
    };
    timings.connect_us = Some(micros(connect_started.elapsed()));

    if let Some(send) = &target.send {
        if let Err(e) = stream.write_all(send.as_bytes()).await {
            return fail(ErrorKind::Connect, format!("send failed: {e}"), timings);
        }
    }
    let wants_banner = target.expect.is_some()
        || target
            .conditions
            .iter()
            .chain(&target.degraded_if)
            .any(|c| c.placeholder() == Placeholder::Banner);
    let mut banner = Vec::new();
    if wants_banner {
        let read_started = Instant::now();
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) => break,
                Ok(n) => {
                    if banner.is_empty() {
                        timings.first_byte_us = Some(micros(read_started.elapsed()));
                    }
                    banner.extend_from_slice(&buffer[..n]);
                    let found = match &target.expect {
                        Some(expect) => contains(&banner, expect.as_bytes()),
                        // Without an expected text, the first chunk is the banner.
                        None => true,
                    };
                    if found || banner.len() >= MAX_BANNER {
                        break;
                    }
                }
                Err(e) => return fail(ErrorKind::Connect, format!("read failed: {e}"), timings),
            }
        }
    }
    let latency = started.elapsed();
    let mut output = CheckOutput::up(started);
    output.timings = Some(Timings {
        total_us: micros(latency),
        ..timings
    });
    output.observed = Observed {
        response_time_ms: Some(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX)),
        ..Observed::default()
    };
    if let Some(expect) = &target.expect {
        if !contains(&banner, expect.as_bytes()) {
            output.outcome = beacon_contract::messages::Outcome::Down;
            output.error_kind = Some(ErrorKind::Condition);
            output.failed_condition = Some(format!("expect = {expect:?}"));
            let shown: String = String::from_utf8_lossy(&banner).chars().take(80).collect();
            output.error = Some(format!("expected {expect:?}, got {shown:?}"));
            return output;
        }
    }
    let seen = Observation {
        response_time: Some(latency),
        banner: Some(&banner),
        ..Observation::default()
    };
    let verdict = judge(&target.conditions, &target.degraded_if, &seen);
    output.with_verdict(verdict)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// `host:port` to addresses; a literal IP needs no lookup (and no DNS phase).
async fn resolve(address: &str, timings: &mut Timings) -> Result<Vec<SocketAddr>, String> {
    if let Ok(address) = address.parse::<SocketAddr>() {
        return Ok(vec![address]);
    }
    if let Some((host, port)) = address.rsplit_once(':') {
        if let (Ok(ip), Ok(port)) = (
            host.trim_matches(['[', ']']).parse::<IpAddr>(),
            port.parse(),
        ) {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
    }
    let started = Instant::now();
    let found = tokio::net::lookup_host(address)
        .await
        .map_err(|e| format!("cannot resolve {address}: {e}"))?;
    timings.dns_us = Some(micros(started.elapsed()));
    Ok(found.collect())
}
