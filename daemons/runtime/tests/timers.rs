//! Durable timers against a real `nats-server`: they survive a crash (the
//! facility dropped without `done`), a timer marked done is gone, a
//! cancelled one never fires, a re-scheduled one fires at its new time.

use std::time::Duration;

use async_nats::jetstream;
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::names::KV_TIMERS;
use beacon_contract::topology::{ensure, Topology};
use beacon_runtime::telemetry::Metrics;
use beacon_runtime::timers::{DurableTimers, Fired, TimerMetrics};
use beacon_testkit::nats::NatsServer;
use serde_json::json;

async fn store(server: &NatsServer) -> async_nats::jetstream::kv::Store {
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = jetstream::new(client);
    ensure(&js, &Topology::default()).await.expect("topology");
    js.get_key_value(KV_TIMERS).await.expect("KV timers")
}

fn metrics() -> TimerMetrics {
    TimerMetrics::register(&Metrics::new("timers_test")).expect("metrics")
}

async fn next(timers: &mut DurableTimers, within: Duration) -> Fired {
    tokio::time::timeout(within, timers.next_fired())
        .await
        .unwrap_or_else(|_| panic!("no timer fired within {within:?}"))
}

async fn none_within(timers: &mut DurableTimers, within: Duration) {
    if let Ok(fired) = tokio::time::timeout(within, timers.next_fired()).await {
        panic!("{} fired, expected nothing", fired.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_survive_a_crash_and_done_ones_are_gone() {
    let server = NatsServer::start();
    let kv = store(&server).await;
    let now = wall_clock_ms();

    let mut timers = DurableTimers::rebuild(kv.clone(), "decider", metrics())
        .await
        .expect("rebuild an empty set");
    assert!(timers.is_empty());
    timers
        .schedule("window-1-start", now + 300, json!({"window": 1}))
        .await
        .expect("schedule");
    timers
        .schedule("window-2-start", now + 600, json!({"window": 2}))
        .await
        .expect("schedule");
    timers
        .schedule("cancelled", now + 200, json!(null))
        .await
        .expect("schedule");
    timers.cancel("cancelled").await.expect("cancel");

    // The first fires and its work is done; then the process "crashes"
    // before the second fires.
    let first = next(&mut timers, Duration::from_secs(5)).await;
    assert_eq!(first.id, "window-1-start");
    assert_eq!(first.payload, json!({"window": 1}));
    timers.done(&first).await.expect("done");
    drop(timers);

    // Another owner's timers are not ours.
    let mut other = DurableTimers::rebuild(kv.clone(), "notifier", metrics())
        .await
        .expect("rebuild notifier");
    assert!(other.is_empty());
    none_within(&mut other, Duration::from_millis(300)).await;

    let mut timers = DurableTimers::rebuild(kv.clone(), "decider", metrics())
        .await
        .expect("rebuild after the crash");
    assert_eq!(timers.len(), 1, "only the timer not done is back");
    let second = next(&mut timers, Duration::from_secs(5)).await;
    assert_eq!(second.id, "window-2-start");
    // Not done: a crash now fires it again after the next rebuild, at once
    // because it is past due.
    drop(timers);
    let mut timers = DurableTimers::rebuild(kv, "decider", metrics())
        .await
        .expect("rebuild again");
    let again = next(&mut timers, Duration::from_millis(500)).await;
    assert_eq!(again.id, "window-2-start");
    timers.done(&again).await.expect("done");
    assert!(timers.is_empty());
    none_within(&mut timers, Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescheduled_timer_fires_at_its_new_time_only() {
    let server = NatsServer::start();
    let kv = store(&server).await;
    let now = wall_clock_ms();
    let mut timers = DurableTimers::rebuild(kv.clone(), "notifier", metrics())
        .await
        .expect("rebuild");
    timers
        .schedule("batch-close", now + 200, json!("old"))
        .await
        .expect("schedule");
    timers
        .schedule("batch-close", now + 1_500, json!("new"))
        .await
        .expect("re-schedule");
    none_within(&mut timers, Duration::from_millis(1_000)).await;
    let fired = next(&mut timers, Duration::from_secs(5)).await;
    assert_eq!(fired.payload, json!("new"));
    assert!(wall_clock_ms() >= now + 1_500);

    // Scheduled again while its work ran: `done` leaves the new setting.
    timers
        .schedule("batch-close", now + 2_500, json!("newer"))
        .await
        .expect("schedule during the work");
    timers.done(&fired).await.expect("done");
    let rebuilt = DurableTimers::rebuild(kv, "notifier", metrics())
        .await
        .expect("rebuild");
    assert_eq!(
        rebuilt.get("batch-close").map(|r| r.payload.clone()),
        Some(json!("newer"))
    );
}
