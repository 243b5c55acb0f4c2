//! The api daemon reports ready only once its key endpoints answer: a
//! request sent the moment `/readyz` would say 200 is answered, never met
//! with "no responders". Runs in-process through the same `Daemon::start` +
//! `run` path `main` uses, against a real `nats-server`.

use std::time::Duration;

use beacon_contract::api::APIKEY_LIST;
use beacon_runtime::daemon::{CommonArgs, Daemon};
use beacon_testkit::NatsServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_only_once_the_key_endpoints_answer() {
    let nats = NatsServer::start();
    let common = CommonArgs::in_process(nats.url(), Duration::from_secs(5));
    let daemon = Daemon::start("api", "global", &common)
        .await
        .expect("start the api daemon");
    let settings = beacon_api::ApiSettings {
        listen: "127.0.0.1:0".parse().expect("a socket address"),
        timeout: Duration::from_secs(2),
        per_address_per_minute: 60,
        trusted_proxies: Vec::new(),
    };
    let running = daemon.clone();
    let task = tokio::spawn(async move { beacon_api::run(running, settings).await });

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !daemon.process.readiness.get() {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let reply = daemon
        .client
        .request(APIKEY_LIST.subject(), br#""not a request""#.to_vec().into())
        .await
        .expect("ready, but apikey.list does not answer");
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload).expect("an ApiReply");
    assert_eq!(reply["status"], "invalid", "{reply}");
    assert!(
        reply["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("not a ListApiKeysRequest")),
        "{reply}"
    );
    let metrics = daemon.process.metrics.render();
    assert!(
        metrics.lines().any(|line| line
            == "beacon_api_bus_requests_total{endpoint=\"apikey.list\",outcome=\"invalid\"} 1"),
        "{metrics}"
    );

    daemon.process.shutdown.cancel();
    task.await.expect("no panic").expect("a clean stop");
}
