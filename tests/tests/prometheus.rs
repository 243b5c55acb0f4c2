//! The SRE surface against the real things: every daemon of a running
//! stack (real NATS and ClickHouse) serves `/metrics` that `promtool check
//! metrics` finds clean; every family a daemon registers (its
//! `/metrics/catalog`) is in ARCHITECTURE.md's metrics table; every metric
//! a dashboard queries exists; and Debian's `prometheus`, with the shipped
//! scrape config and rules, scrapes them all and fires
//! `BeaconProbeRegionSilent` when a probe region is killed. The rules'
//! unit tests (`promtool test rules`) run here too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use beacon_testkit::{free_port, wait_until, ClickHouseServer, DaemonProcess, NatsServer};
use beacon_tests::{apply_config, get, page_config, HttpTarget, READY};

const SETTLE: Duration = Duration::from_secs(60);
/// The rule under test has `for: 1m`; scrapes and evaluations every second.
const ALERT: Duration = Duration::from_secs(150);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut command = Command::new("promtool");
    command
        .args(args)
        .current_dir(root().join("deploy/prometheus"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/install-deps installs it)");
    if let Some(text) = stdin {
        use std::io::Write;
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(text.as_bytes()).expect("write to promtool");
    }
    drop(child.stdin.take());
    let output = child.wait_with_output().expect("promtool finishes");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_shipped_config_and_rules_pass_promtool_and_their_unit_tests() {
    let (ok, text) = promtool(&["check", "config", "prometheus.yml"], None);
    assert!(ok, "promtool check config:\n{text}");
    let (ok, text) = promtool(&["check", "rules", "beacon.rules.yml"], None);
    assert!(ok, "promtool check rules:\n{text}");
    let (ok, text) = promtool(&["test", "rules", "beacon.rules.test.yml"], None);
    assert!(ok, "promtool test rules:\n{text}");
}

/// Every `beacon_…` name in ARCHITECTURE.md's metrics table.
fn documented() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    text.lines()
        .filter_map(|line| line.strip_prefix("| `beacon_"))
        .filter_map(|rest| rest.split('`').next())
        .map(|name| format!("beacon_{name}"))
        .collect()
}

/// Every metric name the dashboards' queries name, and every
/// `__name__=~"…"` selector, with the file naming it.
fn charted() -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut names = BTreeMap::new();
    let mut selectors = BTreeMap::new();
    let selector = regex::Regex::new(r#"__name__=~\\?"([^"\\]+)"#).expect("pattern");
    let pattern = regex::Regex::new(r"beacon_[a-z0-9_]*[a-z0-9]").expect("pattern");
    for entry in std::fs::read_dir(root().join("dashboards")).expect("dashboards/") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read a dashboard");
        let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
        let file = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let mut exprs = Vec::new();
        collect_exprs(&dashboard, &mut exprs);
        for expr in exprs {
            for found in selector.captures_iter(&expr) {
                selectors.insert(found[1].to_owned(), file.clone());
            }
            for found in pattern.find_iter(&expr) {
                // `beacon_.+_degradation_level` is a selector, not a name.
                if expr[found.end()..].starts_with(".+") || expr[..found.start()].ends_with('~') {
                    continue;
                }
                names.insert(found.as_str().to_owned(), file.clone());
            }
        }
    }
    (names, selectors)
}

fn collect_exprs(value: &serde_json::Value, into: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) => into.push(expr.clone()),
                    _ => collect_exprs(value, into),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, into)),
        _ => {}
    }
}

/// One running daemon and how Prometheus should label it.
struct Scraped {
    daemon: &'static str,
    region: Option<&'static str>,
    process: DaemonProcess,
}

impl Scraped {
    fn address(&self) -> String {
        self.process
            .admin_url()
            .trim_start_matches("http://")
            .to_owned()
    }
}

/// A Prometheus server, killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Debian's `prometheus` with the shipped config (scraping and
    /// evaluating every second) and rules, scraping `targets`.
    fn start(targets: &[&Scraped]) -> Prometheus {
        let dir = tempfile::tempdir().expect("a Prometheus directory");
        let shipped = root().join("deploy/prometheus");
        let config = std::fs::read_to_string(shipped.join("prometheus.yml")).expect("config");
        let config = config
            .replace("scrape_interval: 15s", "scrape_interval: 1s")
            .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
            .replace("refresh_interval: 30s", "refresh_interval: 1s");
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write config");
        std::fs::copy(
            shipped.join("beacon.rules.yml"),
            dir.path().join("beacon.rules.yml"),
        )
        .expect("copy rules");
        std::fs::create_dir_all(dir.path().join("targets")).expect("targets/");
        let listed: Vec<serde_json::Value> = targets
            .iter()
            .map(|t| {
                let mut labels = serde_json::json!({"daemon": t.daemon});
                if let Some(region) = t.region {
                    labels["region"] = region.into();
                }
                serde_json::json!({"targets": [t.address()], "labels": labels})
            })
            .collect();
        std::fs::write(
            dir.path().join("targets/stack.json"),
            serde_json::to_vec(&listed).expect("targets JSON"),
        )
        .expect("write targets");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian's package; scripts/install-deps installs it)");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// The result vector of an instant query.
    async fn query(&self, promql: &str) -> Option<Vec<serde_json::Value>> {
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
        body["data"]["result"].as_array().cloned()
    }

    /// Alerts firing now, as (name, labels).
    async fn firing(&self) -> Vec<(String, serde_json::Value)> {
        let Some((_, body)) = get(&format!("{}/api/v1/alerts", self.url)).await else {
            return Vec::new();
        };
        let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        body["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["state"] == "firing")
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap_or("").to_owned(),
                    a["labels"].clone(),
                )
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_clean_documented_charted_and_alerted_on() {
    let nats = NatsServer::start();
    let clickhouse = tokio::task::block_in_place(ClickHouseServer::start);
    let target = HttpTarget::start().await;
    let origin = tempfile::tempdir().expect("origin");
    let state = tempfile::tempdir().expect("dns state");
    let dns_config = state.path().join("beacon-dns.toml");
    let edge_port = free_port();
    std::fs::write(
        &dns_config,
        format!(
            "[[edges]]\nname = \"local\"\naddresses = [\"127.0.0.1\"]\n\
             check = \"http://127.0.0.1:{edge_port}/api/v2/status.json\"\n\
             [[hosts]]\nname = \"status.metrics.test\"\npage = \"metrics\"\n"
        ),
    )
    .expect("write the DNS config");
    let bus = |extra: &[&str]| {
        let mut args = vec!["--nats-url".to_owned(), nats.url()];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let origin_dir = origin.path().display().to_string();
    let spawn = |daemon: &'static str, region: Option<&'static str>, args: Vec<String>| Scraped {
        daemon,
        region,
        process: DaemonProcess::spawn_with_admin(&format!("beacon-{daemon}"), args),
    };
    let mut stack = vec![
        spawn("decider", None, bus(&[])),
        spawn(
            "probe",
            Some("eu"),
            bus(&["--region", "eu", "--push-listen", "127.0.0.1:0"]),
        ),
        spawn("probe", Some("us"), bus(&["--region", "us"])),
        spawn(
            "recorder",
            None,
            bus(&["--clickhouse-url", &clickhouse.http_url()]),
        ),
        spawn(
            "notifier",
            None,
            bus(&[
                "--public-url",
                "http://127.0.0.1:9/api/v2/subscribers",
                "--signing-secret",
                "metrics-test-secret-of-enough-length",
            ]),
        ),
        spawn(
            "api",
            None,
            bus(&["--listen", &format!("127.0.0.1:{}", free_port())]),
        ),
        spawn("publisher", None, bus(&["--origin", &origin_dir])),
        spawn(
            "edge",
            None,
            bus(&[
                "--origin",
                &origin_dir,
                "--listen",
                &format!("127.0.0.1:{edge_port}"),
                "--mirror",
            ]),
        ),
        spawn(
            "dns",
            None,
            bus(&[
                "--listen",
                &format!("127.0.0.1:{}", free_port()),
                "--config",
                &dns_config.display().to_string(),
                "--state-dir",
                &state.path().display().to_string(),
            ]),
        ),
    ];
    for scraped in &stack {
        scraped.process.wait_ready(READY).await;
    }
    let client = async_nats::connect(nats.url()).await.expect("connect");
    apply_config(&client, &page_config("metrics", "Metrics", &target.url())).await;
    wait_until("the page served", SETTLE, || async {
        let (status, _) = get(&format!("http://127.0.0.1:{edge_port}/metrics/")).await?;
        (status == 200).then_some(())
    })
    .await;

    // Every exposition is clean, every family is documented.
    let table = documented();
    let mut registered = BTreeSet::new();
    let mut undocumented = Vec::new();
    for scraped in &stack {
        let admin = scraped.process.admin_url();
        let (_, text) = get(&format!("{admin}/metrics")).await.expect("/metrics");
        let (ok, complaints) = promtool(&["check", "metrics"], Some(&text));
        assert!(
            ok && complaints.trim().is_empty(),
            "promtool check metrics on {}:\n{complaints}",
            scraped.daemon
        );
        let (_, catalog) = get(&format!("{admin}/metrics/catalog"))
            .await
            .expect("/metrics/catalog");
        let catalog: Vec<serde_json::Value> = serde_json::from_str(&catalog).expect("catalog");
        for family in catalog {
            let name = family["name"].as_str().expect("name").to_owned();
            if !table.contains(&name)
                && !undocumented.iter().any(|row: &String| row.contains(&name))
            {
                let labels: Vec<String> = family["labels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l.as_str().map(|l| format!("`{l}`")))
                    .collect();
                undocumented.push(format!(
                    "| `{name}` | {} | {} | {} |",
                    family["type"].as_str().unwrap_or(""),
                    labels.join(", "),
                    family["help"].as_str().unwrap_or("")
                ));
            }
            registered.insert(name);
        }
    }
    assert!(
        undocumented.is_empty(),
        "metrics missing from ARCHITECTURE.md's table (\"Every metric\"):\n{}",
        undocumented.join("\n")
    );
    let stale: Vec<&String> = table.difference(&registered).collect();
    assert!(
        stale.is_empty(),
        "ARCHITECTURE.md lists metrics no daemon registers: {stale:?}"
    );

    // Every metric a dashboard queries exists.
    let family = |name: &str| {
        ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| registered.contains(*base))
            .map_or(name.to_owned(), str::to_owned)
    };
    let (names, selectors) = charted();
    let mut missing: Vec<String> = names
        .into_iter()
        .filter(|(name, _)| !registered.contains(&family(name)))
        .map(|(name, file)| format!("{name} (in {file})"))
        .collect();
    for (selector, file) in selectors {
        let anchored = regex::Regex::new(&format!("^(?:{selector})$")).expect("a selector");
        if !registered.iter().any(|name| anchored.is_match(name)) {
            missing.push(format!("{selector} (in {file}) matches nothing"));
        }
    }
    assert!(
        missing.is_empty(),
        "dashboards query metrics no daemon registers: {missing:?}"
    );

    // Prometheus scrapes them all with the shipped config and rules.
    let scraped: Vec<&Scraped> = stack.iter().collect();
    let prometheus = Prometheus::start(&scraped);
    let targets = stack.len();
    wait_until("every target scraped and up", SETTLE, || async {
        let up = prometheus.query("up{job=\"beacon\"} == 1").await?;
        (up.len() == targets).then_some(())
    })
    .await;
    for key in [
        "beacon_decider_degradation_level",
        "beacon_probe_heartbeats_total",
        "beacon_publisher_renders_total",
        "beacon_edge_pages",
        "beacon_dns_status_followed",
        "beacon_recorder_degradation_level",
        "beacon_notifier_degradation_level",
        "beacon_api_degradation_level",
    ] {
        wait_until(&format!("{key} in Prometheus"), SETTLE, || async {
            let series = prometheus.query(key).await?;
            (!series.is_empty()).then_some(())
        })
        .await;
    }
    let silent = |alerts: &[(String, serde_json::Value)]| {
        alerts
            .iter()
            .any(|(name, labels)| name == "BeaconProbeRegionSilent" && labels["region"] == "eu")
    };
    assert!(
        !silent(&prometheus.firing().await),
        "a live region is not silent"
    );

    // A probe region is lost: its alert fires.
    let probe = stack
        .iter_mut()
        .find(|s| s.region == Some("eu"))
        .expect("probe eu");
    probe.process.kill();
    wait_until("BeaconProbeRegionSilent to fire for eu", ALERT, || async {
        silent(&prometheus.firing().await).then_some(())
    })
    .await;
    drop(target);
}
