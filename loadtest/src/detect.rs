//! The `detect` scenario: the number a status page lives by. The real
//! stack (NATS, a decider, probes in two regions, a publisher, an edge and
//! a notifier) watches one local HTTP target; each round takes the target
//! down, waits until everything has told of it, brings it back and waits
//! again. For the outage and the recovery of every round it measures the
//! time from the target's change to:
//!
//! - (a) the decider's STATUS event;
//! - (b) the edge serving the new status to a client polling `status.json`
//!   every 50 ms;
//! - (c) a live-update (SSE) client receiving it;
//! - (d) the first subscriber email of the change accepted by the SMTP sink;
//! - (e) the first webhook of the change received.
//!
//! For an outage the sign is the first status that is not operational
//! (the first region's evidence moves the component; a quorum of regions
//! makes it worse after); for a recovery, operational again.
//!
//! The same-run floor is the configured detection bound: the failure (or
//! recovery) threshold × the check interval. Goals: p95 of (c) within the
//! bound + 1 s, and (d) within 3 s of (a).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beacon_contract::event::Envelope;
use beacon_contract::hlc::HlcClock;
use beacon_contract::messages::{
    ComponentStatus, DedupMode, EndpointState, StatusChange, Subscriber, SubscriberChannel,
    SubscriberEndpoint,
};
use beacon_testkit::receivers::smtp::SmtpSink;
use beacon_testkit::receivers::web::WebSink;
use beacon_testkit::{DaemonProcess, NatsServer};
use beacon_tests::{apply_config, HttpTarget};
use futures::StreamExt;
use serde::Serialize;

use crate::cli::DetectArgs;
use crate::error::LoadError;
use crate::progress;
use crate::regions::Spread;

const PAGE: &str = "detect";
const COMPONENT: &str = "web";
const WEBHOOK_ENV: &str = "BEACON_DETECT_WEBHOOK_SECRET";
/// Check interval and thresholds of the page: the bound is their product.
const INTERVAL_MS: u64 = 1000;
const THRESHOLD: u64 = 2;
/// How long one side of a round may take before it counts as missed.
const ROUND_TIMEOUT: Duration = Duration::from_secs(30);
const READY: Duration = Duration::from_secs(60);

/// One side (outage or recovery) of one round: milliseconds from the
/// target's change to each sign, `None` where it never came.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Timings {
    /// (a) the STATUS event.
    pub status_event_ms: Option<u64>,
    /// (b) the edge's `status.json`.
    pub edge_poll_ms: Option<u64>,
    /// (c) the SSE client.
    pub sse_ms: Option<u64>,
    /// (d) the first email accepted.
    pub email_ms: Option<u64>,
    /// (e) the first webhook received.
    pub webhook_ms: Option<u64>,
}

/// The five measures over every round of one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Side {
    /// (a).
    pub status_event: Spread,
    /// (b).
    pub edge_poll: Spread,
    /// (c).
    pub sse: Spread,
    /// (d).
    pub email: Spread,
    /// (e).
    pub webhook: Spread,
    /// (d) − (a) per round: how long the first subscriber waits after
    /// the decision.
    pub email_after_status: Spread,
    /// Rounds where some sign never came within the round's timeout.
    pub missed: usize,
}

impl Side {
    /// Summarises `rounds`.
    pub fn of(rounds: &[Timings]) -> Side {
        let pick =
            |f: fn(&Timings) -> Option<u64>| -> Vec<u64> { rounds.iter().filter_map(f).collect() };
        let after: Vec<u64> = rounds
            .iter()
            .filter_map(|t| Some(t.email_ms?.saturating_sub(t.status_event_ms?)))
            .collect();
        Side {
            status_event: Spread::of(&pick(|t| t.status_event_ms)),
            edge_poll: Spread::of(&pick(|t| t.edge_poll_ms)),
            sse: Spread::of(&pick(|t| t.sse_ms)),
            email: Spread::of(&pick(|t| t.email_ms)),
            webhook: Spread::of(&pick(|t| t.webhook_ms)),
            email_after_status: Spread::of(&after),
            missed: rounds
                .iter()
                .filter(|t| {
                    [
                        t.status_event_ms,
                        t.edge_poll_ms,
                        t.sse_ms,
                        t.email_ms,
                        t.webhook_ms,
                    ]
                    .iter()
                    .any(Option::is_none)
                })
                .count(),
        }
    }
}

/// The `detect` report.
#[derive(Debug, Serialize)]
pub struct DetectReport {
    /// Always `detect`.
    pub scenario: &'static str,
    /// Rounds run.
    pub rounds: u32,
    /// The same-run floor: threshold × interval, in milliseconds.
    pub bound_ms: u64,
    /// The target going down.
    pub outage: Side,
    /// The target coming back.
    pub recovery: Side,
    /// p95 of (c) on an outage / (bound + 1 s): the goal is at most 1.
    pub sse_p95_vs_goal: f64,
    /// p95 of (d) − (a) on an outage / 3 s: the goal is at most 1.
    pub email_after_status_p95_vs_goal: f64,
    /// The series `--plot` shows as the key latency's distribution.
    pub plot_key: &'static str,
    /// Every round.
    pub samples: Vec<Round>,
}

/// One round's two sides.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// The target going down.
    pub outage: Timings,
    /// The target coming back.
    pub recovery: Timings,
}

/// What the watchers saw, each a list of (when, status).
#[derive(Default)]
struct Seen {
    status_events: Vec<(Instant, ComponentStatus)>,
    edge: Vec<(Instant, String)>,
    sse: Vec<(Instant, String)>,
}

type Shared = Arc<Mutex<Seen>>;

fn lock(seen: &Shared) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(|e| e.into_inner())
}

fn page_config(target: &str, smtp: &str) -> String {
    format!(
        "[page]\nid = \"{PAGE}\"\nname = \"Detect\"\n\
         [defaults]\nregions = [\"eu\", \"us\"]\ninterval = \"{INTERVAL_MS}ms\"\ntimeout = \"1s\"\n\
         failure_threshold = {THRESHOLD}\nrecovery_threshold = {THRESHOLD}\n\
         flap_transitions = 1000\nflap_window = \"10s\"\n\
         [notifications]\nwindow = \"0s\"\ncomponent_status = true\n\
         [[components]]\nid = \"{COMPONENT}\"\nname = \"Web\"\n\
         [[components.checks]]\ntype = \"http\"\nurl = \"{target}\"\n\
         [[channels]]\nid = \"mail\"\ntype = \"email\"\nfrom = \"status@example.com\"\nendpoint = \"{smtp}\"\ntls = \"none\"\n\
         [[channels]]\nid = \"hooks\"\ntype = \"webhook\"\nsecret_env = \"{WEBHOOK_ENV}\"\n"
    )
}

fn subscriber(id: &str, channel: SubscriberChannel) -> Subscriber {
    Subscriber {
        page: PAGE.into(),
        subscriber: id.into(),
        endpoints: vec![SubscriberEndpoint {
            channel,
            state: EndpointState::Active,
            since_ms: 1,
            confirmation: None,
        }],
        components: vec![],
        instant: vec![],
        dedup: DedupMode::Every,
        digest: false,
        created_at_ms: 1,
    }
}

/// Writes one email and one webhook subscriber into KV, as an import
/// would leave them.
async fn subscribe(js: &async_nats::jetstream::Context, web: &WebSink) -> Result<(), LoadError> {
    let store = js
        .get_key_value(beacon_contract::names::KV_SUBSCRIBERS)
        .await
        .map_err(|e| LoadError::bus("open KV subscribers", e))?;
    let clock = HlcClock::new();
    let people = [
        SubscriberChannel::Email {
            address: "reader@example.com".into(),
        },
        SubscriberChannel::Webhook {
            url: format!("{}/hook", web.url()),
        },
    ];
    for channel in people {
        let id = ulid::Ulid::new().to_string().to_ascii_lowercase();
        let value = Envelope::new(&clock, PAGE, subscriber(&id, channel))
            .encode()
            .map_err(|e| LoadError::Report(e.to_string()))?;
        store
            .put(format!("{PAGE}.{id}"), value.into())
            .await
            .map_err(|e| LoadError::bus("store a subscriber", e))?;
    }
    Ok(())
}

/// Follows the STATUS events of the component.
async fn watch_status(client: async_nats::Client, seen: Shared) {
    let subject = beacon_contract::names::status_subject(PAGE, COMPONENT);
    let Ok(mut events) = client.subscribe(subject).await else {
        progress("cannot subscribe to STATUS events");
        return;
    };
    while let Some(message) = events.next().await {
        if let Ok(envelope) = Envelope::<StatusChange>::decode(&message.payload) {
            lock(&seen)
                .status_events
                .push((Instant::now(), envelope.data.to));
        }
    }
}

/// The component's status in a Statuspage JSON body.
fn status_in(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let components = value["components"].as_array()?;
    components
        .iter()
        .find(|c| c["name"] == "Web")
        .and_then(|c| c["status"].as_str())
        .map(str::to_owned)
}

/// Polls the edge's `summary.json` every 50 ms.
async fn poll_edge(edge: String, seen: Shared) {
    let http = reqwest::Client::new();
    let mut last: Option<String> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Ok(response) = http
            .get(format!("{edge}/{PAGE}/api/v2/summary.json"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
        else {
            continue;
        };
        let Ok(body) = response.text().await else {
            continue;
        };
        let Some(status) = status_in(&body) else {
            continue;
        };
        if last.as_ref() != Some(&status) {
            lock(&seen).edge.push((Instant::now(), status.clone()));
            last = Some(status);
        }
    }
}

/// Listens to the page's live updates, reconnecting when the stream ends.
async fn listen_sse(edge: String, seen: Shared) {
    let http = reqwest::Client::new();
    loop {
        let Ok(mut response) = http
            .get(format!("{edge}/{PAGE}/events"))
            .header("Accept", "text/event-stream")
            .send()
            .await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                for line in event.lines() {
                    let Some(data) = line.strip_prefix("data:") else {
                        continue;
                    };
                    let value: serde_json::Value =
                        serde_json::from_str(data.trim()).unwrap_or_default();
                    if let Some(status) = value["components"][COMPONENT]["status"].as_str() {
                        lock(&seen).sse.push((Instant::now(), status.to_owned()));
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A random wait of up to one check interval.
fn anywhere_in_a_check_interval() -> Duration {
    Duration::from_millis(rand::random::<u64>() % INTERVAL_MS)
}

fn ms_since(from: Instant, to: Instant) -> u64 {
    u64::try_from(to.saturating_duration_since(from).as_millis()).unwrap_or(u64::MAX)
}

/// Which change a side waits for: the first status that is not
/// operational (an outage is detected when the first region's evidence
/// moves the component; a quorum of regions makes it worse after), or
/// operational again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Outage,
    Recovery,
}

impl Change {
    fn matches(self, status: &str) -> bool {
        let operational = status == ComponentStatus::Operational.as_str();
        match self {
            Change::Outage => !operational && status != "unknown",
            Change::Recovery => operational,
        }
    }
}

/// Waits until every sign of `change` after `since` has come (or the
/// round times out) and returns the timings.
async fn measure(
    since: Instant,
    change: Change,
    seen: &Shared,
    smtp: &SmtpSink,
    web: &WebSink,
) -> Timings {
    let deadline = since + ROUND_TIMEOUT;
    loop {
        let timings = {
            let seen = lock(seen);
            let first = |list: &Vec<(Instant, String)>| {
                list.iter()
                    .find(|(at, status)| *at >= since && change.matches(status))
                    .map(|(at, _)| ms_since(since, *at))
            };
            Timings {
                status_event_ms: seen
                    .status_events
                    .iter()
                    .find(|(at, status)| *at >= since && change.matches(status.as_str()))
                    .map(|(at, _)| ms_since(since, *at)),
                edge_poll_ms: first(&seen.edge),
                sse_ms: first(&seen.sse),
                // The notice of this change: its subject ends with the
                // new status ("Web: major outage").
                email_ms: smtp
                    .mails()
                    .iter()
                    .filter(|m| m.at >= since)
                    .filter(|m| {
                        m.header("Subject")
                            .and_then(|s| s.rsplit(": ").next().map(str::to_owned))
                            .is_some_and(|s| change.matches(&s.trim().replace(' ', "_")))
                    })
                    .map(|m| ms_since(since, m.at))
                    .min(),
                webhook_ms: web
                    .received()
                    .iter()
                    .filter(|r| r.at >= since)
                    .filter(|r| {
                        r.json()["component_update"]["new_status"]
                            .as_str()
                            .is_some_and(|s| change.matches(s))
                    })
                    .map(|r| ms_since(since, r.at))
                    .min(),
            }
        };
        let complete = [
            timings.status_event_ms,
            timings.edge_poll_ms,
            timings.sse_ms,
            timings.email_ms,
            timings.webhook_ms,
        ]
        .iter()
        .all(Option::is_some);
        if complete || Instant::now() >= deadline {
            return timings;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs the scenario.
pub async fn run(args: &DetectArgs) -> Result<DetectReport, LoadError> {
    std::env::set_var(WEBHOOK_ENV, "detect-webhook-channel-secret");
    progress("Starting nats-server, the receivers and the target.");
    let nats = tokio::task::block_in_place(NatsServer::start);
    let smtp = SmtpSink::start().await;
    let web = WebSink::start().await;
    let mut target = HttpTarget::start().await;
    let origin = tempfile::tempdir()
        .map_err(|e| LoadError::Unexpected(format!("an origin directory: {e}")))?;
    let edge_port = beacon_testkit::free_port();
    let edge = format!("http://127.0.0.1:{edge_port}");
    let bus = |extra: &[&str]| {
        let mut args = vec!["--nats-url".to_owned(), nats.url()];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    let origin_dir = origin.path().display().to_string();
    let daemons = vec![
        DaemonProcess::spawn_with_admin("beacon-decider", bus(&[])),
        DaemonProcess::spawn_with_admin("beacon-probe", bus(&["--region", "eu"])),
        DaemonProcess::spawn_with_admin("beacon-probe", bus(&["--region", "us"])),
        DaemonProcess::spawn_with_admin(
            "beacon-publisher",
            bus(&["--origin", &origin_dir, "--debounce", "50ms"]),
        ),
        DaemonProcess::spawn_with_admin(
            "beacon-edge",
            vec![
                "--origin".into(),
                origin_dir.clone(),
                "--listen".into(),
                format!("127.0.0.1:{edge_port}"),
                "--scan-interval".into(),
                "50ms".into(),
            ],
        ),
        DaemonProcess::spawn_with_admin(
            "beacon-notifier",
            bus(&[
                "--public-url",
                "https://status.example.com/api/v2/subscribers",
                "--signing-secret",
                "detect-signing-secret-0123456789abcdef",
                "--webhook-allow",
                "127.0.0.1/32",
            ]),
        ),
    ];
    for daemon in &daemons {
        progress(&format!("Waiting for {} to be ready.", daemon.name()));
        daemon.wait_ready(READY).await;
    }
    let client = async_nats::connect(nats.url())
        .await
        .map_err(|e| LoadError::Unexpected(format!("connect to NATS: {e}")))?;
    let js = async_nats::jetstream::new(client.clone());
    apply_config(&client, &page_config(&target.url(), &smtp.endpoint())).await;
    subscribe(&js, &web).await?;

    let seen: Shared = Arc::default();
    let watchers = [
        tokio::spawn(watch_status(client.clone(), seen.clone())),
        tokio::spawn(poll_edge(edge.clone(), seen.clone())),
        tokio::spawn(listen_sse(edge.clone(), seen.clone())),
    ];
    progress("Waiting for the page to show the target up.");
    let up = measure(Instant::now(), Change::Recovery, &seen, &smtp, &web).await;
    if up.edge_poll_ms.is_none() {
        return Err(LoadError::Unexpected(
            "the page never showed the target up".into(),
        ));
    }
    // Let the notices of the first status settle before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut samples = Vec::new();
    for round in 1..=args.rounds {
        // The change falls anywhere in the probes' check cycle, as a real
        // outage does; rounds of a fixed length would all hit one phase.
        tokio::time::sleep(anywhere_in_a_check_interval()).await;
        let down_at = Instant::now();
        target.down();
        let outage = measure(down_at, Change::Outage, &seen, &smtp, &web).await;
        tokio::time::sleep(anywhere_in_a_check_interval()).await;
        let up_at = Instant::now();
        target.up().await;
        let recovery = measure(up_at, Change::Recovery, &seen, &smtp, &web).await;
        progress(&format!(
            "Round {round}/{}: outage seen by SSE in {:?} ms, mailed in {:?} ms; recovery in {:?} / {:?} ms.",
            args.rounds, outage.sse_ms, outage.email_ms, recovery.sse_ms, recovery.email_ms
        ));
        samples.push(Round { outage, recovery });
        // Between rounds the page settles: no notice of one round counts
        // in the next.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    for watcher in watchers {
        watcher.abort();
    }
    drop(daemons);

    let outages: Vec<Timings> = samples.iter().map(|r| r.outage.clone()).collect();
    let recoveries: Vec<Timings> = samples.iter().map(|r| r.recovery.clone()).collect();
    let outage = Side::of(&outages);
    let recovery = Side::of(&recoveries);
    let bound_ms = THRESHOLD * INTERVAL_MS;
    let ratio = |value: u64, goal: u64| (value as f64 / goal as f64 * 1000.0).round() / 1000.0;
    Ok(DetectReport {
        scenario: "detect",
        rounds: args.rounds,
        bound_ms,
        sse_p95_vs_goal: ratio(outage.sse.p95_ms, bound_ms + 1000),
        email_after_status_p95_vs_goal: ratio(outage.email_after_status.p95_ms, 3000),
        outage,
        recovery,
        plot_key: "samples[].outage.sse_ms",
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_side_summarises_its_rounds_and_counts_the_missed() {
        let round = |a, d| Timings {
            status_event_ms: Some(a),
            edge_poll_ms: Some(a + 100),
            sse_ms: Some(a + 50),
            email_ms: d,
            webhook_ms: Some(a + 70),
        };
        let side = Side::of(&[
            round(1000, Some(1200)),
            round(2000, Some(2500)),
            round(1500, None),
        ]);
        assert_eq!(side.status_event.count, 3);
        assert_eq!(side.status_event.p50_ms, 1500);
        assert_eq!(side.email.count, 2);
        assert_eq!(side.email_after_status.max_ms, 500);
        assert_eq!(side.missed, 1);
    }

    #[test]
    fn the_status_is_read_from_summary_json() {
        let body = r#"{"components":[{"name":"Web","status":"major_outage"}]}"#;
        assert_eq!(status_in(body).as_deref(), Some("major_outage"));
        assert_eq!(status_in("{}"), None);
    }
}
