//! `decider`: probe results through one real `beacon-decider` process,
//! against raw JetStream consume-and-ack of the same messages on the same
//! server in the same run, and the time from a result to the status change
//! it causes.
//!
//! Setup: `--components` components spread over `--pages` pages, each with
//! one check in every one of `--regions` regions, stored in KV `config`; a
//! warm-up round makes every component operational.
//!
//! Throughput, per run: the decider stops (SIGTERM, releasing its lease),
//! `--rounds` results per (component, region) are published, a raw pull
//! consumer reads and acks them (the baseline), then the decider starts
//! again; once its new term has loaded every component, the clock runs
//! until its consumer has nothing pending and nothing unacked. (Pausing the
//! process instead would let the server drop its connection as a slow
//! consumer, and the messages it held would wait out the ack wait.)
//!
//! Latency: with the decider running and background results flowing at
//! `--background-rate`, waves of components fail in every region and
//! recover; each status change on STATUS is timed from the publish of the
//! result it names as its trigger.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, kv};
use beacon_contract::event::{Envelope, EventId};
use beacon_contract::hlc::{wall_clock_ms, HlcClock};
use beacon_contract::messages::{ComponentStatus, HealthResult, Outcome, StatusChange};
use beacon_contract::names::{health_subject, KV_CONFIG, STREAM_HEALTH};
use beacon_contract::topology::{ensure, Topology};
use beacon_page::config::{validate, PageConfig};
use beacon_runtime::publish::Publisher;
use beacon_testkit::DaemonProcess;
use futures::StreamExt;
use serde::Serialize;

use crate::baseline::bounded;
use crate::cli::DeciderArgs;
use crate::error::LoadError;
use crate::lease_takeover::percentile;
use crate::progress;
use crate::report::{median, rate, ratio};

/// Goal of the issue: results per second through one decider.
pub const GOAL_RESULTS_PER_S: f64 = 100_000.0;
/// Goal: p99 from result to status change.
pub const GOAL_P99_MS: u64 = 50;

/// One run's throughput.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeciderRun {
    /// Run number.
    pub run: u64,
    /// Results in the run.
    pub results: u64,
    /// Raw consume-and-ack of the same results.
    pub raw_consume_ack_msgs_per_s: f64,
    /// The decider applying them.
    pub decider_results_per_s: f64,
}

/// The scenario's JSON report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeciderReport {
    /// Always `decider`.
    pub scenario: &'static str,
    /// Server version.
    pub nats_server_version: String,
    /// Components.
    pub components: u64,
    /// Regions.
    pub regions: u64,
    /// Pages.
    pub pages: u64,
    /// Every run.
    pub runs: Vec<DeciderRun>,
    /// Median raw rate.
    pub median_raw_consume_ack_msgs_per_s: f64,
    /// Median decider rate.
    pub median_decider_results_per_s: f64,
    /// Median decider / median raw.
    pub decider_vs_raw_consume: f64,
    /// Status changes timed.
    pub transitions_timed: u64,
    /// Median result-to-change, ms.
    pub latency_p50_ms: u64,
    /// 99th percentile, ms.
    pub latency_p99_ms: u64,
    /// Slowest, ms.
    pub latency_max_ms: u64,
    /// The goals: results/s and p99 ms.
    pub goal_results_per_s: f64,
    /// p99 goal, ms.
    pub goal_p99_ms: u64,
    /// Whether the measured median reaches the absolute rate goal.
    pub rate_goal_met: bool,
    /// Whether p99 is under its goal.
    pub latency_goal_met: bool,
}

const REGIONS: [&str; 8] = ["eu", "us", "ap", "sa", "af", "me", "oc", "na"];

fn component_id(n: u64) -> String {
    format!("c{n}")
}

fn page_of(n: u64, pages: u64) -> String {
    format!("bench{}", n % pages)
}

/// The page configs: components round-robin over pages.
fn page_configs(args: &DeciderArgs) -> Result<Vec<PageConfig>, LoadError> {
    let regions: Vec<String> = REGIONS[..args.regions as usize]
        .iter()
        .map(|r| format!("\"{r}\""))
        .collect();
    let mut texts: Vec<String> = (0..args.pages)
        .map(|p| {
            format!(
                "[page]\nid = \"bench{p}\"\nname = \"Bench {p}\"\n[defaults]\nregions = [{}]\ninterval = \"1m\"\ntimeout = \"5s\"\nfailure_threshold = 2\nrecovery_threshold = 2\nflap_transitions = 1000\n",
                regions.join(", ")
            )
        })
        .collect();
    for n in 0..args.components {
        texts[(n % args.pages) as usize].push_str(&format!(
            "[[components]]\nid = \"{}\"\nname = \"C{n}\"\n[[components.checks]]\ntype = \"http\"\nurl = \"http://127.0.0.1:9/\"\n",
            component_id(n)
        ));
    }
    texts
        .iter()
        .map(|text| {
            let raw = beacon_page::config::parse_toml(text)
                .map_err(|e| LoadError::Unexpected(e.to_string()))?;
            validate(&raw).map_err(|e| LoadError::Unexpected(e.to_string()))
        })
        .collect()
}

/// Results for every (component, region), `outcome`, taken at `at_ms`.
fn round(
    args: &DeciderArgs,
    clock: &HlcClock,
    at_ms: u64,
    outcome: impl Fn(u64) -> Outcome,
) -> Vec<(String, Envelope<HealthResult>)> {
    let mut out = Vec::with_capacity((args.components * args.regions) as usize);
    for n in 0..args.components {
        let page = page_of(n, args.pages);
        let component = component_id(n);
        for region in &REGIONS[..args.regions as usize] {
            out.push((
                health_subject(&page, &component, region),
                Envelope::new(
                    clock,
                    region,
                    HealthResult {
                        latency_ms: 12,
                        http_status: Some(200),
                        ..HealthResult::new(&page, &component, "http", region, outcome(n), at_ms)
                    },
                ),
            ));
        }
    }
    out
}

async fn publish_round(
    publisher: &Publisher,
    items: &[(String, Envelope<HealthResult>)],
) -> Result<(), LoadError> {
    let results = publisher
        .publish_all(items.iter().map(|(s, e)| (s.as_str(), e)))
        .await;
    if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
        return Err(LoadError::bus("publish results", e));
    }
    Ok(())
}

/// Waits until the decider's term holds every component.
async fn term_loaded(decider: &DaemonProcess, components: u64) -> Result<(), LoadError> {
    let url = format!("{}/metrics", decider.admin_url());
    let client = reqwest::Client::new();
    loop {
        if let Ok(response) = client.get(&url).send().await {
            if let Ok(body) = response.text().await {
                let loaded = body
                    .lines()
                    .find(|l| l.starts_with("beacon_decider_components "))
                    .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
                if loaded.is_some_and(|n| n as u64 >= components) {
                    return Ok(());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the durable consumer has nothing pending or unacked.
async fn drained(js: &jetstream::Context, durable: &str) -> Result<(), LoadError> {
    let stream = js
        .get_stream(STREAM_HEALTH)
        .await
        .map_err(|e| LoadError::bus("get HEALTH", e))?;
    loop {
        let mut consumer: consumer::PullConsumer = stream
            .get_consumer(durable)
            .await
            .map_err(|e| LoadError::bus("get consumer", e))?;
        let info = consumer
            .info()
            .await
            .map_err(|e| LoadError::bus("consumer info", e))?;
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Raw consume-and-ack of `count` messages from stream sequence `from`.
async fn raw_consume(
    js: &jetstream::Context,
    client: &async_nats::Client,
    run: u64,
    from: u64,
    count: u64,
) -> Result<Duration, LoadError> {
    let stream = js
        .get_stream(STREAM_HEALTH)
        .await
        .map_err(|e| LoadError::bus("get HEALTH", e))?;
    let durable = format!("raw_{run}");
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(durable.clone()),
            ack_policy: consumer::AckPolicy::Explicit,
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| LoadError::bus("create consumer", e))?;
    let start = Instant::now();
    let mut messages = consumer
        .stream()
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| LoadError::bus("open consumer", e))?;
    let mut received = 0;
    while received < count {
        match messages.next().await {
            Some(Ok(message)) => {
                message.ack().await.map_err(|e| LoadError::bus("ack", e))?;
                received += 1;
            }
            Some(Err(e)) => return Err(LoadError::bus("consume", e)),
            None => return Err(LoadError::Unexpected("the consumer stream ended".into())),
        }
    }
    client
        .flush()
        .await
        .map_err(|e| LoadError::bus("flush", e))?;
    drop(messages);
    // Acks are fire-and-forget: done when the server has processed them.
    loop {
        let mut consumer: consumer::PullConsumer = stream
            .get_consumer(&durable)
            .await
            .map_err(|e| LoadError::bus("get consumer", e))?;
        let info = consumer
            .info()
            .await
            .map_err(|e| LoadError::bus("consumer info", e))?;
        if info.num_ack_pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = start.elapsed();
    let _ = stream.delete_consumer(&durable).await;
    Ok(elapsed)
}

async fn last_sequence(js: &jetstream::Context) -> Result<u64, LoadError> {
    let mut stream = js
        .get_stream(STREAM_HEALTH)
        .await
        .map_err(|e| LoadError::bus("get HEALTH", e))?;
    Ok(stream
        .info()
        .await
        .map_err(|e| LoadError::bus("stream info", e))?
        .state
        .last_sequence)
}

/// Runs the scenario and returns its report.
pub async fn run(args: &DeciderArgs) -> Result<DeciderReport, LoadError> {
    let bus = crate::server::open(args.nats_url.as_deref()).await?;
    let version = bus.client.server_info().version;
    let js = jetstream::new(bus.client.clone());
    ensure(&js, &Topology::default())
        .await
        .map_err(|e| LoadError::bus("ensure topology", e))?;
    let clock = HlcClock::new();
    let configs: kv::Store = js
        .get_key_value(KV_CONFIG)
        .await
        .map_err(|e| LoadError::bus("open KV config", e))?;
    for config in page_configs(args)? {
        let bytes = Envelope::new(&clock, "global", config.clone())
            .encode()
            .map_err(|e| LoadError::Report(e.to_string()))?;
        configs
            .put(config.id.as_str(), bytes.into())
            .await
            .map_err(|e| LoadError::bus("store a page config", e))?;
    }
    let publisher = Publisher::new(bus.client.clone(), 1024, Duration::from_secs(10));
    let base = wall_clock_ms();
    let mut tick = 0u64;
    let mut next_at = || {
        tick += 1;
        base + tick
    };
    progress(&format!(
        "Warm-up: {} components x {} regions, two rounds up.",
        args.components, args.regions
    ));
    for _ in 0..2 {
        publish_round(&publisher, &round(args, &clock, next_at(), |_| Outcome::Up)).await?;
    }
    let mut decider = DaemonProcess::spawn_with_admin(
        "beacon-decider",
        vec!["--nats-url".into(), bus.url.clone()],
    );
    decider.wait_ready(Duration::from_secs(60)).await;
    bounded("the warm-up", args.phase_timeout, async {
        // The consumer exists once the decider leads and has loaded its pages.
        loop {
            if drained(&js, "decider").await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    })
    .await?;
    progress("Warm-up done: every component decided.");

    let per_run = args.components * args.regions * args.rounds;
    let mut runs = Vec::new();
    for run in 1..=args.runs {
        let stopped = decider.terminate();
        if !stopped.success() {
            return Err(LoadError::Unexpected(format!(
                "the decider stopped with {stopped}"
            )));
        }
        let from = last_sequence(&js).await? + 1;
        for _ in 0..args.rounds {
            publish_round(&publisher, &round(args, &clock, next_at(), |_| Outcome::Up)).await?;
        }
        let raw = bounded(
            "raw consume",
            args.phase_timeout,
            raw_consume(&js, &bus.client, run, from, per_run),
        )
        .await?;
        decider.restart();
        decider.wait_ready(Duration::from_secs(60)).await;
        bounded(
            "the new term to load",
            args.phase_timeout,
            term_loaded(&decider, args.components),
        )
        .await?;
        let start = Instant::now();
        bounded(
            "the decider to drain",
            args.phase_timeout,
            drained(&js, "decider"),
        )
        .await?;
        let took = start.elapsed();
        let result = DeciderRun {
            run,
            results: per_run,
            raw_consume_ack_msgs_per_s: rate(per_run, raw),
            decider_results_per_s: rate(per_run, took),
        };
        progress(&format!(
            "Run {run}/{}: {per_run} results; raw consume {:.0}/s, decider {:.0}/s.",
            args.runs, result.raw_consume_ack_msgs_per_s, result.decider_results_per_s
        ));
        runs.push(result);
    }

    let latencies = bounded(
        "the latency phase",
        args.phase_timeout,
        latency(args, &bus.client, &publisher, &clock),
    )
    .await;
    if let Some(path) = &args.decider_log {
        if let Err(e) = std::fs::write(path, decider.logs()) {
            progress(&format!(
                "Cannot write the decider's log to {}: {e}",
                path.display()
            ));
        }
    }
    let latencies = latencies?;
    drop(decider);
    let raw: Vec<f64> = runs.iter().map(|r| r.raw_consume_ack_msgs_per_s).collect();
    let ours: Vec<f64> = runs.iter().map(|r| r.decider_results_per_s).collect();
    let (median_raw, median_ours) = (median(&raw), median(&ours));
    let p99 = percentile(&latencies, 99.0);
    Ok(DeciderReport {
        scenario: "decider",
        nats_server_version: version,
        components: args.components,
        regions: args.regions,
        pages: args.pages,
        runs,
        median_raw_consume_ack_msgs_per_s: median_raw,
        median_decider_results_per_s: median_ours,
        decider_vs_raw_consume: ratio(median_ours, median_raw),
        transitions_timed: latencies.len() as u64,
        latency_p50_ms: percentile(&latencies, 50.0),
        latency_p99_ms: p99,
        latency_max_ms: latencies.iter().copied().max().unwrap_or(0),
        goal_results_per_s: GOAL_RESULTS_PER_S,
        goal_p99_ms: GOAL_P99_MS,
        rate_goal_met: median_ours >= GOAL_RESULTS_PER_S,
        latency_goal_met: p99 < GOAL_P99_MS,
    })
}

/// Waves of components fail everywhere and recover, over background
/// results; returns each status change's latency from its trigger, in ms.
async fn latency(
    args: &DeciderArgs,
    client: &async_nats::Client,
    publisher: &Publisher,
    clock: &HlcClock,
) -> Result<Vec<u64>, LoadError> {
    let mut changes = client
        .subscribe(beacon_contract::names::ALL_STATUS)
        .await
        .map_err(|e| LoadError::bus("subscribe to STATUS", e))?;
    let sent: std::sync::Arc<std::sync::Mutex<HashMap<EventId, Instant>>> = Default::default();
    let waves = args.latency_waves;
    let per_wave = args.latency_components.min(args.components / 2).max(1);
    let expected = waves * per_wave * 2;
    progress(&format!(
        "Latency: {waves} waves of {per_wave} components failing and recovering over {} background results/s.",
        args.background_rate
    ));
    let background = {
        let publisher = publisher.clone();
        let components = args.components;
        let regions = args.regions;
        let pages = args.pages;
        let rate = args.background_rate;
        async move {
            // Components above the flipping ones stay up, a result each at
            // the background rate.
            let clock = HlcClock::new();
            let mut n = components / 2;
            let mut region = 0usize;
            let mut batch = Vec::new();
            let interval = Duration::from_millis(10);
            let per_tick = (rate / 100).max(1);
            loop {
                batch.clear();
                for _ in 0..per_tick {
                    let page = page_of(n, pages);
                    let component = component_id(n);
                    let r = REGIONS[region];
                    batch.push((
                        health_subject(&page, &component, r),
                        Envelope::new(
                            &clock,
                            r,
                            HealthResult {
                                latency_ms: 12,
                                http_status: Some(200),
                                ..HealthResult::new(
                                    &page,
                                    &component,
                                    "http",
                                    r,
                                    Outcome::Up,
                                    wall_clock_ms(),
                                )
                            },
                        ),
                    ));
                    region = (region + 1) % regions as usize;
                    if region == 0 {
                        n = if n + 1 >= components {
                            components / 2
                        } else {
                            n + 1
                        };
                    }
                }
                let _ = publisher
                    .publish_all(batch.iter().map(|(s, e)| (s.as_str(), e)))
                    .await;
                tokio::time::sleep(interval).await;
            }
        }
    };
    let flips = {
        let sent = sent.clone();
        async move {
            for wave in 0..waves {
                let first = wave * per_wave % (args.components / 2).max(1);
                for outcome in [Outcome::Down, Outcome::Up] {
                    // Two results per region: the threshold is two.
                    for _ in 0..2 {
                        let at = wall_clock_ms();
                        let mut items = Vec::new();
                        for n in first..first + per_wave {
                            let page = page_of(n, args.pages);
                            let component = component_id(n);
                            for region in &REGIONS[..args.regions as usize] {
                                items.push((
                                    health_subject(&page, &component, region),
                                    Envelope::new(
                                        clock,
                                        region,
                                        HealthResult {
                                            latency_ms: 12,
                                            ..HealthResult::new(
                                                &page, &component, "http", region, outcome, at,
                                            )
                                        },
                                    ),
                                ));
                            }
                        }
                        {
                            let now = Instant::now();
                            let mut sent = sent.lock().unwrap_or_else(|p| p.into_inner());
                            for (_, envelope) in &items {
                                sent.insert(envelope.id, now);
                            }
                        }
                        publish_round(publisher, &items).await?;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
            Ok::<(), LoadError>(())
        }
    };
    let collect = async {
        let mut latencies = Vec::new();
        while (latencies.len() as u64) < expected {
            let Some(message) = changes.next().await else {
                break;
            };
            let received = Instant::now();
            let Ok(change) = Envelope::<StatusChange>::decode(&message.payload) else {
                continue;
            };
            if !matches!(
                change.data.to,
                ComponentStatus::MajorOutage | ComponentStatus::Operational
            ) {
                continue;
            }
            let Some(trigger) = change.data.evidence.trigger else {
                continue;
            };
            let at = sent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&trigger)
                .copied();
            if let Some(at) = at {
                latencies.push(received.saturating_duration_since(at).as_millis() as u64);
            }
        }
        latencies
    };
    tokio::pin!(background);
    tokio::pin!(flips);
    tokio::pin!(collect);
    let mut flips_done = false;
    loop {
        tokio::select! {
            _ = &mut background => {}
            done = &mut flips, if !flips_done => {
                done?;
                flips_done = true;
            }
            latencies = &mut collect => return Ok(latencies),
        }
    }
}
