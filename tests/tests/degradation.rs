//! The degradation ladder, entered and left by taking parts away, with an
//! edge that mirrors two origins: the `pages` object store (over a fault
//! proxy to NATS) and an S3-compatible bucket (a real `moto_server` behind
//! another). The publisher writes both directly and renders every second
//! (`--refresh`); the edge calls a page older than 4 s stale.
//!
//! - 0: everything runs; `summary.json` says level 0.
//! - 1: the edge loses the object store: it fails over to the bucket (a
//!   new version still arrives) and says level 1; it loses the bucket too
//!   and still serves the page (stale-if-error).
//! - 2: the publisher is killed: the page stops updating, the edge says
//!   "live updates are paused" on the page and level 2 in `summary.json`;
//!   the publisher returns and level 0 with it.
//! - 3: `beaconctl emergency up --object-store --s3-origin` puts the notice
//!   in both origins without any daemon's help; the edge serves it and
//!   says level 3; `down` takes it away.
//! - The decider, cut off from NATS, reports level 2 until NATS returns.

use std::time::Duration;

use beacon_testkit::proxy::FaultProxy;
use beacon_testkit::{free_port, wait_until, DaemonProcess, S3Server};
use beacon_tests::rig::{metric, Rig};
use beacon_tests::{get, page_config, READY};

const PAGE: &str = "ladder";
const BUCKET: &str = "pages";
const SETTLE: Duration = Duration::from_secs(60);
/// moto checks no signature, but every request is signed.
const KEYS: &[(&str, &str)] = &[
    ("BEACON_S3_ACCESS_KEY", "test"),
    ("BEACON_S3_SECRET_KEY", "test-secret"),
];

fn publisher(rig: &Rig, dir: &std::path::Path, s3: &S3Server) -> DaemonProcess {
    DaemonProcess::spawn_with_admin_env(
        "beacon-publisher",
        vec![
            "--nats-url".into(),
            rig.nats.url(),
            "--origin".into(),
            dir.display().to_string(),
            "--s3-origin".into(),
            format!("{}/{BUCKET}", s3.url()),
            "--refresh".into(),
            "1s".into(),
            "--debounce".into(),
            "50ms".into(),
        ],
        KEYS,
    )
}

/// `summary.json` as the edge serves it: (page name, degradation level).
async fn summary(edge: &str) -> Option<(String, u64)> {
    let (status, body) = get(&format!("{edge}/api/v2/summary.json")).await?;
    if status != 200 {
        return None;
    }
    let summary: serde_json::Value = serde_json::from_str(&body).ok()?;
    Some((
        summary["page"]["name"].as_str()?.to_owned(),
        summary["beacon_degradation"]["level"].as_u64()?,
    ))
}

/// The edge's page and its own level agree on `level`.
async fn wait_level(edge: &str, admin: &str, level: u64, what: &str) -> String {
    wait_until(what, SETTLE, || async {
        let (name, said) = summary(edge).await?;
        let seen = metric(admin, "beacon_edge_degradation_level").await;
        (said == level && seen == level as f64).then_some(name)
    })
    .await
}

async fn emergency(rig: &Rig, s3: &S3Server, action: &str, extra: &[&str]) {
    let bucket = format!("{}/{BUCKET}", s3.url());
    let mut command = tokio::process::Command::new(beacon_testkit::daemon::binary("beaconctl"));
    command
        .args(["--nats-url", &rig.nats.url(), "emergency", action])
        .args(["--page", PAGE, "--object-store", "--s3-origin", &bucket])
        .args(extra)
        .envs(KEYS.iter().copied());
    let output = tokio::time::timeout(SETTLE, command.output())
        .await
        .expect("beaconctl finishes")
        .expect("run beaconctl");
    assert!(
        output.status.success(),
        "beaconctl emergency {action}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_level_is_entered_and_left_by_taking_parts_away() {
    let mut rig = Rig::start(&[], &[]).await;
    let ensured = rig.ctl(&["bus", "ensure"]).await;
    assert!(ensured.status.success(), "beaconctl bus ensure");
    let s3 = tokio::task::block_in_place(S3Server::start);
    let to_nats = FaultProxy::start(([127, 0, 0, 1], rig.nats.port()).into()).await;
    let to_bucket = FaultProxy::start(([127, 0, 0, 1], s3.port()).into()).await;
    let publisher_dir = tempfile::tempdir().expect("the publisher's directory");
    let edge_dir = tempfile::tempdir().expect("the edge's directory");
    let mut publisher = publisher(&rig, publisher_dir.path(), &s3);
    publisher.wait_ready(READY).await;
    let port = free_port();
    let edge = DaemonProcess::spawn_with_admin_env(
        "beacon-edge",
        vec![
            "--origin".into(),
            edge_dir.path().display().to_string(),
            "--page".into(),
            PAGE.into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--mirror".into(),
            "--nats-url".into(),
            to_nats.nats_url(),
            "--mirror-s3".into(),
            format!("{}/{BUCKET}", to_bucket.http_url()),
            "--mirror-poll".into(),
            "200ms".into(),
            "--stale-after".into(),
            "4s".into(),
        ],
        KEYS,
    );
    edge.wait_ready(READY).await;
    let (edge_url, admin) = (format!("http://127.0.0.1:{port}"), edge.admin_url());
    let target = "http://127.0.0.1:9/";

    // Level 0.
    rig.apply(&page_config(PAGE, "Ladder one", target)).await;
    let name = wait_level(&edge_url, &admin, 0, "level 0 with both origins").await;
    assert_eq!(name, "Ladder one");
    for origin in ["object_store", "s3-pages"] {
        let up = metric(
            &admin,
            &format!("beacon_edge_origin_up{{origin=\"{origin}\"}}"),
        )
        .await;
        assert_eq!(up, 1.0, "{origin} answers");
    }

    // Level 1: the object store is out of the edge's reach. The next
    // version comes from the bucket.
    to_nats.refuse(true);
    to_nats.cut();
    wait_level(&edge_url, &admin, 1, "level 1 without the object store").await;
    rig.apply(&page_config(PAGE, "Ladder two", target)).await;
    wait_until("the new version through the bucket", SETTLE, || async {
        let (name, _) = summary(&edge_url).await?;
        (name == "Ladder two").then_some(())
    })
    .await;
    // And the bucket too: the page is still served, from the last copy.
    to_bucket.refuse(true);
    to_bucket.cut();
    wait_until("the bucket counted down", SETTLE, || async {
        let up = metric(&admin, "beacon_edge_origin_up{origin=\"s3-pages\"}").await;
        (up == 0.0).then_some(())
    })
    .await;
    let (status, html) = get(&format!("{edge_url}/"))
        .await
        .expect("the edge answers");
    assert_eq!(status, 200);
    assert!(html.contains("Ladder two"), "the last copy is served");
    to_nats.refuse(false);
    to_bucket.refuse(false);
    wait_level(&edge_url, &admin, 0, "level 0 with the origins back").await;

    // Level 2: the publisher is gone; the page stops updating.
    publisher.kill();
    wait_level(&edge_url, &admin, 2, "level 2 without the publisher").await;
    let (_, html) = get(&format!("{edge_url}/"))
        .await
        .expect("the edge answers");
    assert!(
        html.contains("live updates are paused"),
        "the page says it is not live"
    );
    assert!(html.contains("Ladder two"), "and still shows the page");
    publisher.restart();
    publisher.wait_ready(READY).await;
    wait_level(&edge_url, &admin, 0, "level 0 with the publisher back").await;
    let (_, html) = get(&format!("{edge_url}/"))
        .await
        .expect("the edge answers");
    assert!(!html.contains("live updates are paused"), "{html}");

    // Level 3: a notice put in both origins by hand.
    emergency(
        &rig,
        &s3,
        "up",
        &["--title", "Checkout is down", "-m", "We are on it."],
    )
    .await;
    wait_level(&edge_url, &admin, 3, "level 3 with the notice up").await;
    let (_, html) = get(&format!("{edge_url}/"))
        .await
        .expect("the edge answers");
    assert!(html.contains("Checkout is down"), "the notice is served");
    let in_bucket = s3.object(BUCKET, &format!("{PAGE}/emergency"));
    assert!(in_bucket.is_some(), "the notice is in the bucket");
    emergency(&rig, &s3, "down", &[]).await;
    wait_level(&edge_url, &admin, 0, "level 0 with the notice down").await;
    let (_, html) = get(&format!("{edge_url}/"))
        .await
        .expect("the edge answers");
    assert!(!html.contains("Checkout is down"), "the notice is gone");

    // A daemon cut off from the bus reports level 2 until it is back.
    let decider = rig.deciders[0].admin_url();
    assert_eq!(
        metric(&decider, "beacon_decider_degradation_level").await,
        0.0
    );
    rig.nats.stop();
    wait_until("the decider at level 2", SETTLE, || async {
        let level = metric(&decider, "beacon_decider_degradation_level").await;
        (level == 2.0).then_some(())
    })
    .await;
    rig.nats.start_again();
    wait_until("the decider back at level 0", SETTLE, || async {
        let level = metric(&decider, "beacon_decider_degradation_level").await;
        (level == 0.0).then_some(())
    })
    .await;
}
