//! The notifier with the rest of the pipeline, as operators run it: a
//! decider holding the page config and the incidents, `beaconctl` to
//! subscribe, import, list, export, open an incident and erase, the
//! recorder keeping receipts in ClickHouse, and a loopback SMTP server.

use beacon_testkit::receivers::smtp::SmtpSink;
use beacon_testkit::{ctl, wait_until, ClickHouseServer, DaemonProcess, NatsServer};
use beacon_tests::{apply_config, DECIDE, READY};

#[tokio::test]
async fn operators_subscribe_import_and_erase_with_beaconctl_and_an_incident_reaches_everyone() {
    let nats = NatsServer::start();
    let clickhouse = ClickHouseServer::start();
    let smtp = SmtpSink::start().await;
    let decider =
        DaemonProcess::spawn_with_admin("beacon-decider", vec!["--nats-url".into(), nats.url()]);
    let notifier = DaemonProcess::spawn_with_admin(
        "beacon-notifier",
        vec![
            "--nats-url".into(),
            nats.url(),
            "--public-url".into(),
            "http://127.0.0.1:9/notify".into(),
            "--signing-secret".into(),
            "end-to-end-secret-0123456789abcdefghij".into(),
        ],
    );
    let recorder = DaemonProcess::spawn_with_admin(
        "beacon-recorder",
        vec![
            "--nats-url".into(),
            nats.url(),
            "--clickhouse-url".into(),
            clickhouse.http_url(),
        ],
    );
    for daemon in [&decider, &notifier, &recorder] {
        daemon.wait_ready(READY).await;
    }
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let page = format!(
        "[page]\nid = \"e2e\"\nname = \"End to end\"\n[[components]]\nid = \"api\"\nname = \"API\"\n[[components]]\nid = \"db\"\nname = \"Database\"\n\
         [[channels]]\nid = \"mail\"\ntype = \"email\"\nfrom = \"status@example.com\"\nendpoint = \"{}\"\ntls = \"none\"\n",
        smtp.endpoint()
    );
    apply_config(&client, &page).await;

    // One by hand, three from a CSV (one of them refused, by line).
    let added = ctl::stdout_of_success(
        &ctl::run(
            &nats.url(),
            &[
                "subscriber",
                "add",
                "e2e",
                "--email",
                "ada@example.com",
                "--component",
                "api",
                "--output",
                "json",
            ],
        )
        .await,
        "subscriber add",
    );
    let view: serde_json::Value = serde_json::from_str(&added).expect("JSON");
    let ada = view["subscriber"]["subscriber"]
        .as_str()
        .expect("an id")
        .to_owned();
    let dir = tempfile::tempdir().expect("a temp dir");
    let csv = dir.path().join("people.csv");
    std::fs::write(
        &csv,
        "email,components,dedup\nbob@example.com,api,every\ncy@example.com,db|api,first\nnot-an-address,,\n",
    )
    .expect("write the CSV");
    let import = ctl::run(
        &nats.url(),
        &[
            "subscriber",
            "import",
            "e2e",
            "-f",
            csv.to_str().expect("a path"),
        ],
    )
    .await;
    assert_eq!(
        import.status.code(),
        Some(64),
        "one row refused: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    assert!(String::from_utf8_lossy(&import.stdout).contains("imported 2 new subscribers"));
    assert!(
        String::from_utf8_lossy(&import.stderr).contains("line 4"),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let listed = ctl::stdout_of_success(
        &ctl::run(&nats.url(), &["subscriber", "list", "e2e"]).await,
        "subscriber list",
    );
    for address in ["ada@example.com", "bob@example.com", "cy@example.com"] {
        assert!(listed.contains(address), "{listed}");
    }
    let exported = ctl::stdout_of_success(
        &ctl::run(&nats.url(), &["subscriber", "export", "e2e"]).await,
        "subscriber export",
    );
    assert!(
        exported
            .starts_with("id,email,sms,webhook,slack,teams,components,instant,dedup,digest,state"),
        "{exported}"
    );
    assert_eq!(exported.lines().count(), 4, "{exported}");

    // An incident opened with beaconctl reaches all three.
    ctl::stdout_of_success(
        &ctl::run(
            &nats.url(),
            &[
                "incident",
                "create",
                "e2e",
                "--title",
                "Checkout errors",
                "--impact",
                "major",
                "--component",
                "api=major_outage",
                "-m",
                "Looking into it",
            ],
        )
        .await,
        "incident create",
    );
    wait_until("three emails", DECIDE, || {
        let n = smtp.count();
        async move { (n >= 3).then_some(()) }
    })
    .await;
    assert!(smtp.mails().iter().all(|m| m
        .header("Subject")
        .is_some_and(|s| s.contains("Checkout errors"))));

    // The recorder stores the receipts; then Ada is erased everywhere.
    wait_until("receipts in ClickHouse", DECIDE, || {
        let counted = clickhouse
            .try_query("SELECT count() FROM beacon.delivery_receipts WHERE outcome = 'delivered'");
        async move {
            counted
                .ok()
                .filter(|n| n.trim().parse::<u64>().unwrap_or(0) >= 3)
        }
    })
    .await;
    let erased = ctl::stdout_of_success(
        &ctl::run(
            &nats.url(),
            &["subscriber", "erase", "e2e", "--address", "ada@example.com"],
        )
        .await,
        "subscriber erase",
    );
    assert!(erased.contains("erased 1 subscriber"), "{erased}");
    let rows = clickhouse.query(
        "SELECT count() FROM beacon.delivery_receipts WHERE positionCaseInsensitive(concat(page, channel, subscriber, idempotency_key, detail), 'example.com') > 0",
    );
    assert_eq!(rows.trim(), "0", "ClickHouse never got an address");
    let has_ada = clickhouse.query(&format!(
        "SELECT count() FROM beacon.delivery_receipts WHERE subscriber = '{ada}'"
    ));
    assert_eq!(has_ada.trim(), "1", "the receipt stays, naming only the id");
    let listed = ctl::stdout_of_success(
        &ctl::run(&nats.url(), &["subscriber", "list", "e2e"]).await,
        "subscriber list",
    );
    assert!(!listed.contains("ada@example.com"));
    // An operator may not add the erased address back.
    let again = ctl::run(
        &nats.url(),
        &["subscriber", "add", "e2e", "--email", "ada@example.com"],
    )
    .await;
    assert_eq!(again.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&again.stderr).contains("erased"));

    let removed = ctl::run(
        &nats.url(),
        &["subscriber", "remove", "e2e", "01jd5k2s9x8y7z6w5v4t3r2q1p"],
    )
    .await;
    assert_eq!(
        removed.status.code(),
        Some(64),
        "an unknown subscriber is refused"
    );
    drop((decider, notifier, recorder));
}
