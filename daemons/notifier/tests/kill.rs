//! Exactly once in practice: two notifiers fan one incident out to many
//! webhook subscribers while they are killed with SIGKILL three times
//! (once while planning, twice while sending). Every subscriber hears of
//! it, and a repeat only ever carries the same idempotency key.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use beacon_contract::event::Envelope;
use beacon_contract::messages::{
    DedupMode, DeliveryOutcome, EndpointState, Impact, Subscriber, SubscriberChannel,
    SubscriberEndpoint,
};
use beacon_runtime::publish::Publisher;
use beacon_testkit::receivers::web::WebSink;
use beacon_testkit::wait_until;
use common::*;

/// Recipients of the fan-out: 100,000 (about 100 s with every process a
/// debug build on two cores); `BEACON_KILL_RECIPIENTS` sets another count,
/// with the waits scaled to it. `loadtest/` fans out to 1,000,000 with
/// release builds.
fn recipients() -> usize {
    std::env::var("BEACON_KILL_RECIPIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 1000)
        .unwrap_or(100_000)
}

/// A wait sized for 20,000 recipients, scaled to the fan-out's size.
fn scaled(seconds: u64) -> Duration {
    Duration::from_secs(seconds * (recipients() as u64).div_ceil(20_000))
}

const FLAGS: &[&str] = &[
    "--ack-wait",
    "6s",
    "--send-timeout",
    "3s",
    "--notify-batch",
    "500",
    "--send-concurrency",
    "64",
];

#[tokio::test]
async fn sigkill_three_times_during_a_fan_out_loses_nothing_and_repeats_only_the_same_key() {
    let total = recipients();
    let started = Instant::now();
    let hooks = WebSink::start_lean().await;
    let channel = format!(
        "[[channels]]\nid = \"hooks\"\ntype = \"webhook\"\nsecret_env = \"{HOOK_ENV}\"\nrate_per_second = 1000000\nburst = 1000000\nconcurrency = 512\ndestination_rate_per_second = 1000000\n"
    );
    let mut h = Harness::start(&[page("fanout", &["api"], &channel)], FLAGS).await;

    // Subscribers written straight into KV, as an import would.
    let publisher = Publisher::new(h.client.clone(), 1024, Duration::from_secs(30));
    let kv_prefix = "$KV.subscribers.fanout.";
    let mut records = Vec::with_capacity(total);
    for i in 0..total {
        let id = beacon_notifier::index::new_id();
        let subscriber = Subscriber {
            page: "fanout".into(),
            subscriber: id.clone(),
            endpoints: vec![SubscriberEndpoint {
                channel: SubscriberChannel::Webhook {
                    url: format!("{}/s{i}", hooks.url()),
                },
                state: EndpointState::Active,
                since_ms: 1,
                confirmation: None,
            }],
            components: vec![],
            instant: vec![],
            dedup: DedupMode::Every,
            digest: false,
            created_at_ms: 1,
        };
        let envelope = Envelope::new(&h.clock, "test", subscriber);
        records.push((
            format!("{kv_prefix}{id}"),
            envelope.id.to_string(),
            envelope.encode().expect("encode").into(),
        ));
    }
    for result in publisher
        .publish_all_bytes(
            records
                .iter()
                .map(|(s, id, p): &(String, String, bytes::Bytes)| {
                    (s.as_str(), id.clone(), p.clone())
                }),
        )
        .await
    {
        result.expect("store a subscriber");
    }
    drop(records);
    wait_until("the notifier to load every subscriber", scaled(60), || {
        let n = h.metric("beacon_notifier_subscribers");
        async move { (n.await as usize >= total).then_some(()) }
    })
    .await;
    let mut other = h.spawn_another(FLAGS).await;
    eprintln!("setup took {:?}", started.elapsed());

    let fan_out = Instant::now();
    incident(
        &h,
        created(
            "fanout",
            &incident_id(),
            "Everything is down",
            Impact::Critical,
            &["api"],
        ),
    )
    .await;
    // Kill one: the planner, while it plans.
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.notifier.restart();
    // Kill two and three: while sending, one then the other.
    let share = |n: usize| n * total / 100;
    wait_until("30% delivered", scaled(60), || {
        let n = hooks.count();
        async move { (n >= share(30)).then_some(()) }
    })
    .await;
    other.restart();
    wait_until("60% delivered", scaled(60), || {
        let n = hooks.count();
        async move { (n >= share(60)).then_some(()) }
    })
    .await;
    h.notifier.restart();

    let distinct = |received: &[beacon_testkit::receivers::web::Received]| {
        let mut keys: HashMap<String, Vec<String>> = HashMap::new();
        for r in received {
            keys.entry(r.path.clone())
                .or_default()
                .push(r.header("webhook-id").unwrap_or_default().to_owned());
        }
        keys
    };
    wait_until("every subscriber to hear of it", scaled(90), || {
        let n = distinct(&hooks.received()).len();
        async move { (n >= total).then_some(()) }
    })
    .await;
    eprintln!("fan-out with three kills took {:?}", fan_out.elapsed());
    let received = hooks.received();
    let by_subscriber = distinct(&received);
    assert_eq!(by_subscriber.len(), total, "nothing lost");
    let mut repeats = 0;
    for (path, ids) in &by_subscriber {
        assert!(
            ids.iter().all(|id| id == &ids[0]),
            "{path} got different keys: {ids:?}"
        );
        repeats += ids.len() - 1;
    }
    eprintln!(
        "{} requests for {total} subscribers: {repeats} repeats, each with the same key",
        received.len()
    );
    // Every delivery has its receipt.
    let receipts = h
        .wait_receipts("a receipt for every delivery", total, |r| {
            r.outcome == DeliveryOutcome::Delivered
        })
        .await;
    let keys: std::collections::HashSet<&str> = receipts
        .iter()
        .map(|r| r.idempotency_key.as_str())
        .collect();
    assert_eq!(keys.len(), total);
    drop(other);
}
