//! The recorder against real `nats-server` and `clickhouse-server`
//! processes: rows land, duplicates collapse, outages lose nothing, poison
//! is dead-lettered.
//!
//! The recorder runs in-process through the same `Daemon::start` + `run`
//! path `main` uses; each test has its own servers.

use std::time::Duration;

use async_nats::jetstream;
use beacon_contract::event::Envelope;
use beacon_contract::hlc::{wall_clock_ms, HlcClock};
use beacon_contract::messages::{
    ComponentStatus, Evidence, HealthResult, Outcome, RegionEvidence, RegionState, StatusChange,
};
use beacon_contract::names::{
    deadletter_subject, health_subject, status_subject, STREAM_DEADLETTER, STREAM_HEALTH,
};
use beacon_contract::topology::{ensure, Topology};
use beacon_recorder::config::{ClickHouseArgs, LayoutArg};
use beacon_recorder::sink::HEALTH_CONSUMER;
use beacon_recorder::RunError;
use beacon_runtime::daemon::{CommonArgs, Daemon};
use beacon_runtime::publish::{publish, publish_bytes};
use beacon_testkit::proxy::FaultProxy;
use beacon_testkit::{wait_until, ClickHouseServer, NatsServer};
use tokio::task::JoinHandle;

use beacon_testkit::wait::{LAND, READY};

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
        let common = CommonArgs::in_process(nats.url(), Duration::from_secs(5));
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
        latency_ms: 42,
        http_status,
        error: error.map(str::to_owned),
        ..HealthResult::new("acme", "api", check, "eu-west", outcome, wall_clock_ms())
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

    // The rows are visible in ClickHouse a moment before the recorder has
    // its answer and counts them, so wait for the counts, then check that
    // they are exact.
    let counted = [
        ("rows_inserted_total", "health_results", 2),
        ("rows_inserted_total", "status_changes", 1),
        ("insert_seconds_count", "status_changes", 1),
    ];
    for (name, table, want) in counted {
        let what = format!("{name} for {table} to reach {want}");
        recorder
            .wait_metric(&what, name, &[("table", table)], want)
            .await;
    }
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
async fn an_insert_whose_answer_is_lost_on_a_cut_link_is_retried_and_counted_once() {
    let nats = NatsServer::start();
    let clickhouse = ClickHouseServer::start();
    let js = bus(&nats).await;
    let link = FaultProxy::start(([127, 0, 0, 1], clickhouse.http_port()).into()).await;
    let recorder = Recorder::start(&nats, link.http_url()).await;
    recorder.wait_ready().await;

    // A slow link: the insert reaches ClickHouse seconds late, and its
    // answer would come back seconds later still.
    link.set_latency(Duration::from_secs(3));
    let clock = HlcClock::new();
    for i in 0..5 {
        publish_health(
            &js,
            &clock,
            health(&format!("check-{i}"), Outcome::Up, Some(200), None),
        )
        .await;
    }
    // The rows are in; the answer is still on the wire. Cut it.
    wait_rows(&clickhouse, "health_results", 5).await;
    assert_eq!(
        recorder.metric("rows_inserted_total", &[("table", "health_results")]),
        0,
        "the insert's answer arrived before the cut"
    );
    link.cut();
    link.set_latency(Duration::ZERO);

    // The recorder never heard whether the insert landed, so it inserts
    // again; the rows land and each result counts once.
    wait_rows(&clickhouse, "health_results", 5).await;
    recorder
        .wait_metric(
            "the five results to be acked",
            "messages_total",
            &[("consumer", HEALTH_CONSUMER), ("outcome", "acked")],
            5,
        )
        .await;
    let unique = "SELECT uniqExact(check_id) FROM beacon.health_results";
    assert_eq!(number(&clickhouse, unique), Some(5));
    assert!(recorder.metric("insert_errors_total", &[("table", "health_results")]) >= 1);
    assert_eq!(deadletter_count(&js).await, 0);
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
async fn a_recorder_killed_mid_batch_and_a_clickhouse_restart_lose_and_double_nothing() {
    let nats = NatsServer::start();
    let mut clickhouse = ClickHouseServer::start();
    let js = bus(&nats).await;

    // A backlog first, so the recorder is busy with batches when it dies;
    // every tenth result is published twice (a replay under another
    // message id), so the stream holds copies the table must not count.
    let distinct = 30_000u64;
    let clock = HlcClock::new();
    let envelopes: Vec<_> = (0..distinct)
        .map(|i| {
            Envelope::new(
                &clock,
                "eu-west",
                health(&format!("check-{}", i % 100), Outcome::Up, Some(200), None),
            )
        })
        .collect();
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let publisher = beacon_runtime::publish::Publisher::new(client, 512, Duration::from_secs(10));
    let subject = health_subject("acme", "api", "eu-west");
    let results = publisher
        .publish_all(envelopes.iter().map(|e| (subject.as_str(), e)))
        .await;
    assert!(results.iter().all(Result::is_ok), "backlog published");
    let copies: Vec<(String, bytes::Bytes)> = envelopes
        .iter()
        .step_by(10)
        .map(|e| {
            (
                format!("replay-{}", e.id),
                e.encode().expect("encode").into(),
            )
        })
        .collect();
    let results = publisher
        .publish_all_bytes(
            copies
                .iter()
                .map(|(id, bytes)| (subject.as_str(), id.clone(), bytes.clone())),
        )
        .await;
    assert!(results.iter().all(Result::is_ok), "copies published");

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
        at_kill < distinct,
        "the recorder was killed with work left ({at_kill} of {distinct} rows stored)"
    );
    // ClickHouse dies too (SIGKILL) and comes back on the same data.
    tokio::task::block_in_place(|| clickhouse.restart());

    recorder.restart();
    let unique = "SELECT uniqExact(event_id) FROM beacon.health_results";
    wait_until(
        &format!("all {distinct} events stored"),
        Duration::from_secs(90),
        || async { number(&clickhouse, unique).filter(|n| *n == distinct) },
    )
    .await;
    assert_eq!(deadletter_count(&js).await, 0, "nothing was dead-lettered");
    let final_rows = "SELECT count() FROM beacon.health_results FINAL";
    assert_eq!(number(&clickhouse, final_rows), Some(distinct));
    // The per-minute rollup counts each result once, copies and replays
    // after the crash included.
    let minutely = "SELECT uniqExactMerge(results) FROM beacon.health_minutely";
    assert_eq!(number(&clickhouse, minutely), Some(distinct));
}

/// A HEALTH envelope published as is (any time, any page).
async fn publish_raw_health(js: &jetstream::Context, envelope: &Envelope<HealthResult>) {
    let subject = health_subject("acme", "api", "eu-west");
    publish(js, &subject, envelope).await.expect("publish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_row_is_dead_lettered_while_the_rows_around_it_land() {
    let nats = NatsServer::start();
    let clickhouse = ClickHouseServer::start();
    let js = bus(&nats).await;
    let recorder = Recorder::start(&nats, clickhouse.http_url()).await;
    recorder.wait_ready().await;
    // An operator's check on the table, the 18.16 form of a CONSTRAINT:
    // ClickHouse refuses a whole INSERT that holds a row failing it.
    clickhouse.query(
        "ALTER TABLE beacon.health_results ADD COLUMN guard UInt8 \
         MATERIALIZED throwIf(check_id = 'refused')",
    );
    // Pause the consumer's view of the stream by publishing everything
    // before the recorder's next pull: one batch holds all seven.
    let clock = HlcClock::new();
    let mut envelopes = Vec::new();
    for check in ["a", "b", "c", "refused", "d", "e", "f"] {
        envelopes.push(Envelope::new(
            &clock,
            "eu-west",
            health(check, Outcome::Up, Some(200), None),
        ));
    }
    // An impossible time is refused before ClickHouse sees it.
    let mut future = Envelope::new(&clock, "eu-west", health("future", Outcome::Up, None, None));
    future.data.started_at_ms = wall_clock_ms() + 3 * 86_400_000;
    envelopes.push(future);
    for envelope in &envelopes {
        publish_raw_health(&js, envelope).await;
    }

    wait_rows(&clickhouse, "health_results", 6).await;
    wait_until("two dead letters", LAND, || async {
        (deadletter_count(&js).await == 2).then_some(())
    })
    .await;
    let landed =
        clickhouse.query("SELECT check_id FROM beacon.health_results FINAL ORDER BY check_id");
    assert_eq!(landed, "a\nb\nc\nd\ne\nf\n");
    let stream = js.get_stream(STREAM_DEADLETTER).await.expect("stream");
    let mut reasons = Vec::new();
    for seq in 1..=2 {
        let dead = stream.get_raw_message(seq).await.expect("a dead letter");
        let reason = dead
            .headers
            .get("Beacon-Reason")
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        let event: serde_json::Value = serde_json::from_slice(&dead.payload).expect("json");
        reasons.push((
            event["data"]["check"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            reason,
        ));
    }
    reasons.sort();
    assert_eq!(reasons[0].0, "future");
    assert!(
        reasons[0].1.contains("more than a day ahead"),
        "{reasons:?}"
    );
    assert_eq!(reasons[1].0, "refused");
    assert!(
        reasons[1].1.contains("FUNCTION_THROW_IF_VALUE_IS_NON_ZERO"),
        "{reasons:?}"
    );
    assert_eq!(
        recorder.metric(
            "dead_letters_total",
            &[("table", "health_results"), ("reason", "rejected")]
        ),
        1
    );
    assert_eq!(
        recorder.metric(
            "dead_letters_total",
            &[("table", "health_results"), ("reason", "impossible_time")]
        ),
        1
    );
    assert_eq!(
        recorder.metric(
            "insert_errors_total",
            &[("table", "health_results"), ("class", "retryable")]
        ),
        0,
        "a refused row is never retried"
    );
    recorder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_recorded_and_finish_after_a_crash_between_steps() {
    let clickhouse = ClickHouseServer::start();
    let nats = NatsServer::start();
    let _js = bus(&nats).await;
    // A run that died inside migration 2: its first column is added, the
    // migration is not recorded.
    clickhouse.query("CREATE DATABASE beacon");
    let config = clickhouse_args(clickhouse.http_url())
        .validate()
        .expect("valid");
    for migration in &beacon_recorder::schema::MIGRATIONS[..1] {
        for statement in beacon_recorder::schema::render(migration, "beacon", &config.layout) {
            clickhouse.query(&statement.sql);
        }
    }
    clickhouse.query(&beacon_recorder::schema::create_migrations_table("beacon"));
    clickhouse.query("INSERT INTO beacon.schema_migrations VALUES (1, '0001_history.sql', now())");
    let second = beacon_recorder::schema::render(
        &beacon_recorder::schema::MIGRATIONS[1],
        "beacon",
        &config.layout,
    );
    clickhouse.query(&second[0].sql);

    let recorder = Recorder::start(&nats, clickhouse.http_url()).await;
    recorder.wait_ready().await;
    let applied =
        clickhouse.query("SELECT version FROM beacon.schema_migrations FINAL ORDER BY version");
    assert_eq!(applied, "1\n2\n3\n4\n");
    assert_eq!(
        clickhouse.query("SELECT count() FROM system.columns WHERE database = 'beacon' AND table = 'status_changes' AND name IN ('at_ms', 'source', 'flapping', 'inhibited', 'proposal')"),
        "5\n"
    );
    recorder.stop().await;
    // A second start runs nothing again.
    let again = Recorder::start(&nats, clickhouse.http_url()).await;
    again.wait_ready().await;
    assert_eq!(
        again.metric("migrations_applied_total", &[("server", "single")]),
        0
    );
    assert_eq!(
        clickhouse.query("SELECT count() FROM beacon.schema_migrations"),
        "4\n"
    );
    again.stop().await;
}

/// Stores a page config in KV `config`, as the decider's config API does.
async fn store_page(js: &jetstream::Context, toml: &str) {
    let config = beacon_page::config::load(toml).expect("a valid page config");
    let kv = js.get_key_value("config").await.expect("KV config");
    let envelope = Envelope::new(&HlcClock::new(), "global", config.clone());
    kv.put(
        config.id.as_str(),
        envelope.encode().expect("encode").into(),
    )
    .await
    .expect("put the page config");
}

fn status_at(
    page: &str,
    component: &str,
    to: ComponentStatus,
    at_ms: u64,
) -> Envelope<StatusChange> {
    Envelope::with_id(
        beacon_contract::event::EventId::new(),
        beacon_contract::hlc::Hlc::new(at_ms, 0),
        "global",
        StatusChange {
            page: page.into(),
            component: component.into(),
            from: None,
            to,
            at_ms,
            source: Default::default(),
            flapping: false,
            inhibited: None,
            proposal: None,
            evidence: Evidence {
                rule: "test".into(),
                trigger: None,
                regions: vec![],
            },
        },
    )
}

async fn publish_at<T: beacon_contract::event::Message>(
    js: &jetstream::Context,
    subject: &str,
    body: T,
    at_ms: u64,
) {
    let envelope = Envelope::with_id(
        beacon_contract::event::EventId::new(),
        beacon_contract::hlc::Hlc::new(at_ms, 0),
        "global",
        body,
    );
    publish(js, subject, &envelope).await.expect("publish");
}

async fn sla_report(
    client: &async_nats::Client,
    request: serde_json::Value,
) -> beacon_contract::api::ApiReply<beacon_contract::api::SlaReport> {
    let reply = client
        .request(
            beacon_contract::api::SLA_REPORT.subject(),
            serde_json::to_vec(&request).expect("json").into(),
        )
        .await
        .expect("the recorder answers");
    serde_json::from_slice(&reply.payload).expect("an ApiReply")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sla_reports_and_kv_rollups_come_from_every_stream() {
    use beacon_contract::api::ApiReply;
    use beacon_contract::messages::*;
    use beacon_contract::names::{delivery_subject, incident_subject, maintenance_subject};
    const MIN: u64 = 60_000;
    const HOUR: u64 = 60 * MIN;
    const DAY: u64 = 24 * HOUR;

    let nats = NatsServer::start();
    let clickhouse = ClickHouseServer::start();
    let js = bus(&nats).await;
    store_page(
        &js,
        r#"
        [page]
        id = "shop"
        name = "Shop"
        [sla]
        target = 99.5
        [[components]]
        id = "api"
        name = "API"
        sla_target = 99.9
        [[components]]
        id = "web"
        name = "Web"
        "#,
    )
    .await;
    let recorder = Recorder::start(&nats, clickhouse.http_url()).await;
    recorder.wait_ready().await;

    // A finished month, 40 to 70 days ago.
    let month =
        beacon_recorder::rollup::date_of_day((wall_clock_ms() - 40 * DAY) / DAY)[..7].to_owned();
    let (p0, p1) = beacon_contract::api::SlaPeriod::parse(&month)
        .expect("a month")
        .bounds_ms();
    let s = |to, at| status_at("shop", "api", to, at);
    use ComponentStatus as S;
    for change in [
        s(S::Operational, p0 - HOUR),
        s(S::MajorOutage, p0 + DAY),
        s(S::Operational, p0 + DAY + 30 * MIN),
        s(S::PartialOutage, p0 + 2 * DAY),
        s(S::Operational, p0 + 2 * DAY + HOUR),
    ] {
        publish(&js, &status_subject("shop", "api"), &change)
            .await
            .expect("publish");
    }
    // A two-hour maintenance window on the third day.
    let window = |action, phase, at| MaintenanceEvent {
        page: "shop".into(),
        maintenance: "m1".into(),
        action,
        actor: "decider".into(),
        at_ms: at,
        phase,
        title: "DB upgrade".into(),
        body: String::new(),
        starts_at_ms: p0 + 3 * DAY,
        ends_at_ms: p0 + 3 * DAY + 2 * HOUR,
        components: vec!["api".into()],
        recurrence: None,
        series: None,
        remind_before_ms: 0,
        verify_ms: 0,
    };
    let subject = maintenance_subject("shop", "m1");
    publish_at(
        &js,
        &subject,
        window(
            MaintenanceAction::Scheduled,
            MaintenancePhase::Scheduled,
            p0,
        ),
        p0,
    )
    .await;
    publish_at(
        &js,
        &subject,
        window(
            MaintenanceAction::Started,
            MaintenancePhase::InProgress,
            p0 + 3 * DAY,
        ),
        p0 + 3 * DAY,
    )
    .await;
    publish_at(
        &js,
        &subject,
        window(
            MaintenanceAction::Completed,
            MaintenancePhase::Completed,
            p0 + 3 * DAY + 2 * HOUR,
        ),
        p0 + 3 * DAY + 2 * HOUR,
    )
    .await;
    // One incident, open for 30 minutes; one proposal that was dismissed.
    let affected = vec![AffectedComponent {
        component: "api".into(),
        status: S::MajorOutage,
    }];
    let mut opened = IncidentEvent::new("shop", "i1", IncidentAction::Created, "alice", p0 + DAY);
    opened.lifecycle = Some(IncidentLifecycle::Open);
    opened.title = Some("API down".into());
    opened.state = Some(IncidentState::Investigating);
    opened.components = Some(affected.clone());
    opened.update = Some(IncidentUpdate {
        id: "u1".into(),
        state: IncidentState::Investigating,
        body: "Looking".into(),
        components: affected.clone(),
        at_ms: p0 + DAY,
        actor: "alice".into(),
    });
    let mut resolved = IncidentEvent::new(
        "shop",
        "i1",
        IncidentAction::Resolved,
        "alice",
        p0 + DAY + 30 * MIN,
    );
    resolved.state = Some(IncidentState::Resolved);
    resolved.update = Some(IncidentUpdate {
        id: "u2".into(),
        state: IncidentState::Resolved,
        body: "Fixed".into(),
        components: vec![],
        at_ms: p0 + DAY + 30 * MIN,
        actor: "alice".into(),
    });
    let mut dismissed = IncidentEvent::new(
        "shop",
        "i2",
        IncidentAction::Dismissed,
        "alice",
        p0 + 2 * DAY,
    );
    dismissed.lifecycle = Some(IncidentLifecycle::Dismissed);
    for (id, event) in [("i1", opened), ("i1", resolved), ("i2", dismissed)] {
        let at = event.at_ms;
        publish_at(&js, &incident_subject("shop", id), event, at).await;
    }
    publish_at(
        &js,
        &delivery_subject("email", "delivered"),
        DeliveryReceipt {
            channel: ChannelKind::Email,
            page: "shop".into(),
            subscriber: "s1".into(),
            idempotency_key: "e1:s1".into(),
            outcome: DeliveryOutcome::Delivered,
            attempts: 1,
            detail: "250 OK".into(),
        },
        wall_clock_ms(),
    )
    .await;

    wait_rows(&clickhouse, "status_changes", 5).await;
    wait_rows(&clickhouse, "maintenance_events", 3).await;
    wait_rows(&clickhouse, "incident_events", 3).await;
    wait_rows(&clickhouse, "incident_updates", 2).await;
    wait_rows(&clickhouse, "delivery_receipts", 1).await;
    assert_eq!(
        clickhouse.query("SELECT status, start_ms FROM beacon.status_intervals WHERE component = 'api' ORDER BY start_ms LIMIT 2"),
        format!("operational\t{}\nmajor_outage\t{}\n", p0 - HOUR, p0 + DAY)
    );

    let client = async_nats::connect(nats.url()).await.expect("connect");
    let report = match sla_report(
        &client,
        serde_json::json!({"page": "shop", "period": month}),
    )
    .await
    {
        ApiReply::Ok { result } => result,
        other => panic!("expected a report, got {other:?}"),
    };
    let api = &report.components[0];
    let counted = p1 - p0 - 2 * HOUR;
    assert_eq!(
        (api.major_ms, api.partial_ms, api.maintenance_ms),
        (30 * MIN, HOUR, 2 * HOUR)
    );
    assert_eq!(api.operational_ms, counted - 30 * MIN - HOUR);
    let down = 30.0 + 0.3 * 60.0;
    assert!((api.downtime_minutes - down).abs() < 1e-9, "{api:?}");
    let uptime = 100.0 * (1.0 - down * MIN as f64 / counted as f64);
    assert!(
        (api.uptime_percent.expect("counted") - uptime).abs() < 1e-9,
        "{api:?}"
    );
    assert_eq!(api.target_percent, 99.9);
    assert_eq!(api.met, Some(uptime >= 99.9));
    assert_eq!(api.incidents, 1);
    let web = &report.components[1];
    assert_eq!(
        (web.uptime_percent, web.no_data_ms, web.target_percent),
        (None, p1 - p0, 99.5)
    );
    assert_eq!(
        report.incidents.count, 1,
        "the dismissed proposal does not count"
    );
    assert_eq!(report.incidents.mttr_minutes, Some(30.0));

    // The same report read one component at a time: the second slice is
    // cut from the first one's snapshot, so both cover the same period and
    // say the same as the whole report.
    let slice = |after: Option<&str>| {
        let client = client.clone();
        let request =
            serde_json::json!({"page": "shop", "period": month, "limit": 1, "after": after});
        async move {
            match sla_report(&client, request).await {
                ApiReply::Ok { result } => result,
                other => panic!("expected a slice, got {other:?}"),
            }
        }
    };
    let first = slice(None).await;
    let second = slice(first.next.as_deref()).await;
    assert_eq!(first.next.as_deref(), Some("api"));
    assert_eq!(second.next, None);
    assert_eq!(
        (second.to_ms, second.generated_at_ms),
        (first.to_ms, first.generated_at_ms)
    );
    assert_eq!(first.components[0].major_ms, api.major_ms);
    assert_eq!(second.components[0].no_data_ms, web.no_data_ms);

    // Bad input: a clear refusal, nothing computed.
    for (request, location) in [
        (
            serde_json::json!({"page": "shop", "period": "2026-13"}),
            "period",
        ),
        (serde_json::json!({"page": "nope", "period": month}), "page"),
        (serde_json::json!({"page": "shop"}), "request"),
    ] {
        match sla_report(&client, request.clone()).await {
            ApiReply::Invalid { errors } => assert_eq!(errors[0].location, location, "{request}"),
            other => panic!("{request}: expected a refusal, got {other:?}"),
        }
    }

    // KV uptime has the days, with the page's weights applied.
    let kv = js.get_key_value("uptime").await.expect("KV uptime");
    let outage_day = beacon_recorder::rollup::date_of_day((p0 + DAY) / DAY);
    let day = wait_until("the outage day in KV uptime", LAND, || async {
        let value = kv.get("shop.api").await.ok().flatten()?;
        let rollup = Envelope::<UptimeRollup>::decode(&value).ok()?.data;
        rollup
            .days
            .into_iter()
            .find(|d| d.date == outage_day && d.major_ms > 0)
    })
    .await;
    assert_eq!(
        (day.major_ms, day.down_ms, day.up_ms),
        (30 * MIN, 30 * MIN, DAY - 30 * MIN)
    );
    let percent = day.uptime_percent.expect("counted");
    assert!(
        (percent - 100.0 * (1.0 - 30.0 / 1440.0)).abs() < 1e-9,
        "{day:?}"
    );
    recorder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sharded_layout_spreads_rows_over_two_servers() {
    let nats = NatsServer::start();
    let shards = ClickHouseServer::start_shards("history", 2);
    let js = bus(&nats).await;
    let mut args = clickhouse_args(shards[0].http_url());
    args.layout = LayoutArg::Sharded;
    args.cluster = Some("history".into());
    args.shard_urls = shards.iter().map(|s| s.http_url()).collect();
    let recorder = Recorder::start_with(&nats, args).await;
    recorder.wait_ready().await;

    let clock = HlcClock::new();
    let components = 40;
    for i in 0..components {
        let mut result = health("home", Outcome::Up, Some(200), None);
        result.component = format!("c{i}");
        let envelope = Envelope::new(&clock, "eu-west", result);
        publish(
            &js,
            &health_subject("acme", &format!("c{i}"), "eu-west"),
            &envelope,
        )
        .await
        .expect("publish");
    }
    wait_rows(&shards[0], "health_results", components).await;
    // Both shards hold some of the rows, and either server sees them all.
    let local: Vec<u64> = shards
        .iter()
        .map(|s| number(s, "SELECT count() FROM beacon.health_results_local").unwrap_or(0))
        .collect();
    assert!(
        local.iter().all(|n| *n > 0),
        "rows on every shard: {local:?}"
    );
    assert_eq!(local.iter().sum::<u64>(), components);
    assert_eq!(
        number(&shards[1], "SELECT count() FROM beacon.health_results"),
        Some(components)
    );
    for shard in &shards {
        assert_eq!(
            shard.query("SELECT count() FROM beacon.schema_migrations FINAL"),
            "4\n"
        );
    }
    recorder.stop().await;
}

/// Waits, checking every millisecond, until `ready` says so; then asks
/// `endpoint` once, with a body that is not its request, without retrying.
/// Returns the reply. A daemon that reported ready before its endpoint was
/// subscribed fails here with "no responders".
async fn ask_the_moment_it_is_ready(
    client: &async_nats::Client,
    ready: impl Fn() -> bool,
    subject: &'static str,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + READY;
    while !ready() {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let reply = client
        .request(subject, br#""not a request""#.to_vec().into())
        .await
        .unwrap_or_else(|e| panic!("ready, but {subject} does not answer: {e}"));
    serde_json::from_slice(&reply.payload).expect("an ApiReply")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_only_once_the_sla_endpoint_answers() {
    let nats = NatsServer::start();
    let clickhouse = ClickHouseServer::start();
    let recorder = Recorder::start(&nats, clickhouse.http_url()).await;
    let reply = ask_the_moment_it_is_ready(
        &recorder.daemon.client,
        || recorder.daemon.process.readiness.get(),
        beacon_contract::api::SLA_REPORT.subject(),
    )
    .await;
    assert_eq!(reply["status"], "invalid", "{reply}");
    assert!(
        reply["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("not a SlaReportRequest")),
        "{reply}"
    );
    assert_eq!(
        recorder.metric(
            "api_requests_total",
            &[("endpoint", "sla.report"), ("outcome", "invalid")]
        ),
        1
    );
    recorder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_with_an_unknown_error_is_retried_alone_while_the_rows_around_it_land() {
    let nats = NatsServer::start();
    let clickhouse = ClickHouseServer::start();
    let js = bus(&nats).await;
    let recorder = Recorder::start(&nats, clickhouse.http_url()).await;
    recorder.wait_ready().await;
    // A check whose failure has a code the recorder does not know: division
    // by zero (153) for one row only.
    clickhouse.query(
        "ALTER TABLE beacon.health_results ADD COLUMN guard UInt8 \
         MATERIALIZED intDiv(1, if(check_id = 'odd', 0, 1))",
    );
    let clock = HlcClock::new();
    for check in ["a", "b", "c", "odd", "d", "e", "f"] {
        let envelope = Envelope::new(
            &clock,
            "eu-west",
            health(check, Outcome::Up, Some(200), None),
        );
        publish_raw_health(&js, &envelope).await;
    }

    // The six good rows land although the odd one keeps failing.
    wait_rows(&clickhouse, "health_results", 6).await;
    let landed =
        clickhouse.query("SELECT check_id FROM beacon.health_results FINAL ORDER BY check_id");
    assert_eq!(landed, "a\nb\nc\nd\ne\nf\n");
    recorder
        .wait_metric(
            "the odd row to be retried",
            "insert_errors_total",
            &[("table", "health_results"), ("class", "retryable")],
            2,
        )
        .await;
    assert_eq!(
        deadletter_count(&js).await,
        0,
        "an unknown code is not poison"
    );

    // Once the check is gone the odd row lands too: it was retried, never lost.
    clickhouse.query("ALTER TABLE beacon.health_results DROP COLUMN guard");
    wait_rows(&clickhouse, "health_results", 7).await;
    recorder.stop().await;
}
