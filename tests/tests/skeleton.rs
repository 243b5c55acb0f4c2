//! The walking skeleton across real processes: two probe regions, the
//! decider, the publisher and the edge, over a real nats-server. A local
//! target goes down and comes back; the edge must show it.

use beacon_testkit::NatsServer;
use beacon_tests::{apply_config, get, page_config, HttpTarget, Stack};

fn nats_args(nats: &NatsServer) -> impl Fn(&str) -> Vec<String> {
    let url = nats.url();
    move |_role| vec!["--nats-url".to_owned(), url.clone()]
}

#[tokio::test]
async fn a_target_going_down_and_up_shows_on_the_edge() {
    let nats = NatsServer::start();
    let mut target = HttpTarget::start().await;
    let stack = Stack::start("skel", nats_args(&nats)).await;
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let applied = apply_config(
        &client,
        &page_config("skel", "Skeleton <Test>", &target.url()),
    )
    .await;
    assert_eq!(applied.page, "skel");

    let summary = stack.wait_for_api_status("operational").await;
    let value: serde_json::Value = serde_json::from_str(&summary).expect("summary is JSON");
    assert_eq!(value["page"]["id"], "skel");
    assert_eq!(value["status"]["indicator"], "none");
    assert!(value["generated_at"].is_string());

    target.down();
    let summary = stack.wait_for_api_status("major_outage").await;
    let value: serde_json::Value = serde_json::from_str(&summary).expect("summary is JSON");
    assert_eq!(value["status"]["indicator"], "critical");
    let (code, html) = get(&format!("{}/", stack.edge_url))
        .await
        .expect("edge answers");
    assert_eq!(code, 200);
    assert!(html.contains("data-status=\"major_outage\""), "{html}");
    assert!(
        html.contains("Skeleton &lt;Test&gt;"),
        "operator text is escaped: {html}"
    );

    target.up().await;
    stack.wait_for_api_status("operational").await;

    // The decision is on the bus with its evidence.
    let js = async_nats::jetstream::new(client.clone());
    let status = js.get_key_value("status").await.expect("status bucket");
    let record = status
        .get("skel.api")
        .await
        .expect("read")
        .expect("record exists");
    let record: serde_json::Value = serde_json::from_slice(&record).expect("record JSON");
    assert_eq!(record["data"]["status"], "operational");
    assert_eq!(record["data"]["evidence"]["rule"], "all 2 regions up");
    let mut stream = js.get_stream("STATUS").await.expect("STATUS stream");
    let changes = stream.info().await.expect("info").state.messages;
    assert!(
        changes >= 3,
        "expected operational, outage(s), operational events; got {changes}"
    );
    drop(stack);
}

#[tokio::test]
async fn the_edge_keeps_serving_when_everything_behind_it_is_dead() {
    let mut nats = NatsServer::start();
    let target = HttpTarget::start().await;
    let mut stack = Stack::start("skel", nats_args(&nats)).await;
    let client = async_nats::connect(nats.url()).await.expect("connect");
    apply_config(
        &client,
        &page_config("skel", "Skeleton <Test>", &target.url()),
    )
    .await;
    let before = stack.wait_for_api_status("operational").await;

    // Kill every daemon but the edge (the last one), then NATS itself.
    let edge = stack.daemons.pop().expect("edge");
    for daemon in &mut stack.daemons {
        daemon.kill();
    }
    nats.stop();

    let (code, after) = get(&format!("{}/api/v2/summary.json", stack.edge_url))
        .await
        .expect("edge still answers");
    assert_eq!(code, 200);
    assert_eq!(after, before, "the last good version is served unchanged");
    let (code, _) = get(&format!("{}/", stack.edge_url))
        .await
        .expect("edge still answers");
    assert_eq!(code, 200);
    drop(edge);
}
