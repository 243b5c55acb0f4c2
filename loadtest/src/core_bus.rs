//! `core-bus`: core's pipelined publisher and batch consumer, each measured
//! side by side with the raw bus doing the same work in the same run.
//!
//! One fresh stream per invocation, purged before each run (as in
//! `bus-baseline`). Each run measures:
//!
//! 1. raw async publish: `messages` JetStream publishes with up to
//!    `max_in_flight` acks outstanding, written directly against
//!    async-nats (the `bus-baseline` measurement);
//! 2. core's [`Publisher::publish_all_bytes`] with the same in-flight bound,
//!    payload and message ids;
//! 3. raw consume-and-ack of (1)'s messages: a pull consumer stream,
//!    acking each message (the `bus-baseline` measurement);
//! 4. core's [`run_batch_consumer`] with a no-op handler over (2)'s
//!    messages; the clock stops when the server has no ack pending.
//!
//! Odd runs measure raw first, even runs core first, so neither side always
//! gets the warmer server. The report gives every run, the medians and the
//! ratios core / raw, with the goal (0.8) next to each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beacon_runtime::consume::{
    run_batch_consumer, BatchSettings, ConsumerMetrics, ConsumerSpec, Delivery, Outcome,
};
use beacon_runtime::publish::Publisher;
use beacon_runtime::shutdown::Shutdown;
use beacon_runtime::telemetry::Metrics;
use serde::Serialize;

use crate::baseline::{bounded, Bench};
use crate::cli::CoreBusArgs;
use crate::error::LoadError;
use crate::progress;
use crate::report::{median, ratio};

/// The goal the issue sets for both ratios.
pub const GOAL: f64 = 0.8;

/// How often consumer info is read while waiting for the last acks.
const ACK_POLL: Duration = Duration::from_millis(5);

/// Rates of one run, messages per second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CoreRates {
    /// Raw JetStream publish with async acks.
    pub raw_publish_async_msgs_per_s: f64,
    /// Core's pipelined publisher.
    pub core_publish_pipelined_msgs_per_s: f64,
    /// Raw consume-and-ack, one message at a time from a pull stream.
    pub raw_consume_ack_msgs_per_s: f64,
    /// Core's batch consumer with a no-op handler.
    pub core_batch_consume_msgs_per_s: f64,
}

/// One run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CoreRun {
    /// 1-based run number.
    pub run: u64,
    /// Its rates.
    #[serde(flatten)]
    pub rates: CoreRates,
}

/// Core against raw, from the medians.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CoreRatios {
    /// Pipelined publisher / raw async publish.
    pub pipelined_publish_vs_raw_async: f64,
    /// Batch consumer / raw consume-and-ack.
    pub batch_consume_vs_raw_consume: f64,
    /// The goal for both.
    pub goal: f64,
    /// Whether both reach it.
    pub goals_met: bool,
}

/// The scenario's JSON report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoreBusReport {
    /// Always `core-bus`.
    pub scenario: &'static str,
    /// Version of the server measured.
    pub nats_server_version: String,
    /// `private` or `external`.
    pub server: &'static str,
    /// Messages per measurement.
    pub messages: u64,
    /// Payload size.
    pub payload_bytes: usize,
    /// Acks in flight, raw and core alike.
    pub max_in_flight: u64,
    /// Batch consumer: most messages per batch.
    pub batch_size: usize,
    /// Batch consumer: batches handled at once.
    pub batch_concurrency: usize,
    /// Every run.
    pub runs: Vec<CoreRun>,
    /// Median of each rate.
    pub median: CoreRates,
    /// Ratios of the medians.
    pub ratios: CoreRatios,
}

impl CoreBusReport {
    fn new(version: String, server: &'static str, args: &CoreBusArgs, runs: Vec<CoreRun>) -> Self {
        let of = |field: fn(&CoreRates) -> f64| {
            median(&runs.iter().map(|r| field(&r.rates)).collect::<Vec<f64>>())
        };
        let median = CoreRates {
            raw_publish_async_msgs_per_s: of(|r| r.raw_publish_async_msgs_per_s),
            core_publish_pipelined_msgs_per_s: of(|r| r.core_publish_pipelined_msgs_per_s),
            raw_consume_ack_msgs_per_s: of(|r| r.raw_consume_ack_msgs_per_s),
            core_batch_consume_msgs_per_s: of(|r| r.core_batch_consume_msgs_per_s),
        };
        let publish = ratio(
            median.core_publish_pipelined_msgs_per_s,
            median.raw_publish_async_msgs_per_s,
        );
        let consume = ratio(
            median.core_batch_consume_msgs_per_s,
            median.raw_consume_ack_msgs_per_s,
        );
        Self {
            scenario: "core-bus",
            nats_server_version: version,
            server,
            messages: args.bus.messages,
            payload_bytes: args.bus.payload_bytes,
            max_in_flight: args.bus.max_in_flight,
            batch_size: args.batch_size,
            batch_concurrency: args.batch_concurrency,
            runs,
            median,
            ratios: CoreRatios {
                pipelined_publish_vs_raw_async: publish,
                batch_consume_vs_raw_consume: consume,
                goal: GOAL,
                goals_met: publish >= GOAL && consume >= GOAL,
            },
        }
    }
}

/// Runs the scenario and returns its report.
pub async fn run(args: &CoreBusArgs) -> Result<CoreBusReport, LoadError> {
    let (bench, bus, version) = Bench::create(&args.bus).await?;
    let mut runs = Vec::new();
    let mut failure = None;
    for run in 1..=args.bus.runs {
        match one_run(&bench, args, run).await {
            Ok(rates) => runs.push(CoreRun { run, rates }),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    bench.delete().await;
    drop(bus);
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(CoreBusReport::new(version, bench.server_kind, args, runs))
}

async fn one_run(bench: &Bench, args: &CoreBusArgs, run: u64) -> Result<CoreRates, LoadError> {
    bench.purge().await?;
    let timeout = args.bus.phase_timeout;
    let total = args.bus.runs;
    let messages = args.bus.messages;
    let raw_first = run % 2 == 1;

    let mut raw_publish = 0.0;
    let mut core_publish = 0.0;
    for raw in [raw_first, !raw_first] {
        if raw {
            let elapsed = bounded(
                "raw publish",
                timeout,
                bench.js_publish_async_on(run, "raw"),
            )
            .await?;
            raw_publish = bench.log(run, total, "raw publish, async acks", messages, elapsed);
        } else {
            let elapsed = bounded("core publish", timeout, core_publish_run(bench, run)).await?;
            core_publish = bench.log(run, total, "core pipelined publish", messages, elapsed);
        }
    }
    let mut raw_consume = 0.0;
    let mut core_consume = 0.0;
    for raw in [raw_first, !raw_first] {
        if raw {
            let elapsed =
                bounded("raw consume", timeout, bench.consume_and_ack(run, "raw")).await?;
            raw_consume = bench.log(run, total, "raw consume and ack", messages, elapsed);
        } else {
            let elapsed =
                bounded("core consume", timeout, core_consume_run(bench, args, run)).await?;
            core_consume = bench.log(run, total, "core batch consumer", messages, elapsed);
        }
    }
    Ok(CoreRates {
        raw_publish_async_msgs_per_s: raw_publish,
        core_publish_pipelined_msgs_per_s: core_publish,
        raw_consume_ack_msgs_per_s: raw_consume,
        core_batch_consume_msgs_per_s: core_consume,
    })
}

/// Core's pipelined publisher over `messages` payloads.
async fn core_publish_run(bench: &Bench, run: u64) -> Result<Duration, LoadError> {
    let subject = bench.subject(run, "core");
    let in_flight = usize::try_from(bench.args.max_in_flight).unwrap_or(usize::MAX);
    let publisher = Publisher::new(bench.client.clone(), in_flight, Duration::from_secs(10));
    let start = Instant::now();
    let results = publisher
        .publish_all_bytes((0..bench.args.messages).map(|i| {
            (
                subject.as_str(),
                format!("r{run}-core-{i}"),
                bench.payload.clone(),
            )
        }))
        .await;
    let elapsed = start.elapsed();
    for result in results {
        let stored = result.map_err(|e| LoadError::bus("core publish", e))?;
        if stored.duplicate {
            return Err(LoadError::Unexpected(format!(
                "message {} was reported as a duplicate",
                stored.sequence
            )));
        }
    }
    bench
        .expect_stored(
            &async_nats::Subject::from(subject.clone()),
            bench.args.messages,
        )
        .await?;
    Ok(elapsed)
}

/// Core's batch consumer with a no-op handler over the core messages.
async fn core_consume_run(
    bench: &Bench,
    args: &CoreBusArgs,
    run: u64,
) -> Result<Duration, LoadError> {
    let durable = format!("core_r{run}");
    let spec = ConsumerSpec {
        filter_subjects: vec![bench.subject(run, "core")],
        batch: BatchSettings {
            max_messages: args.batch_size,
            max_wait: Duration::from_millis(20),
            concurrency: args.batch_concurrency,
        },
        ..ConsumerSpec::new(&bench.stream, &durable)
    };
    spec.validate()
        .map_err(|e| LoadError::Unexpected(e.join("; ")))?;
    let metrics = ConsumerMetrics::register(&Metrics::new("loadtest"))
        .map_err(|e| LoadError::Unexpected(e.to_string()))?;
    let shutdown = Shutdown::new(Duration::from_secs(10));
    let handled = Arc::new(AtomicU64::new(0));
    let counter = handled.clone();

    let start = Instant::now();
    let task = tokio::spawn(run_batch_consumer(
        bench.js.clone(),
        spec,
        metrics.clone(),
        shutdown.clone(),
        move |batch: Vec<Delivery>| {
            counter.fetch_add(batch.len() as u64, Ordering::Relaxed);
            std::future::ready(vec![Outcome::Done; batch.len()])
        },
    ));
    let wanted = bench.args.messages;
    while metrics.count(&durable, "acked") < wanted {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    bench
        .client
        .flush()
        .await
        .map_err(|e| LoadError::bus("flush", e))?;
    let stream = bench
        .js
        .get_stream(&bench.stream)
        .await
        .map_err(|e| LoadError::bus("get stream", e))?;
    loop {
        let info = stream
            .consumer_info(&durable)
            .await
            .map_err(|e| LoadError::bus("consumer info", e))?;
        if info.num_ack_pending == 0 && info.num_pending == 0 {
            break;
        }
        tokio::time::sleep(ACK_POLL).await;
    }
    let elapsed = start.elapsed();
    shutdown.cancel();
    let _ = task.await;
    let seen = handled.load(Ordering::Relaxed);
    if seen != wanted {
        return Err(LoadError::Unexpected(format!(
            "the batch consumer handled {seen} messages, expected {wanted}"
        )));
    }
    stream
        .delete_consumer(&durable)
        .await
        .map_err(|e| LoadError::bus("delete consumer", e))?;
    progress(&format!(
        "Run {run}: batch consumer handled {seen} messages."
    ));
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Scenario};
    use clap::Parser;

    fn args() -> CoreBusArgs {
        let cli = Cli::try_parse_from(["beacon-loadtest", "core-bus"]).expect("parses");
        match cli.scenario {
            Scenario::CoreBus(args) => args,
            _ => unreachable!("parsed core-bus"),
        }
    }

    fn rates(raw_pub: f64, core_pub: f64, raw_con: f64, core_con: f64) -> CoreRates {
        CoreRates {
            raw_publish_async_msgs_per_s: raw_pub,
            core_publish_pipelined_msgs_per_s: core_pub,
            raw_consume_ack_msgs_per_s: raw_con,
            core_batch_consume_msgs_per_s: core_con,
        }
    }

    #[test]
    fn ratios_compare_medians_against_the_goal() {
        let runs = vec![
            CoreRun {
                run: 1,
                rates: rates(100.0, 90.0, 100.0, 70.0),
            },
            CoreRun {
                run: 2,
                rates: rates(200.0, 170.0, 100.0, 90.0),
            },
            CoreRun {
                run: 3,
                rates: rates(150.0, 130.0, 100.0, 85.0),
            },
        ];
        let report = CoreBusReport::new("2.15.1".into(), "private", &args(), runs);
        assert_eq!(report.median, rates(150.0, 130.0, 100.0, 85.0));
        assert_eq!(report.ratios.pipelined_publish_vs_raw_async, 0.8667);
        assert_eq!(report.ratios.batch_consume_vs_raw_consume, 0.85);
        assert!(report.ratios.goals_met);
        let json = serde_json::to_value(&report).expect("serializes");
        assert_eq!(json["scenario"], "core-bus");
        assert_eq!(json["runs"][0]["core_batch_consume_msgs_per_s"], 70.0);
    }
}
