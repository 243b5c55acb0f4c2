//! The uptime SQL against a pure Rust reference, on a real ClickHouse:
//! random timelines of status changes and maintenance windows, inserted
//! shuffled, with copies and with late events in later inserts, must give
//! the reference's milliseconds exactly and its uptime to within 1e-9,
//! for the whole period and for each day of it.

use std::time::Duration;

use beacon_contract::event::{Envelope, EventId};
use beacon_contract::hlc::Hlc;
use beacon_contract::messages::{
    ComponentStatus, Evidence, MaintenanceAction, MaintenanceEvent, MaintenancePhase, StatusChange,
};
use beacon_page::config::sla::StatusWeights;
use beacon_recorder::config::{ClickHouseArgs, LayoutArg};
use beacon_recorder::rows::{MaintenanceRow, StatusRow};
use beacon_recorder::schema::{MAINTENANCE_TABLE, STATUS_TABLE};
use beacon_recorder::service::ClickHouse;
use beacon_recorder::uptime::{
    reference, status_ms_sql, Change, StatusMs, UptimeQuery, UptimeRow, DAY_MS,
};
use beacon_runtime::telemetry::Metrics;
use beacon_testkit::ClickHouseServer;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// 2024-03-01T00:00:00Z: the timelines live around it.
const T0: u64 = 1_709_251_200_000;
/// The recorder's clock for row mapping: well after every timeline.
const NOW: u64 = T0 + 30 * DAY_MS;

#[derive(Debug, Clone)]
struct Timeline {
    /// (offset from T0, status, HLC logical): the changes.
    changes: Vec<(i64, usize, u32)>,
    /// Indexes of changes inserted twice.
    copies: Vec<usize>,
    /// (start offset, length, ended, started at all): maintenance windows.
    windows: Vec<(u64, u64, bool, bool)>,
    /// Insertion order and where the inserts are cut.
    order: Vec<usize>,
    cut: usize,
    /// The period: offset and length.
    from: u64,
    len: u64,
    weights: (f64, f64, f64),
}

fn timeline() -> impl Strategy<Value = Timeline> {
    let change = (
        prop_oneof![
            // Some changes share a time, to exercise the tie-break.
            3 => -(DAY_MS as i64)..(4 * DAY_MS) as i64,
            1 => Just(DAY_MS as i64),
        ],
        0..ComponentStatus::ALL.len(),
        0u32..3,
    );
    (
        proptest::collection::vec(change, 0..12),
        proptest::collection::vec(0usize..12, 0..4),
        proptest::collection::vec(
            (
                0..3 * DAY_MS,
                1..DAY_MS,
                any::<bool>(),
                prop::bool::weighted(0.8),
            ),
            0..3,
        ),
        0..3 * DAY_MS,
        1..3 * DAY_MS,
        (0.0..=100.0f64, 0.0..=100.0f64, 0.0..=100.0f64),
        any::<u64>(),
    )
        .prop_map(|(changes, copies, windows, from, len, weights, seed)| {
            let copies: Vec<usize> = copies.into_iter().filter(|i| *i < changes.len()).collect();
            let total = changes.len() + copies.len();
            // A deterministic shuffle from the seed, so cases shrink.
            let mut order: Vec<usize> = (0..total).collect();
            let mut state = seed | 1;
            for i in (1..order.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                order.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let cut = (seed % (total as u64 + 1)) as usize;
            Timeline {
                changes,
                copies,
                windows,
                order,
                cut,
                from,
                len,
                weights,
            }
        })
}

fn status_envelope(
    page: &str,
    at_ms: u64,
    status: ComponentStatus,
    logical: u32,
) -> Envelope<StatusChange> {
    Envelope::with_id(
        EventId::new(),
        Hlc::new(at_ms, logical),
        "eu",
        StatusChange {
            page: page.into(),
            component: "api".into(),
            from: None,
            to: status,
            at_ms,
            source: Default::default(),
            flapping: false,
            inhibited: None,
            proposal: None,
            evidence: Evidence {
                rule: "test".into(),
                trigger: None,
                regions: vec![],
            },
        },
    )
}

fn maintenance_envelope(
    page: &str,
    id: &str,
    action: MaintenanceAction,
    at_ms: u64,
    components: &[&str],
) -> Envelope<MaintenanceEvent> {
    let phase = match action {
        MaintenanceAction::Started => MaintenancePhase::InProgress,
        MaintenanceAction::Completed => MaintenancePhase::Completed,
        _ => MaintenancePhase::Scheduled,
    };
    Envelope::with_id(
        EventId::new(),
        Hlc::new(at_ms, 0),
        "eu",
        MaintenanceEvent {
            page: page.into(),
            maintenance: id.into(),
            action,
            actor: "decider".into(),
            at_ms,
            phase,
            title: "work".into(),
            body: String::new(),
            starts_at_ms: at_ms,
            ends_at_ms: at_ms + 1,
            components: components.iter().map(|c| (*c).to_owned()).collect(),
            recurrence: None,
            series: None,
            remind_before_ms: 0,
            verify_ms: 0,
        },
    )
}

async fn one_case(store: &ClickHouse, case: usize, t: &Timeline) -> Result<(), TestCaseError> {
    let page = format!("p{case}");
    let envelopes: Vec<Envelope<StatusChange>> = t
        .changes
        .iter()
        .map(|(offset, status, logical)| {
            let at = (T0 as i64 + offset) as u64;
            status_envelope(&page, at, ComponentStatus::ALL[*status], *logical)
        })
        .collect();
    let mut rows: Vec<StatusRow> = envelopes
        .iter()
        .map(|e| StatusRow::from_envelope(e, NOW).expect("a plausible change"))
        .collect();
    for &i in &t.copies {
        rows.push(rows[i].clone());
    }
    let ordered: Vec<StatusRow> = t.order.iter().map(|&i| rows[i].clone()).collect();
    // Two inserts: the second holds events older than some of the first.
    let (first, late) = ordered.split_at(t.cut.min(ordered.len()));
    store.insert(STATUS_TABLE, first).await.expect("insert");
    store.insert(STATUS_TABLE, late).await.expect("insert late");

    let mut windows = Vec::new();
    let mut maintenance = Vec::new();
    for (i, (start, len, ended, started)) in t.windows.iter().enumerate() {
        let id = format!("m{i}");
        let start = T0 + start;
        maintenance.push(maintenance_envelope(
            &page,
            &id,
            MaintenanceAction::Scheduled,
            start - 1_000,
            &["api"],
        ));
        if !started {
            maintenance.push(maintenance_envelope(
                &page,
                &id,
                MaintenanceAction::Cancelled,
                start - 500,
                &["api"],
            ));
            continue;
        }
        maintenance.push(maintenance_envelope(
            &page,
            &id,
            MaintenanceAction::Started,
            start,
            &["api"],
        ));
        if *ended {
            maintenance.push(maintenance_envelope(
                &page,
                &id,
                MaintenanceAction::Completed,
                start + len,
                &["api"],
            ));
            windows.push((start, start + len));
        } else {
            windows.push((start, u64::MAX));
        }
    }
    // Another component's window must not count for this one.
    maintenance.push(maintenance_envelope(
        &page,
        "other",
        MaintenanceAction::Started,
        T0,
        &["db"],
    ));
    let mrows: Vec<MaintenanceRow> = maintenance
        .iter()
        .map(|e| MaintenanceRow::from_envelope(e, NOW).expect("plausible"))
        .collect();
    store
        .insert(MAINTENANCE_TABLE, &mrows)
        .await
        .expect("insert maintenance");

    let reference_changes: Vec<Change> = rows
        .iter()
        .map(|r| Change {
            id: r.event_id.clone(),
            hlc: r.hlc.clone(),
            at_ms: r.at_ms,
            status: ComponentStatus::ALL
                .into_iter()
                .find(|s| s.as_str() == r.to_status)
                .expect("a known status"),
        })
        .collect();
    let weights = StatusWeights {
        major_outage: t.weights.0,
        partial_outage: t.weights.1,
        degraded_performance: t.weights.2,
    };
    let from = T0 + t.from;
    let to = from + t.len;
    let components = vec!["api".to_owned()];
    for by_day in [false, true] {
        let sql = status_ms_sql(&UptimeQuery {
            database: store.database(),
            page: &page,
            components: Some(&components),
            from_ms: from,
            to_ms: to,
            by_day,
            weights,
        });
        let got: Vec<UptimeRow> = store.fetch(&sql).await.expect("uptime query");
        let buckets: Vec<(u64, u64, u64)> = if by_day {
            let mut days = Vec::new();
            let mut day = from / DAY_MS;
            while day * DAY_MS < to {
                let start = (day * DAY_MS).max(from);
                let end = ((day + 1) * DAY_MS).min(to);
                days.push((day, start, end));
                day += 1;
            }
            days
        } else {
            vec![(0, from, to)]
        };
        for (bucket, start, end) in buckets {
            let want = reference(&reference_changes, &windows, start, end);
            let row = got.iter().find(|r| r.bucket == bucket);
            let (ms, uptime) = match row {
                Some(row) => (row.ms(), row.uptime),
                None => (
                    StatusMs {
                        no_data: end - start,
                        ..StatusMs::default()
                    },
                    f64::NAN,
                ),
            };
            prop_assert_eq!(ms, want, "by_day {} bucket {}", by_day, bucket);
            match want.uptime(&weights) {
                None => prop_assert!(uptime.is_nan(), "uptime {} with nothing counted", uptime),
                Some(expected) => prop_assert!(
                    (uptime - expected).abs() <= 1e-9,
                    "uptime {} vs reference {}",
                    uptime,
                    expected
                ),
            }
        }
    }
    Ok(())
}

#[test]
fn sql_uptime_matches_the_reference() {
    let clickhouse = ClickHouseServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
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
    let store = ClickHouse::new(&config, &Metrics::new("recorder")).expect("metrics");
    runtime.block_on(store.migrate()).expect("migrate");

    let mut runner = TestRunner::new(Config {
        cases: 40,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::cell::Cell::new(0usize);
    let result = runner.run(&timeline(), |t| {
        case.set(case.get() + 1);
        runtime.block_on(one_case(&store, case.get(), &t))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
