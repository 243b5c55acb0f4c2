//! The `beaconctl` binary against real files and a real `nats-server`.

use std::process::Output;
use std::time::Duration;

use async_nats::jetstream;
use beacon_contract::api::ApiReply;
use beacon_contract::event::{Envelope, EventId};
use beacon_contract::hlc::Hlc;
use beacon_contract::messages::{ComponentStatus, Evidence, StatusRecord};
use beacon_contract::names;
use beacon_contract::topology::{self, Topology};
use beacon_page::config::api::{ApplyConfigRequest, ApplyConfigResult};
use beacon_page::config::{self, ConfigError};
use beacon_testkit::NatsServer;
use futures::StreamExt;
use tokio::process::Command;

/// No single CLI run in these tests should come close to this.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

const GOOD_CONFIG: &str = r#"
[page]
id = "demo"
name = "Demo"

[defaults]
regions = ["eu"]

[[components]]
id = "api"
name = "API"
[[components.checks]]
type = "tcp"
address = "127.0.0.1:80"
"#;

/// Several independent mistakes, so the test sees that all are reported.
const BAD_CONFIG: &str = r#"
[page]
id = "Demo Page"
name = ""

[defaults]
regions = ["eu"]
interval = "soon"

[[components]]
id = "api"
name = "API"
group = "nope"
[[components.checks]]
type = "http"

[[components.checks]]
type = "tcp"
address = "no-port"
"#;

fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_beaconctl"));
    // The caller's environment must not point the CLI at some other server.
    command
        .env_remove("BEACON_NATS_URL")
        .env_remove("BEACON_NATS_CREDS")
        .env_remove("BEACON_NATS_USER")
        .env_remove("BEACON_NATS_PASSWORD")
        .kill_on_drop(true);
    command
}

async fn run(args: &[&str]) -> Output {
    let output = tokio::time::timeout(RUN_TIMEOUT, command().args(args).output())
        .await
        .unwrap_or_else(|_| panic!("beaconctl {args:?} did not finish within {RUN_TIMEOUT:?}"))
        .expect("run beaconctl");
    eprintln!(
        "beaconctl {args:?} -> {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("utf-8 stderr")
}

fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write config file");
    path.to_str().expect("utf-8 path").to_owned()
}

fn record(page: &str, component: &str, status: ComponentStatus) -> Envelope<StatusRecord> {
    Envelope::with_id(
        EventId::new(),
        Hlc::new(1_732_233_000_000, 0),
        "eu",
        StatusRecord::new(
            page,
            component,
            status,
            1_732_233_000_000,
            EventId::new(),
            Evidence {
                rule: "quorum: 2 of 2 regions down".into(),
                trigger: Some(EventId::new()),
                regions: vec![],
            },
        ),
    )
}

#[tokio::test]
async fn validate_reports_every_error_and_exits_64() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_file(&dir, "bad.toml", BAD_CONFIG);
    let expected: Vec<ConfigError> = config::load(BAD_CONFIG).expect_err("config is bad").0;
    assert!(
        expected.len() >= 5,
        "the fixture should have many errors: {expected:?}"
    );

    let output = run(&["validate", "-f", &path]).await;
    assert_eq!(output.status.code(), Some(64));
    let stderr = stderr(&output);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines[0].starts_with("beaconctl: ") && lines[0].contains("bad.toml"),
        "{stderr}"
    );
    for error in &expected {
        assert!(
            lines.contains(&error.to_string().as_str()),
            "missing {error} in:\n{stderr}"
        );
    }
    assert!(lines.contains(&"page.name: must not be empty"), "{stderr}");
    assert_eq!(lines.len(), expected.len() + 1, "{stderr}");
    assert_eq!(stdout(&output), "");
}

#[tokio::test]
async fn validate_accepts_a_good_file_without_nats() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_file(&dir, "good.toml", GOOD_CONFIG);
    // Nothing listens there; validate must not care.
    let url = format!("nats://127.0.0.1:{}", beacon_testkit::free_port());
    let output = run(&["--nats-url", &url, "validate", "-f", &path]).await;
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        stdout(&output),
        "page demo is valid: 1 component, 1 check, 0 channels\n"
    );
}

#[tokio::test]
async fn validate_of_a_missing_file_exits_64() {
    let output = run(&["validate", "-f", "/nonexistent/beacon.toml"]).await;
    assert_eq!(output.status.code(), Some(64));
    assert!(stderr(&output).starts_with("beaconctl: cannot read /nonexistent/beacon.toml"));
}

#[tokio::test]
async fn usage_errors_exit_64() {
    let output = run(&["frobnicate"]).await;
    assert_eq!(output.status.code(), Some(64));
}

#[tokio::test]
async fn status_with_unreachable_nats_exits_69_with_one_line() {
    let url = format!("nats://127.0.0.1:{}", beacon_testkit::free_port());
    let output = run(&["--nats-url", &url, "status"]).await;
    assert_eq!(output.status.code(), Some(69));
    let stderr = stderr(&output);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("beaconctl: cannot connect to NATS at {url}: ")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stdout(&output), "");
}

#[tokio::test]
async fn status_prints_records_from_kv_in_table_and_json() {
    let server = NatsServer::start();
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = jetstream::new(client);
    topology::ensure(&js, &Topology::default())
        .await
        .expect("topology");
    let kv = js
        .get_key_value(names::KV_STATUS)
        .await
        .expect("status bucket");
    for (page, component, status) in [
        ("demo", "api", ComponentStatus::MajorOutage),
        ("demo", "website", ComponentStatus::Operational),
        ("other", "db", ComponentStatus::PartialOutage),
    ] {
        let value = record(page, component, status).encode().expect("encode");
        kv.put(names::status_key(page, component), value.into())
            .await
            .expect("put");
    }
    kv.put("demo.broken", "not an envelope".into())
        .await
        .expect("put");

    let output = run(&["--nats-url", &server.url(), "status"]).await;
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        stdout(&output),
        "PAGE   COMPONENT  STATUS          SINCE                 RULE\n\
         demo   api        major_outage    2024-11-21T23:50:00Z  quorum: 2 of 2 regions down\n\
         demo   website    operational     2024-11-21T23:50:00Z  quorum: 2 of 2 regions down\n\
         other  db         partial_outage  2024-11-21T23:50:00Z  quorum: 2 of 2 regions down\n"
    );
    let stderr = stderr(&output);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr
            .starts_with("beaconctl: warning: skipping status/demo.broken: not a Beacon envelope"),
        "{stderr}"
    );

    let output = run(&[
        "--nats-url",
        &server.url(),
        "status",
        "--page",
        "demo",
        "--output",
        "json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0));
    let records: Vec<StatusRecord> =
        serde_json::from_str(&stdout(&output)).expect("json array of records");
    let keys: Vec<(String, String, ComponentStatus)> = records
        .into_iter()
        .map(|r| (r.page, r.component, r.status))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("demo".into(), "api".into(), ComponentStatus::MajorOutage),
            (
                "demo".into(),
                "website".into(),
                ComponentStatus::Operational
            ),
        ]
    );
}

#[tokio::test]
async fn status_without_the_bucket_exits_69() {
    let server = NatsServer::start();
    let output = run(&["--nats-url", &server.url(), "--timeout", "2s", "status"]).await;
    assert_eq!(output.status.code(), Some(69));
    assert!(
        stderr(&output).starts_with("beaconctl: cannot open KV bucket status"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn apply_without_a_decider_exits_69() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_file(&dir, "good.toml", GOOD_CONFIG);
    let output = run(&[
        "--nats-url",
        &server.url(),
        "--timeout",
        "1s",
        "apply",
        "-f",
        &path,
    ])
    .await;
    assert_eq!(output.status.code(), Some(69));
    assert_eq!(
        stderr(&output),
        "beaconctl: no decider answered on beacon.api.config.apply within 1s\n"
    );
}

#[tokio::test]
async fn apply_validates_before_connecting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_file(&dir, "bad.toml", BAD_CONFIG);
    let url = format!("nats://127.0.0.1:{}", beacon_testkit::free_port());
    let output = run(&["--nats-url", &url, "apply", "-f", &path]).await;
    // 64 (bad file), not 69 (no NATS): the file was checked first.
    assert_eq!(output.status.code(), Some(64));
    assert!(stderr(&output).contains("page.name: must not be empty"));
}

/// Answers `count` apply requests with `reply`, after checking each request
/// carries the config from the file.
async fn fake_decider(
    client: async_nats::Client,
    reply: ApiReply<ApplyConfigResult>,
) -> tokio::task::JoinHandle<()> {
    let mut requests = client
        .subscribe(beacon_page::config::api::CONFIG_APPLY.subject())
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    tokio::spawn(async move {
        let Some(request) = requests.next().await else {
            return;
        };
        let body: ApplyConfigRequest =
            serde_json::from_slice(&request.payload).expect("an ApplyConfigRequest");
        assert_eq!(body.config.page.id, "demo");
        let reply_to = request.reply.expect("a reply subject");
        let payload = serde_json::to_vec(&reply).expect("encode reply");
        client
            .publish(reply_to, payload.into())
            .await
            .expect("reply");
        client.flush().await.expect("flush");
    })
}

#[tokio::test]
async fn apply_reports_each_kind_of_decider_reply() {
    let server = NatsServer::start();
    let client = async_nats::connect(server.url()).await.expect("connect");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_file(&dir, "good.toml", GOOD_CONFIG);
    let applied = |changed| ApiReply::Ok {
        result: ApplyConfigResult {
            page: "demo".into(),
            revision: 3,
            changed,
        },
    };

    let decider = fake_decider(client.clone(), applied(true)).await;
    let output = run(&["--nats-url", &server.url(), "apply", "-f", &path]).await;
    decider.await.expect("fake decider");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output), "applied page demo (revision 3)\n");

    let decider = fake_decider(client.clone(), applied(false)).await;
    let output = run(&[
        "--nats-url",
        &server.url(),
        "--output",
        "json",
        "apply",
        "-f",
        &path,
    ])
    .await;
    decider.await.expect("fake decider");
    assert_eq!(output.status.code(), Some(0));
    let result: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("json");
    assert_eq!(
        result,
        serde_json::json!({"page": "demo", "revision": 3, "changed": false})
    );

    let invalid = ApiReply::Invalid {
        errors: vec![
            ConfigError {
                location: "components[0].id".into(),
                message: "already used by page other".into(),
            },
            ConfigError {
                location: "channels".into(),
                message: "second problem".into(),
            },
        ],
    };
    let decider = fake_decider(client.clone(), invalid).await;
    let output = run(&["--nats-url", &server.url(), "apply", "-f", &path]).await;
    decider.await.expect("fake decider");
    assert_eq!(output.status.code(), Some(64));
    let stderr_text = stderr(&output);
    assert!(
        stderr_text.contains("\ncomponents[0].id: already used by page other\n"),
        "{stderr_text}"
    );
    assert!(
        stderr_text.contains("\nchannels: second problem\n"),
        "{stderr_text}"
    );

    let failed = ApiReply::Failed {
        message: "KV write timed out".into(),
    };
    let decider = fake_decider(client.clone(), failed).await;
    let output = run(&["--nats-url", &server.url(), "apply", "-f", &path]).await;
    decider.await.expect("fake decider");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "beaconctl: beacon.api.config.apply failed: KV write timed out\n"
    );
}

#[tokio::test]
async fn tail_prints_live_messages_and_stops_after_count() {
    let server = NatsServer::start();
    let client = async_nats::connect(server.url()).await.expect("connect");
    let tail = command()
        .args([
            "--nats-url",
            &server.url(),
            "tail",
            "--subject",
            beacon_contract::names::ALL_STATUS,
            "--count",
            "2",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn beaconctl tail");

    // The subscription starts at some unknown moment after spawn, so keep
    // publishing until tail has seen enough and exits.
    let envelope = record("demo", "api", ComponentStatus::MajorOutage);
    let payload = envelope.encode().expect("encode");
    let publisher = async {
        loop {
            client
                .publish(
                    beacon_contract::names::status_subject("demo", "api"),
                    payload.clone().into(),
                )
                .await
                .expect("publish");
            client
                .publish(
                    format!("{}.other", beacon_contract::names::SUBJECT_ROOT),
                    "ignored".into(),
                )
                .await
                .expect("publish");
            client.flush().await.expect("flush");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let output = tokio::select! {
        output = tail.wait_with_output() => output.expect("tail output"),
        () = publisher => unreachable!("the publisher never ends"),
        () = tokio::time::sleep(RUN_TIMEOUT) => panic!("tail did not stop after 2 messages"),
    };
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdout = stdout(&output);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let start = format!(
        "{}  status_record  {}  page=demo component=api ",
        beacon_contract::names::status_subject("demo", "api"),
        envelope.id
    );
    for line in lines {
        assert!(line.starts_with(&start), "{line}");
        assert!(
            line.contains(&format!("change={}", envelope.data.change)),
            "{line}"
        );
    }
}

#[tokio::test]
async fn bus_verify_names_what_is_missing_and_bus_ensure_applies_it() {
    let server = NatsServer::start();
    let url = server.url();

    let output = run(&["--nats-url", &url, "bus", "verify"]).await;
    assert_eq!(output.status.code(), Some(69), "nothing is in place yet");
    assert!(stdout(&output).contains("HEALTH"), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("stream HEALTH is missing")
            && stderr(&output).contains("run `beaconctl bus ensure`"),
        "{}",
        stderr(&output)
    );

    let output = run(&["--nats-url", &url, "--output", "json", "bus", "ensure"]).await;
    assert_eq!(output.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON report");
    let parts = report["parts"].as_array().expect("parts");
    assert!(!parts.is_empty());
    assert!(parts.iter().all(|p| p["result"] == "created"), "{report}");

    let output = run(&["--nats-url", &url, "bus", "ensure"]).await;
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("unchanged"), "{}", stdout(&output));
    assert!(!stdout(&output).contains("created"), "{}", stdout(&output));

    let output = run(&["--nats-url", &url, "bus", "verify"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains(" ok "), "{}", stdout(&output));

    let output = run(&["--nats-url", &url, "bus", "ensure", "--replicas", "0"]).await;
    assert_eq!(output.status.code(), Some(64));
}

#[tokio::test]
async fn sla_report_refuses_bad_periods_before_connecting() {
    // An unreachable NATS: reaching for it would exit 69, not 64.
    let url = format!("nats://127.0.0.1:{}", beacon_testkit::free_port());
    for (args, needle) in [
        (
            vec!["--month", "2026-13"],
            "--month: \"2026-13\" is not a period",
        ),
        (vec!["--month", "october"], "write YYYY-MM"),
        (vec!["--year", "2026-10"], "is a month; use --month"),
        (vec!["--month", "2026"], "is a year; use --year"),
    ] {
        let mut full = vec!["--nats-url", &url, "sla", "report", "--page", "demo"];
        full.extend(args.iter().copied());
        let output = run(&full).await;
        assert_eq!(output.status.code(), Some(64), "{args:?}");
        let stderr = stderr(&output);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert_eq!(stdout(&output), "");
    }
    let output = run(&[
        "--nats-url",
        &url,
        "sla",
        "report",
        "--page",
        "Not A Page",
        "--year",
        "2026",
    ])
    .await;
    assert_eq!(output.status.code(), Some(64));
    assert!(stderr(&output).contains("--page"));
}

#[tokio::test]
async fn csv_is_only_for_tabular_results() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write_file(&dir, "good.toml", GOOD_CONFIG);
    let output = run(&["--output", "csv", "validate", "-f", &file]).await;
    assert_eq!(output.status.code(), Some(64));
    assert!(stderr(&output).contains("csv is for `status` and `sla report`"));
}
