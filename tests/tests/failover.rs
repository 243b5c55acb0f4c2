//! Two deciders under the decider lease, as real processes: one decides,
//! the other stands by; `kill -9` the one deciding and the other takes over
//! within 5 s and goes on deciding.

use std::time::{Duration, Instant};

use beacon_testkit::{wait_until, DaemonProcess, NatsServer};
use beacon_tests::{apply_config, get, page_config, HttpTarget, Stack, READY};

/// The bound the design sets for a takeover after `kill -9`.
const TAKEOVER: Duration = Duration::from_secs(5);

/// Whether the decider behind `admin_url` holds the decider lease, per its
/// own metrics.
async fn holds_lease(admin_url: &str) -> bool {
    let Some((_, body)) = get(&format!("{admin_url}/metrics")).await else {
        return false;
    };
    body.lines().any(|line| {
        line.starts_with("beacon_decider_lease_holder{")
            && line.contains("role=\"decider\"")
            && line.ends_with(" 1")
    })
}

#[tokio::test]
async fn a_standby_decider_takes_over_within_5s_of_kill_9_and_goes_on_deciding() {
    let nats = NatsServer::start();
    let mut target = HttpTarget::start().await;
    let mut stack = Stack::start("failover", |_| vec!["--nats-url".into(), nats.url()]).await;
    let standby =
        DaemonProcess::spawn_with_admin("beacon-decider", vec!["--nats-url".into(), nats.url()]);
    standby.wait_ready(READY).await;
    let mut deciders = vec![stack.daemons.remove(0), standby];

    let client = async_nats::connect(nats.url()).await.expect("connect");
    apply_config(&client, &page_config("failover", "Failover", &target.url())).await;
    stack.wait_for_api_status("operational").await;

    // Exactly one decider holds the lease.
    let leader = wait_until("one decider to hold the lease", READY, || async {
        let mut holders = Vec::new();
        for (i, decider) in deciders.iter().enumerate() {
            if holds_lease(&decider.admin_url()).await {
                holders.push(i);
            }
        }
        (holders.len() == 1).then(|| holders[0])
    })
    .await;
    let other = 1 - leader;

    deciders[leader].kill();
    let killed = Instant::now();
    let other_url = deciders[other].admin_url();
    wait_until("the standby to take the lease", TAKEOVER * 2, || async {
        holds_lease(&other_url).await.then_some(())
    })
    .await;
    let takeover = killed.elapsed();
    assert!(
        takeover <= TAKEOVER,
        "the standby took over {takeover:?} after kill -9"
    );

    // The new leader decides: the target goes down, the page says so.
    target.down();
    stack.wait_for_api_status("major_outage").await;
    target.up().await;
    stack.wait_for_api_status("operational").await;
    drop(deciders);
    drop(stack);
}
