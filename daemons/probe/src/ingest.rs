//! The push ingest endpoint: `POST /push/{page}/{component}/{check}` with
//! `Authorization: Bearer <token>` (a heartbeat may also be a `GET`, as
//! cron jobs often ping with one).
//!
//! The probe of the check's one region serves it (see
//! `beacon_page::config::checks::push`). A request is answered 2xx only
//! after its result is durable on the bus (core's pipelined publisher,
//! ack awaited); if the bus does not take it, the answer is 503 and the
//! check's state is unchanged, so the sender's retry is safe. Bad requests
//! change nothing and publish nothing:
//!
//! | request | answer |
//! |---|---|
//! | no such push check in this region | 404 |
//! | missing or wrong token | 401 |
//! | method other than POST (GET for heartbeats) | 405 |
//! | body over 64 KiB | 413 |
//! | payload that is not the check's format | 400, with the reason |
//! | bus unavailable | 503 |
//!
//! Between pushes, a timer per check (core's keyed [`Timers`]) publishes
//! the check's state again every `interval`, so the decider never calls a
//! quiet check stale; for a heartbeat, the timer firing means the ping is
//! late, which is a failure (`late`), repeated every interval until a ping
//! comes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use beacon_contract::event::Envelope;
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::messages::{CheckKind, ErrorKind, HealthResult, Observed, Outcome};
use beacon_contract::names::health_subject;
use beacon_page::config::{Check, CheckTarget, PushFormat};
use beacon_runtime::daemon::Daemon;
use beacon_runtime::publish::Publisher;
use beacon_runtime::timers::Timers;
use prometheus::IntCounterVec;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::checks::push::{parse_alertmanager, parse_signal, FiringAlerts, PushVerdict};
use crate::outbox::Outbox;

/// Largest push body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// (page, component, check).
type PushKey = (String, String, String);

/// A push check's state between requests.
#[derive(Debug, Clone, PartialEq)]
enum PushState {
    /// Heartbeats: nothing to keep but the timer.
    Heartbeat,
    /// Alertmanager: the alerts firing now.
    Alerts(FiringAlerts),
    /// JSON signal: the latest one.
    Signal,
}

struct PushEntry {
    check: Check,
    state: PushState,
    /// What was last published, re-published every interval.
    last: Option<PushVerdict>,
}

enum TimerCommand {
    Set(PushKey, Instant),
    Cancel(PushKey),
}

/// The ingest's shared state; cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

struct Inner {
    daemon: Daemon,
    region: String,
    checks: Mutex<HashMap<PushKey, PushEntry>>,
    publisher: Publisher,
    outbox: Arc<Outbox>,
    timers: mpsc::UnboundedSender<TimerCommand>,
    requests: IntCounterVec,
}

impl Ingest {
    /// Starts the ingest's timer task; serve it with [`Ingest::serve`].
    pub fn start(
        daemon: &Daemon,
        region: &str,
        outbox: Arc<Outbox>,
        requests: IntCounterVec,
    ) -> Ingest {
        let (timers, commands) = mpsc::unbounded_channel();
        let ingest = Ingest {
            inner: Arc::new(Inner {
                daemon: daemon.clone(),
                region: region.to_owned(),
                checks: Mutex::new(HashMap::new()),
                publisher: Publisher::new(daemon.client.clone(), 64, Duration::from_secs(5)),
                outbox,
                timers,
                requests,
            }),
        };
        let timer_task = ingest.clone();
        daemon
            .process
            .shutdown
            .spawn(async move { timer_task.run_timers(commands).await });
        ingest
    }

    /// Binds `addr` and serves the ingest routes until shutdown.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let router = Router::new()
            .route("/push/{page}/{component}/{check}", any(push))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(self.clone());
        beacon_runtime::telemetry::serve_router(addr, router, &self.inner.daemon.process.shutdown)
            .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PushKey, PushEntry>> {
        self.inner.checks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The push checks of `page` this region serves now (component, check):
    /// unchanged ones keep their state and timer, changed ones start over.
    pub fn set_page(&self, page: &str, checks: Vec<(String, Check)>) {
        let mut map = self.lock();
        let wanted: HashMap<PushKey, Check> = checks
            .into_iter()
            .map(|(component, check)| ((page.to_owned(), component, check.id.clone()), check))
            .collect();
        let gone: Vec<PushKey> = map
            .keys()
            .filter(|k| k.0 == page && !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            map.remove(&key);
            let _ = self.inner.timers.send(TimerCommand::Cancel(key));
        }
        for (key, check) in wanted {
            if map.get(&key).is_some_and(|e| e.check == check) {
                continue;
            }
            let CheckTarget::Push(target) = &check.target else {
                continue;
            };
            let state = match target.format {
                PushFormat::Heartbeat => PushState::Heartbeat,
                PushFormat::Alertmanager => PushState::Alerts(FiringAlerts::default()),
                PushFormat::Json => PushState::Signal,
            };
            // A heartbeat is expected within its first interval; other
            // formats have nothing to say until their first push.
            let first = Instant::now() + heartbeat_deadline(&check);
            if target.format == PushFormat::Heartbeat {
                let _ = self
                    .inner
                    .timers
                    .send(TimerCommand::Set(key.clone(), first));
            }
            map.insert(
                key,
                PushEntry {
                    check,
                    state,
                    last: None,
                },
            );
        }
    }

    /// The timer loop: lateness and re-publishing.
    async fn run_timers(&self, mut commands: mpsc::UnboundedReceiver<TimerCommand>) {
        let shutdown = self.inner.daemon.process.shutdown.clone();
        let mut timers: Timers<PushKey> = Timers::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                command = commands.recv() => match command {
                    Some(TimerCommand::Set(key, at)) => timers.schedule(key, at),
                    Some(TimerCommand::Cancel(key)) => { timers.cancel(&key); }
                    None => return,
                },
                key = timers.next_due() => {
                    if let Some((result, next)) = self.on_timer(&key) {
                        if let Some(result) = result {
                            self.inner.outbox.push(Envelope::new(&self.inner.daemon.clock, &self.inner.region, result));
                        }
                        timers.schedule(key, next);
                    }
                }
            }
        }
    }

    /// What a fired timer publishes, and when it fires next.
    fn on_timer(&self, key: &PushKey) -> Option<(Option<HealthResult>, Instant)> {
        let mut map = self.lock();
        let entry = map.get_mut(key)?;
        let interval = entry.check.interval();
        let CheckTarget::Push(target) = &entry.check.target else {
            return None;
        };
        let verdict = match target.format {
            PushFormat::Heartbeat => {
                let verdict = PushVerdict {
                    outcome: Outcome::Down,
                    error: Some(format!(
                        "heartbeat late: none within {} (expected every {})",
                        crate::checks::humanize(heartbeat_deadline(&entry.check)),
                        crate::checks::humanize(interval)
                    )),
                    error_kind: Some(ErrorKind::Late),
                };
                entry.last = Some(verdict.clone());
                Some(verdict)
            }
            PushFormat::Alertmanager | PushFormat::Json => entry.last.clone(),
        };
        let result = verdict.map(|v| self.result(key, v));
        Some((result, Instant::now() + interval))
    }

    fn result(&self, key: &PushKey, verdict: PushVerdict) -> HealthResult {
        HealthResult {
            page: key.0.clone(),
            component: key.1.clone(),
            check: key.2.clone(),
            region: self.inner.region.clone(),
            kind: CheckKind::Push,
            outcome: verdict.outcome,
            started_at_ms: wall_clock_ms(),
            latency_ms: 0,
            http_status: None,
            error: verdict.error,
            error_kind: verdict.error_kind,
            failed_condition: None,
            timings: None,
            observed: Observed::default(),
        }
    }

    /// Publishes `result` and waits until it is durable.
    async fn publish_durable(&self, result: HealthResult) -> Result<(), String> {
        let subject = health_subject(&result.page, &result.component, &result.region);
        let envelope = Envelope::new(&self.inner.daemon.clock, &self.inner.region, result);
        let pending = self
            .inner
            .publisher
            .send(&subject, &envelope)
            .await
            .map_err(|e| e.to_string())?;
        pending
            .durable()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// How long after a ping (or the start) the next one must arrive.
fn heartbeat_deadline(check: &Check) -> Duration {
    let interval = check.interval();
    let grace = match &check.target {
        CheckTarget::Push(target) => target.grace_ms.map(Duration::from_millis),
        _ => None,
    };
    interval + grace.unwrap_or(interval / 10)
}

/// SHA-256 of `token`, lowercase hex.
fn sha256_hex(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn push(
    State(ingest): State<Ingest>,
    Path((page, component, check)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = handle(&ingest, (page, component, check), &method, &headers, &body).await;
    let format_label = response.1;
    ingest
        .inner
        .requests
        .with_label_values(&[format_label, response.0.status().as_str()])
        .inc();
    response.0
}

/// Answers one push; the label is the check's format (`unknown` before it
/// is known).
async fn handle(
    ingest: &Ingest,
    key: PushKey,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> (Response, &'static str) {
    let (check, state) = {
        let map = ingest.lock();
        match map.get(&key) {
            Some(entry) => (entry.check.clone(), entry.state.clone()),
            None => {
                return (
                    answer(
                        StatusCode::NOT_FOUND,
                        &format!(
                            "no push check {}/{}/{} in region {}",
                            key.0, key.1, key.2, ingest.inner.region
                        ),
                    ),
                    "unknown",
                )
            }
        }
    };
    let CheckTarget::Push(target) = &check.target else {
        return (answer(StatusCode::NOT_FOUND, "not a push check"), "unknown");
    };
    let label = target.format.as_str();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match token {
        Some(token) if sha256_hex(token) == target.token_sha256 => {}
        _ => {
            let mut response = answer(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return (response, label);
        }
    }
    let allowed = *method == Method::POST
        || (target.format == PushFormat::Heartbeat && *method == Method::GET);
    if !allowed {
        return (
            answer(
                StatusCode::METHOD_NOT_ALLOWED,
                "use POST (or GET for a heartbeat)",
            ),
            label,
        );
    }
    let (verdict, next_state) = match (&state, target.format) {
        (_, PushFormat::Heartbeat) => (PushVerdict::up(), PushState::Heartbeat),
        (PushState::Alerts(firing), PushFormat::Alertmanager) => match parse_alertmanager(body) {
            Ok(payload) => {
                let next = firing.apply(&payload);
                (
                    next.verdict(&target.degraded_severities),
                    PushState::Alerts(next),
                )
            }
            Err(e) => return (answer(StatusCode::BAD_REQUEST, &e), label),
        },
        (_, PushFormat::Alertmanager) => {
            let firing = FiringAlerts::default();
            match parse_alertmanager(body) {
                Ok(payload) => {
                    let next = firing.apply(&payload);
                    (
                        next.verdict(&target.degraded_severities),
                        PushState::Alerts(next),
                    )
                }
                Err(e) => return (answer(StatusCode::BAD_REQUEST, &e), label),
            }
        }
        (_, PushFormat::Json) => match parse_signal(body) {
            Ok(verdict) => (verdict, PushState::Signal),
            Err(e) => return (answer(StatusCode::BAD_REQUEST, &e), label),
        },
    };
    let result = ingest.result(&key, verdict.clone());
    let outcome = result.outcome;
    if let Err(e) = ingest.publish_durable(result).await {
        tracing::warn!(page = %key.0, component = %key.1, check = %key.2, error = %e, "Push not stored; answering 503.");
        let mut response = answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "the bus did not store the result; retry",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        return (response, label);
    }
    // Durable: now the state moves on, and the next re-publication (or
    // lateness) is one interval away.
    let next_timer = match target.format {
        PushFormat::Heartbeat => heartbeat_deadline(&check),
        _ => check.interval(),
    };
    if let Some(entry) = ingest.lock().get_mut(&key) {
        if entry.check == check {
            entry.state = next_state;
            entry.last = Some(verdict);
        }
    }
    let _ = ingest
        .inner
        .timers
        .send(TimerCommand::Set(key, Instant::now() + next_timer));
    (
        (
            StatusCode::OK,
            Json(serde_json::json!({ "status": "stored", "outcome": outcome.as_str() })),
        )
            .into_response(),
        label,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_their_sha256() {
        // printf %s test | sha256sum
        assert_eq!(
            sha256_hex("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}
