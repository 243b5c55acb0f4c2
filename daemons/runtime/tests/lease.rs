//! Leases against a real `nats-server`: one holder at a time, renewal,
//! release hands over at once, a holder that stops renewing is replaced
//! within the TTL and its fenced check is refused, partitions spread over
//! processes.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use beacon_contract::names::KV_LEASES;
use beacon_contract::topology::{ensure, Topology};
use beacon_runtime::lease::{
    holds_on_server, Leadership, Lease, LeaseConfig, LeaseError, LeaseMetrics,
};
use beacon_runtime::shutdown::Shutdown;
use beacon_runtime::telemetry::Metrics;
use beacon_testkit::nats::NatsServer;
use tokio::sync::watch;

const CONFIG: LeaseConfig = LeaseConfig {
    ttl: Duration::from_secs(2),
    renew_every: Duration::from_millis(500),
    partitions: 1,
};

async fn bus(server: &NatsServer) -> jetstream::Context {
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = jetstream::new(client);
    ensure(&js, &Topology::default()).await.expect("topology");
    js
}

/// A contender: its lease, its leadership, and the shutdown that stops it.
struct Contender {
    lease: Lease,
    leadership: watch::Receiver<Leadership>,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

async fn contender(js: &jetstream::Context, role: &str, partition: u32) -> Contender {
    let metrics = LeaseMetrics::register(&Metrics::new("lease_test")).expect("metrics");
    let lease = Lease::open(js, role, partition, CONFIG, metrics)
        .await
        .expect("open lease");
    let (sender, leadership) = watch::channel(Leadership::Follower);
    let shutdown = Shutdown::new(Duration::from_secs(5));
    let task = tokio::spawn(lease.clone().run(shutdown.clone(), sender));
    Contender {
        lease,
        leadership,
        shutdown,
        task,
    }
}

async fn wait_leader(contender: &mut Contender, within: Duration) -> u64 {
    let led = tokio::time::timeout(within, contender.leadership.wait_for(Leadership::is_leader))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} did not lead within {within:?}",
                contender.lease.holder_id()
            )
        })
        .expect("lease task alive");
    match *led {
        Leadership::Leader { term } => term,
        Leadership::Follower => unreachable!("waited for a leader"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_holder_at_a_time_and_release_hands_over_at_once() {
    let server = NatsServer::start();
    let js = bus(&server).await;
    let mut first = contender(&js, "decider", 0).await;
    let first_term = wait_leader(&mut first, Duration::from_secs(5)).await;
    let mut second = contender(&js, "decider", 0).await;

    // Several renewals later the first still holds it and the second waits.
    tokio::time::sleep(CONFIG.ttl * 2).await;
    assert!(first.leadership.borrow().is_leader());
    assert!(!second.leadership.borrow().is_leader());
    assert_eq!(
        first.lease.check().await.expect("leader's check").term,
        first_term
    );
    assert!(matches!(
        second.lease.check().await,
        Err(LeaseError::NotLeader { .. })
    ));

    // A clean stop releases: the second takes over well before the TTL.
    let released = Instant::now();
    first.shutdown.cancel();
    first.task.await.expect("lease task");
    let second_term = wait_leader(&mut second, CONFIG.ttl).await;
    assert!(
        released.elapsed() < CONFIG.ttl,
        "took {:?}",
        released.elapsed()
    );
    assert!(second_term > first_term, "terms grow with each holder");
    second.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_stops_renewing_is_replaced_and_its_fenced_check_is_refused() {
    let server = NatsServer::start();
    let js = bus(&server).await;
    let mut old = contender(&js, "decider", 0).await;
    let old_term = wait_leader(&mut old, Duration::from_secs(5)).await;
    let mut new = contender(&js, "decider", 0).await;

    // The old holder freezes: its task stops without releasing, as a
    // paused or partitioned process would.
    old.task.abort();
    let frozen = Instant::now();
    let new_term = wait_leader(&mut new, CONFIG.ttl * 3).await;
    let takeover = frozen.elapsed();
    assert!(
        takeover < Duration::from_secs(5),
        "took over after {takeover:?}"
    );
    assert!(new_term > old_term);

    // The old holder wakes up and tries a fenced write: refused.
    let refused = old.lease.check().await;
    assert!(
        matches!(refused, Err(LeaseError::NotLeader { .. })),
        "{refused:?}"
    );
    let store = js.get_key_value(KV_LEASES).await.expect("bucket");
    assert!(!holds_on_server(&store, "decider.0", old.lease.holder_id())
        .await
        .expect("read"));
    assert_eq!(
        new.lease.check().await.expect("new leader's check").term,
        new_term
    );
    new.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_held_independently() {
    let server = NatsServer::start();
    let js = bus(&server).await;
    let mut a0 = contender(&js, "notifier", 0).await;
    wait_leader(&mut a0, Duration::from_secs(5)).await;
    // Another process takes partition 1 while partition 0 stays with a0.
    let mut b1 = contender(&js, "notifier", 1).await;
    wait_leader(&mut b1, Duration::from_secs(5)).await;
    let b0 = contender(&js, "notifier", 0).await;
    tokio::time::sleep(CONFIG.ttl).await;
    assert!(a0.leadership.borrow().is_leader());
    assert!(!b0.leadership.borrow().is_leader());
    assert!(b1.lease.check().await.is_ok());
    for c in [a0, b1, b0] {
        c.shutdown.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_dies_before_its_first_renewal_is_still_replaced() {
    let server = NatsServer::start();
    let js = bus(&server).await;
    // The first holder releases, leaving a delete marker behind…
    let mut first = contender(&js, "decider", 0).await;
    wait_leader(&mut first, Duration::from_secs(5)).await;
    first.shutdown.cancel();
    first.task.await.expect("lease task");
    // …which the second acquires over, and dies at once, before renewing.
    let mut second = contender(&js, "decider", 0).await;
    wait_leader(&mut second, Duration::from_secs(5)).await;
    second.task.abort();
    let died = Instant::now();
    let mut third = contender(&js, "decider", 0).await;
    wait_leader(&mut third, CONFIG.ttl * 3).await;
    assert!(
        died.elapsed() < Duration::from_secs(5),
        "took {:?}",
        died.elapsed()
    );
    third.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_whose_answer_was_lost_does_not_cost_the_lease() {
    let server = NatsServer::start();
    let js = bus(&server).await;
    let mut holder = contender(&js, "decider", 0).await;
    let term = wait_leader(&mut holder, Duration::from_secs(5)).await;

    // The state a renewal that landed but whose answer was lost leaves:
    // the holder's own record at a revision the holder does not know.
    let store = js.get_key_value(KV_LEASES).await.expect("bucket");
    let entry = store
        .entry("decider.0")
        .await
        .expect("read")
        .expect("the holder's record");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-TTL", CONFIG.ttl.as_secs().max(1).to_string().as_str());
    let landed = js
        .publish_with_headers(format!("$KV.{KV_LEASES}.decider.0"), headers, entry.value)
        .await
        .expect("publish")
        .await
        .expect("stored")
        .sequence;

    // The holder renews over its own record and keeps leading the same term.
    wait_until_renewed(&store, landed).await;
    assert!(
        holder.leadership.borrow().is_leader(),
        "the holder stepped down"
    );
    assert_eq!(
        holder.lease.check().await.expect("still the leader").term,
        term
    );
    holder.shutdown.cancel();
}

/// Waits until the lease key has a revision after `after`: the holder
/// renewed over it.
async fn wait_until_renewed(store: &async_nats::jetstream::kv::Store, after: u64) {
    let deadline = Instant::now() + CONFIG.ttl * 3;
    loop {
        let revision = store
            .entry("decider.0")
            .await
            .ok()
            .flatten()
            .map_or(0, |e| e.revision);
        if revision > after {
            return;
        }
        assert!(Instant::now() < deadline, "the holder never renewed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
