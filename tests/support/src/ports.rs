//! Free loopback TCP ports for servers started by tests.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::Mutex;

/// Ports already handed out in this test process. The kernel may give the
/// same ephemeral port to two `bind(0)` calls once the first listener is
/// dropped; remembering them stops two servers in one test binary from
/// being told to use the same port.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// Binds `127.0.0.1:0`, reads the port the kernel chose and drops the
/// listener. A port is never returned twice by the same process.
pub fn free_port() -> u16 {
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // A handful of tries is plenty: a repeat needs the kernel to pick the
    // same port out of tens of thousands.
    for _ in 0..100 {
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
        let port = listener
            .local_addr()
            .expect("read the local address of the port probe")
            .port();
        drop(listener);
        if handed_out.insert(port) {
            return port;
        }
    }
    panic!("could not find a free port that was not already handed out");
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
