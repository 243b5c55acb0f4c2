//! The published-pages scenarios:
//!
//! - `render`: a 50-component page with 90-day uptime bars, incidents,
//!   maintenance and a changelog, rendered (every file) over and over; the
//!   same-run baseline is serializing the page's inputs with serde_json.
//! - `edge`: the release `beacon-edge` against nginx (Debian's, one
//!   worker, `gzip_static`) serving the same files in the same run, under
//!   wrk on loopback: `index.html` and `summary.json`, plain and gzip.
//! - `sse`: 10,000 concurrent Server-Sent Events clients on one edge; a new
//!   version is published and each client's time to receive it measured.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use beacon_contract::api::ChangelogView;
use beacon_contract::event::{Envelope, EventId};
use beacon_contract::hlc::{wall_clock_ms, Hlc};
use beacon_contract::incident::Incident;
use beacon_contract::messages::*;
use beacon_page::config::PageConfig;
use beacon_publisher::render::{site, MaintenanceItem, PageState};
use beacon_publisher::site::{publish_local, Compressor};
use beacon_publisher::strings::EN;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::cli::{EdgeBenchArgs, RenderArgs, SseArgs};
use crate::error::LoadError;
use crate::progress;
use crate::report::median;

const DAY: u64 = 86_400_000;

/// Everything a page render reads, owned.
pub struct BenchPage {
    config: PageConfig,
    statuses: HashMap<String, StatusRecord>,
    uptime: HashMap<String, UptimeRollup>,
    incidents: Vec<Incident>,
    maintenance: Vec<MaintenanceItem>,
    changelog: Vec<ChangelogView>,
    assets: BTreeMap<String, Vec<u8>>,
    now: u64,
}

impl BenchPage {
    /// The state to render.
    pub fn state(&self) -> PageState<'_> {
        PageState {
            config: &self.config,
            statuses: &self.statuses,
            uptime: &self.uptime,
            incidents: &self.incidents,
            maintenance: &self.maintenance,
            changelog: &self.changelog,
            assets: &self.assets,
            generated_at_ms: self.now,
            strings: &EN,
            degradation: beacon_contract::degradation::Level::Full,
        }
    }

    /// A page `id` with `components` components in groups of ten, each
    /// with 90 days of rollups; a few incidents, windows and entries.
    pub fn new(id: &str, components: usize) -> Result<BenchPage, LoadError> {
        let now = wall_clock_ms();
        let mut toml = format!("[page]\nid = \"{id}\"\nname = \"Benchmark page\"\n");
        for g in 0..components.div_ceil(10) {
            toml.push_str(&format!(
                "[[groups]]\nid = \"g{g}\"\nname = \"Group {g}\"\n"
            ));
        }
        for c in 0..components {
            toml.push_str(&format!(
                "[[components]]\nid = \"c{c}\"\nname = \"Component {c}\"\ndescription = \"The service number {c}\"\ngroup = \"g{}\"\n",
                c / 10
            ));
        }
        let config = beacon_page::config::load(&toml)
            .map_err(|e| LoadError::Unexpected(format!("benchmark page config: {e}")))?;
        let mut statuses = HashMap::new();
        let mut uptime = HashMap::new();
        for c in 0..components {
            let id_c = format!("c{c}");
            let status = match c % 17 {
                3 => ComponentStatus::DegradedPerformance,
                7 => ComponentStatus::PartialOutage,
                _ => ComponentStatus::Operational,
            };
            statuses.insert(
                id_c.clone(),
                StatusRecord::new(
                    id,
                    &id_c,
                    status,
                    now - DAY,
                    EventId::new(),
                    Evidence {
                        rule: "all regions up".into(),
                        trigger: None,
                        regions: vec![],
                    },
                ),
            );
            let days = (0..90u64)
                .rev()
                .map(|back| {
                    let date = chrono_day(now - back * DAY);
                    let down = if (back + c as u64) % 23 == 0 {
                        600_000
                    } else {
                        0
                    };
                    DayRollup {
                        date,
                        up_ms: DAY - down,
                        degraded_ms: 0,
                        down_ms: down,
                        partial_ms: down,
                        major_ms: 0,
                        maintenance_ms: 0,
                        no_data_ms: 0,
                        uptime_percent: Some(100.0 * (1.0 - down as f64 / DAY as f64)),
                    }
                })
                .collect();
            uptime.insert(
                id_c.clone(),
                UptimeRollup {
                    page: id.into(),
                    component: id_c,
                    days,
                },
            );
        }
        let clock = beacon_contract::hlc::HlcClock::new();
        let mut incidents = Vec::new();
        for n in 0..5u64 {
            let mut event = IncidentEvent::new(
                id,
                &format!("inc{n}"),
                IncidentAction::Created,
                "bench",
                now - n * DAY,
            );
            event.lifecycle = Some(IncidentLifecycle::Open);
            event.title = Some(format!("Incident {n}"));
            event.impact = Some(Impact::Minor);
            event.state = Some(if n == 0 {
                IncidentState::Investigating
            } else {
                IncidentState::Resolved
            });
            event.components = Some(vec![AffectedComponent {
                component: "c7".into(),
                status: ComponentStatus::PartialOutage,
            }]);
            event.update = Some(IncidentUpdate {
                id: format!("u{n}"),
                state: IncidentState::Investigating,
                body: "We are looking into it.".into(),
                components: vec![],
                at_ms: now - n * DAY,
                actor: "bench".into(),
            });
            let envelope =
                Envelope::with_id(EventId::new(), Hlc::new(now - n * DAY, 0), "bench", event);
            if let Some(incident) = Incident::fold([&envelope], 1) {
                incidents.push(incident);
            }
        }
        let mut maintenance = Vec::new();
        for n in 0..3u64 {
            let event = MaintenanceEvent {
                page: id.into(),
                maintenance: format!("m{n}"),
                action: MaintenanceAction::Scheduled,
                actor: "bench".into(),
                at_ms: now,
                phase: MaintenancePhase::Scheduled,
                title: format!("Window {n}"),
                body: "Upgrades.".into(),
                starts_at_ms: now + (n + 1) * DAY,
                ends_at_ms: now + (n + 1) * DAY + 3_600_000,
                components: vec!["c1".into()],
                recurrence: None,
                series: None,
                remind_before_ms: 0,
                verify_ms: 0,
            };
            let envelope = Envelope::new(&clock, "bench", event);
            if let Some(window) = beacon_contract::maintenance::Window::fold([(&envelope, 1)]) {
                maintenance.push(MaintenanceItem {
                    window,
                    events: vec![envelope.data.clone()],
                });
            }
        }
        let changelog = (0..10u64)
            .map(|n| ChangelogView {
                entry: ChangelogEntry {
                    page: id.into(),
                    entry: format!("e{n}"),
                    title: format!("Entry {n}"),
                    body_markdown: "Something **better**, with a [link](https://example.com)."
                        .into(),
                    category: "improvement".into(),
                    components: vec![],
                    withdrawn: false,
                    published_at_ms: now - n * DAY,
                    images: vec![],
                    actor: "bench".into(),
                },
                created_at_ms: now - n * DAY,
                updated_at_ms: now - n * DAY,
                revision: 1,
            })
            .collect();
        Ok(BenchPage {
            config,
            statuses,
            uptime,
            incidents,
            maintenance,
            changelog,
            assets: BTreeMap::new(),
            now,
        })
    }
}

fn chrono_day(ms: u64) -> String {
    let days = ms / DAY;
    // Civil date from days (Howard Hinnant's civil_from_days).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------
// render
// ---------------------------------------------------------------------------

/// What `render` reports.
#[derive(Debug, Serialize)]
pub struct RenderReport {
    scenario: &'static str,
    components: usize,
    days: usize,
    iterations: usize,
    files: usize,
    index_html_bytes: usize,
    /// Rendering every file of the site, ms.
    render_ms_median: f64,
    render_ms_p99: f64,
    /// Of that, `index.html` alone.
    index_ms_median: f64,
    /// Hashing and precompressing a changed site (gzip 9, brotli 9), ms: the
    /// rest of a publish before the write.
    compress_ms_median: f64,
    /// Same-run baseline: serde_json of the page's inputs (config, statuses,
    /// 90-day rollups), ms.
    baseline_serialize_inputs_ms_median: f64,
    ratio_render_to_baseline: f64,
    goal_render_ms: f64,
    goal_met: bool,
}

/// Runs `render`.
pub fn render(args: &RenderArgs) -> Result<RenderReport, LoadError> {
    let page = BenchPage::new("bench", args.components)?;
    let state = page.state();
    let mut render_ms = Vec::new();
    let mut index_ms = Vec::new();
    let mut baseline_ms = Vec::new();
    let mut files = Vec::new();
    // Warm up allocators and caches.
    for _ in 0..3 {
        files = site(&state);
    }
    for _ in 0..args.iterations {
        let started = Instant::now();
        let inputs = serde_json::to_vec(&(&page.config, &page.statuses, &page.uptime))
            .map_err(|e| LoadError::Unexpected(e.to_string()))?;
        baseline_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(inputs);
        let started = Instant::now();
        files = std::hint::black_box(site(&state));
        render_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        std::hint::black_box(beacon_publisher::render::html::index(&state));
        index_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let mut compress_ms = Vec::new();
    for _ in 0..args.iterations.min(20) {
        // A fresh compressor each time: every file counts as changed.
        let started = Instant::now();
        std::hint::black_box(Compressor::default().build("bench", "v", 0, vec![], files.clone()));
        compress_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let index_bytes = files
        .iter()
        .find(|(p, _)| p == "index.html")
        .map_or(0, |(_, b)| b.len());
    let mut sorted = render_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let render_median = median(&render_ms);
    let baseline = median(&baseline_ms);
    Ok(RenderReport {
        scenario: "render",
        components: args.components,
        days: 90,
        iterations: args.iterations,
        files: files.len(),
        index_html_bytes: index_bytes,
        render_ms_median: round(render_median),
        render_ms_p99: round(percentile(&sorted, 0.99)),
        index_ms_median: round(median(&index_ms)),
        compress_ms_median: round(median(&compress_ms)),
        baseline_serialize_inputs_ms_median: round(baseline),
        ratio_render_to_baseline: round(render_median / baseline.max(1e-9)),
        goal_render_ms: 10.0,
        goal_met: render_median < 10.0,
    })
}

// ---------------------------------------------------------------------------
// Processes: the edge and nginx.
// ---------------------------------------------------------------------------

/// Renders and compresses the benchmark page, ready to write.
fn build_page(page: &BenchPage, compressor: &mut Compressor) -> beacon_publisher::site::Built {
    let version = EventId::new().to_string();
    compressor.build(
        &page.config.id,
        &version,
        wall_clock_ms(),
        vec![],
        site(&page.state()),
    )
}

/// Writes a built version into `origin` the way the publisher does;
/// returns its id once it is live.
fn write_page(origin: &Path, built: &beacon_publisher::site::Built) -> Result<String, LoadError> {
    publish_local(origin, built).map_err(|e| LoadError::Unexpected(format!("publish: {e}")))?;
    Ok(built.manifest.version.clone())
}

/// Renders and writes the benchmark page.
fn publish_page(
    origin: &Path,
    page: &BenchPage,
    compressor: &mut Compressor,
) -> Result<String, LoadError> {
    write_page(origin, &build_page(page, compressor))
}

fn sibling(name: &str) -> Result<PathBuf, LoadError> {
    let exe = std::env::current_exe()
        .map_err(|e| LoadError::Unexpected(format!("cannot find this program: {e}")))?;
    let path = exe
        .parent()
        .map(|dir| dir.join(name))
        .filter(|p| p.is_file())
        .ok_or_else(|| {
            LoadError::Unexpected(format!(
                "{name} is not next to beacon-loadtest; build it: cargo build --release -p beacon-edge -p beacon-loadtest"
            ))
        })?;
    Ok(path)
}

fn free_port() -> u16 {
    beacon_testkit::free_port()
}

async fn wait_http(url: &str, timeout: Duration) -> Result<(), LoadError> {
    let deadline = Instant::now() + timeout;
    loop {
        if reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(LoadError::Unexpected(format!("{url} did not answer")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the release edge serving `origin` with `page` at `/`.
async fn start_edge(origin: &Path, page: &str, threads: usize) -> Result<(Child, u16), LoadError> {
    let port = free_port();
    let admin = free_port();
    let child = Command::new(sibling("beacon-edge")?)
        .args(["--origin"])
        .arg(origin)
        .args(["--page", page, "--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
        // The snapshot is rendered once: it must be served as published
        // (nginx serves the same bytes), not as a page gone stale mid-run.
        .args(["--stale-after", "365days"])
        .env("TOKIO_WORKER_THREADS", threads.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| LoadError::Unexpected(format!("start the edge: {e}")))?;
    wait_http(
        &format!("http://127.0.0.1:{admin}/readyz"),
        Duration::from_secs(20),
    )
    .await?;
    wait_http(
        &format!("http://127.0.0.1:{port}/"),
        Duration::from_secs(20),
    )
    .await?;
    Ok((child, port))
}

/// Starts nginx with one worker serving `root` (the same version
/// directory), gzip_static on, the same cache headers, logging off.
/// nginx, stopped on drop the way nginx wants: SIGTERM to the master,
/// which stops its worker. (Killing the master alone leaves the worker
/// running, holding the port.)
struct Nginx {
    child: Child,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while std::time::Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

async fn start_nginx(program: &str, dir: &Path, root: &Path) -> Result<(Nginx, u16), LoadError> {
    let port = free_port();
    let conf = format!(
        "worker_processes 1;\ndaemon off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\n\
events {{ worker_connections 4096; }}\n\
http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  tcp_nodelay on;\n  keepalive_requests 10000000;\n\
  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
  types {{ text/html html; application/json json; }}\n  default_type application/octet-stream;\n\
  server {{\n    listen 127.0.0.1:{port};\n    root {root};\n    gzip_static on;\n    etag on;\n\
    add_header Cache-Control \"public, max-age=5, stale-while-revalidate=30, stale-if-error=86400\";\n  }}\n}}\n",
        dir = dir.display(),
        root = root.display(),
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).map_err(|e| LoadError::Unexpected(e.to_string()))?;
    let child = Command::new(program)
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            LoadError::Unexpected(format!(
                "start nginx ({program}): {e}; scripts/install-deps --bench installs it"
            ))
        })?;
    wait_http(
        &format!("http://127.0.0.1:{port}/index.html"),
        Duration::from_secs(20),
    )
    .await?;
    Ok((Nginx { child }, port))
}

// ---------------------------------------------------------------------------
// edge
// ---------------------------------------------------------------------------

/// One wrk run.
#[derive(Debug, Clone, Serialize)]
pub struct WrkRun {
    server: &'static str,
    path: &'static str,
    gzip: bool,
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Figures of one (path, encoding) case: medians over runs.
#[derive(Debug, Serialize)]
pub struct EdgeCase {
    path: &'static str,
    gzip: bool,
    nginx_requests_per_s: f64,
    edge_requests_per_s: f64,
    ratio_edge_to_nginx: f64,
    nginx_p99_ms: f64,
    edge_p99_ms: f64,
    goal_met: bool,
}

/// What `edge` reports.
#[derive(Debug, Serialize)]
pub struct EdgeReport {
    scenario: &'static str,
    wrk: String,
    threads: u32,
    connections: u32,
    duration_s: f64,
    runs: usize,
    edge_worker_threads: usize,
    nginx_workers: u32,
    index_html_bytes: u64,
    cases: Vec<EdgeCase>,
    all_runs: Vec<WrkRun>,
    goal: &'static str,
    goals_met: bool,
}

fn parse_latency(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| text.split_at(i))?;
    let value: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => return None,
    })
}

/// (requests/s, p50 ms, p99 ms) from wrk's `--latency` output.
pub fn parse_wrk(output: &str) -> Option<(f64, f64, f64)> {
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    for line in output.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            rps = rest.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("50%") {
            p50 = parse_latency(rest);
        } else if let Some(rest) = line.strip_prefix("99%") {
            p99 = parse_latency(rest);
        }
    }
    Some((rps?, p50?, p99?))
}

async fn wrk(args: &EdgeBenchArgs, url: &str, gzip: bool) -> Result<(f64, f64, f64), LoadError> {
    let mut command = Command::new(&args.wrk);
    command
        .arg(format!("-t{}", args.threads))
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{}s", args.duration.as_secs().max(1)))
        .arg("--latency");
    if gzip {
        command.args(["-H", "Accept-Encoding: gzip"]);
    }
    let output = command.arg(url).output().await.map_err(|e| {
        LoadError::Unexpected(format!(
            "run wrk ({}): {e}; scripts/install-deps --bench installs it",
            args.wrk
        ))
    })?;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        progress(&format!("wrk reported errors for {url}: {text}"));
    }
    parse_wrk(&text)
        .ok_or_else(|| LoadError::Unexpected(format!("cannot read wrk's output: {text}")))
}

/// Runs `edge`.
pub async fn edge(args: &EdgeBenchArgs) -> Result<EdgeReport, LoadError> {
    let dir = tempfile::tempdir().map_err(|e| LoadError::Unexpected(e.to_string()))?;
    let origin = dir.path().join("origin");
    let page = BenchPage::new("bench", args.components)?;
    publish_page(&origin, &page, &mut Compressor::default())?;
    let root = origin.join("bench").join(beacon_page::origin::CURRENT);
    let index_bytes = std::fs::metadata(root.join("index.html")).map_or(0, |m| m.len());
    let nginx_dir = dir.path().join("nginx");
    std::fs::create_dir_all(&nginx_dir).map_err(|e| LoadError::Unexpected(e.to_string()))?;
    let (_edge, edge_port) = start_edge(&origin, "bench", args.edge_threads).await?;
    let (_nginx, nginx_port) = start_nginx(&args.nginx, &nginx_dir, &root).await?;
    progress(&format!(
        "edge on {edge_port}, nginx on {nginx_port}; index.html {index_bytes} bytes"
    ));

    let cases: [(&'static str, bool); 4] = [
        ("/index.html", false),
        ("/api/v2/summary.json", false),
        ("/index.html", true),
        ("/api/v2/summary.json", true),
    ];
    let mut all = Vec::new();
    for run in 0..args.runs {
        for (path, gzip) in cases {
            // Alternate who goes first, so neither always gets a cooler machine.
            let order: [(&'static str, u16); 2] = if run % 2 == 0 {
                [("nginx", nginx_port), ("edge", edge_port)]
            } else {
                [("edge", edge_port), ("nginx", nginx_port)]
            };
            for (server, port) in order {
                let (rps, p50, p99) =
                    wrk(args, &format!("http://127.0.0.1:{port}{path}"), gzip).await?;
                progress(&format!(
                    "run {run} {server} {path} gzip={gzip}: {rps:.0} req/s, p99 {p99:.2} ms"
                ));
                all.push(WrkRun {
                    server,
                    path,
                    gzip,
                    requests_per_s: rps,
                    p50_ms: p50,
                    p99_ms: p99,
                });
            }
        }
    }
    let mut figures = Vec::new();
    for (path, gzip) in cases {
        let pick = |server: &str, f: fn(&WrkRun) -> f64| {
            median(
                &all.iter()
                    .filter(|r| r.server == server && r.path == path && r.gzip == gzip)
                    .map(f)
                    .collect::<Vec<_>>(),
            )
        };
        let nginx_rps = pick("nginx", |r| r.requests_per_s);
        let edge_rps = pick("edge", |r| r.requests_per_s);
        let edge_p99 = pick("edge", |r| r.p99_ms);
        let ratio = edge_rps / nginx_rps.max(1e-9);
        figures.push(EdgeCase {
            path,
            gzip,
            nginx_requests_per_s: nginx_rps.round(),
            edge_requests_per_s: edge_rps.round(),
            ratio_edge_to_nginx: round(ratio),
            nginx_p99_ms: round(pick("nginx", |r| r.p99_ms)),
            edge_p99_ms: round(edge_p99),
            goal_met: ratio >= 0.9 && edge_p99 < 2.0,
        });
    }
    let version = Command::new(&args.wrk).arg("--version").output().await.ok();
    Ok(EdgeReport {
        scenario: "edge",
        wrk: version
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .unwrap_or_default(),
        threads: args.threads,
        connections: args.connections,
        duration_s: args.duration.as_secs_f64(),
        runs: args.runs,
        edge_worker_threads: args.edge_threads,
        nginx_workers: 1,
        index_html_bytes: index_bytes,
        goals_met: figures.iter().all(|c| c.goal_met),
        cases: figures,
        all_runs: all,
        goal: "edge >= 0.9 x nginx requests/s and edge p99 < 2 ms, per case",
    })
}

// ---------------------------------------------------------------------------
// sse
// ---------------------------------------------------------------------------

/// What `sse` reports.
#[derive(Debug, Serialize)]
pub struct SseReport {
    scenario: &'static str,
    clients: usize,
    connected: usize,
    connect_s: f64,
    received: usize,
    within_1s: usize,
    latency_ms_p50: f64,
    latency_ms_p99: f64,
    latency_ms_max: f64,
    /// Same-run baseline: one client alone, same change, ms.
    baseline_one_client_ms: f64,
    edge_scan_interval_ms: u64,
    goal: &'static str,
    goal_met: bool,
}

/// Opens an event stream and reads until its first event; returns the
/// stream.
async fn open_stream(port: u16) -> Result<tokio::net::TcpStream, String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut seen = Vec::new();
    let mut buffer = [0u8; 8192];
    while !seen.windows(13).any(|w| w == b"event: status") {
        let n = stream.read(&mut buffer).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before the first event".into());
        }
        seen.extend_from_slice(&buffer[..n]);
    }
    Ok(stream)
}

/// Reads until `version` arrives; returns when.
async fn await_version(
    mut stream: tokio::net::TcpStream,
    version: String,
    limit: Duration,
) -> Option<Instant> {
    let needle = format!("id: {version}");
    let mut seen = Vec::new();
    let mut buffer = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buffer))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        seen.extend_from_slice(&buffer[..n]);
        if seen.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            return Some(Instant::now());
        }
        if seen.len() > 64 * 1024 {
            seen.drain(..32 * 1024);
        }
    }
}

/// Runs `sse`.
pub async fn sse(args: &SseArgs) -> Result<SseReport, LoadError> {
    let dir = tempfile::tempdir().map_err(|e| LoadError::Unexpected(e.to_string()))?;
    let origin = dir.path().join("origin");
    let mut page = BenchPage::new("bench", 50)?;
    let mut compressor = Compressor::default();
    publish_page(&origin, &page, &mut compressor)?;
    let (_edge, port) = start_edge(&origin, "bench", 2).await?;

    // Baseline: one client, one change.
    let one = open_stream(port).await.map_err(LoadError::Unexpected)?;
    page.now += 1;
    // The clock starts when the publisher's part is done: the version is
    // built and its write begins.
    let built = build_page(&page, &mut compressor);
    let started = Instant::now();
    let version = write_page(&origin, &built)?;
    let baseline = await_version(one, version, Duration::from_secs(5))
        .await
        .map_or(f64::NAN, |at| (at - started).as_secs_f64() * 1000.0);

    progress(&format!("connecting {} SSE clients", args.clients));
    let connect_started = Instant::now();
    let mut streams = Vec::with_capacity(args.clients);
    let mut failures = 0usize;
    // In batches: the accept queue is finite, and a SYN dropped there is
    // retried after a second, which would measure the kernel, not the edge.
    for batch in (0..args.clients).collect::<Vec<_>>().chunks(500) {
        let opened = futures::future::join_all(batch.iter().map(|_| open_stream(port))).await;
        for stream in opened {
            match stream {
                Ok(stream) => streams.push(stream),
                Err(_) => failures += 1,
            }
        }
    }
    let connect_s = connect_started.elapsed().as_secs_f64();
    progress(&format!(
        "{} connected ({failures} failed) in {connect_s:.1}s",
        streams.len()
    ));
    let connected = streams.len();

    page.now += 1;
    let built = build_page(&page, &mut compressor);
    let published_at = Instant::now();
    let version = write_page(&origin, &built)?;
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|stream| {
            tokio::spawn(await_version(
                stream,
                version.clone(),
                Duration::from_secs(10),
            ))
        })
        .collect();
    let mut latencies = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(Some(at)) = task.await {
            latencies.push((at - published_at).as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let within = latencies.iter().filter(|l| **l <= 1000.0).count();
    Ok(SseReport {
        scenario: "sse",
        clients: args.clients,
        connected,
        connect_s: round(connect_s),
        received: latencies.len(),
        within_1s: within,
        latency_ms_p50: round(percentile(&latencies, 0.5)),
        latency_ms_p99: round(percentile(&latencies, 0.99)),
        latency_ms_max: round(latencies.last().copied().unwrap_or(f64::NAN)),
        baseline_one_client_ms: round(baseline),
        edge_scan_interval_ms: 100,
        goal: "every one of the clients receives the change within 1 s",
        goal_met: connected == args.clients && within == args.clients,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let text = "Running 10s test @ http://127.0.0.1:1/\n  1 threads and 50 connections\n  Latency Distribution\n     50%  412.00us\n     75%  500.00us\n     90%  600.00us\n     99%    1.52ms\n  100000 requests in 10.00s, 1.00GB read\nRequests/sec:  48123.45\nTransfer/sec:    100.00MB\n";
        assert_eq!(parse_wrk(text), Some((48123.45, 0.412, 1.52)));
        assert_eq!(parse_wrk("garbage"), None);
        assert_eq!(chrono_day(0), "1970-01-01");
        assert_eq!(chrono_day(1_795_780_800_000), "2026-11-27");
    }

    #[test]
    fn the_render_scenario_runs() {
        let report = render(&RenderArgs {
            components: 5,
            iterations: 2,
        })
        .expect("render");
        assert!(report.files > 10);
        assert!(report.index_html_bytes > 0);
    }
}
