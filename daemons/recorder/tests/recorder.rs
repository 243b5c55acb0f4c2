//! The recorder against real `nats-server` and `clickhouse-server`
//! processes: rows land, duplicates collapse, outages lose nothing, poison
//! is dead-lettered.
//!
//! The recorder runs in-process through the same `Daemon::start` + `run`
//! path `main` uses; each test has its own servers.

use std::time::Duration;

use async_nats::jetstream;
use beacon_core::connect::NatsArgs;
use beacon_core::daemon::{CommonArgs, Daemon, ProcessArgs};
use beacon_core::event::Envelope;
use beacon_core::hlc::{wall_clock_ms, HlcClock};
use beacon_core::messages::{
    CheckKind, ComponentStatus, Evidence, HealthResult, Outcome, RegionEvidence, RegionState,
    StatusChange,
};
use beacon_core::names::{
    deadletter_subject, health_subject, status_subject, STREAM_DEADLETTER, STREAM_HEALTH,
};
use beacon_core::publish::{publish, publish_bytes};
use beacon_core::telemetry::LogFormat;
use beacon_core::topology::{ensure, Topology};
use beacon_recorder::config::{ClickHouseArgs, LayoutArg};
use beacon_recorder::sink::HEALTH_CONSUMER;
use beacon_recorder::RunError;
use beacon_testkit::{wait_until, ClickHouseServer, NatsServer};
use tokio::task::JoinHandle;

const READY: Duration = Duration::from_secs(30);
const LAND: Duration = Duration::from_secs(30);

/// A recorder running in-process.
struct Recorder {
    daemon: Daemon,
    task: JoinHandle<Result<(), RunError>>,
}

/// The flags a test recorder runs with: one server, rollups every second.
fn clickhouse_args(url: String) -> ClickHouseArgs {
    ClickHouseArgs {
        url,
        database: "beacon".into(),
        user: None,
        password: None,
        layout: LayoutArg::Single,
        cluster: None,
        shard_urls: Vec::new(),
        rollup_interval: Duration::from_secs(1),
    }
}

impl Recorder {
    /// Starts the recorder; does not wait for it to be ready.
    async fn start(nats: &NatsServer, clickhouse_url: String) -> Recorder {
        Self::start_with(nats, clickhouse_args(clickhouse_url)).await
    }

    /// Starts the recorder with these flags.
    async fn start_with(nats: &NatsServer, args: ClickHouseArgs) -> Recorder {
        let common = CommonArgs {
            nats: NatsArgs {
                url: nats.url(),
                creds: None,
                user: None,
                password: None,
            },
            process: ProcessArgs {
                admin_addr: "127.0.0.1:0".parse().expect("a socket address"),
                log_format: LogFormat::Text,
                shutdown_grace: Duration::from_secs(5),
            },
            replicas: 1,
            topology: beacon_core::daemon::TopologyMode::Auto,
        };
        let config = args.validate().expect("valid ClickHouse flags");
        let daemon = Daemon::start("recorder", "global", &common)
            .await
            .expect("start the recorder daemon");
        let running = daemon.clone();
        let task = tokio::spawn(async move { beacon_recorder::run(&running, config).await });
        Recorder { daemon, task }
    }

    async fn wait_ready(&self) {
        wait_until("the recorder to be ready", READY, || async {
            self.daemon.process.readiness.get().then_some(())
        })
        .await;
    }

    /// The value of one sample of a recorder metric, 0 if absent.
    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let text = self.daemon.process.metrics.render();
        text.lines()
            .filter(|line| line.starts_with(&format!("beacon_recorder_{name}{{")))
            .find(|line| {
                labels
                    .iter()
                    .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
            })
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse::<f64>().ok())
            .map(|value| value as u64)
            .unwrap_or(0)
    }

    async fn wait_metric(&self, what: &str, name: &str, labels: &[(&str, &str)], at_least: u64) {
        wait_until(what, LAND, || async {
            (self.metric(name, labels) >= at_least).then_some(())
        })
        .await;
    }

    /// Stops the recorder the way a signal would and checks it ends cleanly.
    async fn stop(self) {
        self.daemon.process.shutdown.cancel();
        self.task
            .await
            .expect("the recorder task panicked")
            .expect("the recorder failed");
        assert!(!self.daemon.process.readiness.get());
        assert!(
            self.daemon.process.shutdown.wait_for_tasks().await,
            "consumers did not stop in time"
        );
    }
}

/// A JetStream context of the test's own, with the topology in place.
async fn bus(nats: &NatsServer) -> jetstream::Context {
    let client = async_nats::connect(nats.url())
        .await
        .expect("connect to the test nats-server");
    let js = jetstream::new(client);
    ensure(&js, &Topology::default())
        .await
        .expect("ensure the topology");
    js
}

/// Runs `sql` and parses the single number it returns; `None` while
/// ClickHouse is unreachable or the table does not exist yet.
fn number(clickhouse: &ClickHouseServer, sql: &str) -> Option<u64> {
    let body = tokio::task::block_in_place(|| clickhouse.try_query(sql)).ok()?;
    body.trim().parse().ok()
}

async fn wait_rows(clickhouse: &ClickHouseServer, table: &str, want: u64) {
    let sql = format!("SELECT count() FROM beacon.{table} FINAL");
    let what = format!("{want} rows in {table}");
    wait_until(&what, LAND, || async {
        (number(clickhouse, &sql) == Some(want)).then_some(())
    })
    .await;
}

fn health(
    check: &str,
    outcome: Outcome,
    http_status: Option<u16>,
    error: Option<&str>,
) -> HealthResult {
    HealthResult {
        page: "acme".into(),
        component: "api".into(),
        check: check.into(),
        region: "eu-west".into(),
        kind: CheckKind::Http,
        outcome,
        started_at_ms: wall_clock_ms(),
        latency_ms: 42,
        http_status,
        error: error.map(str::to_owned),
    }
}

async fn publish_health(
    js: &jetstream::Context,
    clock: &HlcClock,
    result: HealthResult,
) -> Envelope<HealthResult> {
    let envelope = Envelope::new(clock, "eu-west", result);
    let subject = health_subject(
        &envelope.data.page,
        &envelope.data.component,
        &envelope.data.region,
    );
    publish(js, &subject, &envelope)
        .await
        .expect("publish a probe result");
    envelope
}

async fn deadletter_count(js: &jetstream::Context) -> u64 {
    let mut stream = js
        .get_stream(STREAM_DEADLETTER)
        .await
        .expect("get the dead-letter stream");
    stream
        .info()
        .await
        .expect("dead-letter stream info")
        .state
        .messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_results_and_status_changes() {
    let nats = NatsServer::start();
    let clickhouse = ClickHouseServer::start();
    let js = bus(&nats).await;
    let recorder = Recorder::start(&nats, clickhouse.http_url()).await;
    recorder.wait_ready().await;
    assert!(clickhouse
        .query("SHOW CREATE TABLE beacon.health_results")
        .contains("ReplacingMergeTree"));

    let clock = HlcClock::new();
    let down = publish_health(
        &js,
        &clock,
        health("home", Outcome::Down, Some(503), Some("bad gateway")),
    )
    .await;
    let up = publish_health(&js, &clock, health("tcp", Outcome::Up, None, None)).await;
    let change = Envelope::new(
        &clock,
        "global",
        StatusChange {
            page: "acme".into(),
            component: "api".into(),
            from: None,
            to: ComponentStatus::MajorOutage,
            at_ms: 0,
            source: Default::default(),
            flapping: false,
            inhibited: None,
            proposal: None,
            evidence: Evidence {
                rule: "quorum: 1 of 1 regions down".into(),
                trigger: Some(down.id),
                regions: vec![RegionEvidence {
                    region: "eu-west".into(),
                    state: RegionState::Down,
                    consecutive_failures: 3,
                    consecutive_successes: 0,
                    last_result: Some(down.id),
                    last_error: Some("bad gateway".into()),
                    since_ms: None,
                    last_seen_ms: None,
                    samples: vec![],
                }],
            },
        },
    );
    publish(&js, &status_subject("acme", "api"), &change)
        .await
        .unwrap();

    wait_rows(&clickhouse, "health_results", 2).await;
    wait_rows(&clickhouse, "status_changes", 1).await;

    let rows = clickhouse.query(&format!(
        "SELECT event_id, hlc, origin, page, component, check_id, region, kind, outcome, \
         started_at_ms, toUInt64(started_at) * 1000 + started_at_ms % 1000, latency_ms, http_status, error, \
         toString(day) = toString(toDate(started_at)) \
         FROM beacon.health_results FINAL WHERE event_id = '{}'",
        down.id
    ));
    let ms = down.data.started_at_ms;
    assert_eq!(
        rows,
        format!(
            "{}\t{}\teu-west\tacme\tapi\thome\teu-west\thttp\tdown\t{ms}\t{ms}\t42\t503\tbad gateway\t1\n",
            down.id, down.hlc
        )
    );
    let absent = clickhouse.query(&format!(
        "SELECT outcome, http_status, error FROM beacon.health_results FINAL WHERE event_id = '{}'",
        up.id
    ));
    assert_eq!(absent, "up\t0\t\n");

    let status = clickhouse.query(&format!(
        "SELECT from_status, to_status, rule, trigger, changed_at_ms, toUInt64(changed_at) = intDiv(changed_at_ms, 1000) \
         FROM beacon.status_changes FINAL WHERE event_id = '{}'",
        change.id
    ));
    assert_eq!(
        status,
        format!(
            "\tmajor_outage\tquorum: 1 of 1 regions down\t{}\t{}\t1\n",
            down.id, change.hlc.wall_ms
        )
    );
    // The evidence is stored whole and reads back as the same value.
    let evidence = clickhouse.query(&format!(
        "SELECT evidence FROM beacon.status_changes WHERE event_id = '{}' FORMAT JSONEachRow",
        change.id
    ));
    let line: serde_json::Value = serde_json::from_str(evidence.trim()).unwrap();
    let evidence: Evidence = serde_json::from_str(line["evidence"].as_str().unwrap()).unwrap();
    assert_eq!(evidence, change.data.evidence);

    assert_eq!(
        recorder.metric("rows_inserted_total", &[("table", "health_results")]),
        2
    );
    assert_eq!(
        recorder.metric("rows_inserted_total", &[("table", "status_changes")]),
        1
    );
    assert_eq!(
        recorder.metric("insert_seconds_count", &[("table", "status_changes")]),
        1
    );
    recorder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_event_is_one_row() {
    let nats = NatsServer::start();
    let clickhouse = ClickHouseServer::start();
    let js = bus(&nats).await;
    let recorder = Recorder::start(&nats, clickhouse.http_url()).await;
    recorder.wait_ready().await;

    let clock = HlcClock::new();
    let envelope = publish_health(&js, &clock, health("home", Outcome::Up, Some(200), None)).await;
    // The bus drops a second publish with the same event id inside its
    // dedup window, so a redelivery is simulated by publishing the same
    // bytes under another message id, as a replay or a lost ack would.
    let subject = health_subject("acme", "api", "eu-west");
    let again = publish_bytes(
        &js,
        &subject,
        "replay-1",
        envelope.encode().unwrap().into(),
        None,
    )
    .await
    .unwrap();
    assert!(!again.duplicate);

    recorder
        .wait_metric(
            "both copies to be acked",
            "messages_total",
            &[("consumer", HEALTH_CONSUMER), ("outcome", "acked")],
            2,
        )
        .await;
    assert_eq!(
        recorder.metric("rows_inserted_total", &[("table", "health_results")]),
        2
    );
    let id = envelope.id;
    let logical =
        format!("SELECT count() FROM beacon.health_results FINAL WHERE event_id = '{id}'");
    assert_eq!(number(&clickhouse, &logical), Some(1));
    let unique = "SELECT uniqExact(event_id) FROM beacon.health_results";
    assert_eq!(number(&clickhouse, unique), Some(1));
    // A merge really collapses the copies on disk, not just in FINAL reads.
    clickhouse.query("OPTIMIZE TABLE beacon.health_results FINAL");
    assert_eq!(
        number(&clickhouse, "SELECT count() FROM beacon.health_results"),
        Some(1)
    );
    recorder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_published_while_clickhouse_is_down_land_after_it_returns() {
    let nats = NatsServer::start();
    let mut clickhouse = ClickHouseServer::start();
    let js = bus(&nats).await;
    let recorder = Recorder::start(&nats, clickhouse.http_url()).await;
    recorder.wait_ready().await;

    tokio::task::block_in_place(|| clickhouse.stop());
    let clock = HlcClock::new();
    for i in 0..5 {
        publish_health(
            &js,
            &clock,
            health(&format!("check-{i}"), Outcome::Up, Some(200), None),
        )
        .await;
    }
    // Every one of them fails while ClickHouse is away and goes back to
    // the bus to wait.
    recorder
        .wait_metric(
            "inserts to fail and be retried",
            "messages_total",
            &[("consumer", HEALTH_CONSUMER), ("outcome", "retried")],
            5,
        )
        .await;
    assert_eq!(
        recorder.metric("rows_inserted_total", &[("table", "health_results")]),
        0
    );
    // The results travel in batches: at least one insert failed, and each
    // failed insert retried all of its batch.
    assert!(recorder.metric("insert_errors_total", &[("table", "health_results")]) >= 1);

    tokio::task::block_in_place(|| clickhouse.start_again());
    wait_rows(&clickhouse, "health_results", 5).await;
    let unique = "SELECT uniqExact(check_id) FROM beacon.health_results";
    assert_eq!(number(&clickhouse, unique), Some(5));
    assert_eq!(deadletter_count(&js).await, 0);
    assert_eq!(
        recorder.metric(
            "messages_total",
            &[("consumer", HEALTH_CONSUMER), ("outcome", "dead_lettered")]
        ),
        0
    );
    recorder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_message_is_dead_lettered_and_later_ones_land() {
    let nats = NatsServer::start();
    let clickhouse = ClickHouseServer::start();
    let js = bus(&nats).await;
    let recorder = Recorder::start(&nats, clickhouse.http_url()).await;
    recorder.wait_ready().await;

    let subject = health_subject("acme", "api", "eu-west");
    publish_bytes(
        &js,
        &subject,
        "garbage-1",
        b"{not json".to_vec().into(),
        None,
    )
    .await
    .unwrap();
    let clock = HlcClock::new();
    let good = publish_health(&js, &clock, health("home", Outcome::Up, Some(200), None)).await;

    wait_rows(&clickhouse, "health_results", 1).await;
    let landed = "SELECT event_id FROM beacon.health_results FINAL";
    assert_eq!(clickhouse.query(landed), format!("{}\n", good.id));
    wait_until("one dead letter", LAND, || async {
        (deadletter_count(&js).await == 1).then_some(())
    })
    .await;

    let stream = js
        .get_stream(STREAM_DEADLETTER)
        .await
        .expect("get the dead-letter stream");
    let dead = stream
        .get_last_raw_message_by_subject(&deadletter_subject(STREAM_HEALTH, HEALTH_CONSUMER))
        .await
        .unwrap();
    assert_eq!(&dead.payload[..], b"{not json");
    let consumer = dead
        .headers
        .get("Beacon-Consumer")
        .map(|v| v.as_str().to_owned());
    assert_eq!(consumer.as_deref(), Some(HEALTH_CONSUMER));
    recorder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_clickhouse_at_start_and_recreates_a_dropped_schema() {
    let nats = NatsServer::start();
    let mut clickhouse = ClickHouseServer::start();
    let js = bus(&nats).await;
    tokio::task::block_in_place(|| clickhouse.stop());

    let recorder = Recorder::start(&nats, clickhouse.http_url()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !recorder.daemon.process.readiness.get(),
        "ready without ClickHouse"
    );
    assert!(
        !recorder.task.is_finished(),
        "gave up while ClickHouse was away"
    );

    tokio::task::block_in_place(|| clickhouse.start_again());
    recorder.wait_ready().await;
    let clock = HlcClock::new();
    publish_health(&js, &clock, health("home", Outcome::Up, Some(200), None)).await;
    wait_rows(&clickhouse, "health_results", 1).await;

    // Someone drops the database under a running recorder: the next insert
    // fails, the schema is created again, and the retry lands.
    clickhouse.query("DROP DATABASE beacon");
    publish_health(
        &js,
        &clock,
        health("home", Outcome::Down, Some(500), Some("boom")),
    )
    .await;
    wait_rows(&clickhouse, "health_results", 1).await;
    let outcome = clickhouse.query("SELECT outcome FROM beacon.health_results FINAL");
    assert_eq!(outcome, "down\n");
    recorder.stop().await;
}

#[test]
fn bad_flags_exit_64_listing_every_error() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_beacon-recorder"))
        .args([
            "--clickhouse-url",
            "https://ch.example:8443",
            "--clickhouse-database",
            "history; DROP TABLE x",
        ])
        .env_remove("BEACON_CLICKHOUSE_URL")
        .env_remove("BEACON_CLICKHOUSE_DATABASE")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--clickhouse-url"), "{stderr}");
    assert!(stderr.contains("--clickhouse-database"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_killed_in_the_middle_of_a_batch_loses_nothing() {
    let nats = NatsServer::start();
    let clickhouse = ClickHouseServer::start();
    let js = bus(&nats).await;

    // A backlog first, so the recorder is busy with batches when it dies.
    let total = 30_000u64;
    let clock = HlcClock::new();
    let envelopes: Vec<_> = (0..total)
        .map(|i| {
            Envelope::new(
                &clock,
                "eu-west",
                health(&format!("check-{}", i % 100), Outcome::Up, Some(200), None),
            )
        })
        .collect();
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let publisher = beacon_core::publish::Publisher::new(client, 512, Duration::from_secs(10));
    let subject = health_subject("acme", "api", "eu-west");
    let results = publisher
        .publish_all(envelopes.iter().map(|e| (subject.as_str(), e)))
        .await;
    assert!(results.iter().all(Result::is_ok), "backlog published");

    let args = vec![
        "--nats-url".into(),
        nats.url(),
        "--clickhouse-url".into(),
        clickhouse.http_url(),
        "--batch-size".into(),
        "500".into(),
        "--batch-wait".into(),
        "50ms".into(),
    ];
    let mut recorder = beacon_testkit::DaemonProcess::spawn_with_admin("beacon-recorder", args);
    let rows = "SELECT count() FROM beacon.health_results";
    wait_until("the first batches to land", LAND, || async {
        number(&clickhouse, rows).filter(|n| *n > 0)
    })
    .await;
    recorder.kill();
    let at_kill = number(&clickhouse, rows).unwrap_or(0);
    assert!(
        at_kill < total,
        "the recorder was killed with work left ({at_kill} of {total} rows stored)"
    );

    recorder.restart();
    let unique = "SELECT uniqExact(event_id) FROM beacon.health_results";
    wait_until(
        &format!("all {total} events stored"),
        Duration::from_secs(90),
        || async { number(&clickhouse, unique).filter(|n| *n == total) },
    )
    .await;
    assert_eq!(deadletter_count(&js).await, 0, "nothing was dead-lettered");
    let final_rows = "SELECT count() FROM beacon.health_results FINAL";
    assert_eq!(number(&clickhouse, final_rows), Some(total));
}
