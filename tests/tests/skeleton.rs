//! The walking skeleton across real processes: two probe regions, the
//! decider, the publisher and the edge, over a real nats-server. A local
//! target goes down and comes back; the edge must show it.

use std::time::Duration;

use beacon_testkit::{free_port, wait_until, DaemonProcess, NatsServer};
use beacon_tests::{apply_config, component_status, get, HttpTarget};

const READY: Duration = Duration::from_secs(30);
const DECIDE: Duration = Duration::from_secs(30);

fn page_config(target: &str) -> String {
    format!(
        r#"
[page]
id = "skel"
name = "Skeleton <Test>"

[defaults]
regions = ["eu", "us"]
interval = "1s"
timeout = "1s"
failure_threshold = 2
recovery_threshold = 2

[[components]]
id = "api"
name = "API"

[[components.checks]]
type = "http"
url = "{target}"
"#
    )
}

struct Stack {
    edge_url: String,
    // Kept for their Drop: killed (and logs printed on failure) at the end.
    daemons: Vec<DaemonProcess>,
    _origin: tempfile::TempDir,
}

async fn start_stack(nats: &NatsServer) -> Stack {
    let origin = tempfile::tempdir().expect("origin dir");
    let origin_path = origin.path().display().to_string();
    let nats_args = || vec!["--nats-url".to_owned(), nats.url()];
    let edge_port = free_port();
    let with = |mut base: Vec<String>, extra: &[&str]| {
        base.extend(extra.iter().map(|s| s.to_string()));
        base
    };
    let daemons = vec![
        DaemonProcess::spawn_with_admin("beacon-decider", nats_args()),
        DaemonProcess::spawn_with_admin("beacon-probe", with(nats_args(), &["--region", "eu"])),
        DaemonProcess::spawn_with_admin("beacon-probe", with(nats_args(), &["--region", "us"])),
        DaemonProcess::spawn_with_admin(
            "beacon-publisher",
            with(
                nats_args(),
                &["--origin", &origin_path, "--debounce", "50ms"],
            ),
        ),
        DaemonProcess::spawn_with_admin(
            "beacon-edge",
            vec![
                "--origin".into(),
                origin_path.clone(),
                "--page".into(),
                "skel".into(),
                "--listen".into(),
                format!("127.0.0.1:{edge_port}"),
            ],
        ),
    ];
    for daemon in &daemons {
        daemon.wait_ready(READY).await;
    }
    Stack {
        edge_url: format!("http://127.0.0.1:{edge_port}"),
        daemons,
        _origin: origin,
    }
}

async fn wait_for_status(edge_url: &str, want: &str) -> String {
    let url = format!("{edge_url}/api/v2/summary.json");
    wait_until(
        &format!("edge to serve component api as {want}"),
        DECIDE,
        || {
            let url = url.clone();
            async move {
                let (status, body) = get(&url).await?;
                (status == 200 && component_status(&body, "api").as_deref() == Some(want))
                    .then_some(body)
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_target_going_down_and_up_shows_on_the_edge() {
    let nats = NatsServer::start();
    let mut target = HttpTarget::start().await;
    let stack = start_stack(&nats).await;
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let applied = apply_config(&client, &page_config(&target.url())).await;
    assert_eq!(applied.page, "skel");

    let summary = wait_for_status(&stack.edge_url, "operational").await;
    let value: serde_json::Value = serde_json::from_str(&summary).expect("summary is JSON");
    assert_eq!(value["page"]["id"], "skel");
    assert_eq!(value["status"]["indicator"], "none");
    assert!(value["generated_at"].is_string());

    target.down();
    let summary = wait_for_status(&stack.edge_url, "major_outage").await;
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
    wait_for_status(&stack.edge_url, "operational").await;

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
    let mut stack = start_stack(&nats).await;
    let client = async_nats::connect(nats.url()).await.expect("connect");
    apply_config(&client, &page_config(&target.url())).await;
    let before = wait_for_status(&stack.edge_url, "operational").await;

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
