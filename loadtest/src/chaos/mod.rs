//! `chaos`: the whole stack under a workload while a seeded schedule of
//! faults strikes it, then a check of every invariant Beacon promises.
//!
//! - **Stack** ([`stack`]): nats-server, clickhouse-server, decider,
//!   notifier, recorder and publisher as real processes; every daemon
//!   reaches NATS (and the recorder ClickHouse) through its own fault proxy.
//! - **Workload** (here): health results for six components in two
//!   regions every second, as probes would send them (four components flip
//!   between up and down); operator incidents through the decider's API,
//!   opened, updated and resolved, the first and about one in three on
//!   component `core`, which the big group of subscribers follows (the
//!   fan-out), the rest on `side`, which only a small group follows;
//!   maintenance windows scheduled a day ahead. Every operator write
//!   carries an idempotency key and is retried until it is answered.
//! - **Faults** ([`plan`]): `kill -9` and restart of any daemon, SIGSTOP
//!   and SIGCONT, cut and partitioned connections through the proxies, NATS
//!   and ClickHouse killed and started again; drawn from `--seed`.
//! - **Check** ([`check`]): once the faults are over and the stack has
//!   caught up (or `--settle` ran out), the streams, KV, ClickHouse and the
//!   receivers ([`receivers`]) are read and every invariant judged.
//!
//! The report lists faults by kind, every invariant held or broken with
//! examples, and duplicate deliveries per channel. A broken invariant
//! exits 3 (the report is still printed); a plan that cannot run exits 64.

pub mod check;
pub mod plan;
pub mod receivers;
pub mod stack;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use beacon_contract::api::{
    self, ApiReply, ChangeIncidentRequest, CreateIncidentRequest, Endpoint,
    ScheduleMaintenanceRequest,
};
use beacon_contract::event::Envelope;
use beacon_contract::hlc::{wall_clock_ms, HlcClock};
use beacon_contract::incident::Incident;
use beacon_contract::messages::{
    AffectedComponent, ComponentStatus, DedupMode, EndpointState, HealthResult, Impact,
    IncidentEvent, IncidentState, MaintenanceEvent, Outcome, StatusChange, StatusRecord,
    Subscriber, SubscriberChannel, SubscriberEndpoint,
};
use beacon_contract::names::{
    health_subject, status_key, ALL_INCIDENTS, ALL_MAINTENANCE, ALL_STATUS, KV_CONFIG, KV_STATUS,
    STREAM_DEADLETTER, STREAM_DELIVERIES, STREAM_HEALTH, STREAM_INCIDENTS, STREAM_MAINTENANCE,
    STREAM_STATUS,
};
use beacon_contract::topology::{ensure, Topology};
use beacon_runtime::connect::{connect_once, NatsArgs};
use beacon_runtime::history;
use beacon_runtime::publish::{publish, Publisher};
use serde::Serialize;

use crate::cli::ChaosArgs;
use crate::error::LoadError;
use crate::progress;
use check::{ChannelDuplicates, Expected, Follower, StatusEvent, Verdict};
use plan::{Action, FaultKind, Reach, Step, CORE, FLIPPING, SIDE};
use receivers::Receivers;
use stack::Stack;

/// The page under test.
const PAGE: &str = "chaos";
/// The probe regions the workload speaks for.
const REGIONS: [&str; 2] = ["eu", "us"];
/// Environment variables holding the channel secrets the page names.
const WEBHOOK_ENV: &str = "BEACON_CHAOS_WEBHOOK_SECRET";
const TWILIO_ENV: &str = "BEACON_CHAOS_TWILIO";
/// Channel of subscriber `n`: spread evenly over the five kinds.
const CHANNELS: [&str; 5] = ["email", "webhook", "slack", "teams", "sms"];
/// How long an operator write is retried with its key. Under the bus's
/// two-minute dedup window, so a retry can never make a second write.
const WRITE_RETRY: Duration = Duration::from_secs(90);
/// How long one API request waits for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one health result waits for its ack.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// What the workload did, in figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkloadFigures {
    /// Health flips.
    pub flips: u64,
    /// Health results the bus acknowledged.
    pub health_results_acked: u64,
    /// Health results not acknowledged (the bus was away); a probe's
    /// outbox would send them again, the workload sends fresh ones.
    pub health_results_unacked: u64,
    /// Operator writes answered with success.
    pub operator_writes_acked: u64,
    /// Operator writes never answered within the retry time.
    pub operator_writes_unanswered: u64,
    /// Operator writes retried at least once (same key).
    pub operator_writes_retried: u64,
    /// Incidents opened.
    pub incidents: u64,
    /// Of them, reaching the big group.
    pub fan_outs: u64,
    /// Maintenance windows scheduled.
    pub maintenance_windows: u64,
    /// Deliveries the acknowledged writes call for.
    pub deliveries_due: u64,
    /// Distinct deliveries received.
    pub deliveries_received: u64,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    /// Always `chaos`.
    pub scenario: &'static str,
    /// The seed.
    pub seed: u64,
    /// Faults and workload, seconds.
    pub duration_seconds: u64,
    /// From the end of the run until the stack had caught up, seconds.
    pub settle_seconds: f64,
    /// Server version.
    pub nats_server_version: String,
    /// Subscribers in all.
    pub subscribers: u64,
    /// Of them, following `core` (each fan-out reaches them all).
    pub big_group: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Every fault: when, what, whom, how long.
    pub fault_log: Vec<String>,
    /// What the workload did.
    pub workload: WorkloadFigures,
    /// Duplicate deliveries per channel (each a repeat of one key).
    pub duplicates: BTreeMap<String, ChannelDuplicates>,
    /// Repeats by the fault that struck last before each arrived
    /// (`kill notifier`, `nats-restart nats`, …), per channel: where the
    /// duplicates come from.
    pub duplicates_after: BTreeMap<String, BTreeMap<String, u64>>,
    /// Every invariant.
    pub invariants: Vec<Verdict>,
    /// Invariants broken.
    pub broken: u64,
}

/// One incident the workload opened, and what the decider acknowledged.
#[derive(Debug, Clone)]
struct IncidentLog {
    reach: Reach,
    id: Option<String>,
    /// Notifying writes acknowledged (open, update, resolve).
    acked: u32,
    /// Notifying writes never answered.
    unanswered: u32,
    /// Bodies of acknowledged updates, each must be in its timeline.
    bodies: Vec<String>,
    resolved: bool,
}

/// Everything the workload did, shared by its tasks.
#[derive(Debug, Default)]
struct Ledger {
    down: [bool; FLIPPING.len()],
    flips: u64,
    health_acked: Vec<String>,
    health_unacked: u64,
    writes_acked: u64,
    writes_unanswered: u64,
    writes_retried: u64,
    incidents: BTreeMap<usize, IncidentLog>,
    maintenance: BTreeMap<usize, Option<String>>,
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Ledger>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Ledger> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn page_text(receivers: &Receivers) -> String {
    let high =
        "rate_per_second = 1000000\nburst = 1000000\ndestination_rate_per_second = 1000000\n";
    let mut text = format!(
        "[page]\nid = \"{PAGE}\"\nname = \"Chaos\"\nurl = \"https://status.example.com\"\n\
         [defaults]\nregions = [\"eu\", \"us\"]\ninterval = \"1s\"\ntimeout = \"1s\"\n\
         failure_threshold = 2\nrecovery_threshold = 2\nflap_transitions = 1000\nflap_window = \"10s\"\n\
         [notifications]\nwindow = \"0s\"\nsms_impacts = [\"major\", \"critical\", \"maintenance\"]\n"
    );
    for component in [CORE, SIDE].into_iter().chain(FLIPPING) {
        text.push_str(&format!(
            "[[components]]\nid = \"{component}\"\nname = \"{component}\"\n\
             [[components.checks]]\ntype = \"http\"\nurl = \"http://127.0.0.1:9/\"\n"
        ));
    }
    text.push_str(&format!(
        "[[channels]]\nid = \"mail\"\ntype = \"email\"\nfrom = \"status@example.com\"\nendpoint = \"{}\"\ntls = \"none\"\nconcurrency = 32\n{high}\
         [[channels]]\nid = \"hooks\"\ntype = \"webhook\"\nsecret_env = \"{WEBHOOK_ENV}\"\nconcurrency = 128\n{high}\
         [[channels]]\nid = \"slack\"\ntype = \"slack\"\nconcurrency = 128\n{high}\
         [[channels]]\nid = \"teams\"\ntype = \"teams\"\nconcurrency = 128\n{high}\
         [[channels]]\nid = \"sms\"\ntype = \"sms\"\nfrom = \"+15550000001\"\nendpoint = \"http://{}\"\nsecret_env = \"{TWILIO_ENV}\"\nconcurrency = 128\n{high}",
        receivers.smtp, receivers.http
    ));
    text
}

/// Writes the page config and the subscribers straight into KV, as an
/// apply and an import would leave them. Returns the followers.
async fn seed_page(
    js: &jetstream::Context,
    client: &async_nats::Client,
    receivers: &Receivers,
    big: u64,
    few: u64,
) -> Result<Vec<Follower>, LoadError> {
    let page = beacon_page::config::load(&page_text(receivers))
        .map_err(|e| LoadError::Unexpected(format!("the chaos page: {e}")))?;
    let clock = HlcClock::new();
    let config = js
        .get_key_value(KV_CONFIG)
        .await
        .map_err(|e| LoadError::bus("open KV config", e))?;
    let value = Envelope::new(&clock, PAGE, page)
        .encode()
        .map_err(|e| LoadError::Report(e.to_string()))?;
    config
        .put(PAGE, value.into())
        .await
        .map_err(|e| LoadError::bus("store the page", e))?;

    progress(&format!("Writing {} subscribers.", big + few));
    let publisher = Publisher::new(client.clone(), 2048, Duration::from_secs(30));
    let mut followers = Vec::with_capacity((big + few) as usize);
    let mut records = Vec::new();
    for n in 0..big + few {
        let channel = CHANNELS[(n % CHANNELS.len() as u64) as usize];
        // The big group follows core; the small one everything, or side.
        let components = if n < big {
            vec![CORE.to_owned()]
        } else if n % 2 == 0 {
            vec![]
        } else {
            vec![SIDE.to_owned()]
        };
        let follower = Follower {
            id: ulid::Ulid::new().to_string().to_ascii_lowercase(),
            components,
            channel,
        };
        let envelope = Envelope::new(&clock, PAGE, subscriber_record(&follower, n, receivers));
        let payload: bytes::Bytes = envelope
            .encode()
            .map_err(|e| LoadError::Report(e.to_string()))?
            .into();
        records.push((
            format!("$KV.subscribers.{PAGE}.{}", follower.id),
            envelope.id.to_string(),
            payload,
        ));
        followers.push(follower);
        if records.len() == 20_000 || n + 1 == big + few {
            let results = publisher
                .publish_all_bytes(
                    records
                        .iter()
                        .map(|(s, i, p)| (s.as_str(), i.clone(), p.clone())),
                )
                .await;
            if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                return Err(LoadError::bus("write subscribers", e));
            }
            records.clear();
        }
    }
    Ok(followers)
}

/// The stored subscriber of `follower` (number `n` of the run), its one
/// endpoint at the receivers.
fn subscriber_record(follower: &Follower, n: u64, receivers: &Receivers) -> Subscriber {
    let http = receivers.http;
    let channel = match follower.channel {
        "email" => SubscriberChannel::Email {
            address: format!("s{n}@example.com"),
        },
        "sms" => SubscriberChannel::Sms {
            phone: format!("+1555{n:07}"),
        },
        "webhook" => SubscriberChannel::Webhook {
            url: format!("http://{http}/w/{n}"),
        },
        "slack" => SubscriberChannel::Slack {
            url: format!("http://{http}/services/{n}"),
        },
        _ => SubscriberChannel::Teams {
            url: format!("http://{http}/webhookb2/{n}"),
        },
    };
    Subscriber {
        page: PAGE.into(),
        subscriber: follower.id.clone(),
        endpoints: vec![SubscriberEndpoint {
            channel,
            state: EndpointState::Active,
            since_ms: 1,
            confirmation: None,
        }],
        components: follower.components.clone(),
        instant: vec![],
        dedup: DedupMode::Every,
        digest: false,
        created_at_ms: 1,
    }
}

/// Health results for every component in every region, once a second,
/// until `stop` says so: down for a flipped component, up otherwise.
async fn report_health(
    js: jetstream::Context,
    ledger: Shared,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let clock = HlcClock::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*stop.borrow() {
        tick.tick().await;
        let down = ledger.lock().down;
        let now = wall_clock_ms();
        let mut sends = Vec::new();
        for component in [CORE, SIDE].into_iter().chain(FLIPPING) {
            let is_down = FLIPPING
                .iter()
                .position(|c| *c == component)
                .is_some_and(|i| down[i]);
            for region in REGIONS {
                let outcome = if is_down { Outcome::Down } else { Outcome::Up };
                let mut result = HealthResult::new(PAGE, component, "http", region, outcome, now);
                result.latency_ms = 20;
                if is_down {
                    result.error = Some("connection refused".into());
                }
                let envelope = Envelope::new(&clock, region, result);
                let subject = health_subject(PAGE, component, region);
                let js = js.clone();
                sends.push(async move {
                    let sent =
                        tokio::time::timeout(PUBLISH_TIMEOUT, publish(&js, &subject, &envelope))
                            .await;
                    (envelope.id.to_string(), matches!(sent, Ok(Ok(_))))
                });
            }
        }
        let results = futures::future::join_all(sends).await;
        let mut ledger = ledger.lock();
        for (id, acked) in results {
            if acked {
                ledger.health_acked.push(id);
            } else {
                ledger.health_unacked += 1;
            }
        }
    }
}

/// Waits until `at` from `start`.
async fn until(start: tokio::time::Instant, at: Duration) {
    tokio::time::sleep_until(start + at).await;
}

/// Flips components' health at the plan's times.
async fn flip(steps: Vec<Step>, ledger: Shared, start: tokio::time::Instant) {
    for step in steps {
        if let Action::Flip { component, down } = step.action {
            until(start, step.at).await;
            let mut ledger = ledger.lock();
            ledger.down[component] = down;
            ledger.flips += 1;
        }
    }
}

/// How an operator write ended.
enum Answer<T> {
    Done(T),
    Refused(String),
    Unanswered(String),
}

/// Sends `request` to `endpoint` until it is answered (the same body, so
/// the same idempotency key, every time), for at most [`WRITE_RETRY`].
async fn write<Req: Serialize, Res: serde::de::DeserializeOwned>(
    client: &async_nats::Client,
    endpoint: Endpoint<Req, Res>,
    request: &Req,
    ledger: &Shared,
) -> Answer<Res> {
    let payload: bytes::Bytes = match serde_json::to_vec(request) {
        Ok(payload) => payload.into(),
        Err(e) => return Answer::Refused(e.to_string()),
    };
    let deadline = Instant::now() + WRITE_RETRY;
    let mut attempt = 0u32;
    let last_error = loop {
        attempt += 1;
        if attempt == 2 {
            ledger.lock().writes_retried += 1;
        }
        let sent = client
            .send_request(
                endpoint.subject(),
                async_nats::Request::new()
                    .payload(payload.clone())
                    .timeout(Some(REQUEST_TIMEOUT)),
            )
            .await;
        let error = match sent {
            Ok(reply) => match serde_json::from_slice::<ApiReply<Res>>(&reply.payload) {
                Ok(ApiReply::Ok { result }) => return Answer::Done(result),
                Ok(ApiReply::Invalid { errors }) => {
                    return Answer::Refused(format!("{}: {errors:?}", endpoint.subject()))
                }
                Ok(ApiReply::Failed { message }) | Ok(ApiReply::Conflict { message, .. }) => {
                    message
                }
                Err(e) => format!("unreadable reply: {e}"),
            },
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            break error;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    Answer::Unanswered(format!("{}: {last_error}", endpoint.subject()))
}

/// The operator's side of the plan: incidents and maintenance, in order.
async fn operate(
    client: async_nats::Client,
    steps: Vec<Step>,
    seed: u64,
    ledger: Shared,
    start: tokio::time::Instant,
) -> Vec<String> {
    let mut refused = Vec::new();
    for step in steps {
        until(start, step.at).await;
        match step.action {
            Action::Flip { .. } => {}
            Action::Open {
                incident,
                reach,
                critical,
            } => {
                let (component, status) = match reach {
                    Reach::Everyone => (CORE, ComponentStatus::MajorOutage),
                    Reach::Few => (SIDE, ComponentStatus::PartialOutage),
                };
                let request = CreateIncidentRequest {
                    page: PAGE.into(),
                    title: format!("Chaos incident {incident}"),
                    impact: if critical {
                        Impact::Critical
                    } else {
                        Impact::Major
                    },
                    state: Some(IncidentState::Investigating),
                    body: format!("chaos {seed} incident {incident} opened"),
                    components: vec![AffectedComponent {
                        component: component.into(),
                        status,
                    }],
                    actor: "chaos".into(),
                    idempotency_key: Some(format!("chaos-{seed}-{incident}-open")),
                };
                let answer = write(&client, api::INCIDENT_CREATE, &request, &ledger).await;
                let mut log = IncidentLog {
                    reach,
                    id: None,
                    acked: 0,
                    unanswered: 0,
                    bodies: Vec::new(),
                    resolved: false,
                };
                settle_write(&ledger, &mut refused, &mut log, answer, request.body);
                ledger.lock().incidents.insert(incident, log);
            }
            Action::Update { incident } | Action::Resolve { incident } => {
                let resolve = matches!(step.action, Action::Resolve { .. });
                let Some(mut log) = ledger.lock().incidents.get(&incident).cloned() else {
                    continue;
                };
                let Some(id) = log.id.clone() else {
                    // Never opened: nothing to change.
                    continue;
                };
                let word = if resolve { "resolved" } else { "updated" };
                let request = ChangeIncidentRequest {
                    page: PAGE.into(),
                    incident: id,
                    expected_revision: None,
                    state: Some(if resolve {
                        IncidentState::Resolved
                    } else {
                        IncidentState::Identified
                    }),
                    body: format!("chaos {seed} incident {incident} {word}"),
                    title: None,
                    impact: None,
                    components: None,
                    actor: "chaos".into(),
                    idempotency_key: Some(format!("chaos-{seed}-{incident}-{word}")),
                };
                let endpoint = if resolve {
                    api::INCIDENT_RESOLVE
                } else {
                    api::INCIDENT_UPDATE
                };
                let answer = write(&client, endpoint, &request, &ledger).await;
                let done = matches!(answer, Answer::Done(_));
                settle_write(&ledger, &mut refused, &mut log, answer, request.body);
                log.resolved |= resolve && done;
                ledger.lock().incidents.insert(incident, log);
            }
            Action::Schedule { maintenance } => {
                let starts = wall_clock_ms() + 24 * 3_600_000;
                let request = ScheduleMaintenanceRequest {
                    page: PAGE.into(),
                    title: format!("Chaos maintenance {maintenance}"),
                    body: "Planned work.".into(),
                    starts_at_ms: starts,
                    ends_at_ms: starts + 3_600_000,
                    components: vec![SIDE.into()],
                    recurrence: None,
                    remind_before_ms: Some(0),
                    verify_ms: None,
                    actor: "chaos".into(),
                    idempotency_key: Some(format!("chaos-{seed}-m{maintenance}")),
                };
                let id = match write(&client, api::MAINTENANCE_SCHEDULE, &request, &ledger).await {
                    Answer::Done(window) => {
                        ledger.lock().writes_acked += 1;
                        Some(window.state.maintenance)
                    }
                    Answer::Refused(why) => {
                        refused.push(why);
                        None
                    }
                    Answer::Unanswered(why) => {
                        ledger.lock().writes_unanswered += 1;
                        refused.push(why);
                        None
                    }
                };
                ledger.lock().maintenance.insert(maintenance, id);
            }
        }
    }
    refused
}

/// Books an incident write's answer into its log.
fn settle_write(
    ledger: &Shared,
    refused: &mut Vec<String>,
    log: &mut IncidentLog,
    answer: Answer<Incident>,
    body: String,
) {
    match answer {
        Answer::Done(incident) => {
            ledger.lock().writes_acked += 1;
            log.id = Some(incident.id);
            log.acked += 1;
            log.bodies.push(body);
        }
        Answer::Refused(why) => refused.push(why),
        Answer::Unanswered(why) => {
            ledger.lock().writes_unanswered += 1;
            log.unanswered += 1;
            refused.push(why);
        }
    }
}

/// Polls `done` every half second until it says yes or `limit` passes;
/// returns whether it did.
async fn wait_for<F, Fut>(limit: Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if done().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// KV `status` of every component of the page, by component.
async fn kv_statuses(statuses: &kv::Store) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for component in [CORE, SIDE].into_iter().chain(FLIPPING) {
        if let Ok(Some(bytes)) = statuses.get(status_key(PAGE, component)).await {
            if let Ok(record) = Envelope::<StatusRecord>::decode(&bytes) {
                found.insert(component.to_owned(), record.data.status.as_str().to_owned());
            }
        }
    }
    found
}

/// Whether every consumer of the recorder has nothing pending.
async fn recorder_drained(js: &jetstream::Context) -> bool {
    use beacon_recorder::sink::{
        DELIVERIES_CONSUMER, HEALTH_CONSUMER, INCIDENTS_CONSUMER, MAINTENANCE_CONSUMER,
        STATUS_CONSUMER,
    };
    for (stream, name) in [
        (STREAM_HEALTH, HEALTH_CONSUMER),
        (STREAM_STATUS, STATUS_CONSUMER),
        (STREAM_INCIDENTS, INCIDENTS_CONSUMER),
        (STREAM_MAINTENANCE, MAINTENANCE_CONSUMER),
        (STREAM_DELIVERIES, DELIVERIES_CONSUMER),
    ] {
        let Ok(stream) = js.get_stream_no_info(stream).await else {
            return false;
        };
        let Ok(mut consumer) = stream
            .get_consumer::<jetstream::consumer::pull::Config>(name)
            .await
        else {
            return false;
        };
        match consumer.info().await {
            Ok(info) if info.num_pending == 0 && info.num_ack_pending == 0 => {}
            _ => return false,
        }
    }
    true
}

/// Event ids of a ClickHouse table.
fn recorded(stack: &Stack, table: &str) -> Result<HashSet<String>, LoadError> {
    let sql = format!("SELECT DISTINCT event_id FROM beacon.{table}");
    let rows = tokio::task::block_in_place(|| stack.clickhouse.try_query(&sql))
        .map_err(|e| LoadError::Unexpected(format!("read {table}: {e}")))?;
    Ok(rows.lines().map(str::to_owned).collect())
}

async fn read<T: beacon_contract::event::Message>(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
) -> Result<Vec<Envelope<T>>, LoadError> {
    let stored = history::read(js, stream, filter)
        .await
        .map_err(|e| LoadError::bus(format!("read {stream}"), e))?;
    stored
        .iter()
        .map(|m| {
            Envelope::<T>::decode(&m.payload)
                .map_err(|e| LoadError::Unexpected(format!("{stream} seq {}: {e}", m.sequence)))
        })
        .collect()
}

/// Runs the scenario.
pub async fn run(args: &ChaosArgs) -> Result<ChaosReport, LoadError> {
    let plan = plan::plan(&plan::Request {
        seed: &args.seed,
        duration: &args.duration,
        faults: &args.faults,
        fault_every: &args.fault_every,
        incident_every: &args.incident_every,
    })
    .map_err(|e| LoadError::Usage(e.to_string()))?;
    progress(&format!(
        "Seed {}: {} faults and {} workload steps over {}.",
        plan.seed,
        plan.faults.len(),
        plan.steps.len(),
        humantime::format_duration(plan.duration)
    ));
    let receivers = Receivers::start().await?;
    std::env::set_var(WEBHOOK_ENV, "chaos-webhook-channel-secret");
    std::env::set_var(TWILIO_ENV, "AC0123456789:chaos-token");
    let mut stack = Stack::start(vec![
        "--public-url".into(),
        "https://status.example.com/notify".into(),
        "--signing-secret".into(),
        "chaos-signing-secret-0123456789abcdef".into(),
        "--webhook-allow".into(),
        "127.0.0.1/32".into(),
    ])
    .await?;
    let client = connect_once(
        &NatsArgs {
            url: stack.nats.url(),
            creds: None,
            user: None,
            password: None,
        },
        "beacon-chaos",
    )
    .await?;
    let version = client.server_info().version.clone();
    let js = jetstream::new(client.clone());
    ensure(&js, &Topology::default())
        .await
        .map_err(|e| LoadError::bus("ensure the topology", e))?;
    let followers = seed_page(&js, &client, &receivers, args.subscribers, args.few).await?;

    let ledger = Shared::default();
    let (stop_health, health_stop) = tokio::sync::watch::channel(false);
    let health = tokio::spawn(report_health(js.clone(), ledger.clone(), health_stop));
    let statuses = js
        .get_key_value(KV_STATUS)
        .await
        .map_err(|e| LoadError::bus("open KV status", e))?;
    progress("Waiting for every component to be decided.");
    let decided = wait_for(Duration::from_secs(120), || async {
        kv_statuses(&statuses).await.len() == 2 + FLIPPING.len()
    })
    .await;
    if !decided {
        return Err(LoadError::Unexpected(
            "the decider did not decide every component within 120 s".into(),
        ));
    }

    progress("Faults and workload start.");
    let start = tokio::time::Instant::now();
    let flips = tokio::spawn(flip(plan.steps.clone(), ledger.clone(), start));
    let operator = tokio::spawn(operate(
        client.clone(),
        plan.steps.clone(),
        plan.seed,
        ledger.clone(),
        start,
    ));
    let mut fault_log = Vec::new();
    let mut struck: Vec<(Instant, String)> = Vec::new();
    let mut faults: BTreeMap<&'static str, u64> =
        FaultKind::ALL.iter().map(|k| (k.as_str(), 0)).collect();
    for fault in &plan.faults {
        until(start, fault.at).await;
        progress(&format!(
            "{:>6.1}s {} {} for {:.1}s",
            fault.at.as_secs_f64(),
            fault.kind.as_str(),
            fault.victim,
            fault.hold.as_secs_f64()
        ));
        struck.push((
            Instant::now(),
            format!("{} {}", fault.kind.as_str(), fault.victim),
        ));
        stack.strike(fault).await?;
        *faults.entry(fault.kind.as_str()).or_default() += 1;
        fault_log.push(format!(
            "{:.1}s {} {} {:.1}s",
            fault.at.as_secs_f64(),
            fault.kind.as_str(),
            fault.victim,
            fault.hold.as_secs_f64()
        ));
    }
    let _ = flips.await;
    let refused = operator
        .await
        .map_err(|e| LoadError::Unexpected(format!("the operator task: {e}")))?;
    until(start, plan.duration).await;
    progress("Faults and workload over; waiting for the stack to catch up.");

    // The stack catches up: statuses reach the evidence, deliveries reach
    // what the writes call for, the recorder drains.
    let settle_started = Instant::now();
    let (expected_threads, expected_status) = expectations(&ledger);
    let due = check::deliveries_due(&followers, &expected_threads);
    wait_for(args.settle, || async {
        kv_statuses(&statuses).await == expected_status
    })
    .await;
    let remaining = args.settle.saturating_sub(settle_started.elapsed());
    wait_for(remaining, || async {
        receivers.tally.distinct() as u64 >= due
    })
    .await;
    let _ = stop_health.send(true);
    let _ = health.await;
    let remaining = args.settle.saturating_sub(settle_started.elapsed());
    wait_for(remaining, || recorder_drained(&js)).await;
    // Late repeats (a redelivered batch) have a moment to show.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let settle_seconds = settle_started.elapsed().as_secs_f64();

    progress("Checking the invariants.");
    let mut invariants = Vec::new();
    let mut casualties = Verdict::new("no daemon crashed or panicked");
    let found = stack.casualties();
    casualties.case(found.is_empty(), || found.join("; "));
    invariants.push(casualties);
    let mut answered = Verdict::new("every operator write is answered");
    let acked = ledger.lock().writes_acked;
    answered.held_by(acked);
    for why in &refused {
        answered.case(false, || why.clone());
    }
    invariants.push(answered);

    let status_events: Vec<Envelope<StatusChange>> = read(&js, STREAM_STATUS, ALL_STATUS).await?;
    let incident_events: Vec<Envelope<IncidentEvent>> =
        read(&js, STREAM_INCIDENTS, ALL_INCIDENTS).await?;
    let maintenance_events: Vec<Envelope<MaintenanceEvent>> =
        read(&js, STREAM_MAINTENANCE, ALL_MAINTENANCE).await?;
    let kv = kv_statuses(&statuses).await;
    let chain_events: Vec<StatusEvent> = status_events
        .iter()
        .filter(|e| e.data.page == PAGE)
        .map(|e| StatusEvent {
            component: e.data.component.clone(),
            from: e.data.from.map(|s| s.as_str().to_owned()),
            to: e.data.to.as_str().to_owned(),
            id: e.id.to_string(),
        })
        .collect();
    let (chain, agrees) = check::status_chain(&chain_events, &kv);
    invariants.push(chain);
    invariants.push(agrees);
    invariants.push(check::final_status(&expected_status, &kv));

    // Operator writes: every acknowledged one is in the incident's timeline.
    let mut by_incident: BTreeMap<&str, Vec<&Envelope<IncidentEvent>>> = BTreeMap::new();
    for event in &incident_events {
        by_incident
            .entry(&event.data.incident)
            .or_default()
            .push(event);
    }
    let mut visible = Verdict::new("every acknowledged operator write is visible");
    let incidents = ledger.lock().incidents.clone();
    for (number, log) in &incidents {
        let Some(id) = &log.id else { continue };
        let folded = by_incident
            .get(id.as_str())
            .and_then(|events| Incident::fold(events.iter().copied(), 0));
        for body in &log.bodies {
            let seen = folded
                .as_ref()
                .is_some_and(|i| i.updates.iter().any(|u| &u.body == body));
            visible.case(seen, || {
                format!("incident {number} ({id}): {body:?} is not in its timeline")
            });
        }
        if log.resolved {
            let state = folded.as_ref().map(|i| i.state);
            visible.case(state == Some(IncidentState::Resolved), || {
                format!("incident {number} ({id}) was resolved but shows {state:?}")
            });
        }
    }
    let maintenance = ledger.lock().maintenance.clone();
    let scheduled: HashSet<&str> = maintenance_events
        .iter()
        .map(|e| e.data.maintenance.as_str())
        .collect();
    for (number, id) in &maintenance {
        if let Some(id) = id {
            visible.case(scheduled.contains(id.as_str()), || {
                format!("maintenance {number} ({id}) is not on MAINTENANCE")
            });
        }
    }
    invariants.push(visible);

    // Proposals: every change that names one has its incident.
    let mut proposals = Verdict::new("every proposal a status change names exists");
    for event in &status_events {
        if let Some(id) = &event.data.proposal {
            proposals.case(by_incident.contains_key(id.as_str()), || {
                format!(
                    "{} -> {} (event {}) names proposal {id}, which is not on INCIDENTS",
                    event.data.component,
                    event.data.to.as_str(),
                    event.id
                )
            });
        }
    }
    invariants.push(proposals);

    // Notices.
    let received = receivers.tally.snapshot();
    let judged = check::deliveries(&followers, &expected_threads, &received);
    invariants.push(judged.complete);
    invariants.push(judged.wanted);

    // History: every acknowledged event has its row.
    let health_ids = ledger.lock().health_acked.clone();
    let health_rows = recorded(&stack, "health_results")?;
    invariants.push(check::all_present(
        "every acknowledged health result is in ClickHouse",
        "health result",
        health_ids.iter().map(String::as_str),
        &health_rows,
    ));
    let status_rows = recorded(&stack, "status_changes")?;
    let status_ids: Vec<String> = status_events.iter().map(|e| e.id.to_string()).collect();
    invariants.push(check::all_present(
        "every STATUS event is in ClickHouse",
        "status change",
        status_ids.iter().map(String::as_str),
        &status_rows,
    ));
    let incident_rows = recorded(&stack, "incident_events")?;
    let incident_ids: Vec<String> = incident_events.iter().map(|e| e.id.to_string()).collect();
    invariants.push(check::all_present(
        "every INCIDENTS event is in ClickHouse",
        "incident event",
        incident_ids.iter().map(String::as_str),
        &incident_rows,
    ));

    // Nothing was given up on.
    let mut dead = Verdict::new("nothing is dead-lettered");
    let letters = history::read(&js, STREAM_DEADLETTER, ">")
        .await
        .map_err(|e| LoadError::bus("read DEADLETTER", e))?;
    dead.case(letters.is_empty(), || {
        letters
            .iter()
            .take(3)
            .map(|m| m.subject.clone())
            .collect::<Vec<_>>()
            .join(", ")
    });
    invariants.push(dead);

    if let Some(dir) = &args.logs {
        let _ = std::fs::create_dir_all(dir);
        for (name, text) in stack.logs() {
            let _ = std::fs::write(dir.join(format!("{name}.log")), text);
        }
    }

    let mut duplicates_after: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (at, channel) in receivers.tally.repeats() {
        let cause = struck
            .iter()
            .rev()
            .find(|(started, _)| *started <= at)
            .map_or("no fault yet", |(_, what)| what.as_str());
        *duplicates_after
            .entry(cause.to_owned())
            .or_default()
            .entry(channel)
            .or_default() += 1;
    }
    let ledger = ledger.lock();
    let broken = invariants.iter().filter(|v| !v.held).count() as u64;
    Ok(ChaosReport {
        scenario: "chaos",
        seed: plan.seed,
        duration_seconds: plan.duration.as_secs(),
        settle_seconds: (settle_seconds * 10.0).round() / 10.0,
        nats_server_version: version,
        subscribers: args.subscribers + args.few,
        big_group: args.subscribers,
        faults,
        fault_log,
        workload: WorkloadFigures {
            flips: ledger.flips,
            health_results_acked: ledger.health_acked.len() as u64,
            health_results_unacked: ledger.health_unacked,
            operator_writes_acked: ledger.writes_acked,
            operator_writes_unanswered: ledger.writes_unanswered,
            operator_writes_retried: ledger.writes_retried,
            incidents: ledger.incidents.len() as u64,
            fan_outs: ledger
                .incidents
                .values()
                .filter(|i| i.reach == Reach::Everyone)
                .count() as u64,
            maintenance_windows: ledger.maintenance.values().filter(|m| m.is_some()).count() as u64,
            deliveries_due: due,
            deliveries_received: received.len() as u64,
        },
        duplicates: judged.per_channel,
        duplicates_after,
        invariants,
        broken,
    })
}

/// What the acknowledged writes call for: the notice threads, and each
/// component's final status.
fn expectations(ledger: &Shared) -> (Vec<Expected>, BTreeMap<String, String>) {
    let ledger = ledger.lock();
    let mut threads = Vec::new();
    for log in ledger.incidents.values() {
        let Some(id) = &log.id else { continue };
        threads.push(Expected {
            thread: format!("incident-{id}"),
            components: vec![match log.reach {
                Reach::Everyone => CORE.to_owned(),
                Reach::Few => SIDE.to_owned(),
            }],
            sms: true,
            at_least: log.acked,
            at_most: log.acked + log.unanswered,
        });
    }
    for id in ledger.maintenance.values().flatten() {
        threads.push(Expected {
            thread: format!("maintenance-{id}"),
            components: vec![SIDE.to_owned()],
            sms: true,
            at_least: 1,
            at_most: 1,
        });
    }
    let mut status = BTreeMap::new();
    // Every incident is resolved by the end (or its resolve went
    // unanswered, which its own invariant reports).
    status.insert(CORE.to_owned(), "operational".to_owned());
    status.insert(SIDE.to_owned(), "operational".to_owned());
    for (i, component) in FLIPPING.iter().enumerate() {
        let word = if ledger.down[i] {
            "major_outage"
        } else {
            "operational"
        };
        status.insert((*component).to_owned(), word.to_owned());
    }
    (threads, status)
}
