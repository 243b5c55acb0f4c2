//! `notifier`: one incident update fanned out by a real `beacon-notifier`
//! process (release build) to `--subscribers` subscribers of one page with
//! mixed channels, delivered to loopback receivers: Postfix's `smtp-sink`
//! for email, and HTTP servers in this process for webhooks, Slack, Teams
//! and a Twilio Messages API.
//!
//! - **Setup**: the page config goes into KV `config` and the subscribers
//!   straight into KV `subscribers` (as an import would leave them); the
//!   notifier starts and loads them (`load_seconds`).
//! - **Raw capacity**, same run, before the fan-out: a minimal SMTP client
//!   (one message per MAIL/RCPT/DATA exchange, as the notifier's client
//!   does) over `--raw-concurrency` connections into the same smtp-sink,
//!   and `--raw-concurrency` HTTP POSTs in flight into each HTTP receiver.
//! - **Fan-out**: one `created` event of a critical incident is published
//!   to INCIDENTS; receipts on `beacon.delivery.>` are counted per channel
//!   (from the DELIVERIES stream's per-subject counts, every
//!   [`RECEIPT_POLL`])
//!   until every delivery has one. Each channel's rate is its deliveries
//!   over the time from the event to its last receipt, and its ratio is
//!   that rate over its receiver's raw capacity.
//! - **Memory**: the notifier's peak RSS (`VmHWM`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use beacon_contract::event::Envelope;
use beacon_contract::hlc::{wall_clock_ms, HlcClock};
use beacon_contract::messages::{
    AffectedComponent, ComponentStatus, DedupMode, EndpointState, Impact, IncidentAction,
    IncidentEvent, IncidentLifecycle, IncidentState, IncidentUpdate, Subscriber, SubscriberChannel,
    SubscriberEndpoint,
};
use beacon_contract::names::{incident_subject, KV_CONFIG, STREAM_DELIVERIES};
use beacon_contract::topology::{ensure, Topology};
use beacon_runtime::publish::{publish, Publisher};
use beacon_testkit::{free_port, DaemonProcess};
use futures::StreamExt;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::baseline::bounded;
use crate::cli::NotifierArgs;
use crate::error::LoadError;
use crate::progress;
use crate::report::{rate, ratio};

/// The goals: every delivery within 60 s, the notifier under 1 GiB.
pub const GOAL_SECONDS: f64 = 60.0;
/// Peak RSS goal, MiB.
pub const GOAL_RSS_MIB: f64 = 1024.0;

const WEBHOOK_ENV: &str = "BEACON_LOADTEST_WEBHOOK_SECRET";
const TWILIO_ENV: &str = "BEACON_LOADTEST_TWILIO";
/// What the loopback Twilio Messages API answers to a message it takes.
pub const TWILIO_ACCEPTED: &str =
    "{\"sid\":\"SM0123456789abcdef0123456789abcdef\",\"status\":\"queued\"}";
const CHANNELS: [&str; 5] = ["email", "webhook", "slack", "teams", "sms"];
/// How often the receipt counts are read while the fan-out runs.
const RECEIPT_POLL: Duration = Duration::from_millis(100);

/// One channel's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelFigures {
    /// Subscribers on this channel.
    pub deliveries: u64,
    /// Receipts `delivered`.
    pub delivered: u64,
    /// Receipts `dead` (given up); should be 0.
    pub dead: u64,
    /// From the event's publish to this channel's last receipt, seconds.
    pub seconds: f64,
    /// Deliveries per second through the notifier.
    pub per_s: f64,
    /// What the receiver took from a raw client in the same run, per second.
    pub raw_capacity_per_s: f64,
    /// `per_s / raw_capacity_per_s`.
    pub ratio_to_raw: f64,
}

/// The scenario's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotifierReport {
    /// Always `notifier`.
    pub scenario: &'static str,
    /// Server version.
    pub nats_server_version: String,
    /// Subscribers.
    pub subscribers: u64,
    /// Time to write them into KV, seconds.
    pub write_seconds: f64,
    /// Time for the notifier to load them at start, seconds.
    pub load_seconds: f64,
    /// From the event to the last receipt, seconds.
    pub total_seconds: f64,
    /// Deliveries per second over all channels.
    pub total_per_s: f64,
    /// Time the planner spent on the send (scan, chunk, publish), seconds.
    pub plan_seconds: f64,
    /// Per channel.
    pub channels: BTreeMap<String, ChannelFigures>,
    /// The notifier's peak RSS, MiB.
    pub notifier_peak_rss_mib: f64,
    /// Goal: seconds.
    pub goal_seconds: f64,
    /// Goal: RSS MiB.
    pub goal_rss_mib: f64,
    /// Whether every delivery had its receipt within the goal.
    pub time_goal_met: bool,
    /// Whether the peak RSS stayed under the goal.
    pub memory_goal_met: bool,
}

fn parse_mix(text: &str) -> Result<Vec<(&'static str, u64)>, LoadError> {
    let mut mix = Vec::new();
    for part in text.split(',') {
        let (name, share) = part.split_once('=').ok_or_else(|| {
            LoadError::Unexpected(format!("--mix: {part:?} is not channel=percent"))
        })?;
        let channel = CHANNELS
            .iter()
            .find(|c| **c == name.trim())
            .ok_or_else(|| LoadError::Unexpected(format!("--mix: unknown channel {name:?}")))?;
        let share: u64 = share
            .trim()
            .parse()
            .map_err(|_| LoadError::Unexpected(format!("--mix: {share:?} is not a number")))?;
        mix.push((*channel, share));
    }
    if mix.iter().map(|(_, s)| s).sum::<u64>() != 100 {
        return Err(LoadError::Unexpected(
            "--mix: the shares must add up to 100".into(),
        ));
    }
    Ok(mix)
}

/// The channel of subscriber `n` under `mix`: spread evenly, not in blocks.
fn channel_of(n: u64, mix: &[(&'static str, u64)]) -> &'static str {
    let slot = (n * 7_919) % 100;
    let mut upto = 0;
    for (channel, share) in mix {
        upto += share;
        if slot < upto {
            return channel;
        }
    }
    mix.last().map_or("email", |(c, _)| c)
}

/// An HTTP receiver counting requests; `twilio` answers as the Messages API.
struct Counting {
    addr: SocketAddr,
    count: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Counting {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn counting(twilio: bool) -> Result<Counting, LoadError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| LoadError::Unexpected(format!("bind a receiver: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| LoadError::Unexpected(e.to_string()))?;
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    let app = axum::Router::new().fallback(move |_body: axum::body::Bytes| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::Relaxed);
            if twilio {
                (
                    axum::http::StatusCode::CREATED,
                    [("content-type", "application/json")],
                    TWILIO_ACCEPTED,
                )
            } else {
                (
                    axum::http::StatusCode::OK,
                    [("content-type", "text/plain")],
                    "ok",
                )
            }
        }
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Counting { addr, count, task })
}

/// Postfix's smtp-sink on a free port.
struct SmtpSink {
    port: u16,
    child: std::process::Child,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp_sink(path: &std::path::Path) -> Result<SmtpSink, LoadError> {
    if !path.exists() {
        return Err(LoadError::Unexpected(format!(
            "{} not found: run scripts/install-deps --bench (Debian package postfix)",
            path.display()
        )));
    }
    let port = free_port();
    let mut command = std::process::Command::new(path);
    // As root it must drop privileges; -m raises its connection limit.
    command.args([
        "-u",
        "nobody",
        "-m",
        "2000",
        &format!("127.0.0.1:{port}"),
        "4096",
    ]);
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let child = command
        .spawn()
        .map_err(|e| LoadError::Unexpected(format!("start smtp-sink: {e}")))?;
    Ok(SmtpSink { port, child })
}

/// A message about the size of the notifier's (multipart text and HTML).
fn raw_message(n: u64) -> String {
    let mut text = format!(
        "From: status@example.com\r\nTo: raw{n}@example.com\r\nSubject: [Bench] Everything is down\r\nMessage-ID: <raw{n}@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    );
    for _ in 0..40 {
        text.push_str("We are looking into it. Everything is down, and we are on it.\r\n");
    }
    text
}

/// Raw SMTP: messages/s into the sink over `connections` connections, one
/// MAIL/RCPT/DATA exchange per message like the notifier's client, each
/// body and its final dot in one write, `TCP_NODELAY` set.
async fn raw_smtp(port: u16, messages: u64, connections: u64) -> Result<f64, LoadError> {
    let per = messages / connections.max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        tasks.push(tokio::spawn(async move {
            let socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| e.to_string())?;
            socket.set_nodelay(true).map_err(|e| e.to_string())?;
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read);
            let mut line = String::new();
            let mut expect = async |lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
                                    code: &str|
                   -> Result<(), String> {
                loop {
                    line.clear();
                    if lines
                        .read_line(&mut line)
                        .await
                        .map_err(|e| e.to_string())?
                        == 0
                    {
                        return Err("closed".into());
                    }
                    if !line.starts_with(code) {
                        return Err(format!("unexpected {line:?}"));
                    }
                    if line.as_bytes().get(3) != Some(&b'-') {
                        return Ok(());
                    }
                }
            };
            expect(&mut lines, "220").await?;
            write
                .write_all(b"EHLO bench.example.com\r\n")
                .await
                .map_err(|e| e.to_string())?;
            expect(&mut lines, "250").await?;
            for m in 0..per {
                let n = c * per + m;
                write
                    .write_all(b"MAIL FROM:<status@example.com>\r\n")
                    .await
                    .map_err(|e| e.to_string())?;
                expect(&mut lines, "250").await?;
                write
                    .write_all(format!("RCPT TO:<raw{n}@example.com>\r\n").as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                expect(&mut lines, "250").await?;
                write
                    .write_all(b"DATA\r\n")
                    .await
                    .map_err(|e| e.to_string())?;
                expect(&mut lines, "354").await?;
                let mut body = raw_message(n);
                body.push_str(".\r\n");
                write
                    .write_all(body.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                expect(&mut lines, "250").await?;
            }
            write
                .write_all(b"QUIT\r\n")
                .await
                .map_err(|e| e.to_string())?;
            Ok::<u64, String>(per)
        }));
    }
    let mut sent = 0;
    for task in tasks {
        sent += task
            .await
            .map_err(|e| LoadError::Unexpected(e.to_string()))?
            .map_err(|e| LoadError::Unexpected(format!("raw SMTP: {e}")))?;
    }
    Ok(rate(sent, started.elapsed()))
}

/// Raw HTTP: POSTs/s into `url` with `in_flight` requests outstanding.
async fn raw_http(url: &str, messages: u64, in_flight: u64, form: bool) -> Result<f64, LoadError> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(in_flight as usize)
        .build()
        .map_err(|e| LoadError::Unexpected(e.to_string()))?;
    let body = format!("{{\"meta\":{{\"event\":\"incident_created\"}},\"incident\":{{\"name\":\"Everything is down\",\"body\":\"{}\"}}}}", "x".repeat(1200));
    let started = Instant::now();
    let results = futures::stream::iter(0..messages)
        .map(|n| {
            let client = client.clone();
            let body = body.clone();
            async move {
                let request = if form {
                    client.post(url).form(&[
                        ("To", format!("+1555{n:07}")),
                        ("From", "+15550000001".into()),
                        ("Body", "x".repeat(300)),
                    ])
                } else {
                    client
                        .post(format!("{url}/raw/{n}"))
                        .header("content-type", "application/json")
                        .body(body)
                };
                request.send().await.map(|r| r.status().is_success())
            }
        })
        .buffer_unordered(in_flight as usize)
        .collect::<Vec<_>>()
        .await;
    let elapsed = started.elapsed();
    let ok = results.iter().filter(|r| matches!(r, Ok(true))).count() as u64;
    if ok != messages {
        return Err(LoadError::Unexpected(format!(
            "raw HTTP: {ok} of {messages} accepted"
        )));
    }
    Ok(rate(ok, elapsed))
}

fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

async fn metric(admin: &str, prefix: &str) -> f64 {
    let Ok(response) = reqwest::get(format!("{admin}/metrics")).await else {
        return 0.0;
    };
    let body = response.text().await.unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs the scenario.
pub async fn run(args: &NotifierArgs) -> Result<NotifierReport, LoadError> {
    let mix = parse_mix(&args.mix)?;
    let limit = args.phase_timeout;
    let bus = crate::server::open(args.nats_url.as_deref()).await?;
    let js = jetstream::new(bus.client.clone());
    let version = bus.client.server_info().version.clone();
    ensure(&js, &Topology::default())
        .await
        .map_err(|e| LoadError::bus("ensure the topology", e))?;

    // Receivers.
    let sink = smtp_sink(&args.smtp_sink)?;
    let webhook = counting(false).await?;
    let slack = counting(false).await?;
    let teams = counting(false).await?;
    let twilio = counting(true).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The page.
    std::env::set_var(WEBHOOK_ENV, "loadtest-webhook-channel-secret");
    std::env::set_var(TWILIO_ENV, "AC0123456789:loadtest-token");
    let high =
        "rate_per_second = 1000000\nburst = 1000000\ndestination_rate_per_second = 1000000\n";
    let page_text = format!(
        "[page]\nid = \"bench\"\nname = \"Bench\"\nurl = \"https://status.example.com\"\n\
         [notifications]\nsms_impacts = [\"critical\"]\n\
         [[components]]\nid = \"api\"\nname = \"API\"\n\
         [[channels]]\nid = \"mail\"\ntype = \"email\"\nfrom = \"status@example.com\"\nendpoint = \"127.0.0.1:{}\"\ntls = \"none\"\nconcurrency = {}\n{high}\
         [[channels]]\nid = \"hooks\"\ntype = \"webhook\"\nsecret_env = \"{WEBHOOK_ENV}\"\nconcurrency = 256\n{high}\
         [[channels]]\nid = \"slack\"\ntype = \"slack\"\nconcurrency = 256\n{high}\
         [[channels]]\nid = \"teams\"\ntype = \"teams\"\nconcurrency = 256\n{high}\
         [[channels]]\nid = \"sms\"\ntype = \"sms\"\nfrom = \"+15550000001\"\nendpoint = \"http://{}\"\nsecret_env = \"{TWILIO_ENV}\"\nconcurrency = 256\n{high}",
        sink.port, args.email_concurrency, twilio.addr
    );
    let page = beacon_page::config::load(&page_text)
        .map_err(|e| LoadError::Unexpected(format!("bench page: {e}")))?;
    let clock = HlcClock::new();
    let config = js
        .get_key_value(KV_CONFIG)
        .await
        .map_err(|e| LoadError::bus("open KV config", e))?;
    let value = Envelope::new(&clock, "bench", page)
        .encode()
        .map_err(|e| LoadError::Report(e.to_string()))?;
    config
        .put("bench", value.into())
        .await
        .map_err(|e| LoadError::bus("store the page", e))?;

    // The subscribers, straight into KV.
    progress(&format!("Writing {} subscribers.", args.subscribers));
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let publisher = Publisher::new(bus.client.clone(), 2048, Duration::from_secs(30));
    let write_started = Instant::now();
    let chunk = 50_000u64;
    for start in (0..args.subscribers).step_by(chunk as usize) {
        let mut records = Vec::with_capacity(chunk as usize);
        for n in start..(start + chunk).min(args.subscribers) {
            let channel = channel_of(n, &mix);
            *expected.entry(channel.to_owned()).or_default() += 1;
            let endpoint = match channel {
                "email" => SubscriberChannel::Email {
                    address: format!("s{n}@example.com"),
                },
                "sms" => SubscriberChannel::Sms {
                    phone: format!("+1555{n:07}"),
                },
                "webhook" => SubscriberChannel::Webhook {
                    url: format!("http://{}/w/{n}", webhook.addr),
                },
                "slack" => SubscriberChannel::Slack {
                    url: format!("http://{}/services/{n}", slack.addr),
                },
                _ => SubscriberChannel::Teams {
                    url: format!("http://{}/webhookb2/{n}", teams.addr),
                },
            };
            let id = ulid::Ulid::new().to_string().to_ascii_lowercase();
            let subscriber = Subscriber {
                page: "bench".into(),
                subscriber: id.clone(),
                endpoints: vec![SubscriberEndpoint {
                    channel: endpoint,
                    state: EndpointState::Active,
                    since_ms: 1,
                    confirmation: None,
                }],
                components: vec![],
                instant: vec![],
                dedup: DedupMode::Every,
                digest: false,
                created_at_ms: 1,
            };
            let envelope = Envelope::new(&clock, "bench", subscriber);
            let payload: bytes::Bytes = envelope
                .encode()
                .map_err(|e| LoadError::Report(e.to_string()))?
                .into();
            records.push((
                format!("$KV.subscribers.bench.{id}"),
                envelope.id.to_string(),
                payload,
            ));
        }
        let results = bounded("write subscribers", limit, async {
            Ok(publisher
                .publish_all_bytes(
                    records
                        .iter()
                        .map(|(s, i, p)| (s.as_str(), i.clone(), p.clone())),
                )
                .await)
        })
        .await?;
        if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
            return Err(LoadError::bus("write subscribers", e));
        }
    }
    let write_seconds = write_started.elapsed().as_secs_f64();

    // Raw capacity of each receiver, before the notifier competes for the cores.
    progress("Measuring each receiver's raw capacity.");
    let raw_smtp = bounded(
        "raw SMTP",
        limit,
        raw_smtp(sink.port, args.raw_messages, args.raw_concurrency),
    )
    .await?;
    let mut raw = BTreeMap::new();
    raw.insert("email".to_owned(), raw_smtp);
    for (name, receiver, form) in [
        ("webhook", &webhook, false),
        ("slack", &slack, false),
        ("teams", &teams, false),
        ("sms", &twilio, true),
    ] {
        let url = format!("http://{}", receiver.addr);
        let per_s = bounded(
            "raw HTTP",
            limit,
            raw_http(&url, args.raw_messages, args.raw_concurrency, form),
        )
        .await?;
        raw.insert(name.to_owned(), per_s);
        progress(&format!("Raw {name}: {per_s:.0}/s."));
    }
    progress(&format!("Raw email: {raw_smtp:.0}/s."));
    for receiver in [&webhook, &slack, &teams, &twilio] {
        receiver.count.store(0, Ordering::Relaxed);
    }

    // The notifier.
    let mut notifier = DaemonProcess::spawn_with_admin(
        "beacon-notifier",
        vec![
            "--nats-url".into(),
            bus.url.clone(),
            "--public-url".into(),
            "https://status.example.com/notify".into(),
            "--signing-secret".into(),
            "loadtest-signing-secret-0123456789abcdef".into(),
            "--webhook-allow".into(),
            "127.0.0.1/32".into(),
            "--notify-batch".into(),
            args.notify_batch.to_string(),
            "--send-concurrency".into(),
            args.send_concurrency.to_string(),
            "--sender-batches".into(),
            args.sender_batches.to_string(),
            "--log-format".into(),
            "json".into(),
        ],
    );
    let load_started = Instant::now();
    notifier.wait_ready(limit).await;
    let admin = notifier.admin_url();
    bounded("the notifier to lead", limit, async {
        while metric(
            &admin,
            "beacon_notifier_lease_holder{partition=\"0\",role=\"notifier\"} 1",
        )
        .await
            < 1.0
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    })
    .await?;
    let load_seconds = load_started.elapsed().as_secs_f64();
    let pid = notifier.pid().unwrap_or(0);
    progress(&format!(
        "Notifier loaded {} subscribers in {load_seconds:.1} s.",
        args.subscribers
    ));

    // Receipts are counted from the DELIVERIES stream's per-subject counts,
    // polled, rather than by receiving each one: a million receipts through
    // this process would take CPU from the notifier on the same cores.
    let deliveries = js
        .get_stream(STREAM_DELIVERIES)
        .await
        .map_err(|e| LoadError::bus("open DELIVERIES", e))?;
    let total: u64 = expected.values().sum();

    let event = {
        let mut event = IncidentEvent::new(
            "bench",
            "01jbench0000000000000000000",
            IncidentAction::Created,
            "bench",
            wall_clock_ms(),
        );
        event.lifecycle = Some(IncidentLifecycle::Open);
        event.title = Some("Everything is down".into());
        event.impact = Some(Impact::Critical);
        event.state = Some(IncidentState::Investigating);
        event.components = Some(vec![AffectedComponent {
            component: "api".into(),
            status: ComponentStatus::MajorOutage,
        }]);
        event.update = Some(IncidentUpdate {
            id: "u0".into(),
            state: IncidentState::Investigating,
            body: "We are looking into it.".into(),
            components: vec![],
            at_ms: wall_clock_ms(),
            actor: "bench".into(),
        });
        Envelope::new(&clock, "bench", event)
    };
    progress("Publishing the incident.");
    let started = Instant::now();
    publish(
        &js,
        &incident_subject("bench", "01jbench0000000000000000000"),
        &event,
    )
    .await
    .map_err(|e| LoadError::bus("publish the incident", e))?;
    let mut delivered: BTreeMap<String, u64> = BTreeMap::new();
    let mut dead: BTreeMap<String, u64> = BTreeMap::new();
    let mut last: BTreeMap<String, Duration> = BTreeMap::new();
    let mut done = 0u64;
    let mut next_report = Instant::now() + Duration::from_secs(5);
    bounded("the fan-out", limit, async {
        while done < total {
            tokio::time::sleep(RECEIPT_POLL).await;
            let mut counts = deliveries
                .info_with_subjects(beacon_contract::names::ALL_DELIVERIES)
                .await
                .map_err(|e| LoadError::bus("count receipts", e))?;
            let mut now_delivered: BTreeMap<String, u64> = BTreeMap::new();
            let mut now_dead: BTreeMap<String, u64> = BTreeMap::new();
            while let Some(count) = counts.next().await {
                let (subject, n) = count.map_err(|e| LoadError::bus("count receipts", e))?;
                let mut tokens = subject.split('.').skip(2);
                let (Some(channel), Some(outcome)) = (tokens.next(), tokens.next()) else {
                    continue;
                };
                match outcome {
                    "delivered" => {
                        *now_delivered.entry(channel.to_owned()).or_default() += n as u64
                    }
                    "dead" => *now_dead.entry(channel.to_owned()).or_default() += n as u64,
                    _ => {}
                }
            }
            let at = started.elapsed();
            for (channel, deliveries) in &expected {
                let finished = now_delivered.get(channel).copied().unwrap_or(0)
                    + now_dead.get(channel).copied().unwrap_or(0);
                let before = delivered.get(channel).copied().unwrap_or(0)
                    + dead.get(channel).copied().unwrap_or(0);
                if finished > before && before < *deliveries {
                    last.insert(channel.clone(), at);
                }
            }
            delivered = now_delivered;
            dead = now_dead;
            done = delivered.values().sum::<u64>() + dead.values().sum::<u64>();
            if Instant::now() >= next_report {
                progress(&format!(
                    "{done} of {total} delivered after {:.1} s.",
                    at.as_secs_f64()
                ));
                next_report += Duration::from_secs(5);
            }
        }
        Ok(())
    })
    .await?;
    let total_seconds = started.elapsed().as_secs_f64();
    let rss = peak_rss_mib(pid);
    let plan_seconds = metric(&admin, "beacon_notifier_plan_seconds_sum").await;
    if let Some(path) = &args.notifier_log {
        let _ = std::fs::write(path, notifier.logs());
    }
    let _ = notifier.terminate();

    let mut channels = BTreeMap::new();
    for (name, deliveries) in &expected {
        let seconds = last.get(name).copied().unwrap_or_default().as_secs_f64();
        let per_s = if seconds > 0.0 {
            *deliveries as f64 / seconds
        } else {
            0.0
        };
        let raw_capacity = raw.get(name).copied().unwrap_or(0.0);
        channels.insert(
            name.clone(),
            ChannelFigures {
                deliveries: *deliveries,
                delivered: delivered.get(name).copied().unwrap_or(0),
                dead: dead.get(name).copied().unwrap_or(0),
                seconds: (seconds * 100.0).round() / 100.0,
                per_s: per_s.round(),
                raw_capacity_per_s: raw_capacity.round(),
                ratio_to_raw: ratio(per_s, raw_capacity),
            },
        );
    }
    Ok(NotifierReport {
        scenario: "notifier",
        nats_server_version: version,
        subscribers: args.subscribers,
        write_seconds: (write_seconds * 100.0).round() / 100.0,
        load_seconds: (load_seconds * 100.0).round() / 100.0,
        total_seconds: (total_seconds * 100.0).round() / 100.0,
        total_per_s: (total as f64 / total_seconds).round(),
        plan_seconds: (plan_seconds * 1000.0).round() / 1000.0,
        channels,
        notifier_peak_rss_mib: rss.round(),
        goal_seconds: GOAL_SECONDS,
        goal_rss_mib: GOAL_RSS_MIB,
        time_goal_met: total_seconds <= GOAL_SECONDS,
        memory_goal_met: rss > 0.0 && rss <= GOAL_RSS_MIB,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_spreads_channels_by_share() {
        let mix = parse_mix("email=70,webhook=12,slack=6,teams=6,sms=6").expect("a mix");
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for n in 0..10_000 {
            *counts.entry(channel_of(n, &mix)).or_default() += 1;
        }
        assert_eq!(counts["email"], 7_000);
        assert_eq!(counts["sms"], 600);
        assert!(parse_mix("email=50").is_err());
        assert!(parse_mix("fax=100").is_err());
    }
}
