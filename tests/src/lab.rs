//! Three regions on one machine: per region its NATS server (one cluster
//! stretched over the regions, from `deploy/nats/regions/region.conf`) and
//! its leaf server (the region's own JetStream domain, from `leaf.conf`), a
//! probe, a decider, a publisher with its own origin, a notifier (email to
//! one subscriber, received by a loopback SMTP server), an edge, a
//! recorder and the HTTP API, every daemon under its own least-privilege
//! user from `deploy/nats/beacon-users.conf`, and every stream and bucket
//! with three replicas. The recorders share one ClickHouse, which stands
//! for the deployment's history database outside the regions (a managed
//! service, or ClickHouse's own replication): losing a region loses none
//! of it. `beacon-lab` runs it; `tests/tests/regions.rs` loses a region in
//! it, `tests/tests/partition.rs` cuts one off.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use beacon_testkit::receivers::smtp::SmtpSink;
use beacon_testkit::regions::Regions;
use beacon_testkit::{free_port, ClickHouseServer, DaemonProcess};

use crate::{apply_config, component_status, get, HttpTarget, READY};

/// The lab's regions.
pub const REGIONS: [&str; 3] = ["eu", "us", "ap"];

/// Where each region's decider and notifier are in [`Region::daemons`].
const DECIDER: usize = 1;
const NOTIFIER: usize = 3;

/// The page's one subscriber (email, every component).
pub const SUBSCRIBER: &str = "ops@example.com";

/// The default passwords of `deploy/nats/beacon-users.conf`.
pub const PASSWORDS: &[(&str, &str)] = &[
    ("probe", "change-me-probe"),
    ("decider", "change-me-decider"),
    ("publisher", "change-me-publisher"),
    ("recorder", "change-me-recorder"),
    ("notifier", "change-me-notifier"),
    ("ctl", "change-me-ctl"),
    ("edge", "change-me-edge"),
    ("admin", "change-me-admin"),
    ("api", "change-me-api"),
    ("dns", "change-me-dns"),
];

/// The password of `user` in `deploy/nats/beacon-users.conf`.
pub fn password(user: &str) -> &'static str {
    PASSWORDS
        .iter()
        .find(|(name, _)| *name == user)
        .map(|(_, password)| *password)
        .unwrap_or_else(|| panic!("no user {user} in beacon-users.conf"))
}

/// Why a set of region names cannot make a lab; every problem is listed.
pub fn check_regions(names: &[String]) -> Result<[String; 3], Vec<String>> {
    let mut problems = Vec::new();
    if names.len() != 3 {
        problems.push(format!(
            "the lab runs exactly three regions (one NATS server each, as deploy/nats/regions/region.conf names three routes), got {}",
            names.len()
        ));
    }
    let mut seen = BTreeSet::new();
    for name in names {
        if let Err(e) = beacon_contract::names::check_token(name) {
            problems.push(format!("region {name:?}: {e}"));
        }
        if !seen.insert(name) {
            problems.push(format!(
                "region {name:?} is named twice: every server needs its own name"
            ));
        }
    }
    match <[String; 3]>::try_from(names.to_vec()) {
        Ok(regions) if problems.is_empty() => Ok(regions),
        _ => Err(problems),
    }
}

/// One region's daemons.
pub struct Region {
    /// Its name.
    pub name: String,
    /// Probe, decider, publisher, notifier, edge, recorder, api, dns.
    pub daemons: Vec<DaemonProcess>,
    /// Where its edge serves.
    pub edge_url: String,
    /// Where its HTTP API serves.
    pub api_url: String,
    /// Where its DNS responder answers (UDP and TCP).
    pub dns_addr: std::net::SocketAddr,
    // The responder's config and state.
    _state: tempfile::TempDir,
    // The publisher writes here and the edge serves it.
    _origin: tempfile::TempDir,
}

/// The lab.
pub struct Lab {
    /// The regions' NATS servers.
    pub nats: Regions,
    /// The regions' daemons, in the order of [`Lab::start`]'s names.
    pub regions: Vec<Region>,
    /// The page's id.
    pub page: String,
    /// Where every region's notifier sends the page's email.
    pub mail: SmtpSink,
    /// Where every region's recorder keeps history.
    pub clickhouse: ClickHouseServer,
}

/// `--nats-url <region's server> --nats-user <user> --nats-password <pw>`.
fn bus(url: &str, user: &str) -> Vec<String> {
    vec![
        "--nats-url".into(),
        url.to_owned(),
        "--nats-user".into(),
        user.to_owned(),
        "--nats-password".into(),
        password(user).to_owned(),
    ]
}

fn with(mut args: Vec<String>, extra: &[&str]) -> Vec<String> {
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The lab's host name, which every region's DNS responder answers for.
pub const LAB_HOST: &str = "status.lab.test";

/// The address the DNS responders hand out for region number `i`'s edge
/// (`127.0.0.2` and on: A records carry no port, so on one machine the
/// regions' edges are told apart by these).
pub fn edge_address(i: usize) -> String {
    format!("127.0.0.{}", i + 2)
}

/// Every region's DNS responder's config: the three edges, each checked
/// at its page's `status.json`, and [`LAB_HOST`] for the page.
pub fn lab_dns_config(regions: &[String; 3], edge_ports: &[u16], page: &str) -> String {
    let mut config = String::from(
        "ttl = \"5s\"\ncheck_interval = \"1s\"\ncheck_timeout = \"500ms\"\n\
         fail_after = 2\nrecover_after = 2\n",
    );
    for (i, (region, port)) in regions.iter().zip(edge_ports).enumerate() {
        config.push_str(&format!(
            "[[edges]]\nname = \"{region}\"\naddresses = [\"{}\"]\n\
             check = \"http://127.0.0.1:{port}/api/v2/status.json\"\n",
            edge_address(i)
        ));
    }
    config.push_str(&format!(
        "[[hosts]]\nname = \"{LAB_HOST}\"\npage = \"{page}\"\n"
    ));
    config
}

/// A page with one component, `api`, checking `target` from every region,
/// and an email channel to `smtp` (`host:port`). The lab takes the target
/// down and up again round after round, on purpose: that is not flapping.
pub fn lab_page(page: &str, regions: &[String; 3], target: &str, smtp: &str) -> String {
    let list = regions
        .iter()
        .map(|r| format!("\"{r}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[page]\nid = \"{page}\"\nname = \"Lab\"\n\
         [defaults]\nregions = [{list}]\ninterval = \"1s\"\ntimeout = \"1s\"\n\
         failure_threshold = 2\nrecovery_threshold = 2\n\
         flap_transitions = 50\n\
         [[components]]\nid = \"api\"\nname = \"API\"\n\
         [[components.checks]]\ntype = \"http\"\nurl = \"{target}\"\n\
         [[channels]]\nid = \"mail\"\ntype = \"email\"\nfrom = \"status@example.com\"\n\
         endpoint = \"{smtp}\"\ntls = \"none\"\n"
    )
}

impl Lab {
    /// Starts the regions' servers, applies the topology with three
    /// replicas as the admin user, starts every region's daemons and waits
    /// until they are ready, then applies a page checking `target`.
    pub async fn start(regions: [String; 3], page: &str, target: &HttpTarget) -> Lab {
        let names = [
            regions[0].as_str(),
            regions[1].as_str(),
            regions[2].as_str(),
        ];
        let (nats, clickhouse) =
            tokio::task::block_in_place(|| (Regions::start(names), ClickHouseServer::start()));
        let first = nats.servers[0].url();
        // Every server is healthy, but the cluster may not yet count all
        // three as peers for placing three replicas: ask again until it does.
        let ensure = || {
            std::process::Command::new(beacon_testkit::daemon::binary("beaconctl"))
                .args(with(
                    bus(&first, "admin"),
                    &[
                        "bus",
                        "ensure",
                        "--replicas",
                        "3",
                        "--regions",
                        &regions.join(","),
                    ],
                ))
                .output()
                .expect("run beaconctl bus ensure")
        };
        let deadline = std::time::Instant::now() + ENSURE_WITHIN;
        loop {
            let ensured = tokio::task::block_in_place(ensure);
            if ensured.status.success() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "beaconctl bus ensure --replicas 3: {}",
                String::from_utf8_lossy(&ensured.stderr)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let mut lab = Lab {
            regions: Vec::new(),
            nats,
            page: page.to_owned(),
            mail: SmtpSink::start().await,
            clickhouse,
        };
        let clickhouse_url = lab.clickhouse.http_url();
        let edge_ports: Vec<u16> = regions.iter().map(|_| free_port()).collect();
        let dns_config = lab_dns_config(&regions, &edge_ports, page);
        for (i, (server, name)) in lab.nats.servers.iter().zip(regions.iter()).enumerate() {
            let url = server.url();
            let origin = tempfile::tempdir().expect("an origin");
            let origin_path = origin.path().display().to_string();
            let edge_port = edge_ports[i];
            let api_port = free_port();
            let dns_port = free_port();
            let state = tempfile::tempdir().expect("a state directory");
            let dns_config_path = state.path().join("beacon-dns.toml");
            std::fs::write(&dns_config_path, &dns_config).expect("write the responder's config");
            let daemons = vec![
                DaemonProcess::spawn_with_admin(
                    "beacon-probe",
                    with(bus(&url, "probe"), &["--region", name, "--replicas", "3"]),
                ),
                DaemonProcess::spawn_with_admin(
                    "beacon-decider",
                    with(bus(&url, "decider"), &["--replicas", "3", "--region", name]),
                ),
                DaemonProcess::spawn_with_admin(
                    "beacon-publisher",
                    with(
                        bus(&url, "publisher"),
                        &[
                            "--replicas",
                            "3",
                            "--region",
                            name,
                            "--origin",
                            &origin_path,
                            "--debounce",
                            "50ms",
                        ],
                    ),
                ),
                DaemonProcess::spawn_with_admin(
                    "beacon-notifier",
                    with(
                        bus(&url, "notifier"),
                        &[
                            "--replicas",
                            "3",
                            "--region",
                            name,
                            "--public-url",
                            &format!("http://127.0.0.1:{edge_port}"),
                            "--signing-secret",
                            "lab-signing-secret-0123456789abcdefghij",
                        ],
                    ),
                ),
                DaemonProcess::spawn_with_admin(
                    "beacon-edge",
                    vec![
                        "--origin".into(),
                        origin_path.clone(),
                        "--page".into(),
                        page.to_owned(),
                        "--listen".into(),
                        format!("127.0.0.1:{edge_port}"),
                    ],
                ),
                DaemonProcess::spawn_with_admin(
                    "beacon-recorder",
                    with(
                        bus(&url, "recorder"),
                        &["--replicas", "3", "--clickhouse-url", &clickhouse_url],
                    ),
                ),
                DaemonProcess::spawn_with_admin(
                    "beacon-api",
                    with(
                        bus(&url, "api"),
                        &["--listen", &format!("127.0.0.1:{api_port}")],
                    ),
                ),
                DaemonProcess::spawn_with_admin(
                    "beacon-dns",
                    with(
                        bus(&url, "dns"),
                        &[
                            "--listen",
                            &format!("127.0.0.1:{dns_port}"),
                            "--config",
                            &dns_config_path.display().to_string(),
                            "--state-dir",
                            &state.path().join("dns").display().to_string(),
                        ],
                    ),
                ),
            ];
            lab.regions.push(Region {
                name: name.clone(),
                daemons,
                edge_url: format!("http://127.0.0.1:{edge_port}"),
                api_url: format!("http://127.0.0.1:{api_port}"),
                dns_addr: ([127, 0, 0, 1], dns_port).into(),
                _state: state,
                _origin: origin,
            });
        }
        for region in &lab.regions {
            for daemon in &region.daemons {
                daemon.wait_ready(READY).await;
            }
        }
        let ctl = lab.client(&regions[0], "ctl").await;
        let smtp = lab.mail.endpoint();
        apply_config(&ctl, &lab_page(page, &regions, &target.url(), &smtp)).await;
        let subscribed = tokio::process::Command::new(beacon_testkit::daemon::binary("beaconctl"))
            .args(with(
                bus(&first, "ctl"),
                &["subscriber", "add", page, "--email", SUBSCRIBER],
            ))
            .env("BEACON_ACTOR", "lab")
            .output()
            .await
            .expect("run beaconctl subscriber add");
        assert!(
            subscribed.status.success(),
            "beaconctl subscriber add: {}",
            String::from_utf8_lossy(&subscribed.stderr)
        );
        lab
    }

    /// When every result of `region`'s probe for component `api` in the
    /// cluster's HEALTH stream started (read through `through`'s server
    /// as the admin user).
    pub async fn result_starts(&self, through: &str, region: &str) -> Vec<u64> {
        let client = self.client(through, "admin").await;
        let js = async_nats::jetstream::new(client);
        let subject = beacon_contract::names::health_subject(&self.page, "api", region);
        let Ok(stored) =
            beacon_runtime::history::read(&js, beacon_contract::names::STREAM_HEALTH, &subject)
                .await
        else {
            return Vec::new();
        };
        stored
            .iter()
            .filter_map(|m| {
                beacon_contract::event::Envelope::<beacon_contract::messages::HealthResult>::decode(
                    &m.payload,
                )
                .ok()
            })
            .map(|e| e.data.started_at_ms)
            .collect()
    }

    /// When every result of `region`'s probe for component `api` that the
    /// recorders stored in ClickHouse started (copies included).
    pub fn history_starts(&self, region: &str) -> Vec<u64> {
        let sql = format!(
            "SELECT started_at_ms FROM beacon.health_results \
             WHERE page = '{}' AND component = 'api' AND region = '{region}' \
             ORDER BY started_at_ms FORMAT TabSeparated",
            self.page
        );
        match tokio::task::block_in_place(|| self.clickhouse.try_query(&sql)) {
            Ok(text) => text.lines().filter_map(|l| l.trim().parse().ok()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// A new API key for the page that reads and writes incidents, made
    /// with `beaconctl apikey create` through `region`'s server: the key.
    pub async fn api_key(&self, region: &str) -> String {
        let created = tokio::process::Command::new(beacon_testkit::daemon::binary("beaconctl"))
            .args(with(
                bus(&self.nats.url_of(region), "ctl"),
                &[
                    "apikey",
                    "create",
                    "--page",
                    &self.page,
                    "--name",
                    "lab",
                    "--scope",
                    "incidents:read",
                    "--scope",
                    "incidents:write",
                    "--output",
                    "json",
                ],
            ))
            .env("BEACON_ACTOR", "lab")
            .output()
            .await
            .expect("run beaconctl apikey create");
        assert!(
            created.status.success(),
            "beaconctl apikey create: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        let view: serde_json::Value =
            serde_json::from_slice(&created.stdout).expect("beaconctl prints JSON");
        view["key"].as_str().expect("the key").to_owned()
    }

    /// Mails to the subscriber whose text mentions `text`.
    pub fn mails_about(&self, text: &str) -> usize {
        self.mail
            .mails()
            .iter()
            .filter(|mail| mail.decoded().contains(text))
            .count()
    }

    /// Distinct notices (idempotency keys) among the mails that mention
    /// `text`: a notice planned twice, by two regions or two terms, would
    /// be two.
    pub fn notices_about(&self, text: &str) -> usize {
        self.mail
            .mails()
            .iter()
            .filter(|mail| mail.decoded().contains(text))
            .map(|mail| mail.header("X-Beacon-Idempotency-Key"))
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// Mails that repeat a notice already received (the same idempotency
    /// key): the subscriber was told the same thing twice.
    pub fn repeated_mails(&self) -> usize {
        self.repeats().len()
    }

    /// The idempotency key of every mail that repeats one received before,
    /// with when the first and the repeat came.
    pub fn repeats(&self) -> Vec<(String, std::time::Instant, std::time::Instant)> {
        let mut first = std::collections::BTreeMap::new();
        let mut repeats = Vec::new();
        for mail in self.mail.mails() {
            let key = mail.header("X-Beacon-Idempotency-Key").unwrap_or_default();
            match first.get(&key) {
                Some(at) => repeats.push((key, *at, mail.at)),
                None => {
                    first.insert(key, mail.at);
                }
            }
        }
        repeats
    }

    /// A client of `region`'s server as `user`.
    pub async fn client(&self, region: &str, user: &str) -> async_nats::Client {
        let url = self.nats.url_of(region);
        async_nats::ConnectOptions::with_user_and_password(
            user.to_owned(),
            password(user).to_owned(),
        )
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {region} as {user}: {e}"))
    }

    /// The region named `name`.
    pub fn region(&self, name: &str) -> &Region {
        self.regions
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no region {name}"))
    }

    fn region_mut(&mut self, name: &str) -> &mut Region {
        self.regions
            .iter_mut()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no region {name}"))
    }

    /// `kill -9` of every process of `name`, its NATS server included.
    pub fn lose(&mut self, name: &str) {
        let region = self.region_mut(name);
        for daemon in &mut region.daemons {
            daemon.kill();
        }
        tokio::task::block_in_place(|| {
            self.nats.leaf(name).kill();
            self.nats.server(name).kill();
        });
    }

    /// Cuts `name` off from the other regions (every route between them
    /// closed and refused); everything of it keeps running.
    pub fn partition(&mut self, name: &str) {
        tokio::task::block_in_place(|| self.nats.partition(name));
    }

    /// Lets `name`'s routes to the others connect again.
    pub fn heal(&self, name: &str) {
        self.nats.heal(name);
    }

    /// Starts `name`'s server and daemons again; waits until they are ready.
    pub async fn bring_back(&mut self, name: &str) {
        tokio::task::block_in_place(|| {
            self.nats.server(name).start_again();
            self.nats.leaf(name).start_again();
        });
        let region = self.region_mut(name);
        for daemon in &mut region.daemons {
            daemon.restart();
        }
        for daemon in &region.daemons {
            daemon.wait_ready(READY).await;
        }
    }

    /// The region whose decider holds the (single) decider lease, if any.
    pub async fn leading_region(&self) -> Option<String> {
        self.holding_region(DECIDER, "beacon_decider_lease_holder{")
            .await
    }

    /// The region whose notifier holds the planner's lease, if any.
    pub async fn planning_region(&self) -> Option<String> {
        self.holding_region(NOTIFIER, "beacon_notifier_lease_holder{")
            .await
    }

    /// The region whose daemon at `index` reports itself holder on the
    /// metric line starting with `metric`.
    async fn holding_region(&self, index: usize, metric: &str) -> Option<String> {
        for region in &self.regions {
            let url = format!("{}/metrics", region.daemons[index].admin_url());
            let Ok(response) = reqwest::get(&url).await else {
                continue;
            };
            let text = response.text().await.unwrap_or_default();
            if text
                .lines()
                .any(|l| l.starts_with(metric) && l.ends_with(" 1"))
            {
                return Some(region.name.clone());
            }
        }
        None
    }

    /// The addresses `region`'s DNS responder hands out for [`LAB_HOST`],
    /// sorted; `None` when it does not answer within a second.
    pub async fn handed_out(&self, region: &str) -> Option<Vec<String>> {
        let answer = beacon_testkit::dns::ask(
            self.region(region).dns_addr,
            &format!("{LAB_HOST}."),
            hickory_proto::rr::RecordType::A,
        )
        .await?;
        Some(beacon_testkit::dns::a_records(&answer))
    }

    /// The status the edge of `region` serves for component `api`.
    pub async fn served_status(&self, region: &str) -> Option<String> {
        let url = format!("{}/api/v2/summary.json", self.region(region).edge_url);
        let (status, body) = get(&url).await?;
        (status == 200)
            .then(|| component_status(&body, "api"))
            .flatten()
    }
}

/// A changelog entry for the lab's page, about `api`, with an idempotency
/// key.
pub fn changelog_entry(title: &str, key: &str) -> beacon_contract::api::PublishChangelogRequest {
    beacon_contract::api::PublishChangelogRequest {
        page: "lab".into(),
        title: title.into(),
        body_markdown: format!("{title}: shipped."),
        category: "improvement".into(),
        components: vec!["api".into()],
        published_at_ms: None,
        images: vec![],
        actor: "lab".into(),
        idempotency_key: Some(key.into()),
    }
}

/// One request to `endpoint` through `client`, answered within 15 s: the
/// result when the owner answers Ok, else `None` (a refusal is printed).
/// Tests and the `regions` scenario retry it with an idempotency key, so
/// every retry is the same write.
pub async fn ask<Req: serde::Serialize, Res: serde::de::DeserializeOwned + std::fmt::Debug>(
    client: &async_nats::Client,
    endpoint: beacon_contract::api::Endpoint<Req, Res>,
    request: &Req,
) -> Option<Res> {
    let payload = serde_json::to_vec(request).ok()?;
    let asked = async_nats::Request::new()
        .payload(payload.into())
        .timeout(Some(Duration::from_secs(15)));
    let reply = client.send_request(endpoint.subject(), asked).await.ok()?;
    match serde_json::from_slice(&reply.payload).ok()? {
        beacon_contract::api::ApiReply::<Res>::Ok { result } => Some(result),
        other => {
            eprintln!("{}: {other:?}", endpoint.subject());
            None
        }
    }
}

/// A new incident on the lab's page, with no component (so it states no
/// status: what the page shows stays the evidence's), keyed by `key`; its
/// first update reads "{title}: investigating.".
pub fn new_incident(title: &str, key: &str) -> beacon_contract::api::CreateIncidentRequest {
    beacon_contract::api::CreateIncidentRequest {
        page: "lab".into(),
        title: title.into(),
        impact: beacon_contract::messages::Impact::Minor,
        state: None,
        body: format!("{title}: investigating."),
        components: Vec::new(),
        actor: "lab".into(),
        idempotency_key: Some(key.into()),
    }
}

/// An update of `incident` to `identified` with `body`, keyed by `key`.
pub fn incident_update(
    incident: &str,
    body: &str,
    key: &str,
) -> beacon_contract::api::ChangeIncidentRequest {
    beacon_contract::api::ChangeIncidentRequest {
        page: "lab".into(),
        incident: incident.into(),
        expected_revision: None,
        state: Some(beacon_contract::messages::IncidentState::Identified),
        body: body.into(),
        title: None,
        impact: None,
        components: None,
        actor: "lab".into(),
        idempotency_key: Some(key.into()),
    }
}

/// How long the cluster may take to accept the topology after its servers
/// are healthy.
const ENSURE_WITHIN: Duration = Duration::from_secs(60);

/// Where results are missing: every stretch of `[from_ms, to_ms]` longer
/// than `max_gap_ms` with no result started in it (a probe checking every
/// second leaves none longer than a few seconds). `starts` in any order.
pub fn holes(starts: &[u64], from_ms: u64, to_ms: u64, max_gap_ms: u64) -> Vec<(u64, u64)> {
    let mut inside: Vec<u64> = starts
        .iter()
        .copied()
        .filter(|at| (from_ms..=to_ms).contains(at))
        .collect();
    inside.sort_unstable();
    let mut holes = Vec::new();
    let mut last = from_ms;
    for at in inside.into_iter().chain(std::iter::once(to_ms)) {
        if at.saturating_sub(last) > max_gap_ms {
            holes.push((last, at));
        }
        last = last.max(at);
    }
    holes
}

/// How often the availability poller asks each edge.
pub const POLL: Duration = Duration::from_millis(50);

/// Failed and total requests to the edges at `urls` (their summary), each
/// asked every [`POLL`] until `stop`.
pub fn poll_edges(
    urls: Vec<String>,
    stop: Arc<AtomicBool>,
) -> (Arc<AtomicU64>, Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let failed = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    let (f, t) = (failed.clone(), total.clone());
    let task = tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            for url in &urls {
                t.fetch_add(1, Ordering::SeqCst);
                match get(&format!("{url}/api/v2/summary.json")).await {
                    Some((200, _)) => {}
                    _ => {
                        f.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            tokio::time::sleep(POLL).await;
        }
    });
    (failed, total, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn holes_are_the_stretches_without_results() {
        // Every second from 1000 to 10000, except 4000..=7000.
        let starts: Vec<u64> = (1..=10)
            .map(|s| s * 1000)
            .filter(|at| !(4000..=7000).contains(at))
            .collect();
        assert_eq!(holes(&starts, 1000, 10_000, 2500), vec![(3000, 8000)]);
        assert!(holes(&starts, 1000, 3500, 2500).is_empty());
        // Nothing at all in the window, and nothing after its last result.
        assert_eq!(holes(&[], 0, 5000, 2500), vec![(0, 5000)]);
        assert_eq!(holes(&[1000], 0, 5000, 2500), vec![(1000, 5000)]);
        // Order and results outside the window do not matter.
        assert!(holes(&[3000, 1000, 2000, 99_999], 1000, 3000, 1500).is_empty());
    }

    #[test]
    fn a_lab_needs_three_distinct_valid_region_names() {
        assert!(check_regions(&names(&["eu", "us", "ap"])).is_ok());
        let problems = check_regions(&names(&["eu", "eu", "a b", "ap"])).expect_err("refused");
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("exactly three"));
        assert!(problems.iter().any(|p| p.contains("named twice")));
        assert!(problems.iter().any(|p| p.contains("\"a b\"")));
    }
}
