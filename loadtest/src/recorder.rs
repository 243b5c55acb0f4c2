//! `recorder`: the recorder's throughput, its result-to-queryable latency
//! and its SLA report time, on a private `nats-server` and a private
//! `clickhouse-server`, with the baselines measured in the same run.
//!
//! 1. **Throughput.** `results` probe results are published to `HEALTH`
//!    first (not timed). Each run then measures, on the same rows:
//!    - raw JetStream consume: a pull consumer acking each message;
//!    - `clickhouse-client` inserting the same rows (TabSeparated, native
//!      protocol) into a fresh database with the recorder's schema;
//!    - the `beacon-recorder` binary (release build) consuming the backlog
//!      into a fresh database: rows/s from the first row visible to the
//!      last (sustained, start-up excluded).
//! 2. **Latency.** With the recorder running and caught up, results are
//!    published at `latency-rate` per second for `latency-seconds`; every
//!    hundredth is a marker whose arrival in ClickHouse is polled for every
//!    20 ms: p50 and p99 of publish-to-queryable.
//! 3. **SLA report.** A page of `sla-components` components, each with a
//!    status change every few days over `sla-days` days, a maintenance
//!    window and incidents, goes through the recorder; then the whole
//!    report (every slice) is fetched over `beacon.api.sla.report`, three
//!    times: the median.

use std::process::Stdio;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use beacon_contract::event::{Envelope, EventId};
use beacon_contract::hlc::{wall_clock_ms, Hlc, HlcClock};
use beacon_contract::messages::{
    ComponentStatus, Evidence, HealthResult, MaintenanceAction, MaintenanceEvent, MaintenancePhase,
    Outcome, StatusChange,
};
use beacon_contract::names::{health_subject, maintenance_subject, status_subject, STREAM_HEALTH};
use beacon_contract::topology::{ensure, Topology};
use beacon_page::config::load;
use beacon_recorder::rows::HealthRow;
use beacon_runtime::publish::Publisher;
use beacon_testkit::{ClickHouseServer, DaemonProcess, NatsServer};
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;

use crate::cli::RecorderArgs;
use crate::error::LoadError;
use crate::progress;
use crate::report::{median, ratio};

/// The goals: rows inserted per second.
pub const GOAL_ROWS_PER_S: f64 = 200_000.0;
/// p99 publish-to-queryable, milliseconds.
pub const GOAL_P99_MS: f64 = 2_000.0;
/// Whole SLA report, milliseconds.
pub const GOAL_REPORT_MS: f64 = 2_000.0;

/// One throughput run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ThroughputRun {
    /// 1-based.
    pub run: u64,
    /// Raw JetStream consume and ack, messages/s.
    pub raw_consume_msgs_per_s: f64,
    /// `clickhouse-client` inserting the same rows, rows/s.
    pub clickhouse_client_rows_per_s: f64,
    /// The recorder, rows/s from first row visible to last.
    pub recorder_rows_per_s: f64,
}

/// The scenario's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecorderReport {
    /// Always `recorder`.
    pub scenario: &'static str,
    /// nats-server version.
    pub nats_server_version: String,
    /// Results per throughput run.
    pub results: u64,
    /// Every throughput run.
    pub runs: Vec<ThroughputRun>,
    /// Medians of the runs.
    pub median: ThroughputRun,
    /// Recorder / raw consume and recorder / clickhouse-client, of the medians.
    pub recorder_vs_raw_consume: f64,
    /// Recorder over clickhouse-client.
    pub recorder_vs_clickhouse_client: f64,
    /// Recorder median over the 200,000 rows/s goal.
    pub recorder_vs_goal: f64,
    /// Markers timed in the latency phase.
    pub latency_markers: u64,
    /// Publish-to-queryable p50, ms.
    pub latency_p50_ms: f64,
    /// Publish-to-queryable p99, ms.
    pub latency_p99_ms: f64,
    /// Components in the SLA report.
    pub sla_components: u64,
    /// Status changes behind it.
    pub sla_status_changes: u64,
    /// Whole-report times, ms, each of three fetches.
    pub sla_report_ms: Vec<f64>,
    /// Their median.
    pub sla_report_median_ms: f64,
    /// Which goals are met: throughput, p99, report.
    pub goals_met: [bool; 3],
}

/// Runs the scenario.
pub async fn run(args: &RecorderArgs) -> Result<RecorderReport, LoadError> {
    progress("Starting a private nats-server and clickhouse-server.");
    // A page of 10,000 components is a config of a few MB in KV `config`.
    let nats = tokio::task::spawn_blocking(|| NatsServer::start_with_config("max_payload: 8MB\n"))
        .await
        .map_err(|e| LoadError::StartServer(e.to_string()))?;
    let clickhouse = tokio::task::spawn_blocking(ClickHouseServer::start)
        .await
        .map_err(|e| LoadError::StartServer(format!("clickhouse-server: {e}")))?;
    let client = async_nats::connect(nats.url())
        .await
        .map_err(|e| LoadError::bus("connect", e))?;
    let version = client.server_info().version;
    let js = jetstream::new(client.clone());
    ensure(&js, &Topology::default())
        .await
        .map_err(|e| LoadError::bus("ensure the topology", e))?;

    // The backlog, published once.
    let now = wall_clock_ms();
    let clock = HlcClock::new();
    let envelopes: Vec<Envelope<HealthResult>> = (0..args.results)
        .map(|i| {
            Envelope::new(
                &clock,
                "eu",
                result(
                    &format!("c{}", i % 1000),
                    &format!("check-{}", i % 7),
                    now - 3_600_000 + i / 100,
                ),
            )
        })
        .collect();
    progress(&format!("Publishing {} results.", args.results));
    let publisher = Publisher::new(client.clone(), 1024, Duration::from_secs(30));
    let items: Vec<(String, String, Bytes)> = envelopes
        .iter()
        .map(|e| {
            let subject = health_subject(&e.data.page, &e.data.component, &e.data.region);
            let bytes = Bytes::from(e.encode().unwrap_or_default());
            (subject, e.id.to_string(), bytes)
        })
        .collect();
    for outcome in publisher
        .publish_all_bytes(
            items
                .iter()
                .map(|(s, id, b)| (s.as_str(), id.clone(), b.clone())),
        )
        .await
    {
        outcome.map_err(|e| LoadError::bus("publish the backlog", e))?;
    }
    let tsv = tsv_of(&envelopes, now)?;
    let tsv_path = std::env::temp_dir().join(format!("beacon-loadtest-{}.tsv", EventId::new()));
    std::fs::write(&tsv_path, tsv).map_err(|e| LoadError::Unexpected(format!("write TSV: {e}")))?;

    let mut runs = Vec::new();
    for run in 1..=args.runs {
        let raw = raw_consume(&js, args.results, run, args.phase_timeout).await?;
        let cc = clickhouse_client(&nats, &clickhouse, &tsv_path, args.results, run).await?;
        let recorded = recorder_run(&nats, &js, &clickhouse, args, run).await?;
        progress(&format!(
            "Run {run}: raw consume {raw:.0} msgs/s, clickhouse-client {cc:.0} rows/s, recorder {recorded:.0} rows/s."
        ));
        runs.push(ThroughputRun {
            run,
            raw_consume_msgs_per_s: raw,
            clickhouse_client_rows_per_s: cc,
            recorder_rows_per_s: recorded,
        });
    }
    let _ = std::fs::remove_file(&tsv_path);
    let of = |f: fn(&ThroughputRun) -> f64| median(&runs.iter().map(f).collect::<Vec<f64>>());
    let median_run = ThroughputRun {
        run: 0,
        raw_consume_msgs_per_s: of(|r| r.raw_consume_msgs_per_s),
        clickhouse_client_rows_per_s: of(|r| r.clickhouse_client_rows_per_s),
        recorder_rows_per_s: of(|r| r.recorder_rows_per_s),
    };

    // Latency and SLA phases share one recorder on a fresh database, with
    // the backlog gone so it starts caught up.
    delete_consumer(&js).await;
    js.get_stream(STREAM_HEALTH)
        .await
        .map_err(|e| LoadError::bus("get HEALTH", e))?
        .purge()
        .await
        .map_err(|e| LoadError::bus("purge HEALTH", e))?;
    let recorder = spawn_recorder(&nats, &clickhouse, "lat");
    recorder.wait_ready(Duration::from_secs(60)).await;
    let latencies = latency(&js, &publisher, &clickhouse, args).await?;
    let (sla_changes, sla_times) = sla(&js, &publisher, &client, &clickhouse, args).await?;
    drop(recorder);

    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    let sla_median = median(&sla_times);
    Ok(RecorderReport {
        scenario: "recorder",
        nats_server_version: version,
        results: args.results,
        recorder_vs_raw_consume: ratio(
            median_run.recorder_rows_per_s,
            median_run.raw_consume_msgs_per_s,
        ),
        recorder_vs_clickhouse_client: ratio(
            median_run.recorder_rows_per_s,
            median_run.clickhouse_client_rows_per_s,
        ),
        recorder_vs_goal: ratio(median_run.recorder_rows_per_s, GOAL_ROWS_PER_S),
        runs,
        median: median_run,
        latency_markers: latencies.len() as u64,
        latency_p50_ms: p50,
        latency_p99_ms: p99,
        sla_components: args.sla_components,
        sla_status_changes: sla_changes,
        sla_report_ms: sla_times,
        sla_report_median_ms: sla_median,
        goals_met: [
            median_run.recorder_rows_per_s >= GOAL_ROWS_PER_S,
            p99 <= GOAL_P99_MS,
            sla_median <= GOAL_REPORT_MS,
        ],
    })
}

fn result(component: &str, check: &str, started_at_ms: u64) -> HealthResult {
    HealthResult {
        latency_ms: 42,
        http_status: Some(200),
        ..HealthResult::new("bench", component, check, "eu", Outcome::Up, started_at_ms)
    }
}

/// The same rows the recorder writes, as TabSeparated.
fn tsv_of(envelopes: &[Envelope<HealthResult>], now: u64) -> Result<String, LoadError> {
    let escape = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('\t', "\\t")
            .replace('\n', "\\n")
    };
    let mut text = String::with_capacity(envelopes.len() * 160);
    for envelope in envelopes {
        let r = HealthRow::from_envelope(envelope.clone(), now)
            .map_err(|e| LoadError::Unexpected(e.to_string()))?;
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            r.event_id,
            r.hlc,
            escape(&r.origin),
            escape(&r.page),
            escape(&r.component),
            escape(&r.check_id),
            escape(&r.region),
            r.kind,
            r.outcome,
            r.started_at,
            r.started_at_ms,
            r.latency_ms,
            r.http_status,
            escape(&r.error),
            beacon_recorder::rollup::date_of_day(u64::from(r.day))
        ));
    }
    Ok(text)
}

async fn raw_consume(
    js: &jetstream::Context,
    wanted: u64,
    run: u64,
    timeout: Duration,
) -> Result<f64, LoadError> {
    let stream = js
        .get_stream(STREAM_HEALTH)
        .await
        .map_err(|e| LoadError::bus("get HEALTH", e))?;
    let name = format!("raw_r{run}");
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(name.clone()),
            ack_policy: consumer::AckPolicy::Explicit,
            max_ack_pending: 20_000,
            ..Default::default()
        })
        .await
        .map_err(|e| LoadError::bus("create the raw consumer", e))?;
    let started = Instant::now();
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| LoadError::bus("consume", e))?;
    let mut seen = 0u64;
    while seen < wanted {
        if started.elapsed() > timeout {
            return Err(LoadError::Timeout {
                step: "raw consume".into(),
                after: timeout,
            });
        }
        match messages.next().await {
            Some(Ok(message)) => {
                message.ack().await.map_err(|e| LoadError::bus("ack", e))?;
                seen += 1;
            }
            Some(Err(e)) => return Err(LoadError::bus("consume", e)),
            None => break,
        }
    }
    js.get_stream(STREAM_HEALTH)
        .await
        .map_err(|e| LoadError::bus("get HEALTH", e))?
        .delete_consumer(&name)
        .await
        .map_err(|e| LoadError::bus("delete the raw consumer", e))?;
    Ok(seen as f64 / started.elapsed().as_secs_f64())
}

/// Creates database `database` with the recorder's schema, by running the
/// recorder's own migrations.
async fn migrate(
    nats: &NatsServer,
    clickhouse: &ClickHouseServer,
    database: &str,
) -> Result<(), LoadError> {
    let _ = nats;
    let config = beacon_recorder::config::ClickHouseArgs {
        url: clickhouse.http_url(),
        database: database.into(),
        user: None,
        password: None,
        layout: beacon_recorder::config::LayoutArg::Single,
        cluster: None,
        shard_urls: Vec::new(),
        rollup_interval: Duration::from_secs(60),
    }
    .validate()
    .map_err(|e| LoadError::Unexpected(e.to_string()))?;
    let store = beacon_recorder::service::ClickHouse::new(
        &config,
        &beacon_runtime::telemetry::Metrics::new("loadtest"),
    )
    .map_err(|e| LoadError::Unexpected(e.to_string()))?;
    store
        .migrate()
        .await
        .map_err(|e| LoadError::Unexpected(e.to_string()))
}

async fn clickhouse_client(
    nats: &NatsServer,
    clickhouse: &ClickHouseServer,
    tsv: &std::path::Path,
    rows: u64,
    run: u64,
) -> Result<f64, LoadError> {
    let database = format!("cc_r{run}");
    migrate(nats, clickhouse, &database).await?;
    let file = std::fs::File::open(tsv).map_err(|e| LoadError::Unexpected(e.to_string()))?;
    let started = Instant::now();
    let status = tokio::process::Command::new("clickhouse-client")
        .arg(format!("--port={}", clickhouse.tcp_port()))
        .arg(format!(
            "--query=INSERT INTO {database}.health_results (event_id, hlc, origin, page, component, check_id, region, kind, outcome, started_at, started_at_ms, latency_ms, http_status, error, day) FORMAT TabSeparated"
        ))
        .stdin(Stdio::from(file))
        .status()
        .await
        .map_err(|e| LoadError::Unexpected(format!("run clickhouse-client: {e}")))?;
    let elapsed = started.elapsed();
    if !status.success() {
        return Err(LoadError::Unexpected(format!(
            "clickhouse-client exited with {status}"
        )));
    }
    let stored = count(
        clickhouse,
        &format!("SELECT count() FROM {database}.health_results"),
    );
    if stored != Some(rows) {
        return Err(LoadError::Unexpected(format!(
            "clickhouse-client stored {stored:?} of {rows} rows"
        )));
    }
    Ok(rows as f64 / elapsed.as_secs_f64())
}

fn count(clickhouse: &ClickHouseServer, sql: &str) -> Option<u64> {
    clickhouse.try_query(sql).ok()?.trim().parse().ok()
}

async fn delete_consumer(js: &jetstream::Context) {
    if let Ok(stream) = js.get_stream(STREAM_HEALTH).await {
        let _ = stream
            .delete_consumer(beacon_recorder::sink::HEALTH_CONSUMER)
            .await;
    }
}

fn spawn_recorder(
    nats: &NatsServer,
    clickhouse: &ClickHouseServer,
    database: &str,
) -> DaemonProcess {
    DaemonProcess::spawn_with_admin(
        "beacon-recorder",
        vec![
            "--nats-url".into(),
            nats.url(),
            "--clickhouse-url".into(),
            clickhouse.http_url(),
            "--clickhouse-database".into(),
            database.into(),
            "--rollup-interval".into(),
            "1h".into(),
        ],
    )
}

async fn recorder_run(
    nats: &NatsServer,
    js: &jetstream::Context,
    clickhouse: &ClickHouseServer,
    args: &RecorderArgs,
    run: u64,
) -> Result<f64, LoadError> {
    // A fresh consumer reads the whole backlog again, into a fresh database.
    delete_consumer(js).await;
    let database = format!("rec_r{run}");
    let recorder = spawn_recorder(nats, clickhouse, &database);
    let sql = format!("SELECT count() FROM {database}.health_results");
    let deadline = Instant::now() + args.phase_timeout;
    let (first_at, first_count) = loop {
        if let Some(n) = count(clickhouse, &sql).filter(|n| *n > 0) {
            break (Instant::now(), n);
        }
        if Instant::now() > deadline {
            return Err(LoadError::Timeout {
                step: "the recorder's first rows".into(),
                after: args.phase_timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    loop {
        let n = count(clickhouse, &sql).unwrap_or(0);
        if n >= args.results {
            let elapsed = first_at.elapsed().as_secs_f64();
            drop(recorder);
            return Ok((args.results - first_count) as f64 / elapsed);
        }
        if Instant::now() > deadline {
            return Err(LoadError::Timeout {
                step: format!("the recorder storing {} rows ({n} so far)", args.results),
                after: args.phase_timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn latency(
    js: &jetstream::Context,
    publisher: &Publisher,
    clickhouse: &ClickHouseServer,
    args: &RecorderArgs,
) -> Result<Vec<f64>, LoadError> {
    let _ = js;
    progress(&format!(
        "Latency: {} results/s for {} s.",
        args.latency_rate, args.latency_seconds
    ));
    let clock = HlcClock::new();
    let total = args.latency_rate * args.latency_seconds;
    let mut sent: std::collections::HashMap<String, Instant> = std::collections::HashMap::new();
    let started = Instant::now();
    let tick = Duration::from_millis(100);
    let per_tick = (args.latency_rate / 10).max(1);
    let mut published = 0u64;
    let mut latencies = Vec::new();
    let mut watermark = 0u64;
    while published < total || (!sent.is_empty() && started.elapsed() < args.phase_timeout) {
        if published < total {
            let mut items = Vec::new();
            for _ in 0..per_tick.min(total - published) {
                let marker = published % 100 == 0;
                let check = if marker {
                    format!("m-{published}")
                } else {
                    "plain".to_owned()
                };
                let envelope = Envelope::new(&clock, "eu", result("lat", &check, wall_clock_ms()));
                if marker {
                    sent.insert(check, Instant::now());
                }
                let subject = health_subject("bench", "lat", "eu");
                items.push((
                    subject,
                    envelope.id.to_string(),
                    Bytes::from(envelope.encode().unwrap_or_default()),
                ));
                published += 1;
            }
            for outcome in publisher
                .publish_all_bytes(
                    items
                        .iter()
                        .map(|(s, id, b)| (s.as_str(), id.clone(), b.clone())),
                )
                .await
            {
                outcome.map_err(|e| LoadError::bus("publish", e))?;
            }
        }
        // Poll for markers that became visible.
        let sql = format!(
            "SELECT check_id, started_at_ms FROM lat.health_results \
             WHERE component = 'lat' AND check_id LIKE 'm-%' AND started_at_ms >= {watermark}"
        );
        if let Ok(body) = clickhouse.try_query(&sql) {
            let now = Instant::now();
            for line in body.lines() {
                let mut parts = line.split('\t');
                let (Some(check), Some(at)) = (parts.next(), parts.next()) else {
                    continue;
                };
                if let Some(at_sent) = sent.remove(check) {
                    latencies.push(now.duration_since(at_sent).as_secs_f64() * 1000.0);
                    watermark = watermark.max(at.parse::<u64>().unwrap_or(0).saturating_sub(5_000));
                }
            }
        }
        tokio::time::sleep(if published < total {
            tick
        } else {
            Duration::from_millis(20)
        })
        .await;
    }
    if !sent.is_empty() {
        return Err(LoadError::Unexpected(format!(
            "{} markers never became queryable",
            sent.len()
        )));
    }
    Ok(latencies)
}

async fn sla(
    js: &jetstream::Context,
    publisher: &Publisher,
    client: &async_nats::Client,
    clickhouse: &ClickHouseServer,
    args: &RecorderArgs,
) -> Result<(u64, Vec<f64>), LoadError> {
    const DAY: u64 = 86_400_000;
    let components = args.sla_components;
    progress(&format!(
        "SLA: a page of {components} components over {} days.",
        args.sla_days
    ));
    let mut toml = String::from("[page]\nid = \"big\"\nname = \"Big\"\n");
    for i in 0..components {
        toml.push_str(&format!(
            "[[components]]\nid = \"c{i}\"\nname = \"Component {i}\"\n"
        ));
    }
    let config = load(&toml).map_err(|e| LoadError::Unexpected(e.to_string()))?;
    let kv = js
        .get_key_value("config")
        .await
        .map_err(|e| LoadError::bus("KV config", e))?;
    let envelope = Envelope::new(&HlcClock::new(), "global", config);
    kv.put("big", Bytes::from(envelope.encode().unwrap_or_default()))
        .await
        .map_err(|e| LoadError::bus("store the page config", e))?;

    let now = wall_clock_ms();
    let from = now - args.sla_days * DAY;
    let statuses = [
        ComponentStatus::Operational,
        ComponentStatus::DegradedPerformance,
        ComponentStatus::PartialOutage,
        ComponentStatus::MajorOutage,
    ];
    let mut items: Vec<(String, String, Bytes)> = Vec::new();
    let mut changes = 0u64;
    for i in 0..components {
        let component = format!("c{i}");
        // A change every three days, staggered by component.
        let mut at = from + (i % 72) * 3_600_000;
        let mut k = i;
        while at < now {
            let status = statuses[(k % 4) as usize];
            let change = StatusChange {
                page: "big".into(),
                component: component.clone(),
                from: None,
                to: status,
                at_ms: at,
                source: Default::default(),
                flapping: false,
                inhibited: None,
                proposal: None,
                evidence: Evidence {
                    rule: "bench".into(),
                    trigger: None,
                    regions: vec![],
                },
            };
            let envelope = Envelope::with_id(EventId::new(), Hlc::new(at, 0), "global", change);
            items.push((
                status_subject("big", &component),
                envelope.id.to_string(),
                Bytes::from(envelope.encode().unwrap_or_default()),
            ));
            changes += 1;
            k += 1;
            at += 3 * DAY;
        }
    }
    // One maintenance window per hundred components.
    for m in 0..components / 100 {
        let start = from + DAY;
        for (action, phase, at) in [
            (
                MaintenanceAction::Started,
                MaintenancePhase::InProgress,
                start,
            ),
            (
                MaintenanceAction::Completed,
                MaintenancePhase::Completed,
                start + 7_200_000,
            ),
        ] {
            let event = MaintenanceEvent {
                page: "big".into(),
                maintenance: format!("m{m}"),
                action,
                actor: "bench".into(),
                at_ms: at,
                phase,
                title: "work".into(),
                body: String::new(),
                starts_at_ms: start,
                ends_at_ms: start + 7_200_000,
                components: (0..100).map(|j| format!("c{}", m * 100 + j)).collect(),
                recurrence: None,
                series: None,
                remind_before_ms: 0,
                verify_ms: 0,
            };
            let envelope = Envelope::with_id(EventId::new(), Hlc::new(at, 0), "global", event);
            items.push((
                maintenance_subject("big", &format!("m{m}")),
                envelope.id.to_string(),
                Bytes::from(envelope.encode().unwrap_or_default()),
            ));
        }
    }
    for outcome in publisher
        .publish_all_bytes(
            items
                .iter()
                .map(|(s, id, b)| (s.as_str(), id.clone(), b.clone())),
        )
        .await
    {
        outcome.map_err(|e| LoadError::bus("publish status changes", e))?;
    }
    let deadline = Instant::now() + args.phase_timeout;
    loop {
        let n = count(clickhouse, "SELECT count() FROM lat.status_changes").unwrap_or(0);
        if n >= changes {
            break;
        }
        if Instant::now() > deadline {
            return Err(LoadError::Timeout {
                step: format!("the recorder storing {changes} status changes ({n} so far)"),
                after: args.phase_timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The month the data ends in; the period runs to now.
    let month = beacon_recorder::rollup::date_of_day(now / DAY)[..7].to_owned();
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let mut after: Option<String> = None;
        let mut seen = 0u64;
        loop {
            let request = serde_json::json!({"page": "big", "period": month, "after": after});
            let reply = client
                .request(
                    beacon_contract::api::SLA_REPORT.subject(),
                    serde_json::to_vec(&request).unwrap_or_default().into(),
                )
                .await
                .map_err(|e| LoadError::bus("sla.report", e))?;
            let reply: beacon_contract::api::ApiReply<beacon_contract::api::SlaReport> =
                serde_json::from_slice(&reply.payload)
                    .map_err(|e| LoadError::Unexpected(e.to_string()))?;
            let beacon_contract::api::ApiReply::Ok { result } = reply else {
                return Err(LoadError::Unexpected(format!(
                    "sla.report refused: {reply:?}"
                )));
            };
            seen += result.components.len() as u64;
            after = result.next;
            if after.is_none() {
                break;
            }
        }
        if seen != components {
            return Err(LoadError::Unexpected(format!(
                "the report had {seen} of {components} components"
            )));
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((changes, times))
}

fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    (sorted[index] * 10.0).round() / 10.0
}
