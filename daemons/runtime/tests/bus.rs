//! The bus helpers against a real `nats-server`: topology, publishing with
//! deduplication, and the consumer loop's ack, retry, dead-letter and
//! reconnect behaviour. Each test starts its own server.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use beacon_contract::event::Envelope;
use beacon_contract::hlc::HlcClock;
use beacon_contract::messages::{HealthResult, Outcome};
use beacon_contract::names::{
    deadletter_subject, health_subject, STREAM_DEADLETTER, STREAM_HEALTH,
};
use beacon_contract::topology::{
    ensure, not_ready, verify, Action, Topology, TOPOLOGY_VERSION, VERSION_KEY,
};
use beacon_runtime::connect::{connect, NatsArgs};
use beacon_runtime::consume::{
    deadletter_headers, run_consumer, ConsumerMetrics, ConsumerSpec, Delivery, HandlerError,
    RetryPolicy,
};
use beacon_runtime::publish::{publish, publish_bytes, PublishError};
use beacon_runtime::shutdown::Shutdown;
use beacon_runtime::telemetry::Metrics;
use beacon_testkit::nats::NatsServer;
use beacon_testkit::wait::wait_until;
use tokio::sync::Semaphore;

/// Bound for anything that should happen promptly on a healthy local server.
use beacon_testkit::wait::PROMPT;
/// Bound for recovering after a server restart: reconnect backoff plus a new pull.
const RECOVERY: Duration = Duration::from_secs(30);

async fn connect_to(server: &NatsServer) -> jetstream::Context {
    let args = NatsArgs {
        url: server.url(),
        creds: None,
        user: None,
        password: None,
    };
    let client = connect(
        &args,
        "beacon-runtime-test",
        &Shutdown::new(Duration::from_secs(1)),
    )
    .await
    .expect("connect to the test nats-server");
    jetstream::new(client)
}

/// A server with the whole topology in place, and a JetStream context on it.
async fn bus() -> (NatsServer, jetstream::Context) {
    let server = NatsServer::start();
    let js = connect_to(&server).await;
    ensure(&js, &Topology::default())
        .await
        .expect("ensure topology");
    (server, js)
}

fn health(component: &str) -> Envelope<HealthResult> {
    Envelope::new(
        &HlcClock::new(),
        "eu",
        HealthResult {
            latency_ms: 5,
            http_status: Some(200),
            ..HealthResult::new(
                "demo",
                component,
                "http",
                "eu",
                Outcome::Up,
                1_732_233_000_000,
            )
        },
    )
}

async fn publish_health(js: &jetstream::Context, component: &str) -> u64 {
    publish(
        js,
        &health_subject("demo", component, "eu"),
        &health(component),
    )
    .await
    .unwrap_or_else(|e| panic!("publish health result for {component}: {e}"))
    .sequence
}

async fn stream_messages(js: &jetstream::Context, name: &str) -> u64 {
    let mut stream = js.get_stream(name).await.expect("get stream");
    stream.info().await.expect("stream info").state.messages
}

/// The consumer's state on the server; `None` until the loop has created it.
async fn consumer_info(js: &jetstream::Context, durable: &str) -> Option<consumer::Info> {
    let stream = js
        .get_stream(STREAM_HEALTH)
        .await
        .expect("get stream HEALTH");
    stream.consumer_info(durable).await.ok()
}

/// Waits until the server holds no unacknowledged message for the consumer
/// and its ack floor has reached `sequence`: everything up to it was acked or
/// terminated, so nothing will be redelivered.
async fn wait_settled(js: &jetstream::Context, durable: &str, sequence: u64) {
    wait_until(
        &format!("consumer {durable} to settle through sequence {sequence}"),
        PROMPT,
        || async {
            let info = consumer_info(js, durable).await?;
            (info.num_ack_pending == 0 && info.ack_floor.stream_sequence >= sequence).then_some(())
        },
    )
    .await;
}

async fn wait_count(metrics: &ConsumerMetrics, durable: &str, outcome: &str, want: u64) {
    wait_until(
        &format!("{want} {outcome} message(s) on consumer {durable}"),
        PROMPT,
        || async { (metrics.count(durable, outcome) >= want).then_some(()) },
    )
    .await;
    assert_eq!(
        metrics.count(durable, outcome),
        want,
        "{outcome} on {durable}"
    );
}

/// A consumer loop running in a task, stopped through its [`Shutdown`].
struct Running {
    durable: String,
    metrics: ConsumerMetrics,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start<H, Fut>(js: &jetstream::Context, durable: &str, handler: H) -> Running
    where
        H: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let spec = ConsumerSpec {
            // Short, so a lost ack shows up as a redelivery within the test.
            ack_wait: Duration::from_secs(2),
            retry: RetryPolicy {
                first: Duration::from_millis(100),
                max: Duration::from_millis(100),
                give_up_after: Some(3),
            },
            ..ConsumerSpec::new(STREAM_HEALTH, durable)
        };
        let metrics =
            ConsumerMetrics::register(&Metrics::new("test")).expect("register consumer metrics");
        let shutdown = Shutdown::new(Duration::from_secs(5));
        let task = tokio::spawn(run_consumer(
            js.clone(),
            spec,
            metrics.clone(),
            shutdown.clone(),
            handler,
        ));
        Running {
            durable: durable.to_owned(),
            metrics,
            shutdown,
            task,
        }
    }

    fn count(&self, outcome: &str) -> u64 {
        self.metrics.count(&self.durable, outcome)
    }

    /// Cancels the loop and checks it returns: shutdown is its only exit.
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "consumer {} did not stop within 5s of shutdown",
                    self.durable
                )
            })
            .expect("consumer task panicked");
    }
}

/// Components of the health results a handler has successfully decoded,
/// with the delivery attempt, in arrival order.
type Seen = Arc<Mutex<Vec<(String, i64)>>>;

fn seen_components(seen: &Seen) -> Vec<String> {
    seen.lock()
        .expect("lock records")
        .iter()
        .map(|(c, _)| c.clone())
        .collect()
}

/// A handler that decodes, records, and succeeds.
fn recording(
    seen: &Seen,
) -> impl Fn(Delivery) -> std::future::Ready<Result<(), HandlerError>> + Send + Sync + 'static {
    let seen = seen.clone();
    move |delivery: Delivery| {
        let result = delivery.decode::<HealthResult>().map(|envelope| {
            seen.lock()
                .expect("lock records")
                .push((envelope.data.component, delivery.attempt));
        });
        std::future::ready(result)
    }
}

// ---------------------------------------------------------------------------
// Topology.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_is_idempotent_and_creates_everything() {
    let server = NatsServer::start();
    let topology = Topology::default();
    // Two daemons starting at once on a fresh server race to create the
    // same streams; both must succeed.
    let (first, second) = (connect_to(&server).await, connect_to(&server).await);
    let (a, b) = tokio::join!(ensure(&first, &topology), ensure(&second, &topology));
    a.expect("first concurrent ensure");
    b.expect("second concurrent ensure");
    // And again on a server that already has everything.
    ensure(&first, &topology)
        .await
        .expect("ensure on an existing topology");
    ensure(&first, &topology)
        .await
        .expect("ensure a third time");

    for want in topology.streams() {
        let mut stream = first
            .get_stream(&want.name)
            .await
            .unwrap_or_else(|e| panic!("stream {}: {e}", want.name));
        let got = &stream.info().await.expect("stream info").config;
        assert_eq!(got.subjects, want.subjects, "{} subjects", want.name);
        assert_eq!(got.retention, want.retention, "{} retention", want.name);
        assert_eq!(got.max_age, want.max_age, "{} max_age", want.name);
        assert_eq!(
            got.duplicate_window, want.duplicate_window,
            "{} duplicate_window",
            want.name
        );
        assert_eq!(
            got.storage,
            stream::StorageType::File,
            "{} storage",
            want.name
        );
    }
    for want in topology.buckets() {
        let kv = first
            .get_key_value(&want.bucket)
            .await
            .unwrap_or_else(|e| panic!("KV bucket {}: {e}", want.bucket));
        let status = kv.status().await.expect("KV status");
        assert_eq!(status.history(), want.history, "{} history", want.bucket);
    }
    for want in topology.object_stores() {
        first
            .get_object_store(&want.bucket)
            .await
            .unwrap_or_else(|e| panic!("object store {}: {e}", want.bucket));
    }
    // Nothing extra: KV buckets and object stores are streams underneath.
    let expected =
        topology.streams().len() + topology.buckets().len() + topology.object_stores().len();
    let mut names = Vec::new();
    let mut listing = first.stream_names();
    while let Some(name) = futures::StreamExt::next(&mut listing).await {
        names.push(name.expect("stream name"));
    }
    assert_eq!(names.len(), expected, "streams on the server: {names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_updates_what_an_older_version_configured() {
    let (_server, js) = bus().await;
    // An upgrade that changes retention (and bumps the version, as every
    // change must) reaches a server that already has the stream.
    let changed = Topology {
        version: TOPOLOGY_VERSION + 1,
        health_max_age: Duration::from_secs(3600),
        ..Topology::default()
    };
    let outcomes = ensure(&js, &changed)
        .await
        .expect("ensure with new retention");
    assert!(
        outcomes.iter().all(|o| o.result == Action::Updated),
        "{outcomes:?}"
    );
    let mut stream = js.get_stream(STREAM_HEALTH).await.expect("HEALTH");
    let config = stream.info().await.expect("info").config.clone();
    assert_eq!(config.max_age, Duration::from_secs(3600));
    assert_eq!(
        config.metadata.get(VERSION_KEY),
        Some(&(TOPOLOGY_VERSION + 1).to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_ensure_against_a_newer_topology_changes_nothing() {
    let (_server, js) = bus().await;
    let newer = Topology {
        version: TOPOLOGY_VERSION + 1,
        health_max_age: Duration::from_secs(3600),
        replicas: 1,
        ..Topology::default()
    };
    ensure(&js, &newer).await.expect("the newer build's ensure");
    let before = stream_configs(&js).await;

    // This build's settings differ (7 days of HEALTH): it must not apply them.
    let outcomes = ensure(&js, &Topology::default())
        .await
        .expect("the older build's ensure");
    assert!(
        outcomes.iter().all(|o| o.result
            == Action::LeftNewer {
                recorded: TOPOLOGY_VERSION + 1
            }),
        "{outcomes:?}"
    );
    let after = stream_configs(&js).await;
    let changed: Vec<&String> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b != a)
        .map(|(b, _)| &b.0)
        .collect();
    assert!(
        changed.is_empty() && before.len() == after.len(),
        "changed: {changed:?}"
    );
    let mut stream = js.get_stream(STREAM_HEALTH).await.expect("HEALTH");
    assert_eq!(
        stream.info().await.expect("info").config.max_age,
        Duration::from_secs(3600)
    );
    // And the older build still finds everything it needs.
    let found = verify(&js, &Topology::default()).await.expect("verify");
    assert!(not_ready(&found).is_empty(), "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_subscribers_bucket_is_made_erasable_when_empty_and_left_when_not() {
    for with_data in [false, true] {
        let (_server, js) = {
            let server = NatsServer::start();
            let js = connect_to(&server).await;
            (server, js)
        };
        // What topology version 3 made: a client-made bucket, which forbids
        // deleting (so erasing) single messages.
        let old = js
            .create_key_value(async_nats::jetstream::kv::Config {
                bucket: "subscribers".into(),
                history: 1,
                ..Default::default()
            })
            .await
            .expect("an old bucket");
        if with_data {
            old.put("p.s", "x".into()).await.expect("a value");
        }
        let result = ensure(&js, &Topology::default()).await;
        let mut stream = js
            .get_stream("KV_subscribers")
            .await
            .expect("the bucket's stream");
        let config = stream.info().await.expect("info").config.clone();
        if with_data {
            let error = result.expect_err("not recreated with data in it");
            assert!(error.to_string().contains("1 messages"), "{error}");
            assert!(config.deny_delete, "left as it was");
        } else {
            result.expect("recreated");
            assert!(!config.deny_delete);
            assert_eq!(config.max_messages_per_subject, 2);
            // Still a KV bucket to the client.
            let kv = js
                .get_key_value("subscribers")
                .await
                .expect("KV subscribers");
            let revision = kv.put("p.s", "y".into()).await.expect("put");
            assert!(stream
                .delete_message(revision)
                .await
                .expect("erase a message"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_what_is_missing_and_changes_nothing() {
    let server = NatsServer::start();
    let js = connect_to(&server).await;
    let topology = Topology::default();
    let found = verify(&js, &topology)
        .await
        .expect("verify an empty server");
    let missing = not_ready(&found);
    assert_eq!(missing.len(), topology.parts().len(), "{missing:?}");
    assert!(
        missing.iter().any(|m| m == "stream HEALTH is missing"),
        "{missing:?}"
    );
    assert!(
        missing.iter().any(|m| m == "KV bucket leases is missing"),
        "{missing:?}"
    );
    assert_eq!(stream_configs(&js).await.len(), 0, "verify created nothing");

    let created = ensure(&js, &topology).await.expect("ensure");
    assert!(
        created.iter().all(|o| o.result == Action::Created),
        "{created:?}"
    );
    let again = ensure(&js, &topology).await.expect("ensure again");
    assert!(
        again.iter().all(|o| o.result == Action::Unchanged),
        "{again:?}"
    );
    assert!(not_ready(&verify(&js, &topology).await.expect("verify")).is_empty());
}

/// Every stream's config, by name.
async fn stream_configs(js: &jetstream::Context) -> Vec<(String, String)> {
    let mut names = Vec::new();
    let mut listing = js.stream_names();
    while let Some(name) = futures::StreamExt::next(&mut listing).await {
        names.push(name.expect("stream name"));
    }
    names.sort();
    let mut configs = Vec::new();
    for name in names {
        let mut stream = js.get_stream(&name).await.expect("stream");
        let mut config = stream.info().await.expect("info").config.clone();
        // Debug of a HashMap has no fixed order: compare metadata sorted.
        let metadata: std::collections::BTreeMap<_, _> =
            std::mem::take(&mut config.metadata).into_iter().collect();
        configs.push((name, format!("{config:?} {metadata:?}")));
    }
    configs
}

// ---------------------------------------------------------------------------
// Publishing.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_the_same_event_twice_stores_it_once() {
    let (_server, js) = bus().await;
    let envelope = health("api");
    let subject = health_subject("demo", "api", "eu");

    let first = publish(&js, &subject, &envelope)
        .await
        .expect("first publish");
    assert_eq!(
        (first.stream.as_str(), first.duplicate),
        (STREAM_HEALTH, false)
    );
    // A retry after a lost ack re-sends the same envelope; the event id is
    // the Nats-Msg-Id, so the server drops it.
    let second = publish(&js, &subject, &envelope)
        .await
        .expect("second publish");
    assert!(
        second.duplicate,
        "second publish was stored again: {second:?}"
    );
    assert_eq!(second.sequence, first.sequence);
    assert_eq!(stream_messages(&js, STREAM_HEALTH).await, 1);

    let stored = js
        .get_stream(STREAM_HEALTH)
        .await
        .expect("HEALTH")
        .get_raw_message(first.sequence)
        .await
        .expect("stored message");
    let msg_id = stored
        .headers
        .get("Nats-Msg-Id")
        .map(|v| v.as_str().to_owned());
    assert_eq!(msg_id, Some(envelope.id.to_string()));
    assert_eq!(
        Envelope::<HealthResult>::decode(&stored.payload),
        Ok(envelope)
    );

    // A different event with the same body is a different event.
    let other = publish(&js, &subject, &health("api"))
        .await
        .expect("third publish");
    assert!(!other.duplicate);
    assert_eq!(stream_messages(&js, STREAM_HEALTH).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_where_no_stream_listens_is_refused() {
    let (_server, js) = bus().await;
    let nowhere = format!("{}.nowhere.demo", beacon_contract::names::SUBJECT_ROOT);
    match publish(&js, &nowhere, &health("api")).await {
        Err(PublishError::NotStored {
            no_stream: true,
            subject,
            ..
        }) => assert_eq!(subject, nowhere),
        other => panic!("expected NotStored with no_stream, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// The consumer loop.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_acked_only_after_the_handler_succeeds() {
    let (_server, js) = bus().await;
    let seen = Seen::default();
    // The handler holds each message until the test lets it go, so the
    // test can look at the server while the handler is still busy.
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (seen, gate, entered) = (seen.clone(), gate.clone(), entered.clone());
        move |delivery: Delivery| {
            let (seen, gate, entered) = (seen.clone(), gate.clone(), entered.clone());
            async move {
                let envelope = delivery.decode::<HealthResult>()?;
                entered.fetch_add(1, Ordering::SeqCst);
                gate.acquire().await.expect("gate open").forget();
                seen.lock()
                    .expect("lock records")
                    .push((envelope.data.component, delivery.attempt));
                Ok(())
            }
        }
    };
    let running = Running::start(&js, "test-acks", handler);

    for component in ["a", "b", "c"] {
        publish_health(&js, component).await;
    }
    wait_until("the first message to reach the handler", PROMPT, || async {
        (entered.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    // Delivered (the pull fetches a batch), but nothing acked while the
    // handler is still working.
    let info = consumer_info(&js, "test-acks")
        .await
        .expect("consumer exists once it delivered");
    assert!(info.num_ack_pending >= 1, "{info:?}");
    assert_eq!(
        info.ack_floor.stream_sequence, 0,
        "acked before the handler finished: {info:?}"
    );
    assert_eq!(running.count("acked"), 0);

    gate.add_permits(3);
    wait_settled(&js, "test-acks", 3).await;
    wait_count(&running.metrics, "test-acks", "acked", 3).await;
    // In stream order, each on its first delivery.
    let expected: Vec<(String, i64)> = vec![("a".into(), 1), ("b".into(), 1), ("c".into(), 1)];
    assert_eq!(*seen.lock().expect("lock records"), expected);
    assert_eq!(running.count("retried") + running.count("dead_lettered"), 0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_message_is_dead_lettered_and_the_loop_goes_on() {
    let (_server, js) = bus().await;
    let seen = Seen::default();
    let running = Running::start(&js, "test-poison", recording(&seen));

    let subject = health_subject("demo", "api", "eu");
    let garbage = bytes::Bytes::from_static(b"\x00not json at all");
    let poison_seq = publish_bytes(&js, &subject, "garbage-1", garbage.clone(), None)
        .await
        .expect("publish garbage")
        .sequence;
    let good_seq = publish_health(&js, "after-poison").await;

    wait_count(&running.metrics, "test-poison", "dead_lettered", 1).await;
    wait_until("the good message after the poison one", PROMPT, || async {
        (seen_components(&seen) == ["after-poison"]).then_some(())
    })
    .await;
    // Terminated, not left to be redelivered.
    wait_settled(&js, "test-poison", good_seq).await;

    assert_eq!(stream_messages(&js, STREAM_DEADLETTER).await, 1);
    let letter = js
        .get_stream(STREAM_DEADLETTER)
        .await
        .expect("DEADLETTER")
        .get_last_raw_message_by_subject(&deadletter_subject(STREAM_HEALTH, "test-poison"))
        .await
        .expect("dead letter under beacon.deadletter.health.test-poison");
    assert_eq!(
        letter.payload, garbage,
        "the dead letter keeps the original bytes"
    );
    let header = |name: &str| letter.headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(header(deadletter_headers::SUBJECT), Some(subject));
    assert_eq!(
        header(deadletter_headers::STREAM),
        Some(STREAM_HEALTH.to_owned())
    );
    assert_eq!(
        header(deadletter_headers::SEQUENCE),
        Some(poison_seq.to_string())
    );
    assert_eq!(
        header(deadletter_headers::CONSUMER),
        Some("test-poison".to_owned())
    );
    let reason = header(deadletter_headers::REASON).unwrap_or_default();
    assert!(
        reason.contains("not a Beacon envelope"),
        "Beacon-Reason: {reason:?}"
    );
    // Redelivering a dead-lettered message must not make a second copy.
    assert!(
        header("Nats-Msg-Id").is_some_and(|id| id.contains("test-poison")),
        "{:?}",
        letter.headers
    );

    assert_eq!(running.count("acked"), 1);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_message_is_redelivered_until_it_succeeds() {
    let (_server, js) = bus().await;
    let seen = Seen::default();
    let handler = {
        let seen = seen.clone();
        move |delivery: Delivery| {
            let seen = seen.clone();
            async move {
                let envelope = delivery.decode::<HealthResult>()?;
                seen.lock()
                    .expect("lock records")
                    .push((envelope.data.component, delivery.attempt));
                if delivery.attempt < 3 {
                    return Err(HandlerError::retry("database unavailable"));
                }
                Ok(())
            }
        }
    };
    let running = Running::start(&js, "test-retry", handler);

    let sequence = publish_health(&js, "flaky").await;
    wait_count(&running.metrics, "test-retry", "acked", 1).await;
    wait_settled(&js, "test-retry", sequence).await;

    let attempts: Vec<i64> = seen
        .lock()
        .expect("lock records")
        .iter()
        .map(|(_, attempt)| *attempt)
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert_eq!(running.count("retried"), 2);
    assert_eq!(running.count("dead_lettered"), 0);
    assert_eq!(stream_messages(&js, STREAM_DEADLETTER).await, 0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_always_fails_is_dead_lettered_when_the_policy_gives_up() {
    let (_server, js) = bus().await;
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let attempts = attempts.clone();
        move |delivery: Delivery| {
            attempts
                .lock()
                .expect("lock records")
                .push(delivery.attempt);
            std::future::ready(Err(HandlerError::retry("still down")))
        }
    };
    let running = Running::start(&js, "test-give-up", handler);

    let sequence = publish_health(&js, "doomed").await;
    wait_count(&running.metrics, "test-give-up", "dead_lettered", 1).await;
    // Terminated after the dead letter: the server will not redeliver it.
    wait_settled(&js, "test-give-up", sequence).await;

    // give_up_after is 3: two naks, then the third failure dead-letters.
    assert_eq!(*attempts.lock().expect("lock records"), [1, 2, 3]);
    assert_eq!(running.count("retried"), 2);
    let letter = js
        .get_stream(STREAM_DEADLETTER)
        .await
        .expect("DEADLETTER")
        .get_last_raw_message_by_subject(&deadletter_subject(STREAM_HEALTH, "test-give-up"))
        .await
        .expect("dead letter");
    let reason = letter
        .headers
        .get(deadletter_headers::REASON)
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default();
    assert!(
        reason.contains("gave up after 3 attempts") && reason.contains("still down"),
        "Beacon-Reason: {reason:?}"
    );
    assert_eq!(
        Envelope::<HealthResult>::decode(&letter.payload).map(|e| e.data.component),
        Ok("doomed".into())
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_survives_a_server_restart() {
    let (mut server, js) = bus().await;
    let seen = Seen::default();
    let running = Running::start(&js, "test-restart", recording(&seen));

    let before = publish_health(&js, "before").await;
    wait_settled(&js, "test-restart", before).await;

    // The harness blocks while the server comes back.
    tokio::task::block_in_place(|| server.restart());

    // The client reconnects in the background; until it has, a publish may
    // fail. Re-sending the same envelope is safe: it is deduplicated.
    let after = health("after");
    let subject = health_subject("demo", "after", "eu");
    wait_until(
        "a publish to succeed after the restart",
        RECOVERY,
        || async { publish(&js, &subject, &after).await.ok() },
    )
    .await;
    wait_until(
        "the consumer loop to receive the message published after the restart",
        RECOVERY,
        || async {
            seen_components(&seen)
                .contains(&"after".to_owned())
                .then_some(())
        },
    )
    .await;
    // A SIGKILLed server may lose the last ack and redeliver "before": that
    // is at-least-once delivery working, not a failure. Anything else is.
    let seen = seen_components(&seen);
    assert!(
        seen.iter().all(|c| c == "before" || c == "after"),
        "{seen:?}"
    );
    wait_until(
        "the message published after the restart to be acked",
        PROMPT,
        || async { (running.count("acked") as usize >= seen.len()).then_some(()) },
    )
    .await;
    running.stop().await;
}
