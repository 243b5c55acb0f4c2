//! Free loopback TCP ports for servers started by tests.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::Mutex;

/// Ports already handed out in this test process; remembering them stops
/// two servers in one test binary from being told to use the same port.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Lowest port handed out.
const LOWEST: u16 = 10_000;

/// Where the kernel's ephemeral ports (the local ports of outgoing
/// connections) begin: `/proc/sys/net/ipv4/ip_local_port_range`, or
/// Linux's default.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .filter(|start| *start > LOWEST + 1_000)
        .unwrap_or(32_768)
}

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port lies below the kernel's ephemeral range: a server started a
/// moment later cannot find it taken by an outgoing connection (a route,
/// a proxy's upstream) that the kernel gave that port in the meantime.
/// Each process starts its scan at its own offset, and a port is never
/// returned twice by the same process.
pub fn free_port() -> u16 {
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let span = u32::from(ephemeral_start() - LOWEST);
    let offset = std::process::id().wrapping_mul(7_919) % span;
    for step in 0..span {
        let port = LOWEST + ((offset + step) % span) as u16;
        if handed_out.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return port;
        }
    }
    panic!("no free port below the ephemeral range that was not already handed out");
}

#[cfg(test)]
mod tests {
    use super::free_port;
    use std::collections::BTreeSet;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let ports: BTreeSet<u16> = (0..20).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 20);
        for port in ports {
            assert_ne!(port, 0);
            std::net::TcpListener::bind(("127.0.0.1", port)).expect("port is free");
        }
    }
}
