//! The DNS responder's scenarios.
//!
//! - `dns-failover`: the release `beacon-dns` with the shipped checking
//!   settings (`deploy/dns/beacon-dns.toml`: every 2 s, 1 s timeout, two
//!   failures to leave out, two passes to take back) and two edges. Round
//!   after round one edge dies (its listener closes, as when its process
//!   is killed); the time until the responder stops handing it out, and
//!   after it comes back until it hands it out again, polled every 20 ms.
//!   Reported as p50/p99 against the configured bound and the 30 s the
//!   design allows.
//! - `dns-rate`: queries per second answered by `beacon-dns` and by NSD
//!   (Debian's, an authoritative server serving the same records from a
//!   static zone, two server processes like the responder's two threads,
//!   its response rate limiting off since the load comes from one
//!   address) under the same closed-loop UDP load from this process, in
//!   alternating runs; the ratio of the medians.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beacon_dns::config::DnsConfig;
use beacon_dns::health::failover_bound;
use beacon_testkit::{dns, free_port, DaemonProcess};
use beacon_tests::HttpTarget;
use hickory_proto::rr::RecordType;
use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::process::{Child, Command};

use crate::cli::{DnsFailoverArgs, DnsRateArgs};
use crate::error::LoadError;
use crate::progress;
use crate::regions::Spread;
use crate::report::{median, ratio};

const HOST: &str = "status.example.com";
/// The seed's bound for steering users away from a dead edge.
const DESIGN_BOUND: Duration = Duration::from_secs(30);
/// How long a wait may take before the round counts as timed out.
const WAIT: Duration = Duration::from_secs(60);

/// The shipped configuration, `deploy/dns/beacon-dns.toml`.
fn shipped() -> Result<DnsConfig, LoadError> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/dns/beacon-dns.toml");
    DnsConfig::load(Path::new(path)).map_err(|errors| LoadError::Unexpected(errors.join("; ")))
}

/// The shipped check settings, with two edges whose checks are `a` and `b`.
fn config(shipped: &DnsConfig, a: &str, b: &str) -> String {
    format!(
        "ttl = \"{ttl}ms\"\ncheck_interval = \"{interval}ms\"\ncheck_timeout = \"{timeout}ms\"\n\
         fail_after = {fail}\nrecover_after = {recover}\n\
         [[edges]]\nname = \"a\"\naddresses = [\"127.0.0.2\"]\ncheck = \"{a}\"\n\
         [[edges]]\nname = \"b\"\naddresses = [\"127.0.0.3\"]\ncheck = \"{b}\"\n\
         [[hosts]]\nname = \"{HOST}\"\npage = \"acme\"\n",
        ttl = shipped.ttl.as_millis(),
        interval = shipped.check_interval.as_millis(),
        timeout = shipped.check_timeout.as_millis(),
        fail = shipped.fail_after,
        recover = shipped.recover_after,
    )
}

/// The A addresses `server` hands out for the host, or `None` on no answer.
async fn addresses(server: SocketAddr) -> Option<Vec<String>> {
    let answer = dns::ask(server, &format!("{HOST}."), RecordType::A).await?;
    Some(dns::a_records(&answer))
}

/// Polls every 20 ms until `want` holds for the addresses handed out;
/// the time it took, or `None` after [`WAIT`].
async fn until(server: SocketAddr, want: impl Fn(&[String]) -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < WAIT {
        if addresses(server).await.is_some_and(|a| want(&a)) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// The `dns-failover` report.
#[derive(Debug, Serialize)]
pub struct DnsFailoverReport {
    scenario: &'static str,
    check_interval_ms: u64,
    check_timeout_ms: u64,
    fail_after: u32,
    recover_after: u32,
    /// From the edge's death until it is no longer handed out.
    left_out: Spread,
    /// From its return until it is handed out again.
    taken_back: Spread,
    /// fail_after × interval + timeout.
    bound_ms: u64,
    /// left_out p99 / bound: under 1 meets it.
    p99_vs_bound: f64,
    /// left_out p99 / the design's 30 s.
    p99_vs_design: f64,
    timeouts: u32,
}

/// Runs `dns-failover`.
pub async fn failover(args: &DnsFailoverArgs) -> Result<DnsFailoverReport, LoadError> {
    let edge_a = HttpTarget::start().await;
    let mut edge_b = HttpTarget::start().await;
    let dir = tempfile::tempdir().map_err(|e| LoadError::Unexpected(e.to_string()))?;
    let path = dir.path().join("beacon-dns.toml");
    let shipped = shipped()?;
    std::fs::write(&path, config(&shipped, &edge_a.url(), &edge_b.url()))
        .map_err(|e| LoadError::Unexpected(e.to_string()))?;
    let port = free_port();
    let server: SocketAddr = ([127, 0, 0, 1], port).into();
    let responder = spawn_responder(&path, dir.path(), port);
    responder.wait_ready(Duration::from_secs(30)).await;
    let both = |a: &[String]| a.len() == 2;
    let only_a = |a: &[String]| a == ["127.0.0.2"];
    if until(server, both).await.is_none() {
        return Err(LoadError::Unexpected(
            "the responder never handed out both edges".into(),
        ));
    }
    let (mut left_out, mut taken_back, mut timeouts) = (Vec::new(), Vec::new(), 0);
    for round in 0..args.kills {
        progress(&format!(
            "dns-failover: kill {} of {}",
            round + 1,
            args.kills
        ));
        // Let the kill land anywhere in the check cycle.
        tokio::time::sleep(Duration::from_millis(137 * (round % 15))).await;
        edge_b.down();
        match until(server, only_a).await {
            Some(took) => left_out.push(took.as_millis() as u64),
            None => timeouts += 1,
        }
        edge_b.up().await;
        match until(server, both).await {
            Some(took) => taken_back.push(took.as_millis() as u64),
            None => timeouts += 1,
        }
    }
    let bound = failover_bound(&shipped);
    let left = Spread::of(&left_out);
    Ok(DnsFailoverReport {
        scenario: "dns-failover",
        check_interval_ms: shipped.check_interval.as_millis() as u64,
        check_timeout_ms: shipped.check_timeout.as_millis() as u64,
        fail_after: shipped.fail_after,
        recover_after: shipped.recover_after,
        p99_vs_bound: ratio(left.p99_ms as f64, bound.as_millis() as f64),
        p99_vs_design: ratio(left.p99_ms as f64, DESIGN_BOUND.as_millis() as f64),
        left_out: left,
        taken_back: Spread::of(&taken_back),
        bound_ms: bound.as_millis() as u64,
        timeouts,
    })
}

fn spawn_responder(config: &Path, state: &Path, port: u16) -> DaemonProcess {
    DaemonProcess::spawn_with_admin(
        "beacon-dns",
        vec![
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--config".into(),
            config.display().to_string(),
            "--state-dir".into(),
            state.join("state").display().to_string(),
            // No NATS: the rate of answering is what is measured.
            "--nats-url".into(),
            format!("nats://127.0.0.1:{}", free_port()),
        ],
    )
}

/// NSD serving the same records, stopped on drop.
struct Nsd {
    child: Child,
}

impl Drop for Nsd {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn start_nsd(dir: &Path, port: u16) -> Result<Nsd, LoadError> {
    let zone = format!(
        "$ORIGIN {HOST}.\n$TTL 10\n\
         @ IN SOA {HOST}. hostmaster.{HOST}. 1 3600 600 86400 30\n\
         @ IN NS ns.example.net.\n@ IN A 127.0.0.2\n@ IN A 127.0.0.3\n\
         _status IN TXT \"operational\"\n"
    );
    std::fs::write(dir.join("zone"), zone).map_err(|e| LoadError::Unexpected(e.to_string()))?;
    let conf = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n\
         \x20 zonesdir: \"{dir}\"\n  pidfile: \"{dir}/nsd.pid\"\n  xfrdfile: \"{dir}/xfrd.state\"\n\
         \x20 zonelistfile: \"{dir}/zone.list\"\n  logfile: \"{dir}/nsd.log\"\n  database: \"\"\n\
         \x20 server-count: 2\n  verbosity: 0\n  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\n\
         remote-control:\n  control-enable: no\n\
         zone:\n  name: \"{HOST}\"\n  zonefile: \"{dir}/zone\"\n",
        dir = dir.display()
    );
    let path = dir.join("nsd.conf");
    std::fs::write(&path, conf).map_err(|e| LoadError::Unexpected(e.to_string()))?;
    let child = Command::new("nsd")
        .args(["-d", "-c"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            LoadError::Unexpected(format!(
                "start nsd: {e}; scripts/install-deps --bench installs it"
            ))
        })?;
    let server: SocketAddr = ([127, 0, 0, 1], port).into();
    match until(server, |a| a.len() == 2).await {
        Some(_) => Ok(Nsd { child }),
        None => Err(LoadError::Unexpected(format!(
            "nsd does not answer on {server}; see {}",
            dir.join("nsd.log").display()
        ))),
    }
}

/// Sends A queries for the host from `concurrency` sockets, each waiting
/// for its answer before the next (closed loop), for `duration`; answers
/// per second.
async fn load(server: SocketAddr, concurrency: usize, duration: Duration) -> f64 {
    let answered = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let answered = answered.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(socket) = UdpSocket::bind("127.0.0.1:0").await else {
                return;
            };
            if socket.connect(server).await.is_err() {
                return;
            }
            let mut buffer = [0u8; 1500];
            let mut id = worker as u16;
            while Instant::now() < deadline {
                id = id.wrapping_add(1);
                let Some(bytes) = dns::query_bytes(id, &format!("{HOST}."), RecordType::A) else {
                    return;
                };
                if socket.send(&bytes).await.is_err() {
                    continue;
                }
                if let Ok(Ok(length)) =
                    tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut buffer)).await
                {
                    if length >= 12 && buffer[..2] == id.to_be_bytes() {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    answered.load(Ordering::Relaxed) as f64 / duration.as_secs_f64()
}

/// The `dns-rate` report.
#[derive(Debug, Serialize)]
pub struct DnsRateReport {
    scenario: &'static str,
    concurrency: usize,
    seconds_per_run: u64,
    beacon_dns_queries_per_s: Vec<f64>,
    nsd_queries_per_s: Vec<f64>,
    beacon_dns_median: f64,
    nsd_median: f64,
    /// beacon-dns median / NSD median.
    ratio_beacon_dns_to_nsd: f64,
}

/// Runs `dns-rate`.
pub async fn rate(args: &DnsRateArgs) -> Result<DnsRateReport, LoadError> {
    let edge = HttpTarget::start().await;
    let dir = tempfile::tempdir().map_err(|e| LoadError::Unexpected(e.to_string()))?;
    let path = dir.path().join("beacon-dns.toml");
    std::fs::write(&path, config(&shipped()?, &edge.url(), &edge.url()))
        .map_err(|e| LoadError::Unexpected(e.to_string()))?;
    let dns_port = free_port();
    let responder = spawn_responder(&path, dir.path(), dns_port);
    responder.wait_ready(Duration::from_secs(30)).await;
    let nsd_dir = tempfile::tempdir().map_err(|e| LoadError::Unexpected(e.to_string()))?;
    let nsd_port = free_port();
    let _nsd = start_nsd(nsd_dir.path(), nsd_port).await?;
    let duration = Duration::from_secs(args.seconds);
    let (mut beacon, mut nsd) = (Vec::new(), Vec::new());
    for run in 0..args.runs {
        progress(&format!("dns-rate: run {} of {}", run + 1, args.runs));
        let rate = load(
            ([127, 0, 0, 1], dns_port).into(),
            args.concurrency,
            duration,
        )
        .await;
        beacon.push(rate.round());
        let rate = load(
            ([127, 0, 0, 1], nsd_port).into(),
            args.concurrency,
            duration,
        )
        .await;
        nsd.push(rate.round());
    }
    let (beacon_median, nsd_median) = (median(&beacon), median(&nsd));
    Ok(DnsRateReport {
        scenario: "dns-rate",
        concurrency: args.concurrency,
        seconds_per_run: args.seconds,
        beacon_dns_queries_per_s: beacon,
        nsd_queries_per_s: nsd,
        beacon_dns_median: beacon_median,
        nsd_median,
        ratio_beacon_dns_to_nsd: ratio(beacon_median, nsd_median),
    })
}
