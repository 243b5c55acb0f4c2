//! The group insert against a real `clickhouse-server`: batches waiting
//! together go in one `INSERT`, each gets its rows back, and a refused row
//! fails the whole group (the sink then isolates it batch by batch, which
//! `tests/recorder.rs` covers end to end).

use std::sync::Arc;
use std::time::Duration;

use beacon_contract::event::Envelope;
use beacon_contract::hlc::{wall_clock_ms, HlcClock};
use beacon_contract::messages::{HealthResult, Outcome};
use beacon_recorder::config::{ClickHouseArgs, LayoutArg};
use beacon_recorder::group::GroupInsert;
use beacon_recorder::rows::HealthRow;
use beacon_recorder::schema::HEALTH_TABLE;
use beacon_recorder::service::ClickHouse;
use beacon_runtime::retry::{Class, Classify};
use beacon_runtime::telemetry::Metrics;
use beacon_testkit::ClickHouseServer;

fn rows(checks: &[&str]) -> Vec<HealthRow> {
    let clock = HlcClock::new();
    let now = wall_clock_ms();
    checks
        .iter()
        .map(|check| {
            let result = HealthResult {
                latency_ms: 12,
                http_status: Some(200),
                ..HealthResult::new("acme", "api", check, "eu-west", Outcome::Up, now)
            };
            HealthRow::from_envelope(Envelope::new(&clock, "eu-west", result), now)
                .expect("a plausible result")
        })
        .collect()
}

fn inserts(metrics: &Metrics) -> String {
    metrics
        .render()
        .lines()
        .find(|l| l.starts_with("beacon_recorder_batches_inserted_total{table=\"health_results\"}"))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn waiting_batches_share_one_insert_and_share_its_refusal() {
    let clickhouse = ClickHouseServer::start();
    let config = ClickHouseArgs {
        url: clickhouse.http_url(),
        database: "beacon".into(),
        user: None,
        password: None,
        layout: LayoutArg::Single,
        cluster: None,
        shard_urls: Vec::new(),
        rollup_interval: Duration::from_secs(60),
    }
    .validate()
    .expect("valid flags");
    let metrics = Metrics::new("recorder");
    let store = Arc::new(ClickHouse::new(&config, &metrics).expect("metrics"));
    store.migrate().await.expect("migrate");
    let group = GroupInsert::start(store.clone(), HEALTH_TABLE);

    // On this single-threaded runtime both batches are queued before the
    // group task runs, so they wait together.
    let (first, second) = tokio::join!(
        group.insert(rows(&["a", "b"])),
        group.insert(rows(&["c", "d", "e"]))
    );
    let (first, second) = (first.expect("answered"), second.expect("answered"));
    assert!(first.result.is_ok() && second.result.is_ok());
    assert_eq!((first.rows.len(), second.rows.len()), (2, 3));
    assert_eq!(
        clickhouse.query("SELECT count() FROM beacon.health_results"),
        "5\n"
    );
    assert!(inserts(&metrics).ends_with(" 1"), "{}", inserts(&metrics));

    // A refused row fails the one INSERT it went in: both batches hear of
    // it and get their rows back to isolate it.
    clickhouse.query(
        "ALTER TABLE beacon.health_results ADD COLUMN guard UInt8 \
         MATERIALIZED throwIf(check_id = 'refused')",
    );
    let (good, bad) = tokio::join!(
        group.insert(rows(&["f", "g"])),
        group.insert(rows(&["h", "refused"]))
    );
    for landed in [good.expect("answered"), bad.expect("answered")] {
        assert_eq!(landed.rows.len(), 2);
        let error = landed.result.expect_err("the group was refused");
        assert_eq!(error.class(), Class::Permanent, "{error}");
    }
    assert_eq!(
        clickhouse.query("SELECT count() FROM beacon.health_results"),
        "5\n",
        "a refused INSERT stores none of its rows"
    );
}
