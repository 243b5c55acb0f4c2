//! The probe's outbox against a real `nats-server`: every result pushed
//! while the server is killed and started again is stored exactly once.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use beacon_contract::event::Envelope;
use beacon_contract::hlc::HlcClock;
use beacon_contract::messages::{HealthResult, Outcome};
use beacon_contract::names::STREAM_HEALTH;
use beacon_contract::topology::{ensure, Topology};
use beacon_probe::outbox::Outbox;
use beacon_runtime::connect::{connect, NatsArgs};
use beacon_runtime::publish::Publisher;
use beacon_runtime::shutdown::Shutdown;
use beacon_runtime::telemetry::Metrics;
use beacon_testkit::nats::NatsServer;
use beacon_testkit::wait::wait_until;

fn result(clock: &HlcClock, n: u64) -> Envelope<HealthResult> {
    Envelope::new(
        clock,
        "eu",
        HealthResult {
            latency_ms: 3,
            http_status: Some(200),
            ..HealthResult::new(
                "demo",
                &format!("c{}", n % 20),
                "http",
                "eu",
                Outcome::Up,
                1_732_233_000_000 + n,
            )
        },
    )
}

async fn stored(js: &jetstream::Context) -> Option<u64> {
    let mut stream = js.get_stream(STREAM_HEALTH).await.ok()?;
    Some(stream.info().await.ok()?.state.messages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_pushed_across_a_server_restart_are_stored_exactly_once() {
    let mut server = NatsServer::start();
    let args = NatsArgs {
        url: server.url(),
        creds: None,
        user: None,
        password: None,
    };
    let shutdown = Shutdown::new(Duration::from_secs(5));
    let client = connect(&args, "probe-outbox-test", &shutdown)
        .await
        .expect("connect");
    let js = jetstream::new(client.clone());
    ensure(&js, &Topology::default()).await.expect("topology");

    let metrics = Metrics::new("probe_outbox_test");
    let outbox = Arc::new(Outbox::new(
        100_000,
        metrics.single_gauge("outbox_depth", "d").expect("gauge"),
        metrics
            .single_counter("outbox_dropped_total", "d")
            .expect("counter"),
    ));
    let sender = {
        let outbox = outbox.clone();
        let publisher = Publisher::new(client, 256, Duration::from_secs(2));
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            outbox
                .run_sender(publisher, shutdown, Duration::from_secs(5))
                .await
        })
    };

    let clock = HlcClock::new();
    for n in 0..3_000 {
        outbox.push(result(&clock, n));
    }
    wait_until(
        "the first results to be stored",
        Duration::from_secs(20),
        || async { stored(&js).await.filter(|n| *n >= 3_000) },
    )
    .await;

    // Results pushed while the server is down wait, and go out once it is back.
    tokio::task::block_in_place(|| server.stop());
    for n in 3_000..6_000 {
        outbox.push(result(&clock, n));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| server.start_again());

    let total = wait_until(
        "all 6000 results to be stored",
        Duration::from_secs(60),
        || async { stored(&js).await.filter(|n| *n >= 6_000) },
    )
    .await;
    assert_eq!(total, 6_000, "every result stored exactly once");
    assert!(outbox.is_empty());
    assert!(
        metrics.render().contains("outbox_dropped_total 0"),
        "nothing was dropped"
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), sender)
        .await
        .expect("sender stops")
        .expect("sender did not panic");
}
