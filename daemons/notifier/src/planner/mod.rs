//! The planner: turns incident, maintenance and status events into
//! delivery batches in `NOTIFY`. A singleton under the core lease (role
//! `notifier`): every instance creates the planner's durable consumers at
//! start, so nothing published before an instance first leads is missed,
//! but only the holder of the lease consumes and plans.
//!
//! - [`news`] (pure): which events are news, and their notices.
//! - [`plan`] (pure): who gets a send, on which endpoints, and what is held
//!   for a batching window.
//! - this module (I/O): the consumers, one engine task that owns every
//!   thread (KV `notices`), the flush and digest timers, and publishing
//!   through the core's pipelined publisher.
//!
//! A send is stored in its thread *before* its batches are published and
//! marked published after, and an event is acked only then. A crash in
//! between replays the event; the thread already has the send (found by
//! its source), so the same batches are published again with the same
//! event ids and the stream drops the copies.

pub mod news;
pub mod plan;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use beacon_contract::event::Envelope;
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::incident::Incident;
use beacon_contract::messages::{
    ChangelogEntry, ChannelKind, DigestEntry, IncidentEvent, Lane, MaintenanceEvent, Notice,
    NoticeKind, NoticeSubject, NotifyBatch, StatusChange,
};
use beacon_contract::names::{
    incident_subject, notify_subject, STREAM_CHANGELOG, STREAM_INCIDENTS, STREAM_MAINTENANCE,
    STREAM_STATUS,
};
use beacon_page::config::{ChannelProvider, PageConfig};
use beacon_runtime::consume::{
    run_consumer, ConsumerMetrics, ConsumerSpec, Delivery, HandlerError,
};
use beacon_runtime::history;
use beacon_runtime::lease::{Leadership, Lease};
use beacon_runtime::shutdown::Shutdown;
use beacon_runtime::timers::Timers;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};

use crate::context::{batch_id, Context};
use crate::index::format_id;
use crate::records::{NoticeThread, PendingFlush, SendChunks, ThreadSend};
use news::News;
use plan::{Plan, Rule};

/// Role of the planner's lease.
pub const ROLE: &str = "notifier";

/// The thread of a page's changelog digest.
pub const DIGEST_THREAD: &str = "digest";

/// Source of the send that starts a digest thread (nothing is sent).
const DIGEST_START: &str = "start";

/// Which stream an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Incidents,
    Maintenance,
    Status,
}

/// The planner's durable consumers, one per stream it reads. A brand-new
/// consumer starts with new events: a notifier deployed today does not
/// announce last year's incidents. `ack_wait` bounds how long an event
/// whose planner died waits for the next one (a long plan sends progress
/// acks meanwhile).
pub fn specs(ack_wait: Duration) -> Vec<ConsumerSpec> {
    [
        (STREAM_INCIDENTS, "notifier-incidents"),
        (STREAM_MAINTENANCE, "notifier-maintenance"),
        (STREAM_STATUS, "notifier-status"),
    ]
    .into_iter()
    .map(|(stream, durable)| {
        let mut spec = ConsumerSpec::new(stream, durable);
        spec.deliver_policy = async_nats::jetstream::consumer::DeliverPolicy::New;
        spec.ack_wait = ack_wait;
        spec.batch.max_messages = 16;
        spec
    })
    .collect()
}

fn source_of(stream: &str) -> Source {
    match stream {
        STREAM_INCIDENTS => Source::Incidents,
        STREAM_MAINTENANCE => Source::Maintenance,
        _ => Source::Status,
    }
}

/// Why an event or a timer could not be handled now.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Retry(String);

fn retry(what: &str, e: impl std::fmt::Display) -> Retry {
    Retry(format!("{what}: {e}"))
}

struct Input {
    source: Source,
    delivery: Delivery,
    reply: oneshot::Sender<Result<(), HandlerError>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TimerKey {
    Flush { key: String, after: u32 },
    Digest { page: String },
}

/// Runs the planner whenever this process holds the lease, until shutdown.
pub async fn run(
    ctx: Context,
    lease: Lease,
    mut leadership: watch::Receiver<Leadership>,
    metrics: ConsumerMetrics,
) {
    let shutdown = ctx.daemon.process.shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            led = leadership.wait_for(Leadership::is_leader) => if led.is_err() { return },
        }
        tracing::info!("Planning: this notifier holds the planner's lease.");
        let term = shutdown.child();
        let (inputs, receiver) = mpsc::channel::<Input>(16);
        let mut consumers = Vec::new();
        for spec in specs(ctx.settings.ack_wait) {
            let inputs = inputs.clone();
            let source = source_of(&spec.stream);
            consumers.push(shutdown.spawn(run_consumer(
                ctx.daemon.js.clone(),
                spec,
                metrics.clone(),
                term.clone(),
                move |delivery| {
                    let inputs = inputs.clone();
                    async move {
                        let (reply, answer) = oneshot::channel();
                        inputs
                            .send(Input {
                                source,
                                delivery,
                                reply,
                            })
                            .await
                            .map_err(|_| HandlerError::retry("the planner is stopping"))?;
                        answer
                            .await
                            .unwrap_or_else(|_| Err(HandlerError::retry("the planner stopped")))
                    }
                },
            )));
        }
        drop(inputs);
        let engine =
            shutdown.spawn(Engine::new(ctx.clone(), lease.clone()).run(receiver, term.clone()));
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = leadership.wait_for(|l| !l.is_leader()) => {
                tracing::warn!("Planner lease lost: stopping this term.");
            }
        }
        term.cancel();
        for consumer in consumers {
            let _ = consumer.await;
        }
        let _ = engine.await;
    }
}

struct Stored {
    thread: NoticeThread,
    revision: u64,
}

/// The single owner of every thread while this process leads.
struct Engine {
    ctx: Context,
    lease: Lease,
    threads: HashMap<String, Stored>,
    timers: Timers<TimerKey>,
}

impl Engine {
    fn new(ctx: Context, lease: Lease) -> Self {
        Self {
            ctx,
            lease,
            threads: HashMap::new(),
            timers: Timers::new(),
        }
    }

    async fn run(mut self, mut inputs: mpsc::Receiver<Input>, term: Shutdown) {
        // Load every thread first: a flush or a half-published send of the
        // last term is finished before anything new.
        loop {
            match self.load().await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot load the planner's threads, retrying.");
                    if !term.sleep(Duration::from_secs(1)).await {
                        return;
                    }
                }
            }
        }
        let mut digests = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = term.cancelled() => return,
                input = inputs.recv() => {
                    let Some(input) = input else { return };
                    let result = self.handle(input.source, &input.delivery).await;
                    let _ = input.reply.send(result);
                }
                key = self.timers.next_due() => {
                    if let Err(e) = self.fire(&key).await {
                        tracing::warn!(error = %e, "Planner timer failed; trying again in 5s.");
                        self.timers.schedule(key, tokio::time::Instant::now() + Duration::from_secs(5));
                    }
                }
                _ = digests.tick() => self.schedule_digests().await,
            }
        }
    }

    async fn load(&mut self) -> Result<(), Retry> {
        self.threads.clear();
        self.timers = Timers::new();
        let store = self.ctx.store.notices.clone();
        let mut keys = store
            .keys()
            .await
            .map_err(|e| retry("list KV notices", e))?;
        let mut names = Vec::new();
        while let Some(key) = keys.next().await {
            names.push(key.map_err(|e| retry("list KV notices", e))?);
        }
        for key in names {
            let Some(entry) = store
                .entry(&key)
                .await
                .map_err(|e| retry("read KV notices", e))?
            else {
                continue;
            };
            if entry.operation != kv::Operation::Put {
                continue;
            }
            match Envelope::<NoticeThread>::decode(&entry.value) {
                Ok(envelope) => {
                    self.threads.insert(
                        key.clone(),
                        Stored {
                            thread: envelope.data,
                            revision: entry.revision,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(key, error = %e, "A notice thread cannot be read; ignored.")
                }
            }
        }
        let now = wall_clock_ms();
        let keys: Vec<String> = self.threads.keys().cloned().collect();
        for key in keys {
            self.finish_unpublished(&key).await?;
            let pending = self.threads[&key].thread.pending.clone();
            for flush in pending {
                self.timers.schedule_wall(
                    TimerKey::Flush {
                        key: key.clone(),
                        after: flush.after,
                    },
                    flush.due_ms,
                    now,
                );
            }
        }
        tracing::info!(threads = self.threads.len(), "Planner threads loaded.");
        self.schedule_digests().await;
        Ok(())
    }

    async fn handle(&mut self, source: Source, delivery: &Delivery) -> Result<(), HandlerError> {
        let started = Instant::now();
        let news = match source {
            Source::Incidents => {
                let envelope = delivery.decode::<IncidentEvent>()?;
                let Some(page) = self.ctx.pages.get(&envelope.data.page) else {
                    return Ok(());
                };
                let incident = self
                    .incident(&envelope)
                    .await
                    .map_err(HandlerError::retry)?;
                // The event is in the stream (it was delivered), so an
                // incident that does not fold yet is a read that lags it
                // (a replica catching up after a cut heals): try again,
                // never drop the notice.
                let Some(incident) = incident else {
                    return Err(HandlerError::retry(
                        "the incident's events cannot be read back yet",
                    ));
                };
                let update = envelope.data.update.as_ref().map(|u| u.id.as_str());
                news::incident(
                    &page,
                    envelope.data.action,
                    update,
                    &envelope.id.to_string(),
                    &incident,
                )
                .map(|news| (page, news))
            }
            Source::Maintenance => {
                let envelope = delivery.decode::<MaintenanceEvent>()?;
                let Some(page) = self.ctx.pages.get(&envelope.data.page) else {
                    return Ok(());
                };
                news::maintenance(&page, &envelope.data, &envelope.id.to_string())
                    .map(|news| (page, news))
            }
            Source::Status => {
                let envelope = delivery.decode::<StatusChange>()?;
                let Some(page) = self.ctx.pages.get(&envelope.data.page) else {
                    return Ok(());
                };
                news::status(&page, &envelope.data, &envelope.id.to_string())
                    .map(|news| (page, news))
            }
        };
        let Some((page, news)) = news else {
            return Ok(());
        };
        let kind = news.kind;
        self.announce(&page, news)
            .await
            .map_err(HandlerError::retry)?;
        self.ctx
            .metrics
            .plan_seconds
            .with_label_values(&[kind.as_str()])
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// The incident `event` belongs to, folded from every event of its
    /// subject and `event` itself (which a read lagging the delivery may
    /// not return yet).
    async fn incident(&self, event: &Envelope<IncidentEvent>) -> Result<Option<Incident>, Retry> {
        let stored = history::read(
            &self.ctx.daemon.js,
            STREAM_INCIDENTS,
            &incident_subject(&event.data.page, &event.data.incident),
        )
        .await
        .map_err(|e| retry("read the incident", e))?;
        let revision = stored.last().map_or(0, |s| s.sequence);
        let mut events: Vec<Envelope<IncidentEvent>> = stored
            .iter()
            .filter_map(|m| Envelope::decode(&m.payload).ok())
            .collect();
        if !events.iter().any(|e| e.id == event.id) {
            events.push(event.clone());
        }
        Ok(Incident::fold(&events, revision))
    }

    /// The index the next send of `thread` gets: one more than the last,
    /// so indices never repeat even where old sends are trimmed (digests).
    fn next_index(thread: &NoticeThread) -> u32 {
        thread.sends.last().map_or(0, |s| s.index + 1)
    }

    fn thread(&mut self, page: &str, thread: &str) -> &mut Stored {
        self.threads
            .entry(format!("{page}.{thread}"))
            .or_insert_with(|| Stored {
                thread: NoticeThread {
                    page: page.to_owned(),
                    thread: thread.to_owned(),
                    sends: Vec::new(),
                    pending: Vec::new(),
                    latest: None,
                    latest_lane: None,
                },
                revision: 0,
            })
    }

    /// Reads thread `key` from KV `notices` unless it is in memory. A thread
    /// leaves memory when a write of it failed (a timeout, or someone
    /// else's write): whatever is stored is then the truth, and the next
    /// use starts from it instead of from an empty thread whose create
    /// could never succeed.
    async fn ensure_loaded(&mut self, key: &str) -> Result<(), Retry> {
        if self.threads.contains_key(key) {
            return Ok(());
        }
        let entry = self
            .ctx
            .store
            .notices
            .entry(key)
            .await
            .map_err(|e| retry("read KV notices", e))?;
        let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
            return Ok(());
        };
        let envelope = Envelope::<NoticeThread>::decode(&entry.value)
            .map_err(|e| retry("decode a notice thread", e))?;
        self.threads.insert(
            key.to_owned(),
            Stored {
                thread: envelope.data,
                revision: entry.revision,
            },
        );
        Ok(())
    }

    /// Plans and publishes a send for `news`, unless its thread already
    /// has one from the same source (a replay), which is then only
    /// published if it was not yet.
    async fn announce(&mut self, page: &PageConfig, news: News) -> Result<(), Retry> {
        let key = format!("{}.{}", page.id, news.thread);
        self.ensure_loaded(&key).await?;
        let stored = self.thread(&page.id, &news.thread);
        if stored.thread.sends.iter().any(|s| s.source == news.source) {
            return self.finish_unpublished(&key).await;
        }
        let window = if news.windowed {
            page.notifications.window_ms
        } else {
            0
        };
        let now = wall_clock_ms();
        let index = Self::next_index(&stored.thread);
        let lane = plan::lane_of(news.kind);
        let notice = Notice {
            id: format!("{}.{index}", news.thread),
            kind: news.kind,
            page_name: page.name.clone(),
            page_url: page.url.clone(),
            subject: news.subject,
            at_ms: now,
            updates: 1,
        };
        let sends = stored.thread.sends.clone();
        let planned = self.plan(page, &sends, now, &news.components, None, window, &notice);
        let stored = self.thread(&page.id, &news.thread);
        for after in &planned.held {
            let due = stored.thread.sends[*after as usize].at_ms + window;
            match stored.thread.pending.iter_mut().find(|p| p.after == *after) {
                Some(pending) => {
                    for c in &news.components {
                        if !pending.components.contains(c) {
                            pending.components.push(c.clone());
                        }
                    }
                }
                None => stored.thread.pending.push(PendingFlush {
                    after: *after,
                    due_ms: due,
                    components: news.components.clone(),
                }),
            }
        }
        if !planned.held.is_empty() {
            self.ctx
                .metrics
                .held
                .with_label_values(&[news.kind.as_str()])
                .inc();
        }
        let chunks = self.chunks(&planned);
        let stored = self.thread(&page.id, &news.thread);
        stored.thread.sends.push(ThreadSend {
            index,
            at_ms: now,
            source: news.source.clone(),
            components: news.components.clone(),
            after: None,
            notice: notice.id.clone(),
            chunks: chunks.clone(),
            published: false,
        });
        stored.thread.latest = Some(notice.clone());
        stored.thread.latest_lane = Some(lane);
        let pending = stored.thread.pending.clone();
        self.save(&key).await?;
        self.publish(page, &notice, lane, &planned, &chunks).await?;
        self.mark_published(&key, index).await?;
        let now = wall_clock_ms();
        for flush in pending {
            self.timers.schedule_wall(
                TimerKey::Flush {
                    key: key.clone(),
                    after: flush.after,
                },
                flush.due_ms,
                now,
            );
        }
        tracing::info!(page = %page.id, thread = %news.thread, kind = news.kind.as_str(), recipients = planned.recipients,
            deliveries = planned.deliveries(), held = planned.held.len(), "Send planned.");
        Ok(())
    }

    /// Plans a rule after `sends` over the page's subscribers.
    #[allow(clippy::too_many_arguments)]
    fn plan(
        &self,
        page: &PageConfig,
        sends: &[ThreadSend],
        at_ms: u64,
        components: &[String],
        after: Option<u32>,
        window: u64,
        notice: &Notice,
    ) -> Plan {
        let subscribers = &self.ctx.subscribers;
        let numbers: Vec<Vec<u16>> = sends
            .iter()
            .map(|s| subscribers.numbers(&page.id, &s.components))
            .collect();
        let rules: Vec<Rule<'_>> = sends
            .iter()
            .zip(&numbers)
            .map(|(s, n)| Rule {
                at_ms: s.at_ms,
                components: n,
                after: s.after,
            })
            .collect();
        let sms_ok =
            plan::sms_impact(&notice.subject).is_some_and(|i| page.notifications.sms_allows(i));
        let allowed =
            |kind: ChannelKind| offers(page, kind) && (kind != ChannelKind::Sms || sms_ok);
        let digest = notice.kind == NoticeKind::Digest;
        subscribers.scan(&page.id, components, |members, numbers| {
            if digest {
                plan::plan_digest(members, offers(page, ChannelKind::Email))
            } else {
                let rule = Rule {
                    at_ms,
                    components: numbers,
                    after,
                };
                plan::plan(members, &rules, &rule, window, &allowed)
            }
        })
    }

    fn chunks(&self, planned: &Plan) -> Vec<SendChunks> {
        planned
            .by_channel
            .iter()
            .map(|(channel, ids)| SendChunks {
                channel: *channel,
                count: plan::chunk_count(ids.len(), self.ctx.settings.notify_batch),
            })
            .collect()
    }

    /// Publishes the batches of a planned send: email first, then
    /// webhooks, Slack and Teams, then SMS.
    async fn publish(
        &self,
        page: &PageConfig,
        notice: &Notice,
        lane: Lane,
        planned: &Plan,
        chunks: &[SendChunks],
    ) -> Result<(), Retry> {
        for kind in ChannelKind::ALL {
            let Some(ids) = planned.by_channel.get(&kind) else {
                continue;
            };
            let mut count = 1;
            for c in chunks {
                if c.channel == kind {
                    count = c.count.max(1);
                }
            }
            let mut groups: Vec<Vec<String>> = vec![Vec::new(); count as usize];
            for id in ids {
                groups[plan::chunk_of(*id, &notice.id, count) as usize].push(format_id(*id));
            }
            let subject = notify_subject(kind.as_str(), lane.as_str());
            let envelopes: Vec<Envelope<NotifyBatch>> = groups
                .into_iter()
                .enumerate()
                .filter(|(_, group)| !group.is_empty())
                .map(|(chunk, subscribers)| {
                    Envelope::with_id(
                        batch_id(notice, kind, lane, chunk as u32),
                        self.ctx.daemon.clock.now(),
                        &self.ctx.daemon.origin,
                        NotifyBatch {
                            channel: kind,
                            page: page.id.clone(),
                            lane,
                            notice: notice.clone(),
                            subscribers,
                        },
                    )
                })
                .collect();
            let items: Vec<(&str, &Envelope<NotifyBatch>)> =
                envelopes.iter().map(|e| (subject.as_str(), e)).collect();
            let results = self.ctx.store.publisher().publish_all(items).await;
            for result in results {
                result.map_err(|e| retry("publish a delivery batch", e))?;
            }
            self.ctx
                .metrics
                .planned
                .with_label_values(&[kind.as_str(), lane.as_str()])
                .inc_by(ids.len() as u64);
        }
        Ok(())
    }

    /// Stores a thread, if this process still leads.
    async fn save(&mut self, key: &str) -> Result<(), Retry> {
        self.lease
            .check()
            .await
            .map_err(|e| retry("check the planner's lease", e))?;
        let Some(stored) = self.threads.get_mut(key) else {
            return Ok(());
        };
        let value = Envelope::new(
            &self.ctx.daemon.clock,
            &self.ctx.daemon.origin,
            stored.thread.clone(),
        )
        .encode()
        .map_err(|e| retry("encode a thread", e))?;
        let store = &self.ctx.store.notices;
        let written = if stored.revision == 0 {
            store
                .create(key, value.into())
                .await
                .map_err(|e| e.to_string())
        } else {
            store
                .update(key, value.into(), stored.revision)
                .await
                .map_err(|e| e.to_string())
        };
        match written {
            Ok(revision) => {
                stored.revision = revision;
                Ok(())
            }
            Err(e) => {
                // Someone else wrote it (a deposed leader), or the write's
                // fate is unknown (a timeout): forget it, so the next use
                // reads what is stored ([`Engine::ensure_loaded`]).
                self.threads.remove(key);
                Err(Retry(format!("cannot store thread {key}: {e}")))
            }
        }
    }

    async fn mark_published(&mut self, key: &str, index: u32) -> Result<(), Retry> {
        self.ensure_loaded(key).await?;
        if let Some(stored) = self.threads.get_mut(key) {
            if let Some(send) = stored.thread.sends.iter_mut().find(|s| s.index == index) {
                send.published = true;
            }
        }
        self.save(key).await
    }

    /// Publishes again every send of a thread that was stored but not
    /// marked published (its publish failed, or the process stopped in
    /// between), oldest first: a later send being published says nothing
    /// of an earlier one.
    async fn finish_unpublished(&mut self, key: &str) -> Result<(), Retry> {
        self.ensure_loaded(key).await?;
        loop {
            let Some(stored) = self.threads.get(key) else {
                return Ok(());
            };
            let Some(position) = stored.thread.sends.iter().position(|s| !s.published) else {
                return Ok(());
            };
            self.finish_send(key, position).await?;
        }
    }

    /// Publishes the send at `position` of thread `key` again, with the
    /// same notice id and batch ids as the first time, and marks it.
    async fn finish_send(&mut self, key: &str, position: usize) -> Result<(), Retry> {
        let Some(stored) = self.threads.get(key) else {
            return Ok(());
        };
        let thread = &stored.thread;
        let send = thread.sends[position].clone();
        let (Some(latest), Some(page)) = (thread.latest.clone(), self.ctx.pages.get(&thread.page))
        else {
            return self.mark_published(key, send.index).await;
        };
        // The notice's time is part of its batches' ids: the send's own,
        // not the thread's latest, so a replay has the first try's ids.
        let notice = Notice {
            id: send.notice.clone(),
            at_ms: send.at_ms,
            ..latest
        };
        let lane = thread.latest_lane.unwrap_or(Lane::Normal);
        let window = if matches!(
            notice.subject,
            NoticeSubject::Maintenance { .. } | NoticeSubject::Digest { .. }
        ) {
            0
        } else {
            page.notifications.window_ms
        };
        let earlier = thread.sends[..position].to_vec();
        let nothing_to_say =
            matches!(&notice.subject, NoticeSubject::Digest { entries } if entries.is_empty());
        let planned = if nothing_to_say {
            Plan::default()
        } else {
            self.plan(
                &page,
                &earlier,
                send.at_ms,
                &send.components,
                send.after,
                window,
                &notice,
            )
        };
        tracing::info!(
            key,
            index = send.index,
            "Publishing a send that was stored but not published."
        );
        self.publish(&page, &notice, lane, &planned, &send.chunks)
            .await?;
        self.mark_published(key, send.index).await
    }

    async fn fire(&mut self, key: &TimerKey) -> Result<(), Retry> {
        match key {
            TimerKey::Flush { key, after } => self.flush(key, *after).await,
            TimerKey::Digest { page } => self.digest(page).await,
        }
    }

    /// Closes a batching window: the newest state to those whose last
    /// message was send `after`.
    async fn flush(&mut self, key: &str, after: u32) -> Result<(), Retry> {
        // A flush stored by an earlier try whose publish failed is no
        // longer pending: publish it before anything else.
        self.finish_unpublished(key).await?;
        let Some(stored) = self.threads.get(key) else {
            return Ok(());
        };
        let thread = &stored.thread;
        let Some(pending) = thread.pending.iter().find(|p| p.after == after).cloned() else {
            return Ok(());
        };
        let (Some(latest), Some(page)) = (thread.latest.clone(), self.ctx.pages.get(&thread.page))
        else {
            if let Some(stored) = self.threads.get_mut(key) {
                stored.thread.pending.retain(|p| p.after != after);
            }
            return self.save(key).await;
        };
        let index = Self::next_index(thread);
        let held = thread
            .sends
            .iter()
            .filter(|s| s.index > after && s.after.is_none())
            .count() as u32;
        let now = wall_clock_ms();
        let notice = Notice {
            id: format!("{}.{index}", thread.thread),
            at_ms: now,
            updates: held.max(1),
            ..latest
        };
        let lane = thread.latest_lane.unwrap_or(Lane::Normal);
        let planned = self.plan(
            &page,
            &thread.sends.clone(),
            now,
            &pending.components,
            Some(after),
            page.notifications.window_ms,
            &notice,
        );
        let chunks = self.chunks(&planned);
        if let Some(stored) = self.threads.get_mut(key) {
            stored.thread.pending.retain(|p| p.after != after);
            stored.thread.sends.push(ThreadSend {
                index,
                at_ms: now,
                source: format!("flush-{after}"),
                components: pending.components.clone(),
                after: Some(after),
                notice: notice.id.clone(),
                chunks: chunks.clone(),
                published: false,
            });
        }
        self.save(key).await?;
        self.publish(&page, &notice, lane, &planned, &chunks)
            .await?;
        self.mark_published(key, index).await?;
        tracing::info!(
            key,
            after,
            recipients = planned.recipients,
            "Batching window closed; newest state sent."
        );
        Ok(())
    }

    /// Makes sure every page with email has a digest thread and its timer.
    async fn schedule_digests(&mut self) {
        let now = wall_clock_ms();
        for page in self.ctx.pages.all() {
            if !offers(&page, ChannelKind::Email) {
                continue;
            }
            let key = format!("{}.{DIGEST_THREAD}", page.id);
            if let Err(e) = self.ensure_loaded(&key).await {
                tracing::debug!(error = %e, "Digest thread not read yet.");
                continue;
            }
            if !self.threads.contains_key(&key) {
                // The first digest comes one period after the planner first
                // saw the page.
                let stored = self.thread(&page.id, DIGEST_THREAD);
                stored.thread.sends.push(ThreadSend {
                    index: 0,
                    at_ms: now,
                    source: DIGEST_START.into(),
                    components: vec![],
                    after: None,
                    notice: format!("{DIGEST_THREAD}.0"),
                    chunks: vec![],
                    published: true,
                });
                if let Err(e) = self.save(&key).await {
                    tracing::debug!(error = %e, "Digest thread not stored yet.");
                    continue;
                }
            }
            let last = self.threads[&key]
                .thread
                .sends
                .last()
                .map_or(now, |s| s.at_ms);
            let due = last + page.notifications.digest_every_ms;
            self.timers.schedule_wall(
                TimerKey::Digest {
                    page: page.id.clone(),
                },
                due,
                now,
            );
        }
    }

    /// Sends the changelog entries published since the last digest.
    async fn digest(&mut self, page_id: &str) -> Result<(), Retry> {
        let Some(page) = self.ctx.pages.get(page_id) else {
            return Ok(());
        };
        let key = format!("{page_id}.{DIGEST_THREAD}");
        // A digest stored by an earlier try whose publish failed is sent
        // first, with its own entries, before the next is considered.
        self.finish_unpublished(&key).await?;
        let now = wall_clock_ms();
        let every = page.notifications.digest_every_ms;
        let Some(last) = self
            .threads
            .get(&key)
            .and_then(|s| s.thread.sends.last())
            .cloned()
        else {
            return Ok(());
        };
        if now < last.at_ms + every {
            // Rescheduled (the period changed): not due yet.
            self.timers.schedule_wall(
                TimerKey::Digest {
                    page: page_id.to_owned(),
                },
                last.at_ms + every,
                now,
            );
            return Ok(());
        }
        // The first digest also covers the period before the planner first
        // saw the page.
        let since = if last.source == DIGEST_START {
            last.at_ms.saturating_sub(every)
        } else {
            last.at_ms
        };
        let entries = self.changelog(page_id, since, now).await?;
        let index = Self::next_index(&self.thread(page_id, DIGEST_THREAD).thread);
        let notice = Notice {
            // Sends are trimmed, so the index repeats: the time does not.
            id: format!("{DIGEST_THREAD}.{now}"),
            kind: NoticeKind::Digest,
            page_name: page.name.clone(),
            page_url: page.url.clone(),
            subject: NoticeSubject::Digest {
                entries: entries.clone(),
            },
            at_ms: now,
            updates: entries.len() as u32,
        };
        let planned = if entries.is_empty() {
            Plan::default()
        } else {
            self.plan(&page, &[], now, &[], None, 0, &notice)
        };
        let chunks = self.chunks(&planned);
        let stored = self.thread(page_id, DIGEST_THREAD);
        stored.thread.sends.push(ThreadSend {
            index,
            at_ms: now,
            source: format!("digest-{now}"),
            components: vec![],
            after: None,
            notice: notice.id.clone(),
            chunks: chunks.clone(),
            published: false,
        });
        // A digest thread keeps only its recent sends: nothing is replayed
        // over them.
        if stored.thread.sends.len() > 8 {
            let drop = stored.thread.sends.len() - 8;
            stored.thread.sends.drain(..drop);
        }
        stored.thread.latest = Some(notice.clone());
        stored.thread.latest_lane = Some(Lane::Normal);
        self.save(&key).await?;
        self.publish(&page, &notice, Lane::Normal, &planned, &chunks)
            .await?;
        self.mark_published(&key, index).await?;
        self.timers.schedule_wall(
            TimerKey::Digest {
                page: page_id.to_owned(),
            },
            now + page.notifications.digest_every_ms,
            now,
        );
        tracing::info!(
            page = page_id,
            entries = entries.len(),
            recipients = planned.recipients,
            "Changelog digest sent."
        );
        Ok(())
    }

    /// Changelog entries of the page published in `(since, until]` and not
    /// withdrawn, oldest first.
    async fn changelog(
        &self,
        page: &str,
        since: u64,
        until: u64,
    ) -> Result<Vec<DigestEntry>, Retry> {
        let stored = history::read(
            &self.ctx.daemon.js,
            STREAM_CHANGELOG,
            &beacon_contract::names::page_changelog_filter(page),
        )
        .await
        .map_err(|e| retry("read the changelog", e))?;
        let mut latest: HashMap<String, Envelope<ChangelogEntry>> = HashMap::new();
        for message in &stored {
            let Ok(envelope) = Envelope::<ChangelogEntry>::decode(&message.payload) else {
                continue;
            };
            let newer = latest
                .get(&envelope.data.entry)
                .is_none_or(|e| (envelope.hlc, envelope.id) > (e.hlc, e.id));
            if newer {
                latest.insert(envelope.data.entry.clone(), envelope);
            }
        }
        // An entry counts from its publication date (an edit does not
        // announce it again; one dated in the future waits for its day),
        // or from its first event where it has none.
        let mut entries: Vec<DigestEntry> = latest
            .into_values()
            .filter_map(|e| {
                let at_ms = if e.data.published_at_ms > 0 {
                    e.data.published_at_ms
                } else {
                    e.hlc.wall_ms
                };
                (!e.data.withdrawn && at_ms > since && at_ms <= until).then_some(DigestEntry {
                    entry: e.data.entry,
                    title: e.data.title,
                    body: e.data.body_markdown,
                    category: e.data.category,
                    at_ms,
                })
            })
            .collect();
        entries.sort_by_key(|e| e.at_ms);
        Ok(entries)
    }
}

/// Whether the page offers channel `kind`.
pub fn offers(page: &PageConfig, kind: ChannelKind) -> bool {
    page.channels.iter().any(|c| {
        matches!(
            (&c.provider, kind),
            (ChannelProvider::Email { .. }, ChannelKind::Email)
                | (ChannelProvider::Sms { .. }, ChannelKind::Sms)
                | (ChannelProvider::Webhook { .. }, ChannelKind::Webhook)
                | (ChannelProvider::Slack, ChannelKind::Slack)
                | (ChannelProvider::Teams, ChannelKind::Teams)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(index: u32) -> ThreadSend {
        ThreadSend {
            index,
            at_ms: u64::from(index),
            source: format!("digest-{index}"),
            components: vec![],
            after: None,
            notice: format!("{DIGEST_THREAD}.{index}"),
            chunks: vec![],
            published: true,
        }
    }

    #[test]
    fn indices_never_repeat_once_old_sends_are_trimmed() {
        let mut thread = NoticeThread {
            page: "p".into(),
            thread: DIGEST_THREAD.into(),
            sends: Vec::new(),
            pending: Vec::new(),
            latest: None,
            latest_lane: None,
        };
        assert_eq!(Engine::next_index(&thread), 0);
        // A digest thread keeps its last eight sends: indices 4 to 11.
        thread.sends = (4..12).map(send).collect();
        assert_eq!(Engine::next_index(&thread), 12, "not the thread's length");
    }
}
