//! Three regions' NATS servers, one NATS cluster stretched over them, from
//! the deployment's own files (`deploy/nats/regions/region.conf`, and
//! `leaf.conf` for each region's leaf server with the region's own
//! JetStream domain) with the per-region values in the environment, as a
//! deployment sets them. Each server can be killed and started again on its
//! ports and store, so a test can lose a region and bring it back; every
//! route between two regions is mutual TLS (certificates made for the run
//! with `openssl`) and runs through a [`FaultProxy`] of its own, so a test
//! can cut one region off from the others ([`Regions::partition`]) and
//! heal it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::child::{self, Restartable};
use crate::logs::append;
use crate::nats::nats_server_bin;
use crate::proxy::FaultProxy;
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

/// The deployment's leaf file.
pub fn leaf_conf() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/nats/regions/leaf.conf"
    ))
}

/// The password of the `leaf` user in `deploy/nats/beacon-users.conf`.
const LEAF_PASSWORD: &str = "change-me-leaf";

/// One region's server.
pub struct RegionServer {
    region: String,
    dir: TempDir,
    port: u16,
    monitor_port: u16,
    cluster_port: u16,
    leaf_port: u16,
    routes: Vec<String>,
    tls: RouteTls,
    child: Option<Child>,
}

/// One server's route certificate, key and the regions' CA, as files.
#[derive(Debug, Clone)]
struct RouteTls {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

/// Runs `openssl` with `args` in `dir`; panics with its output if it fails.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (scripts/install-deps installs it)");
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA for the regions and a route certificate per region (EC P-256, two
/// days, valid for 127.0.0.1 as server and as client), in `dir`.
fn route_certificates(dir: &std::path::Path, regions: &[&str]) -> Vec<RouteTls> {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=beacon-regions-ca",
    ]);
    openssl(dir, &ca);
    std::fs::write(
        dir.join("route.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .expect("write the certificate extensions");
    regions
        .iter()
        .map(|region| {
            let (key, csr, cert) = (
                format!("{region}.key"),
                format!("{region}.csr"),
                format!("{region}.pem"),
            );
            let subject = format!("/CN=nats-{region}");
            let mut request = vec!["req"];
            request.extend(ec);
            request.extend(["-keyout", &key, "-out", &csr, "-subj", &subject]);
            openssl(dir, &request);
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &cert,
                    "-days",
                    "2",
                    "-extfile",
                    "route.ext",
                ],
            );
            RouteTls {
                cert: dir.join(&cert),
                key: dir.join(&key),
                ca: dir.join("ca.pem"),
            }
        })
        .collect()
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

    /// Whether it has no route to another server (cut off).
    fn routeless(&self) -> bool {
        let routez = http::request(
            self.monitor_port,
            "GET",
            "/routez",
            "",
            Duration::from_secs(1),
        );
        matches!(routez, Ok(ref r) if r.status == 200 && r.body.contains("\"num_routes\": 0"))
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
            )
            // Every route runs through a proxy the test can cut, so no
            // server may learn a direct address of another by gossip: the
            // one advertised is refused (nothing listens on port 1).
            .env("BEACON_NATS_CLUSTER_ADVERTISE", "127.0.0.1:1")
            .env("BEACON_NATS_LEAF", format!("127.0.0.1:{}", self.leaf_port))
            .env("BEACON_NATS_ROUTE_CERT", &self.tls.cert)
            .env("BEACON_NATS_ROUTE_KEY", &self.tls.key)
            .env("BEACON_NATS_ROUTE_CA", &self.tls.ca);
        for (i, route) in self.routes.iter().enumerate() {
            command.env(format!("BEACON_NATS_ROUTE_{}", i + 1), route);
        }
        command
            .stdin(Stdio::null())
            .stdout(append(&log_path))
            .stderr(append(&log_path));
        child::prepare(&mut command)
            .spawn()
            .expect("spawn nats-server")
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

/// One region's leaf server: the region's own JetStream domain.
pub struct LeafServer {
    region: String,
    dir: TempDir,
    port: u16,
    monitor_port: u16,
    hub_leaf_port: u16,
    child: Option<Child>,
}

impl LeafServer {
    /// Its log.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Kills it (SIGKILL).
    pub fn kill(&mut self) {
        self.kill_now();
    }

    /// Starts it again on the same ports and store; waits until it is
    /// connected to its region's server.
    pub fn start_again(&mut self) {
        self.start_once_more();
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-leaf.log")
    }

    /// Healthy and connected to its region's server.
    fn connected(&self) -> bool {
        let leafz = http::request(
            self.monitor_port,
            "GET",
            "/leafz",
            "",
            Duration::from_secs(1),
        );
        matches!(leafz, Ok(ref r) if r.status == 200 && r.body.contains("\"leafnodes\": 1"))
    }
}

impl Restartable for LeafServer {
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
            .arg(leaf_conf())
            .args(["--log", &log_path.display().to_string()])
            .env("BEACON_REGION", &self.region)
            .env("BEACON_LEAF_NAME", format!("leaf-{}", self.region))
            .env("BEACON_LEAF_CLIENT", format!("127.0.0.1:{}", self.port))
            .env(
                "BEACON_LEAF_MONITOR",
                format!("127.0.0.1:{}", self.monitor_port),
            )
            .env("BEACON_LEAF_STORE", self.dir.path().join("store"))
            .env(
                "BEACON_LEAF_HUB",
                format!(
                    "nats-leaf://leaf:{LEAF_PASSWORD}@127.0.0.1:{}",
                    self.hub_leaf_port
                ),
            )
            .stdin(Stdio::null())
            .stdout(append(&log_path))
            .stderr(append(&log_path));
        child::prepare(&mut command)
            .spawn()
            .expect("spawn the leaf nats-server")
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while !self.connected() {
            if let Some(status) = child::reap_if_exited(&mut self.child) {
                panic!(
                    "leaf nats-server of region {} exited with {status}\n{}",
                    self.region,
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "leaf nats-server of region {} not connected after {READY_TIMEOUT:?}\n{}",
                self.region,
                self.logs()
            );
            std::thread::sleep(READY_POLL);
        }
    }
}

impl Drop for LeafServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "==== leaf nats-server of region {} ====\n{}",
                self.region,
                self.logs()
            );
        }
        child::kill(&mut self.child, "nats-server");
    }
}

/// A route from one region's server to another's, through its own proxy.
struct Link {
    from: String,
    to: String,
    proxy: FaultProxy,
}

/// The three regions' servers.
pub struct Regions {
    /// In the order given.
    pub servers: Vec<RegionServer>,
    /// Each region's leaf server, in the same order.
    pub leaves: Vec<LeafServer>,
    links: Vec<Link>,
    // The route certificates.
    _certificates: TempDir,
}

impl Regions {
    /// Starts one server per region (exactly three: the file names three
    /// routes), each route through a proxy of its own, and one leaf server
    /// per region; waits until every one is healthy and every leaf
    /// connected. Needs a multi-threaded tokio runtime (the proxies run on
    /// it) and must be called inside `block_in_place`.
    pub fn start(regions: [&str; 3]) -> Regions {
        let runtime = tokio::runtime::Handle::current();
        let certificates = tempfile::Builder::new()
            .prefix("beacon-route-tls-")
            .tempdir()
            .expect("a temp dir for the route certificates");
        let mut tls = route_certificates(certificates.path(), &regions).into_iter();
        let cluster_ports: Vec<u16> = regions.iter().map(|_| ports::free_port()).collect();
        let mut links = Vec::new();
        let mut servers: Vec<RegionServer> = Vec::new();
        for (i, region) in regions.iter().enumerate() {
            // Its own address (ignored by the server) and a proxy to each
            // of the others.
            let mut routes = vec![format!("nats-route://127.0.0.1:{}", cluster_ports[i])];
            for (j, other) in regions.iter().enumerate() {
                if i == j {
                    continue;
                }
                let target = std::net::SocketAddr::from(([127, 0, 0, 1], cluster_ports[j]));
                let proxy = runtime.block_on(FaultProxy::start(target));
                routes.push(format!("nats-route://{}", proxy.address()));
                links.push(Link {
                    from: (*region).to_owned(),
                    to: (*other).to_owned(),
                    proxy,
                });
            }
            servers.push(RegionServer {
                region: (*region).to_owned(),
                dir: tempfile::Builder::new()
                    .prefix(&format!("beacon-nats-{region}-"))
                    .tempdir()
                    .expect("a temp dir for nats-server"),
                port: ports::free_port(),
                monitor_port: ports::free_port(),
                cluster_port: cluster_ports[i],
                leaf_port: ports::free_port(),
                routes,
                tls: tls.next().expect("a certificate per region"),
                child: None,
            });
        }
        // All start before any can be healthy: a cluster needs its quorum.
        for server in &mut servers {
            let started = server.spawn();
            server.child = Some(started);
        }
        for server in &mut servers {
            Restartable::wait_ready(server);
        }
        let mut leaves: Vec<LeafServer> = servers
            .iter()
            .map(|server| LeafServer {
                region: server.region.clone(),
                dir: tempfile::Builder::new()
                    .prefix(&format!("beacon-leaf-{}-", server.region))
                    .tempdir()
                    .expect("a temp dir for the leaf nats-server"),
                port: ports::free_port(),
                monitor_port: ports::free_port(),
                hub_leaf_port: server.leaf_port,
                child: None,
            })
            .collect();
        for leaf in &mut leaves {
            leaf.start_once_more();
        }
        Regions {
            servers,
            leaves,
            links,
            _certificates: certificates,
        }
    }

    /// The server of `region`.
    pub fn server(&mut self, region: &str) -> &mut RegionServer {
        self.servers
            .iter_mut()
            .find(|s| s.region == region)
            .unwrap_or_else(|| panic!("no region {region}"))
    }

    /// The client URL of `region`'s server.
    pub fn url_of(&self, region: &str) -> String {
        self.servers
            .iter()
            .find(|s| s.region == region)
            .unwrap_or_else(|| panic!("no region {region}"))
            .url()
    }

    /// The leaf server of `region`.
    pub fn leaf(&mut self, region: &str) -> &mut LeafServer {
        self.leaves
            .iter_mut()
            .find(|s| s.region == region)
            .unwrap_or_else(|| panic!("no region {region}"))
    }

    /// Cuts `region` off from the other two: every route between them is
    /// closed and refused until [`Regions::heal`]; returns once the
    /// region's server has no route left. The region's own server, leaf and
    /// clients keep running.
    pub fn partition(&mut self, region: &str) {
        for link in self.links_of(region) {
            link.proxy.refuse(true);
            link.proxy.cut();
        }
        let server = self.server(region);
        let deadline = Instant::now() + READY_TIMEOUT;
        while !server.routeless() {
            assert!(
                Instant::now() < deadline,
                "nats-server of region {region} still has routes {READY_TIMEOUT:?} after the cut"
            );
            std::thread::sleep(READY_POLL);
        }
    }

    /// Lets `region`'s routes connect again.
    pub fn heal(&self, region: &str) {
        for link in self.links_of(region) {
            link.proxy.refuse(false);
        }
    }

    fn links_of<'a>(&'a self, region: &'a str) -> impl Iterator<Item = &'a Link> + 'a {
        self.links
            .iter()
            .filter(move |l| l.from == region || l.to == region)
    }
}
