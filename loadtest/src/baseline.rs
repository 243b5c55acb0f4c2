//! `bus-baseline`: what the bus itself can do, so later scenarios can say
//! how close Beacon's daemons get to it.
//!
//! One fresh stream (`BASELINE_<ulid>`, subjects `bench.<name>.>`, file
//! storage, default duplicate window) per invocation, purged before each
//! run. Each run measures, in order:
//!
//! 1. core publish: `messages` plain publishes and a flush, on a subject no
//!    stream captures: the ceiling for one connection;
//! 2. JetStream publish, async acks: `messages` publishes with `Nats-Msg-Id`
//!    and up to `max_in_flight` ack futures outstanding;
//! 3. JetStream publish, awaited acks: `messages / sync_divisor` publishes
//!    through [`beacon_runtime::publish::publish_bytes`], one ack at a time,
//!    the durable path daemons use for events;
//! 4. consume-and-ack: a durable pull consumer with explicit acks, set up
//!    like the daemons' consumers, reading and acking the messages of (2);
//!    the clock stops when the server has no ack pending.
//!
//! Every step is bounded by `--phase-timeout`; the stream is deleted at the
//! end whether or not the runs succeeded.

use std::future::{Future, IntoFuture};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, message::PublishMessage, stream};
use async_nats::{Client, Subject};
use beacon_contract::event::EventId;
use beacon_runtime::publish::publish_bytes;
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;

use crate::cli::BaselineArgs;
use crate::error::LoadError;
use crate::progress;
use crate::report::{rate, BaselineReport, Rates, Run};
use crate::server;

/// Timeout of JetStream API calls and awaited acks.
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// How often consumer info is read while waiting for the last acks.
const ACK_POLL: Duration = Duration::from_millis(5);

/// Runs the scenario and returns its report.
pub async fn run(args: &BaselineArgs) -> Result<BaselineReport, LoadError> {
    let (bench, bus, version) = Bench::create(args).await?;
    let runs = bench.all_runs().await;
    bench.delete().await;
    drop(bus);
    let runs = runs?;

    Ok(BaselineReport::new(
        version,
        bench.server_kind,
        args.messages,
        args.sync_messages(),
        args.payload_bytes,
        args.max_in_flight,
        runs,
    ))
}

/// Everything one invocation measures with.
pub(crate) struct Bench {
    pub(crate) client: Client,
    pub(crate) js: jetstream::Context,
    pub(crate) stream: String,
    subject_root: String,
    pub(crate) payload: Bytes,
    pub(crate) args: BaselineArgs,
    pub(crate) server_kind: &'static str,
}

impl Bench {
    /// Connects (or starts a private server), creates a fresh stream, and
    /// returns the bench, the bus (keep it alive while measuring) and the
    /// server's version.
    pub(crate) async fn create(
        args: &BaselineArgs,
    ) -> Result<(Bench, crate::server::Bus, String), LoadError> {
        let bus = server::open(args.nats_url.as_deref()).await?;
        let version = bus.client.server_info().version;
        progress(&format!(
            "Connected to nats-server {version} ({}).",
            bus.kind
        ));
        let js = jetstream::ContextBuilder::new()
            .timeout(API_TIMEOUT)
            .build(bus.client.clone());

        let name = format!("BASELINE_{}", EventId::new());
        let bench = Bench {
            client: bus.client.clone(),
            js: js.clone(),
            stream: name.clone(),
            subject_root: format!("bench.{name}"),
            payload: Bytes::from(vec![b'x'; args.payload_bytes]),
            args: args.clone(),
            server_kind: bus.kind,
        };
        let stream_config = stream::Config {
            name: name.clone(),
            subjects: vec![format!("{}.>", bench.subject_root)],
            storage: stream::StorageType::File,
            ..Default::default()
        };
        bounded("create stream", API_TIMEOUT, async {
            js.create_stream(stream_config)
                .await
                .map_err(|e| LoadError::bus(format!("create stream {name}"), e))
        })
        .await?;
        progress(&format!("Created stream {name}."));
        Ok((bench, bus, version))
    }

    /// Deletes the stream; a failure here only warrants a note.
    pub(crate) async fn delete(&self) {
        let name = &self.stream;
        match bounded("delete stream", API_TIMEOUT, async {
            self.js
                .delete_stream(name)
                .await
                .map_err(|e| LoadError::bus(format!("delete stream {name}"), e))
        })
        .await
        {
            Ok(_) => progress(&format!("Deleted stream {name}.")),
            Err(e) => progress(&format!("Warning: {e}")),
        }
    }

    async fn all_runs(&self) -> Result<Vec<Run>, LoadError> {
        let mut runs = Vec::new();
        for run in 1..=self.args.runs {
            runs.push(self.one_run(run).await?);
        }
        Ok(runs)
    }

    async fn one_run(&self, run: u64) -> Result<Run, LoadError> {
        let total = self.args.runs;
        self.purge().await?;
        let timeout = self.args.phase_timeout;

        let core = bounded("core publish", timeout, self.core_publish(run)).await?;
        let core = self.log(run, total, "core publish", self.args.messages, core);

        let js_async = bounded(
            "JetStream async publish",
            timeout,
            self.js_publish_async(run),
        )
        .await?;
        let js_async = self.log(
            run,
            total,
            "JetStream publish, async acks",
            self.args.messages,
            js_async,
        );

        let js_sync = bounded(
            "JetStream awaited publish",
            timeout,
            self.js_publish_sync(run),
        )
        .await?;
        let js_sync = self.log(
            run,
            total,
            "JetStream publish, awaited acks",
            self.args.sync_messages(),
            js_sync,
        );

        let consume = bounded(
            "consume and ack",
            timeout,
            self.consume_and_ack(run, "async"),
        )
        .await?;
        let consume = self.log(run, total, "consume and ack", self.args.messages, consume);

        Ok(Run {
            run,
            rates: Rates {
                core_publish_msgs_per_s: core,
                js_publish_async_msgs_per_s: js_async,
                js_publish_sync_msgs_per_s: js_sync,
                js_consume_ack_msgs_per_s: consume,
            },
        })
    }

    pub(crate) fn log(
        &self,
        run: u64,
        total: u64,
        what: &str,
        messages: u64,
        elapsed: Duration,
    ) -> f64 {
        let rate = rate(messages, elapsed);
        progress(&format!(
            "Run {run}/{total}: {what}: {messages} messages in {:.3}s, {rate:.0} msgs/s.",
            elapsed.as_secs_f64()
        ));
        rate
    }

    /// Empties the stream so every run starts from the same state.
    pub(crate) async fn purge(&self) -> Result<(), LoadError> {
        bounded("purge stream", API_TIMEOUT, async {
            let stream = self
                .js
                .get_stream(&self.stream)
                .await
                .map_err(|e| LoadError::bus("get stream", e))?;
            stream
                .purge()
                .await
                .map_err(|e| LoadError::bus("purge stream", e))?;
            Ok(())
        })
        .await
    }

    pub(crate) fn subject(&self, run: u64, part: &str) -> String {
        format!("{}.r{run}.{part}", self.subject_root)
    }

    /// (a) Plain publishes on a subject outside the stream, then a flush so
    /// the server has read them all.
    async fn core_publish(&self, run: u64) -> Result<Duration, LoadError> {
        // `bench-core.` is not under the stream's `bench.<name>.>`, so
        // nothing stores these: this is the transport alone.
        let subject = Subject::from(format!("bench-core.{}.r{run}", self.stream));
        let start = Instant::now();
        for _ in 0..self.args.messages {
            self.client
                .publish(subject.clone(), self.payload.clone())
                .await
                .map_err(|e| LoadError::bus("core publish", e))?;
        }
        self.client
            .flush()
            .await
            .map_err(|e| LoadError::bus("flush", e))?;
        Ok(start.elapsed())
    }

    /// (b) JetStream publishes with up to `max_in_flight` acks outstanding.
    pub(crate) async fn js_publish_async(&self, run: u64) -> Result<Duration, LoadError> {
        self.js_publish_async_on(run, "async").await
    }

    /// (b) under the subject part `part`.
    pub(crate) async fn js_publish_async_on(
        &self,
        run: u64,
        part: &str,
    ) -> Result<Duration, LoadError> {
        let subject = Subject::from(self.subject(run, part));
        let max_in_flight = usize::try_from(self.args.max_in_flight).unwrap_or(usize::MAX);
        let mut in_flight = FuturesUnordered::new();
        let start = Instant::now();
        for i in 0..self.args.messages {
            if in_flight.len() >= max_in_flight {
                if let Some(ack) = in_flight.next().await {
                    check_ack(ack)?;
                }
            }
            // Ids as daemons set them, so the server does its dedup work;
            // the run number keeps them unique across runs.
            let message = PublishMessage::build()
                .payload(self.payload.clone())
                .message_id(format!("r{run}-{part}-{i}"));
            let ack = self
                .js
                .send_publish(subject.clone(), message)
                .await
                .map_err(|e| LoadError::bus("JetStream publish", e))?;
            // `StreamExt` has an `into_future` too; name the trait.
            in_flight.push(IntoFuture::into_future(ack));
        }
        while let Some(ack) = in_flight.next().await {
            check_ack(ack)?;
        }
        let elapsed = start.elapsed();
        self.expect_stored(&subject, self.args.messages).await?;
        Ok(elapsed)
    }

    /// (c) JetStream publishes through the daemons' helper, one awaited ack
    /// at a time.
    async fn js_publish_sync(&self, run: u64) -> Result<Duration, LoadError> {
        let subject = self.subject(run, "sync");
        let start = Instant::now();
        for i in 0..self.args.sync_messages() {
            let stored = publish_bytes(
                &self.js,
                &subject,
                &format!("r{run}-s-{i}"),
                self.payload.clone(),
                None,
            )
            .await
            .map_err(|e| LoadError::bus("JetStream publish", e))?;
            if stored.duplicate {
                return Err(LoadError::Unexpected(format!(
                    "message r{run}-s-{i} was reported as a duplicate"
                )));
            }
        }
        Ok(start.elapsed())
    }

    /// (d) A durable pull consumer with explicit acks, as daemons opened
    /// theirs before batch consumers, reads and acks the messages of (b)
    /// (those published under `part`).
    pub(crate) async fn consume_and_ack(
        &self,
        run: u64,
        part: &str,
    ) -> Result<Duration, LoadError> {
        let stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| LoadError::bus("get stream", e))?;
        let durable = format!("consume_r{run}_{part}");
        let consumer: consumer::PullConsumer = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(durable.clone()),
                ack_policy: consumer::AckPolicy::Explicit,
                deliver_policy: consumer::DeliverPolicy::All,
                filter_subject: self.subject(run, part),
                ..Default::default()
            })
            .await
            .map_err(|e| LoadError::bus("create consumer", e))?;

        let start = Instant::now();
        let mut messages = consumer
            .stream()
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|e| LoadError::bus("open consumer", e))?;
        let mut received = 0u64;
        while received < self.args.messages {
            let message = match messages.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) => return Err(LoadError::bus("consume", e)),
                None => {
                    return Err(LoadError::Unexpected(
                        "the consumer stream ended".to_owned(),
                    ))
                }
            };
            message.ack().await.map_err(|e| LoadError::bus("ack", e))?;
            received += 1;
        }
        // Acks are fire-and-forget; the work is done when the server has
        // processed them all.
        self.client
            .flush()
            .await
            .map_err(|e| LoadError::bus("flush", e))?;
        let mut consumer = consumer;
        loop {
            let info = consumer
                .info()
                .await
                .map_err(|e| LoadError::bus("consumer info", e))?;
            if info.num_ack_pending == 0 && info.num_pending == 0 {
                break;
            }
            tokio::time::sleep(ACK_POLL).await;
        }
        let elapsed = start.elapsed();
        drop(messages);
        stream
            .delete_consumer(&durable)
            .await
            .map_err(|e| LoadError::bus("delete consumer", e))?;
        Ok(elapsed)
    }

    /// Checks the stream holds `count` messages on `subject`, so a rate is
    /// never computed over messages that were silently dropped.
    pub(crate) async fn expect_stored(
        &self,
        subject: &Subject,
        count: u64,
    ) -> Result<(), LoadError> {
        let stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| LoadError::bus("get stream", e))?;
        let info = stream
            .info_with_subjects(subject.as_str())
            .await
            .map_err(|e| LoadError::bus("stream info", e))?
            .collect::<Vec<_>>()
            .await;
        let mut stored = 0u64;
        for entry in info {
            let (_, n) = entry.map_err(|e| LoadError::bus("stream info", e))?;
            stored += n as u64;
        }
        if stored != count {
            return Err(LoadError::Unexpected(format!(
                "stream holds {stored} messages on {subject}, expected {count}"
            )));
        }
        Ok(())
    }
}

fn check_ack(
    ack: Result<jetstream::publish::PublishAck, jetstream::context::PublishError>,
) -> Result<(), LoadError> {
    let ack = ack.map_err(|e| LoadError::bus("JetStream publish ack", e))?;
    if ack.duplicate {
        return Err(LoadError::Unexpected(format!(
            "message {} in {} was reported as a duplicate",
            ack.sequence, ack.stream
        )));
    }
    Ok(())
}

/// Runs `step`, giving up after `limit`.
pub(crate) async fn bounded<T>(
    step: &str,
    limit: Duration,
    future: impl Future<Output = Result<T, LoadError>>,
) -> Result<T, LoadError> {
    tokio::time::timeout(limit, future)
        .await
        .map_err(|_| LoadError::Timeout {
            step: step.to_owned(),
            after: limit,
        })?
}
