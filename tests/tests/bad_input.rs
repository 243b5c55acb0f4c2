//! Bad input never crashes a daemon: invalid flags exit 64 with every error,
//! undecodable bus messages are dead-lettered while the daemon keeps going,
//! and an unreachable NATS at start is retried with a clear log line.

use std::time::Duration;

use beacon_testkit::{wait_until, DaemonProcess, NatsServer};

#[tokio::test]
async fn invalid_flags_exit_64_naming_every_problem() {
    let mut probe = DaemonProcess::spawn(
        "beacon-probe",
        vec![
            "--region".into(),
            "Not.A.Region".into(),
            "--outbox-capacity".into(),
            "0".into(),
        ],
    );
    let status = probe.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(64), "{}", probe.logs());
    let logs = probe.logs();
    assert!(logs.contains("--region"), "{logs}");
    assert!(logs.contains("--outbox-capacity"), "{logs}");
}

#[tokio::test]
async fn consumer_and_lease_settings_that_cannot_work_exit_64_saying_why() {
    // A batch of zero, an ack wait shorter than the batch wait, a lease
    // that expires at once.
    let mut decider = DaemonProcess::spawn(
        "beacon-decider",
        vec![
            "--batch-size".into(),
            "0".into(),
            "--batch-wait".into(),
            "5s".into(),
            "--ack-wait".into(),
            "2s".into(),
            "--lease-ttl".into(),
            "0s".into(),
        ],
    );
    let status = decider.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(64), "{}", decider.logs());
    let logs = decider.logs();
    assert!(logs.contains("batch size must be between 1"), "{logs}");
    assert!(
        logs.contains("must be longer than the batch wait"),
        "{logs}"
    );
    assert!(logs.contains("lease TTL must be"), "{logs}");

    let mut recorder = DaemonProcess::spawn(
        "beacon-recorder",
        vec!["--batch-concurrency".into(), "0".into()],
    );
    let status = recorder.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(64), "{}", recorder.logs());
    assert!(
        recorder.logs().contains("concurrency must be between 1"),
        "{}",
        recorder.logs()
    );
}

#[tokio::test]
async fn an_undecodable_message_is_dead_lettered_and_the_decider_keeps_running() {
    let nats = NatsServer::start();
    let decider =
        DaemonProcess::spawn_with_admin("beacon-decider", vec!["--nats-url".into(), nats.url()]);
    decider.wait_ready(Duration::from_secs(30)).await;

    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    js.publish(
        beacon_contract::names::health_subject("demo", "api", "eu"),
        "this is not JSON".into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored");

    let metrics_url = format!("{}/metrics", decider.admin_url());
    wait_until(
        "the decider to count a dead letter",
        Duration::from_secs(20),
        || {
            let url = metrics_url.clone();
            async move {
                let (_, body) = beacon_tests::get(&url).await?;
                body.lines()
                    .any(|l| {
                        l.starts_with("beacon_decider_messages_total")
                            && l.contains("dead_lettered")
                            && l.ends_with(" 1")
                    })
                    .then_some(())
            }
        },
    )
    .await;
    let mut deadletters = js
        .get_stream("DEADLETTER")
        .await
        .expect("DEADLETTER stream");
    assert_eq!(deadletters.info().await.expect("info").state.messages, 1);
    let (code, _) = beacon_tests::get(&format!("{}/readyz", decider.admin_url()))
        .await
        .expect("admin answers");
    assert_eq!(code, 200, "the decider is still ready");
}

#[tokio::test]
async fn nats_unreachable_at_start_is_retried_until_it_comes() {
    let mut nats = NatsServer::start();
    nats.stop();
    let mut decider =
        DaemonProcess::spawn_with_admin("beacon-decider", vec!["--nats-url".into(), nats.url()]);
    wait_until("the retry log line", Duration::from_secs(20), || {
        let logs = decider.logs();
        async move { logs.contains("Cannot connect to NATS at").then_some(()) }
    })
    .await;
    let (code, _) = beacon_tests::get(&format!("{}/healthz", decider.admin_url()))
        .await
        .expect("admin answers");
    assert_eq!(code, 200, "alive while waiting");
    let (code, _) = beacon_tests::get(&format!("{}/readyz", decider.admin_url()))
        .await
        .expect("admin answers");
    assert_eq!(code, 503, "not ready without NATS");
    assert!(decider.exit_status().is_none(), "still running");

    nats.start_again();
    decider.wait_ready(Duration::from_secs(30)).await;
}
