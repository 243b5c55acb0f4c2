//! The report: per-run rates, their medians and the ratios between them.
//! Pure arithmetic, unit-tested; [`crate::baseline`] does the measuring.

use std::time::Duration;

use serde::Serialize;

/// Messages per second of each measurement in one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    /// Core NATS publish + flush: what the connection and server can take.
    pub core_publish_msgs_per_s: f64,
    /// JetStream publish with many acks in flight.
    pub js_publish_async_msgs_per_s: f64,
    /// JetStream publish awaiting each ack, as daemons publish events.
    pub js_publish_sync_msgs_per_s: f64,
    /// Durable pull consumer reading and acking every message.
    pub js_consume_ack_msgs_per_s: f64,
}

/// One run's rates, numbered from 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Run {
    /// Run number, from 1.
    pub run: u64,
    /// Its rates.
    #[serde(flatten)]
    pub rates: Rates,
}

/// How the slower paths compare to the faster ones, from the medians.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratios {
    /// JetStream async publish / core publish: the cost of persistence.
    pub js_async_vs_core: f64,
    /// JetStream awaited publish / core publish: the cost of a round trip per event.
    pub js_sync_vs_core: f64,
    /// Consume-and-ack / JetStream async publish: can consumers keep up with producers.
    pub consume_vs_js_async: f64,
}

/// The `bus-baseline` report, printed as one JSON object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineReport {
    /// Always `bus-baseline`.
    pub scenario: &'static str,
    /// Version the server announced.
    pub nats_server_version: String,
    /// `private` (started for the run) or `external` (`--nats-url`).
    pub server: &'static str,
    /// Messages per core, async and consume measurement.
    pub messages: u64,
    /// Messages in the awaited-ack measurement.
    pub sync_messages: u64,
    /// Payload size.
    pub payload_bytes: usize,
    /// Most acks in flight in the async measurement.
    pub max_in_flight: u64,
    /// Every run.
    pub runs: Vec<Run>,
    /// Median of each rate over the runs.
    pub median: Rates,
    /// Ratios of the medians.
    pub ratios: Ratios,
}

impl BaselineReport {
    /// Builds the report from measured runs: medians and ratios are derived here.
    pub fn new(
        nats_server_version: String,
        server: &'static str,
        messages: u64,
        sync_messages: u64,
        payload_bytes: usize,
        max_in_flight: u64,
        runs: Vec<Run>,
    ) -> Self {
        let rates: Vec<Rates> = runs.iter().map(|r| r.rates).collect();
        let median = median_rates(&rates);
        Self {
            scenario: "bus-baseline",
            nats_server_version,
            server,
            messages,
            sync_messages,
            payload_bytes,
            max_in_flight,
            runs,
            median,
            ratios: ratios(&median),
        }
    }
}

/// Messages per second, rounded to 0.1. A zero duration counts as one
/// microsecond so the rate stays finite (JSON has no infinity).
pub fn rate(messages: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.max(Duration::from_micros(1)).as_secs_f64();
    round_to(messages as f64 / seconds, 1)
}

/// The median; the mean of the middle two for an even count, 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The median of each rate separately.
pub fn median_rates(runs: &[Rates]) -> Rates {
    let of = |field: fn(&Rates) -> f64| {
        round_to(median(&runs.iter().map(field).collect::<Vec<f64>>()), 1)
    };
    Rates {
        core_publish_msgs_per_s: of(|r| r.core_publish_msgs_per_s),
        js_publish_async_msgs_per_s: of(|r| r.js_publish_async_msgs_per_s),
        js_publish_sync_msgs_per_s: of(|r| r.js_publish_sync_msgs_per_s),
        js_consume_ack_msgs_per_s: of(|r| r.js_consume_ack_msgs_per_s),
    }
}

/// Ratios of `rates`, rounded to four decimals; 0 when the divisor is 0.
pub fn ratios(rates: &Rates) -> Ratios {
    Ratios {
        js_async_vs_core: ratio(
            rates.js_publish_async_msgs_per_s,
            rates.core_publish_msgs_per_s,
        ),
        js_sync_vs_core: ratio(
            rates.js_publish_sync_msgs_per_s,
            rates.core_publish_msgs_per_s,
        ),
        consume_vs_js_async: ratio(
            rates.js_consume_ack_msgs_per_s,
            rates.js_publish_async_msgs_per_s,
        ),
    }
}

/// `numerator / denominator` to four decimals; 0 when the denominator is not positive.
pub fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        round_to(numerator / denominator, 4)
    } else {
        0.0
    }
}

fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(core: f64, js_async: f64, js_sync: f64, consume: f64) -> Rates {
        Rates {
            core_publish_msgs_per_s: core,
            js_publish_async_msgs_per_s: js_async,
            js_publish_sync_msgs_per_s: js_sync,
            js_consume_ack_msgs_per_s: consume,
        }
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn medians_are_taken_per_rate() {
        let runs = [
            rates(100.0, 50.0, 5.0, 40.0),
            rates(300.0, 10.0, 1.0, 20.0),
            rates(200.0, 30.0, 3.0, 60.0),
        ];
        assert_eq!(median_rates(&runs), rates(200.0, 30.0, 3.0, 40.0));
    }

    #[test]
    fn ratios_compare_the_medians() {
        let r = ratios(&rates(1_000_000.0, 250_000.0, 3_000.0, 125_000.0));
        assert_eq!(
            r,
            Ratios {
                js_async_vs_core: 0.25,
                js_sync_vs_core: 0.003,
                consume_vs_js_async: 0.5
            }
        );
        assert_eq!(ratios(&rates(0.0, 1.0, 1.0, 1.0)).js_async_vs_core, 0.0);
    }

    #[test]
    fn rates_are_finite_and_rounded() {
        assert_eq!(rate(1000, Duration::from_millis(250)), 4000.0);
        assert_eq!(rate(1, Duration::from_secs(3)), 0.3);
        assert!(rate(10, Duration::ZERO).is_finite());
    }

    #[test]
    fn report_has_the_documented_shape() {
        let report = BaselineReport::new(
            "2.15.1".into(),
            "private",
            100,
            5,
            256,
            1024,
            vec![Run {
                run: 1,
                rates: rates(1000.0, 500.0, 10.0, 250.0),
            }],
        );
        let json = serde_json::to_value(&report).expect("serializes");
        assert_eq!(json["scenario"], "bus-baseline");
        assert_eq!(json["nats_server_version"], "2.15.1");
        assert_eq!(json["messages"], 100);
        assert_eq!(json["payload_bytes"], 256);
        assert_eq!(json["runs"][0]["run"], 1);
        assert_eq!(json["runs"][0]["core_publish_msgs_per_s"], 1000.0);
        for key in [
            "core_publish_msgs_per_s",
            "js_publish_async_msgs_per_s",
            "js_publish_sync_msgs_per_s",
            "js_consume_ack_msgs_per_s",
        ] {
            assert!(json["median"][key].is_number(), "median.{key}");
        }
        assert_eq!(json["ratios"]["js_async_vs_core"], 0.5);
        assert_eq!(json["ratios"]["js_sync_vs_core"], 0.01);
        assert_eq!(json["ratios"]["consume_vs_js_async"], 0.5);
    }
}
