//! Several origins: the publisher writes every version to a directory, the
//! `pages` object store and an S3-compatible bucket (a real `moto_server`
//! behind a fault proxy). The bucket goes down, then slow: the other
//! origins get every version all the same (the object store, published to
//! after the bucket, too), and the bucket catches up with the newest one
//! when it answers again. A bucket unreachable at start is named, and the
//! publisher serves the others.

use std::path::Path;
use std::time::Duration;

use beacon_page::origin;
use beacon_testkit::proxy::FaultProxy;
use beacon_testkit::{wait_until, DaemonProcess, S3Server};
use beacon_tests::rig::{metric, Rig};
use beacon_tests::{page_config, READY};

const BUCKET: &str = "pages";
const SETTLE: Duration = Duration::from_secs(60);
/// moto checks no signature, but the publisher signs every request.
const KEYS: &[(&str, &str)] = &[
    ("BEACON_S3_ACCESS_KEY", "test"),
    ("BEACON_S3_SECRET_KEY", "test-secret"),
];

/// The version live in the directory origin, and its page's name.
fn directory_version(dir: &Path) -> Option<(String, String)> {
    let (version, version_dir) = origin::resolve(&origin::page_dir(dir, "multi"), origin::CURRENT)?;
    let html = std::fs::read_to_string(version_dir.join("index.html")).ok()?;
    Some((version, html))
}

/// The version the bucket's manifest names.
fn bucket_version(s3: &S3Server) -> Option<String> {
    let manifest = s3.object(BUCKET, "multi/manifest")?;
    let manifest: serde_json::Value = serde_json::from_str(&manifest).ok()?;
    manifest["version"].as_str().map(str::to_owned)
}

/// A publisher writing to `dir` and the bucket at `s3_origin`, with a 1 s
/// origin timeout.
async fn start_publisher(rig: &Rig, dir: &Path, s3_origin: String) -> DaemonProcess {
    let publisher = DaemonProcess::spawn_with_admin_env(
        "beacon-publisher",
        vec![
            "--nats-url".into(),
            rig.nats.url(),
            "--origin".into(),
            dir.display().to_string(),
            "--s3-origin".into(),
            s3_origin,
            "--origin-timeout".into(),
            "1s".into(),
            "--debounce".into(),
            "50ms".into(),
        ],
        KEYS,
    );
    publisher.wait_ready(READY).await;
    publisher
}

/// The version the `pages` object store's manifest names.
async fn object_store_version(rig: &Rig) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let store = rig.js.get_object_store("pages").await.ok()?;
    let mut object = store.get("multi/manifest").await.ok()?;
    let mut bytes = Vec::new();
    object.read_to_end(&mut bytes).await.ok()?;
    let manifest: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    manifest["version"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_or_slow_origin_holds_no_other_back_and_catches_up() {
    let rig = Rig::start(&[], &[]).await;
    let ensured = rig.ctl(&["bus", "ensure"]).await;
    assert!(ensured.status.success(), "beaconctl bus ensure");
    let s3 = tokio::task::block_in_place(S3Server::start);
    let proxy = FaultProxy::start(([127, 0, 0, 1], s3.port()).into()).await;
    let dir = tempfile::tempdir().expect("an origin directory");
    let publisher =
        start_publisher(&rig, dir.path(), format!("{}/{BUCKET}", proxy.http_url())).await;
    let admin = publisher.admin_url();
    let target = "http://127.0.0.1:9/";

    // Every origin takes the first version.
    rig.apply(&page_config("multi", "First name", target)).await;
    let first = wait_until("the first version everywhere", SETTLE, || async {
        let (version, html) = directory_version(dir.path())?;
        (html.contains("First name") && bucket_version(&s3).as_deref() == Some(version.as_str()))
            .then_some(version)
    })
    .await;

    // The bucket is down: the directory gets the next version anyway, and
    // the bucket is counted as one page behind.
    proxy.refuse(true);
    proxy.cut();
    rig.apply(&page_config("multi", "Second name", target))
        .await;
    wait_until(
        "the directory to take the second version",
        SETTLE,
        || async {
            let (_, html) = directory_version(dir.path())?;
            html.contains("Second name").then_some(())
        },
    )
    .await;
    assert_eq!(bucket_version(&s3).as_deref(), Some(first.as_str()));
    wait_until("the bucket to be counted behind", SETTLE, || async {
        let lag = metric(
            &admin,
            "beacon_publisher_origin_version_lag{origin=\"s3-pages\"}",
        )
        .await;
        (lag == 1.0).then_some(())
    })
    .await;
    let level = metric(&admin, "beacon_publisher_degradation_level").await;
    assert_eq!(level, 1.0, "an origin behind is level 1");

    // The bucket answers again: it catches up with the newest version.
    proxy.refuse(false);
    let second = directory_version(dir.path())
        .map(|(v, _)| v)
        .expect("a version");
    wait_until(
        "the bucket to catch up with the second version",
        SETTLE,
        || async { (bucket_version(&s3).as_deref() == Some(second.as_str())).then_some(()) },
    )
    .await;

    // The bucket stalls (accepts, then answers nothing): the origins after
    // it (the object store is published to last) still get the next
    // version, which they could not if the stall held the publisher up,
    // and the bucket is left behind.
    proxy.stall();
    rig.apply(&page_config("multi", "Third name", target)).await;
    let third = wait_until(
        "the directory and the object store to take the third version",
        SETTLE,
        || async {
            let (version, html) = directory_version(dir.path())?;
            let stored = object_store_version(&rig).await?;
            (html.contains("Third name") && stored == version).then_some(version)
        },
    )
    .await;
    assert_ne!(bucket_version(&s3).as_deref(), Some(third.as_str()));

    // The bucket is well again: it catches up with the newest version in
    // one step, and nobody is behind.
    proxy.resume();
    wait_until(
        "the bucket to catch up with the newest version",
        SETTLE,
        || async { (bucket_version(&s3).as_deref() == Some(third.as_str())).then_some(()) },
    )
    .await;
    wait_until("no origin behind", SETTLE, || async {
        let lag = metric(&admin, "beacon_publisher_origin_version_lag").await;
        (lag == 0.0).then_some(())
    })
    .await;
    let level = metric(&admin, "beacon_publisher_degradation_level").await;
    assert_eq!(level, 0.0, "no origin behind is level 0");
    assert_eq!(
        directory_version(dir.path()).map(|(v, _)| v),
        Some(third),
        "the directory kept the newest version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_bucket_at_start_is_named_and_the_others_are_served() {
    let rig = Rig::start(&[], &[]).await;
    let ensured = rig.ctl(&["bus", "ensure"]).await;
    assert!(ensured.status.success(), "beaconctl bus ensure");
    let dir = tempfile::tempdir().expect("an origin directory");
    let nowhere = format!(
        "http://127.0.0.1:{}/missing-bucket",
        beacon_testkit::free_port()
    );
    let publisher = start_publisher(&rig, dir.path(), nowhere).await;
    rig.apply(&page_config(
        "multi",
        "Served anyway",
        "http://127.0.0.1:9/",
    ))
    .await;
    wait_until("the directory to take the page", SETTLE, || async {
        let (_, html) = directory_version(dir.path())?;
        html.contains("Served anyway").then_some(())
    })
    .await;
    assert!(
        publisher.logs().contains("s3-missing-bucket"),
        "the unreachable bucket is named in the log"
    );
}
