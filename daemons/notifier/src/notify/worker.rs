//! The NOTIFY consumers: one durable consumer per channel kind and lane
//! (`notifier-{channel}-{lane}`, filter `beacon.notify.{channel}.{lane}`),
//! shared by every notifier instance.
//!
//! For each batch:
//!
//! 1. On every delivery (a crash, a retry, a replay of the same batch id by
//!    the planner), the batch's ledger (KV `ledger`,
//!    keyed by the batch's event id) says which deliveries are done; only
//!    the others are sent (one KV read per batch of up to 1,000).
//! 2. Deliveries go out up to `--send-concurrency` at once, each within
//!    its account's limits ([`super::limits`]). An urgent batch of a
//!    channel is waited for by that channel's normal batches.
//! 3. Every so often (and at the end), receipts are published to
//!    `DELIVERIES` and acknowledged, *then* the ledger is written: a crash
//!    in between resends a delivery (same idempotency key, so the same
//!    `Message-ID` or `webhook-id`) rather than losing its receipt. Sends
//!    go on while a flush is in flight (one at a time per batch).
//!    Two guards inside one process narrow that further: a batch is
//!    worked on by one task at a time (a copy redelivered while the first
//!    is still sending, after a pause longer than the ack wait, waits for
//!    it and then finds its ledger), and the keys this process delivered
//!    are remembered for a while ([`Delivered`]), so a batch retried
//!    because its ledger write failed (NATS away) does not send them again.
//!    What is left is a process killed between a send and its ledger
//!    write.
//! 4. The batch is acked when nothing is left to retry; otherwise it is
//!    nak'ed with exponential backoff and jitter (or the provider's
//!    `Retry-After`); after the last attempt what is left is given up: dead
//!    receipts, and the batch is copied to `DEADLETTER`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beacon_contract::event::{Envelope, EventId};
use beacon_contract::messages::{
    ChannelKind, DeliveryOutcome, DeliveryReceipt, EndpointState, Lane, NoticeKind, NotifyBatch,
};
use beacon_contract::names::{delivery_subject, notify_subject, STREAM_NOTIFY};
use beacon_runtime::consume::{
    run_batch_consumer, BatchSettings, ConsumerMetrics, ConsumerSpec, Delivery as Message, Outcome,
};
use beacon_runtime::retry::RetryPolicy;
use beacon_runtime::shutdown::Shutdown;
use futures::StreamExt;
use rand::Rng;

use super::{limits::Waits, Accepted, Delivery, SendError, Senders};
use crate::api::set_state;
use crate::context::Context;
use crate::index::{parse_id, Endpoint};
use crate::records::DeliveryLedger;
use crate::render::Links;

/// When a batch's receipts are published and its ledger written: after
/// this many deliveries, or this long, whichever comes first. A process
/// killed in between repeats what it delivered since the last write. SMS
/// writes far more often: a repeated text is a second message on someone's
/// phone (Twilio has no idempotency key), where a repeated email or webhook
/// carries the same key for the receiver to drop.
fn flush_policy(kind: ChannelKind) -> (usize, Duration) {
    match kind {
        ChannelKind::Sms => (8, Duration::from_millis(10)),
        _ => (128, Duration::from_millis(100)),
    }
}

/// What became of one delivery, as the ledger writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not sent yet.
    Pending,
    /// Failed, will be retried.
    Retry,
    /// The provider accepted it.
    Delivered,
    /// Given up (permanent failure, or the last attempt).
    Dead,
    /// Not sent: no such subscriber or endpoint any more.
    Skipped,
}

impl State {
    /// The ledger character.
    pub fn code(self) -> char {
        match self {
            State::Pending => '.',
            State::Retry => 'r',
            State::Delivered => 'd',
            State::Dead => 'x',
            State::Skipped => 's',
        }
    }

    /// From a ledger character (anything unknown is still to do).
    pub fn of(code: char) -> State {
        match code {
            'r' => State::Retry,
            'd' => State::Delivered,
            'x' => State::Dead,
            's' => State::Skipped,
            _ => State::Pending,
        }
    }

    /// Whether it still has to be sent.
    pub fn is_open(self) -> bool {
        matches!(self, State::Pending | State::Retry)
    }
}

/// The ledger's text for these states.
fn ledger_of(states: &[State]) -> String {
    states.iter().map(|s| s.code()).collect()
}

/// The durable consumer name of a channel and lane.
pub fn consumer_name(kind: ChannelKind, lane: Lane) -> String {
    format!("notifier-{}-{}", kind.as_str(), lane.as_str())
}

/// The consumer of a channel and lane.
pub fn spec(kind: ChannelKind, lane: Lane, ctx: &Context) -> ConsumerSpec {
    let mut spec = ConsumerSpec::new(STREAM_NOTIFY, &consumer_name(kind, lane));
    spec.filter_subjects = vec![notify_subject(kind.as_str(), lane.as_str())];
    spec.ack_wait = ctx.settings.ack_wait;
    spec.batch = BatchSettings {
        max_messages: 1,
        max_wait: Duration::from_millis(10),
        concurrency: ctx.settings.sender_batches,
    };
    spec.retry = ctx.settings.retry;
    spec
}

/// Sends the batches of one channel and lane.
#[derive(Clone)]
pub struct Worker {
    ctx: Context,
    senders: Arc<Senders>,
    kind: ChannelKind,
    lane: Lane,
    /// Urgent batches of this channel being sent right now.
    urgent: Arc<AtomicUsize>,
    /// Batches being worked on here.
    in_hand: Arc<InHand>,
    /// Keys delivered here.
    delivered: Arc<Mutex<Delivered>>,
}

struct UrgentGuard(Arc<AtomicUsize>);

impl Drop for UrgentGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Keys this process delivered, the newest [`Delivered::CAPACITY`].
#[derive(Debug, Default)]
struct Delivered {
    keys: std::collections::HashSet<String>,
    order: std::collections::VecDeque<String>,
}

impl Delivered {
    /// Keys remembered; a fan-out to millions forgets its oldest, which
    /// the ledger has long recorded.
    const CAPACITY: usize = 200_000;

    fn contains(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    fn insert(&mut self, key: String) {
        if self.keys.insert(key.clone()) {
            self.order.push_back(key);
            if self.order.len() > Self::CAPACITY {
                if let Some(old) = self.order.pop_front() {
                    self.keys.remove(&old);
                }
            }
        }
    }
}

/// Batches being worked on in this process, each with the lock its
/// task holds.
type InHand = Mutex<HashMap<EventId, Arc<tokio::sync::Mutex<()>>>>;

/// Holds a batch for one task; the last holder removes its entry.
struct Holding {
    in_hand: Arc<InHand>,
    id: EventId,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for Holding {
    fn drop(&mut self) {
        let mut in_hand = self.in_hand.lock().unwrap_or_else(|e| e.into_inner());
        // The map's and this one: nobody else waits for it.
        if Arc::strong_count(&self.lock) <= 2 {
            in_hand.remove(&self.id);
        }
    }
}

/// One delivery's end.
enum Done {
    Sent(Result<Accepted, SendError>),
    Skipped(&'static str),
}

impl Worker {
    /// Holds the notifier at level 1 (this channel's notifications are
    /// delayed) from a retryable send failure until a send succeeds.
    fn provider_answers(&self, answers: bool) {
        self.ctx.daemon.process.degradation.hold(
            self.kind.as_str(),
            beacon_contract::degradation::Level::OriginDegraded,
            !answers,
        );
    }
}

impl Worker {
    /// A worker; `urgent` is shared by the two lanes of one channel.
    pub fn new(
        ctx: Context,
        senders: Arc<Senders>,
        kind: ChannelKind,
        lane: Lane,
        urgent: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            ctx,
            senders,
            kind,
            lane,
            urgent,
            in_hand: Arc::default(),
            delivered: Arc::default(),
        }
    }

    /// Waits until no other task of this process works on batch `id`,
    /// then holds it until the returned value is dropped.
    async fn hold(&self, id: EventId) -> (Holding, tokio::sync::OwnedMutexGuard<()>) {
        let lock = {
            let mut in_hand = self.in_hand.lock().unwrap_or_else(|e| e.into_inner());
            in_hand.entry(id).or_default().clone()
        };
        let guard = lock.clone().lock_owned().await;
        (
            Holding {
                in_hand: self.in_hand.clone(),
                id,
                lock,
            },
            guard,
        )
    }

    /// Consumes until shutdown.
    pub async fn run(self, metrics: ConsumerMetrics, shutdown: Shutdown) {
        let spec = spec(self.kind, self.lane, &self.ctx);
        let js = self.ctx.daemon.js.clone();
        let shared = Arc::new(self);
        let worker = &shared;
        run_batch_consumer(js, spec, metrics, shutdown, move |messages| async move {
            let handled = messages.into_iter().map(|m| worker.handle(m));
            futures::future::join_all(handled).await
        })
        .await
    }

    async fn handle(self: &Arc<Self>, message: Message) -> Outcome {
        let envelope = match message.decode::<NotifyBatch>() {
            Ok(envelope) => envelope,
            Err(e) => return Outcome::poison(e),
        };
        let batch_id = envelope.id;
        let batch = envelope.data;
        if batch.channel != self.kind {
            return Outcome::poison(format!(
                "a {} batch on the {} subject",
                batch.channel.as_str(),
                self.kind.as_str()
            ));
        }
        let _urgent = (self.lane == Lane::Urgent).then(|| {
            self.urgent.fetch_add(1, Ordering::SeqCst);
            UrgentGuard(self.urgent.clone())
        });
        let attempt = message.attempt.max(1) as u32;
        // Declared after `holding` so it is released first.
        let (_holding, _held) = self.hold(batch_id).await;
        let ledger_key = batch_id.to_string().to_ascii_lowercase();
        let mut states = vec![State::Pending; batch.subscribers.len()];
        // Always, not only on a redelivery: a batch published again by a
        // planner replaying a send (after the bus's dedup window) arrives
        // as a first delivery of the same id, and must send only what is
        // still open.
        let mut seen_before = attempt > 1;
        match self.read_ledger(&ledger_key, states.len()).await {
            Ok(Some(stored)) => {
                seen_before = true;
                let done = stored.iter().filter(|s| !s.is_open()).count();
                self.ctx
                    .metrics
                    .ledger_hits
                    .with_label_values(&[self.kind.as_str()])
                    .inc_by(done as u64);
                states = stored;
            }
            Ok(None) => {}
            Err(e) => return Outcome::retry(e),
        }
        let Some(page) = self.ctx.pages.get(&batch.page) else {
            let reason = format!("page {} is not known (yet)", batch.page);
            return if attempt >= self.ctx.settings.max_attempts {
                Outcome::poison(reason)
            } else {
                Outcome::Retry {
                    reason,
                    after: Some(self.backoff(attempt)),
                }
            };
        };
        let mut receipts: Vec<Envelope<DeliveryReceipt>> = Vec::new();
        // Delivered by this process already: only the receipt is missing.
        // Only a batch handled before can hold them: a first delivery
        // with no ledger skips the look-up (a key per delivery).
        let mut remembered = 0u64;
        if seen_before {
            let delivered = self.delivered.lock().unwrap_or_else(|e| e.into_inner());
            for (i, state) in states.iter_mut().enumerate() {
                let key = batch.notice.key(&batch.subscribers[i], self.kind);
                if state.is_open() && delivered.contains(&key) {
                    *state = State::Delivered;
                    remembered += 1;
                    receipts.push(self.receipt(
                        &batch,
                        &batch.subscribers[i],
                        key,
                        DeliveryOutcome::Delivered,
                        attempt,
                        "delivered earlier by this process".into(),
                    ));
                }
            }
        }
        if remembered > 0 {
            self.ctx
                .metrics
                .remembered
                .with_label_values(&[self.kind.as_str()])
                .inc_by(remembered);
        }
        let todo: Vec<usize> = (0..states.len()).filter(|i| states[*i].is_open()).collect();
        let mut retry_after: Option<Duration> = None;
        let mut last_flush = Instant::now();
        let (flush_every, flush_after) = flush_policy(self.kind);
        let template = Arc::new(crate::render::Template::new(
            self.kind,
            &batch.notice,
            &batch.page,
        ));
        let batch = Arc::new(batch);
        // Each delivery is a task of its own: its connection's answers wake
        // it alone, and deliveries build their messages on every worker
        // thread rather than taking turns inside this batch's task. Tasks
        // still running when the batch is given up are aborted.
        let mut sends = futures::stream::iter(todo)
            .map(|i| {
                let (worker, page, batch, template) =
                    (self.clone(), page.clone(), batch.clone(), template.clone());
                let task = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
                    worker.deliver(&page, &batch, &template, i).await
                }));
                async move {
                    let done = task.await.unwrap_or_else(|e| {
                        tracing::error!(error = %e, "A delivery task failed.");
                        Done::Sent(Err(SendError::retry("the delivery task failed")))
                    });
                    (i, done)
                }
            })
            .buffer_unordered(self.ctx.settings.send_concurrency);
        // At most one flush is in flight, and the sends go on meanwhile: a
        // delivery holds its account's permit (and an SMTP connection) until
        // it is polled again, so waiting for the bus here would idle them.
        // Each flush carries the receipts gathered before it started and the
        // ledger as it was then, so the ledger never marks a delivery done
        // before its receipt is stored, and ledger writes stay in order.
        let mut flushes = futures::stream::FuturesUnordered::new();
        loop {
            let (i, done) = tokio::select! {
                biased;
                Some(flushed) = flushes.next(), if !flushes.is_empty() => {
                    if let Err(e) = flushed {
                        return Outcome::retry(e);
                    }
                    continue;
                }
                next = sends.next() => match next {
                    Some(next) => next,
                    None => break,
                },
            };
            let subscriber = &batch.subscribers[i];
            let key = batch.notice.key(subscriber, self.kind);
            let (state, outcome, detail) = match done {
                Done::Skipped(why) => {
                    tracing::debug!(page = %batch.page, channel = self.kind.as_str(), why, "Delivery skipped.");
                    (State::Skipped, None, String::new())
                }
                Done::Sent(Ok(accepted)) => {
                    self.provider_answers(true);
                    self.delivered
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key.clone());
                    (
                        State::Delivered,
                        Some(DeliveryOutcome::Delivered),
                        accepted.detail,
                    )
                }
                Done::Sent(Err(SendError::Retryable { detail, after })) => {
                    self.provider_answers(false);
                    if let Some(after) = after {
                        retry_after = Some(retry_after.map_or(after, |r| r.max(after)));
                    }
                    (State::Retry, Some(DeliveryOutcome::Retrying), detail)
                }
                Done::Sent(Err(SendError::Permanent { detail, endpoint })) => {
                    if let Some(to) = endpoint {
                        self.change_endpoint(&batch.page, subscriber, to).await;
                    }
                    (State::Dead, Some(DeliveryOutcome::Dead), detail)
                }
            };
            states[i] = state;
            let label = outcome.map_or("skipped", DeliveryOutcome::as_str);
            self.ctx
                .metrics
                .deliveries
                .with_label_values(&[self.kind.as_str(), label])
                .inc();
            if let Some(outcome) = outcome {
                receipts.push(self.receipt(&batch, subscriber, key, outcome, attempt, detail));
            }
            if flushes.is_empty()
                && (receipts.len() >= flush_every || last_flush.elapsed() >= flush_after)
            {
                flushes.push(self.flush(
                    &ledger_key,
                    ledger_of(&states),
                    std::mem::take(&mut receipts),
                ));
                last_flush = Instant::now();
            }
        }
        drop(sends);
        while let Some(flushed) = flushes.next().await {
            if let Err(e) = flushed {
                return Outcome::retry(e);
            }
        }
        let open: Vec<usize> = (0..states.len()).filter(|i| states[*i].is_open()).collect();
        if !open.is_empty() && attempt >= self.ctx.settings.max_attempts {
            for i in &open {
                states[*i] = State::Dead;
                let subscriber = &batch.subscribers[*i];
                let key = batch.notice.key(subscriber, self.kind);
                self.ctx
                    .metrics
                    .deliveries
                    .with_label_values(&[self.kind.as_str(), "dead"])
                    .inc();
                receipts.push(self.receipt(
                    &batch,
                    subscriber,
                    key,
                    DeliveryOutcome::Dead,
                    attempt,
                    format!("gave up after {attempt} attempts"),
                ));
            }
        }
        if let Err(e) = self.flush(&ledger_key, ledger_of(&states), receipts).await {
            return Outcome::retry(e);
        }
        if open.is_empty() {
            Outcome::Done
        } else if attempt >= self.ctx.settings.max_attempts {
            Outcome::poison(format!(
                "{} of {} deliveries given up after {attempt} attempts",
                open.len(),
                states.len()
            ))
        } else {
            let after =
                retry_after.map_or_else(|| self.backoff(attempt), |r| r.max(self.backoff(attempt)));
            Outcome::Retry {
                reason: format!("{} of {} deliveries to retry", open.len(), states.len()),
                after: Some(after),
            }
        }
    }

    /// The nak delay after failed attempt `attempt`: the policy's, plus up
    /// to a quarter more at random.
    fn backoff(&self, attempt: u32) -> Duration {
        let policy: RetryPolicy = self.ctx.settings.retry;
        let base = policy.delay(i64::from(attempt));
        base + base.mul_f64(rand::rng().random_range(0.0..0.25))
    }

    async fn read_ledger(&self, key: &str, len: usize) -> Result<Option<Vec<State>>, String> {
        let entry = self
            .ctx
            .store
            .ledger
            .get(key)
            .await
            .map_err(|e| format!("cannot read the ledger: {e}"))?;
        let Some(bytes) = entry else { return Ok(None) };
        let ledger = match Envelope::<DeliveryLedger>::decode(&bytes) {
            Ok(envelope) => envelope.data,
            Err(e) => {
                tracing::warn!(key, error = %e, "A ledger entry cannot be read; sending the batch as new.");
                return Ok(None);
            }
        };
        if ledger.states.chars().count() != len {
            tracing::warn!(
                key,
                "A ledger entry does not match its batch; sending the batch as new."
            );
            return Ok(None);
        }
        Ok(Some(ledger.states.chars().map(State::of).collect()))
    }

    /// Publishes the receipts (acked), then writes the ledger.
    async fn flush(
        &self,
        key: &str,
        ledger: String,
        receipts: Vec<Envelope<DeliveryReceipt>>,
    ) -> Result<(), String> {
        if !receipts.is_empty() {
            let subjects: Vec<String> = receipts
                .iter()
                .map(|r| delivery_subject(r.data.channel.as_str(), r.data.outcome.as_str()))
                .collect();
            let results = self
                .ctx
                .store
                .publisher()
                .publish_all(subjects.iter().map(String::as_str).zip(receipts.iter()))
                .await;
            if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                return Err(format!("cannot publish receipts: {e}"));
            }
        }
        let ledger = DeliveryLedger { states: ledger };
        let value = Envelope::new(&self.ctx.daemon.clock, &self.ctx.daemon.origin, ledger)
            .encode()
            .map_err(|e| e.to_string())?;
        self.ctx
            .store
            .ledger
            .put(key, value.into())
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot write the ledger: {e}"))
    }

    fn receipt(
        &self,
        batch: &NotifyBatch,
        subscriber: &str,
        key: String,
        outcome: DeliveryOutcome,
        attempt: u32,
        detail: String,
    ) -> Envelope<DeliveryReceipt> {
        // The same delivery's final receipt has the same id on every
        // attempt, so a repeat after a crash is dropped by the stream.
        let seed = match outcome {
            DeliveryOutcome::Retrying => format!("{key}|{}|{attempt}", outcome.as_str()),
            _ => format!("{key}|{}", outcome.as_str()),
        };
        let high = beacon_runtime::lease::fnv1a(seed.as_bytes());
        let low = beacon_runtime::lease::fnv1a(format!("{seed}|low").as_bytes());
        let random = (u128::from(high) << 64 | u128::from(low)) & ((1u128 << 80) - 1);
        let id = EventId(ulid::Ulid::from_parts(batch.notice.at_ms, random));
        Envelope::with_id(
            id,
            self.ctx.daemon.clock.now(),
            &self.ctx.daemon.origin,
            DeliveryReceipt {
                channel: self.kind,
                page: batch.page.clone(),
                subscriber: subscriber.to_owned(),
                idempotency_key: key,
                outcome,
                attempts: attempt,
                detail,
            },
        )
    }

    async fn change_endpoint(&self, page: &str, subscriber: &str, to: EndpointState) {
        let changed = set_state(
            &self.ctx,
            page,
            subscriber,
            self.kind,
            &[EndpointState::Active],
            to,
        )
        .await;
        match changed {
            Ok(true) => {
                self.ctx
                    .metrics
                    .endpoint_changes
                    .with_label_values(&[self.kind.as_str(), to.as_str()])
                    .inc();
                tracing::info!(
                    page,
                    channel = self.kind.as_str(),
                    state = to.as_str(),
                    "Endpoint changed by the provider's answer."
                );
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(page, error = %e, "Cannot change an endpoint the provider refused.")
            }
        }
    }

    /// The endpoint from the index; when the index does not have the
    /// subscriber (created on another instance a moment ago), from KV.
    async fn endpoint(&self, page: &str, id: u128, subscriber: &str) -> Option<Endpoint> {
        if let Some(endpoint) = self.ctx.subscribers.endpoint(page, id, self.kind) {
            return Some(endpoint);
        }
        let (record, _) = self
            .ctx
            .store
            .read_subscriber(page, subscriber)
            .await
            .ok()??;
        let endpoint = record.endpoint(self.kind)?;
        Some(Endpoint {
            address: endpoint.channel.address().to_owned(),
            state: endpoint.state,
            confirmation: endpoint.confirmation.clone(),
        })
    }

    async fn deliver(
        &self,
        page: &beacon_page::config::PageConfig,
        batch: &NotifyBatch,
        template: &crate::render::Template,
        index: usize,
    ) -> Done {
        let subscriber = batch.subscribers[index].as_str();
        let Some(id) = parse_id(subscriber) else {
            return Done::Skipped("not a subscriber id");
        };
        let Some(endpoint) = self.endpoint(&batch.page, id, subscriber).await else {
            return Done::Skipped("no such subscriber or endpoint");
        };
        let confirmation = batch.notice.kind == NoticeKind::Confirmation;
        let confirm = match (confirmation, endpoint.state, &endpoint.confirmation) {
            (false, EndpointState::Active, _) => None,
            (true, EndpointState::Pending, Some(c)) => {
                Some(
                    self.ctx
                        .confirm_link(&batch.page, subscriber, &c.nonce, c.expires_at_ms),
                )
            }
            _ => return Done::Skipped("the endpoint does not take this message"),
        };
        let links = Links {
            unsubscribe: self
                .ctx
                .unsubscribe_link(&batch.page, subscriber, self.kind),
            confirm,
        };
        let key = batch.notice.key(subscriber, self.kind);
        if self.lane == Lane::Normal {
            while self.urgent.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let delivery = Delivery {
            page,
            notice: &batch.notice,
            subscriber,
            address: &endpoint.address,
            key: &key,
            links: &links,
            template,
        };
        let waits = Waits::default();
        let started = Instant::now();
        let result = self.senders.send(self.kind, &delivery, &waits).await;
        let (account, destination) = waits.take();
        let kind = self.kind.as_str();
        let metrics = &self.ctx.metrics;
        metrics.send_seconds.with_label_values(&[kind]).observe(
            started
                .elapsed()
                .saturating_sub(account + destination)
                .as_secs_f64(),
        );
        if !account.is_zero() {
            metrics
                .rate_limit_wait_seconds
                .with_label_values(&[kind, "account"])
                .observe(account.as_secs_f64());
        }
        if !destination.is_zero() {
            metrics
                .rate_limit_wait_seconds
                .with_label_values(&[kind, "destination"])
                .observe(destination.as_secs_f64());
        }
        Done::Sent(result)
    }
}

/// Keeps `beacon_notifier_queue_depth` current for every channel and lane.
pub async fn watch_depth(ctx: Context, shutdown: Shutdown) {
    while !shutdown.is_cancelled() {
        if let Ok(stream) = ctx.daemon.js.get_stream(STREAM_NOTIFY).await {
            for kind in ChannelKind::ALL {
                for lane in Lane::ALL {
                    let name = consumer_name(kind, lane);
                    let consumer: Result<async_nats::jetstream::consumer::PullConsumer, _> =
                        stream.get_consumer(&name).await;
                    if let Ok(mut consumer) = consumer {
                        if let Ok(info) = consumer.info().await {
                            let depth = info.num_pending as i64 + info.num_ack_pending as i64;
                            ctx.metrics
                                .queue_depth
                                .with_label_values(&[kind.as_str(), lane.as_str()])
                                .set(depth);
                        }
                    }
                }
            }
        }
        shutdown.sleep(Duration::from_secs(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_codes_round_trip() {
        for state in [
            State::Pending,
            State::Retry,
            State::Delivered,
            State::Dead,
            State::Skipped,
        ] {
            assert_eq!(State::of(state.code()), state);
        }
        assert!(State::Retry.is_open() && State::Pending.is_open());
        assert!(!State::Delivered.is_open() && !State::Dead.is_open() && !State::Skipped.is_open());
        assert_eq!(
            consumer_name(ChannelKind::Sms, Lane::Urgent),
            "notifier-sms-urgent"
        );
    }
}
