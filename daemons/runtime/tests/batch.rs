//! Batch consumption and pipelined publishing against a real `nats-server`:
//! mixed outcomes in one batch, progress acks for a slow handler, a panic
//! inside a handler, and a pipelined publisher that loses nothing across a
//! server restart. Each test starts its own server.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use beacon_contract::event::{Envelope, EventId};
use beacon_contract::hlc::HlcClock;
use beacon_contract::messages::{HealthResult, Outcome as Health};
use beacon_contract::names::{health_subject, STREAM_DEADLETTER, STREAM_HEALTH};
use beacon_contract::topology::{ensure, Topology};
use beacon_runtime::connect::{connect, NatsArgs};
use beacon_runtime::consume::{
    run_batch_consumer, BatchSettings, ConsumerMetrics, ConsumerSpec, Delivery, Outcome,
    RetryPolicy,
};
use beacon_runtime::publish::{publish, Publisher};
use beacon_runtime::retry::Classify;
use beacon_runtime::shutdown::Shutdown;
use beacon_runtime::telemetry::Metrics;
use beacon_testkit::nats::NatsServer;
use beacon_testkit::wait::wait_until;

use beacon_testkit::wait::PROMPT;

async fn connect_client(server: &NatsServer) -> async_nats::Client {
    let args = NatsArgs {
        url: server.url(),
        creds: None,
        user: None,
        password: None,
    };
    connect(
        &args,
        "beacon-batch-test",
        &Shutdown::new(Duration::from_secs(1)),
    )
    .await
    .expect("connect to the test nats-server")
}

async fn bus() -> (NatsServer, async_nats::Client, jetstream::Context) {
    let server = NatsServer::start();
    let client = connect_client(&server).await;
    let js = jetstream::new(client.clone());
    ensure(&js, &Topology::default())
        .await
        .expect("ensure topology");
    (server, client, js)
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
                Health::Up,
                1_732_233_000_000,
            )
        },
    )
}

async fn publish_components(js: &jetstream::Context, components: &[&str]) -> u64 {
    let mut last = 0;
    for component in components {
        last = publish(
            js,
            &health_subject("demo", component, "eu"),
            &health(component),
        )
        .await
        .unwrap_or_else(|e| panic!("publish {component}: {e}"))
        .sequence;
    }
    last
}

fn component_of(delivery: &Delivery) -> String {
    delivery
        .decode::<HealthResult>()
        .map(|e| e.data.component)
        .unwrap_or_else(|_| "<undecodable>".to_owned())
}

/// Every delivery a handler saw: component, attempt, batch number.
type Seen = Arc<Mutex<Vec<(String, i64, usize)>>>;

struct Running {
    durable: String,
    metrics: ConsumerMetrics,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start<H, Fut>(js: &jetstream::Context, spec: ConsumerSpec, handler: H) -> Running
    where
        H: Fn(Vec<Delivery>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Vec<Outcome>> + Send + 'static,
    {
        spec.validate().expect("test consumer settings are valid");
        let metrics =
            ConsumerMetrics::register(&Metrics::new("test")).expect("register consumer metrics");
        let shutdown = Shutdown::new(Duration::from_secs(5));
        let durable = spec.durable.clone();
        let task = tokio::spawn(run_batch_consumer(
            js.clone(),
            spec,
            metrics.clone(),
            shutdown.clone(),
            handler,
        ));
        Running {
            durable,
            metrics,
            shutdown,
            task,
        }
    }

    fn count(&self, outcome: &str) -> u64 {
        self.metrics.count(&self.durable, outcome)
    }

    async fn wait_count(&self, outcome: &str, want: u64) {
        wait_until(
            &format!("{want} {outcome} message(s) on {}", self.durable),
            PROMPT,
            || async { (self.count(outcome) >= want).then_some(()) },
        )
        .await;
        assert_eq!(self.count(outcome), want, "{outcome} on {}", self.durable);
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("consumer stops within 10s of shutdown")
            .expect("consumer task did not panic");
    }
}

fn spec(durable: &str, batch: BatchSettings, ack_wait: Duration) -> ConsumerSpec {
    ConsumerSpec {
        ack_wait,
        batch,
        retry: RetryPolicy {
            first: Duration::from_millis(100),
            max: Duration::from_millis(100),
            give_up_after: None,
        },
        ..ConsumerSpec::new(STREAM_HEALTH, durable)
    }
}

async fn consumer_info(js: &jetstream::Context, durable: &str) -> consumer::Info {
    js.get_stream(STREAM_HEALTH)
        .await
        .expect("get stream")
        .consumer_info(durable)
        .await
        .expect("consumer info")
}

async fn dead_letters(js: &jetstream::Context) -> u64 {
    let mut stream = js
        .get_stream(STREAM_DEADLETTER)
        .await
        .expect("get DEADLETTER");
    stream.info().await.expect("info").state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_with_mixed_outcomes_acks_retries_and_dead_letters_each_message() {
    let (_server, _client, js) = bus().await;
    // Published before the consumer exists, so they arrive as one batch.
    let last = publish_components(&js, &["ok-1", "retry", "poison", "ok-2", "later"]).await;

    let seen = Seen::default();
    let batches = Arc::new(Mutex::new(0usize));
    let handler = {
        let seen = seen.clone();
        let batches = batches.clone();
        move |batch: Vec<Delivery>| {
            let mut number = batches.lock().expect("lock");
            *number += 1;
            let outcomes = batch
                .iter()
                .map(|delivery| {
                    let component = component_of(delivery);
                    seen.lock()
                        .expect("lock")
                        .push((component.clone(), delivery.attempt, *number));
                    match (component.as_str(), delivery.attempt) {
                        ("retry", 1) => Outcome::retry("dependency down"),
                        ("later", 1) => Outcome::Retry {
                            reason: "not yet".into(),
                            after: Some(Duration::from_millis(300)),
                        },
                        ("poison", _) => Outcome::poison("cannot ever work"),
                        _ => Outcome::Done,
                    }
                })
                .collect::<Vec<_>>();
            std::future::ready(outcomes)
        }
    };
    let settings = BatchSettings {
        max_messages: 10,
        max_wait: Duration::from_millis(200),
        concurrency: 1,
    };
    let running = Running::start(
        &js,
        spec("mixed", settings, Duration::from_secs(5)),
        handler,
    );

    running.wait_count("acked", 4).await;
    running.wait_count("dead_lettered", 1).await;
    assert_eq!(running.count("retried"), 2);
    assert_eq!(dead_letters(&js).await, 1);

    let seen = seen.lock().expect("lock").clone();
    let first_batch: Vec<&str> = seen
        .iter()
        .filter(|(_, _, batch)| *batch == 1)
        .map(|(c, _, _)| c.as_str())
        .collect();
    assert_eq!(
        first_batch,
        ["ok-1", "retry", "poison", "ok-2", "later"],
        "the five messages come as one batch, in stream order"
    );
    let attempts: BTreeMap<&str, i64> = seen
        .iter()
        .map(|(c, attempt, _)| (c.as_str(), *attempt))
        .collect();
    assert_eq!(attempts["retry"], 2, "a retried message comes back once");
    assert_eq!(attempts["later"], 2);
    assert_eq!(attempts["ok-1"], 1, "an acked message is not redelivered");

    let info = consumer_info(&js, "mixed").await;
    assert_eq!(info.num_ack_pending, 0);
    assert!(info.ack_floor.stream_sequence >= last);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_sends_progress_acks_and_nothing_is_redelivered() {
    let (_server, _client, js) = bus().await;
    let components: Vec<String> = (0..30).map(|n| format!("c{n}")).collect();
    let names: Vec<&str> = components.iter().map(String::as_str).collect();
    publish_components(&js, &names).await;

    let seen = Seen::default();
    let handler = {
        let seen = seen.clone();
        move |batch: Vec<Delivery>| {
            let seen = seen.clone();
            async move {
                for delivery in &batch {
                    seen.lock()
                        .expect("lock")
                        .push((component_of(delivery), delivery.attempt, 0));
                }
                // Three ack waits: without progress acks every message of
                // this batch, and any queued behind it, would come back.
                tokio::time::sleep(Duration::from_millis(3_200)).await;
                vec![Outcome::Done; batch.len()]
            }
        }
    };
    let settings = BatchSettings {
        max_messages: 10,
        max_wait: Duration::from_millis(100),
        concurrency: 1,
    };
    let running = Running::start(&js, spec("slow", settings, Duration::from_secs(1)), handler);

    running.wait_count("acked", 30).await;
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen.len(),
        30,
        "each message handled exactly once: {seen:?}"
    );
    assert!(
        seen.iter().all(|(_, attempt, _)| *attempt == 1),
        "no message was redelivered: {seen:?}"
    );
    assert!(
        running.metrics.progress_acks("slow") > 0,
        "the slow handler's messages got progress acks"
    );
    let info = consumer_info(&js, "slow").await;
    assert_eq!(info.num_redelivered, 0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_handler_poisons_only_that_message_and_the_consumer_goes_on() {
    let (_server, _client, js) = bus().await;
    publish_components(&js, &["fine-1", "boom", "fine-2"]).await;

    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let handler = {
        let acked = acked.clone();
        move |batch: Vec<Delivery>| {
            let components: Vec<String> = batch.iter().map(component_of).collect();
            if components.iter().any(|c| c == "boom") {
                panic!("handler cannot cope with boom");
            }
            acked.lock().expect("lock").extend(components);
            std::future::ready(vec![Outcome::Done; batch.len()])
        }
    };
    let settings = BatchSettings {
        max_messages: 10,
        max_wait: Duration::from_millis(200),
        concurrency: 1,
    };
    let running = Running::start(
        &js,
        spec("panics", settings, Duration::from_secs(5)),
        handler,
    );

    running.wait_count("dead_lettered", 1).await;
    running.wait_count("acked", 2).await;
    assert!(
        running.metrics.panics("panics") >= 2,
        "whole batch, then the one message"
    );
    assert_eq!(dead_letters(&js).await, 1);

    publish_components(&js, &["after"]).await;
    running.wait_count("acked", 3).await;
    assert_eq!(
        acked.lock().expect("lock").clone(),
        BTreeSet::from(["after".to_owned(), "fine-1".to_owned(), "fine-2".to_owned()])
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_handle_every_message_once() {
    let (_server, client, js) = bus().await;
    let publisher = Publisher::new(client, 256, Duration::from_secs(5));
    let total = 2_000u64;
    let envelopes: Vec<_> = (0..total).map(|n| health(&format!("c{n}"))).collect();
    let subject = health_subject("demo", "c", "eu");
    let results = publisher
        .publish_all(envelopes.iter().map(|e| (subject.as_str(), e)))
        .await;
    assert_eq!(results.len() as u64, total);
    assert!(results.iter().all(Result::is_ok));

    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let seen = seen.clone();
        move |batch: Vec<Delivery>| {
            let seen = seen.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                seen.lock()
                    .expect("lock")
                    .extend(batch.iter().map(|d| d.stream_sequence));
                vec![Outcome::Done; batch.len()]
            }
        }
    };
    let settings = BatchSettings {
        max_messages: 100,
        max_wait: Duration::from_millis(50),
        concurrency: 4,
    };
    let running = Running::start(
        &js,
        spec("concurrent", settings, Duration::from_secs(5)),
        handler,
    );
    running.wait_count("acked", total).await;
    let mut sequences = seen.lock().expect("lock").clone();
    sequences.sort_unstable();
    sequences.dedup();
    assert_eq!(sequences.len() as u64, total);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_sharing_a_publisher_never_wait_for_each_others_places() {
    // Sixteen callers of 200 messages each share 32 places: each one holds
    // places while it waits for another, so each must read its own acks
    // meanwhile.
    let (_server, client, _js) = bus().await;
    let publisher = Publisher::new(client, 32, Duration::from_secs(5));
    let subject = health_subject("demo", "shared", "eu");
    let batches: Vec<Vec<_>> = (0..16)
        .map(|c| (0..200).map(|n| health(&format!("s{c}-{n}"))).collect())
        .collect();
    let callers = batches.iter().map(|envelopes| async {
        let results = publisher
            .publish_all(envelopes.iter().map(|e| (subject.as_str(), e)))
            .await;
        results.iter().filter(|r| r.is_ok()).count()
    });
    let stored = tokio::time::timeout(PROMPT, futures::future::join_all(callers))
        .await
        .expect("every caller finishes");
    let stored: usize = stored.into_iter().sum();
    assert_eq!(stored, 16 * 200);
}

/// Publishes `envelopes` through the pipelined publisher, resending the
/// ones whose ack failed (same id) until every one is durable; returns how
/// many were resent.
async fn publish_all_through(publisher: &Publisher, envelopes: &[Envelope<HealthResult>]) -> usize {
    let subject = health_subject("demo", "pipelined", "eu");
    let mut waiting: Vec<&Envelope<HealthResult>> = envelopes.iter().collect();
    let mut resent = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !waiting.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} messages still not durable after 60s",
            waiting.len()
        );
        let results = publisher
            .publish_all(waiting.iter().map(|e| (subject.as_str(), *e)))
            .await;
        let mut failed = Vec::new();
        for (envelope, result) in waiting.into_iter().zip(results) {
            if let Err(e) = result {
                assert!(e.is_retryable(), "{e}");
                failed.push(envelope);
            }
        }
        resent += failed.len();
        if !failed.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        waiting = failed;
    }
    resent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipelined_publisher_loses_nothing_across_a_server_restart() {
    let (mut server, client, js) = bus().await;
    let publisher = Publisher::new(client, 512, Duration::from_secs(2));
    let envelopes: Vec<Envelope<HealthResult>> = (0..20_000)
        .map(|n| health(&format!("c{}", n % 50)))
        .collect();
    let ids: BTreeSet<EventId> = envelopes.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), envelopes.len());

    let (before, during) = envelopes.split_at(10_000);
    assert_eq!(publish_all_through(&publisher, before).await, 0);

    // Kill the server with the rest in the pipeline, and start it again a
    // second later on the same store.
    tokio::task::block_in_place(|| server.stop());
    let restart = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        tokio::task::block_in_place(|| server.start_again());
        server
    });
    let resent = publish_all_through(&publisher, during).await;
    let _server = restart.await.expect("restart task");
    assert!(resent > 0, "the restart interrupted the pipeline");

    // Every id is stored exactly once: resends were deduplicated.
    let stream = wait_until("the stream after the restart", PROMPT, || async {
        let mut stream = js.get_stream(STREAM_HEALTH).await.ok()?;
        stream.info().await.ok().map(|info| info.state.messages)
    })
    .await;
    assert_eq!(
        stream,
        envelopes.len() as u64,
        "every message stored once ({resent} resent)"
    );
}
