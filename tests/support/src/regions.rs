//! Three regions' NATS servers, one NATS cluster stretched over them, from
//! the deployment's own file (`deploy/nats/regions/region.conf`) with the
//! per-region values in the environment, as a deployment sets them. Each
//! server can be killed and started again on its ports and store, so a
//! test can lose a region and bring it back.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::child::{self, Restartable};
use crate::logs::append;
use crate::nats::nats_server_bin;
use crate::{http, ports};

/// How long a server may take to be healthy (its cluster formed, its
/// streams current).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const READY_POLL: Duration = Duration::from_millis(100);

/// The deployment's region file.
pub fn region_conf() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/nats/regions/region.conf"
    ))
}

/// One region's server.
pub struct RegionServer {
    region: String,
    dir: TempDir,
    port: u16,
    monitor_port: u16,
    cluster_port: u16,
    routes: Vec<String>,
    child: Option<Child>,
}

impl RegionServer {
    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Its log.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Kills it (SIGKILL): the region's bus is gone.
    pub fn kill(&mut self) {
        self.kill_now();
    }

    /// Starts it again on the same ports and store; waits until healthy.
    pub fn start_again(&mut self) {
        self.start_once_more();
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    fn healthy(&self) -> bool {
        matches!(
            http::request(self.monitor_port, "GET", "/healthz", "", Duration::from_secs(1)),
            Ok(ref response) if response.status == 200
        )
    }
}

impl Restartable for RegionServer {
    const PROGRAM: &'static str = "nats-server";

    fn slot(&mut self) -> &mut Option<Child> {
        &mut self.child
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn spawn(&self) -> Child {
        let log_path = self.log_path();
        let mut command = Command::new(nats_server_bin());
        command
            .arg("-c")
            .arg(region_conf())
            .args(["--log", &log_path.display().to_string()])
            .env("BEACON_NATS_NAME", format!("nats-{}", self.region))
            .env("BEACON_NATS_CLIENT", format!("127.0.0.1:{}", self.port))
            .env(
                "BEACON_NATS_MONITOR",
                format!("127.0.0.1:{}", self.monitor_port),
            )
            .env("BEACON_NATS_STORE", self.dir.path().join("store"))
            .env(
                "BEACON_NATS_CLUSTER",
                format!("127.0.0.1:{}", self.cluster_port),
            );
        for (i, route) in self.routes.iter().enumerate() {
            command.env(format!("BEACON_NATS_ROUTE_{}", i + 1), route);
        }
        command
            .stdin(Stdio::null())
            .stdout(append(&log_path))
            .stderr(append(&log_path));
        command.spawn().expect("spawn nats-server")
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while !self.healthy() {
            if let Some(status) = child::reap_if_exited(&mut self.child) {
                panic!(
                    "nats-server of region {} exited with {status}\n{}",
                    self.region,
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "nats-server of region {} not healthy after {READY_TIMEOUT:?}\n{}",
                self.region,
                self.logs()
            );
            std::thread::sleep(READY_POLL);
        }
    }
}

impl Drop for RegionServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "==== nats-server of region {} ====\n{}",
                self.region,
                self.logs()
            );
        }
        child::kill(&mut self.child, "nats-server");
    }
}

/// The three regions' servers.
pub struct Regions {
    /// In the order given.
    pub servers: Vec<RegionServer>,
}

impl Regions {
    /// Starts one server per region (exactly three: the file names three
    /// routes) and waits until every one is healthy.
    pub fn start(regions: [&str; 3]) -> Regions {
        let cluster_ports: Vec<u16> = regions.iter().map(|_| ports::free_port()).collect();
        let routes: Vec<String> = cluster_ports
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect();
        let mut servers: Vec<RegionServer> = regions
            .iter()
            .zip(&cluster_ports)
            .map(|(region, cluster_port)| RegionServer {
                region: (*region).to_owned(),
                dir: tempfile::Builder::new()
                    .prefix(&format!("beacon-nats-{region}-"))
                    .tempdir()
                    .expect("a temp dir for nats-server"),
                port: ports::free_port(),
                monitor_port: ports::free_port(),
                cluster_port: *cluster_port,
                routes: routes.clone(),
                child: None,
            })
            .collect();
        // All start before any can be healthy: a cluster needs its quorum.
        for server in &mut servers {
            let started = server.spawn();
            server.child = Some(started);
        }
        for server in &mut servers {
            Restartable::wait_ready(server);
        }
        Regions { servers }
    }

    /// The server of `region`.
    pub fn server(&mut self, region: &str) -> &mut RegionServer {
        self.servers
            .iter_mut()
            .find(|s| s.region == region)
            .unwrap_or_else(|| panic!("no region {region}"))
    }
}
