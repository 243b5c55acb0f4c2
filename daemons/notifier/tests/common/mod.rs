//! A notifier process on a private NATS server, fed page configs and
//! events directly (as the decider would write them), with loopback
//! provider servers from `beacon_testkit::receivers`.

#![allow(dead_code)]

use std::time::Duration;

use async_nats::jetstream;
use beacon_contract::api::{AddSubscriberRequest, ApiReply, NewSubscriber, SubscriberView};
use beacon_contract::event::{Envelope, Message};
use beacon_contract::hlc::{wall_clock_ms, HlcClock};
use beacon_contract::messages::{
    AffectedComponent, ComponentStatus, DedupMode, DeliveryReceipt, Impact, IncidentAction,
    IncidentEvent, IncidentLifecycle, IncidentState, IncidentUpdate, SubscriberChannel,
};
use beacon_contract::names::{incident_subject, KV_CONFIG, STREAM_DELIVERIES};
use beacon_contract::topology::{ensure, Topology};
use beacon_runtime::history;
use beacon_runtime::publish::publish;
use beacon_testkit::{free_port, wait_until, DaemonProcess, NatsServer};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The notifier's signing secret in tests.
pub const SECRET: &str = "test-signing-secret-0123456789abcdef";
/// Env var (and value) with the webhook channel's secret.
pub const HOOK_ENV: &str = "BEACON_TEST_HOOK_SECRET";
pub const HOOK_SECRET: &str = "webhook-channel-secret";
/// Env var (and value) with the Twilio account's `SID:TOKEN`.
pub const TWILIO_ENV: &str = "BEACON_TEST_TWILIO";
pub const TWILIO_SID: &str = "AC0123456789";
pub const TWILIO_TOKEN: &str = "twilio-auth-token";

pub use beacon_testkit::wait::LAND;

pub struct Harness {
    pub nats: NatsServer,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub notifier: DaemonProcess,
    /// Base URL of the notifier's inbound HTTP (also its `--public-url`).
    pub inbound: String,
    pub clock: HlcClock,
}

/// Sets the channel secrets the test pages name (the same values in every
/// test, so tests running at once agree).
pub fn set_secrets() {
    std::env::set_var(HOOK_ENV, HOOK_SECRET);
    std::env::set_var(TWILIO_ENV, format!("{TWILIO_SID}:{TWILIO_TOKEN}"));
}

/// A page with one component per id and the given extra TOML (channels,
/// `[notifications]`).
pub fn page(id: &str, components: &[&str], extra: &str) -> String {
    let mut text = format!(
        "[page]\nid = \"{id}\"\nname = \"Test page {id}\"\nurl = \"https://status.example.com\"\n"
    );
    for c in components {
        text.push_str(&format!(
            "[[components]]\nid = \"{c}\"\nname = \"Component {c}\"\n"
        ));
    }
    text.push_str(extra);
    text
}

pub fn email_channel(endpoint: &str) -> String {
    format!(
        "[[channels]]\nid = \"mail\"\ntype = \"email\"\nfrom = \"status@example.com\"\nendpoint = \"{endpoint}\"\ntls = \"none\"\nrate_per_second = 1000\nconcurrency = 8\n"
    )
}

pub fn sms_channel(api_base: &str) -> String {
    format!(
        "[[channels]]\nid = \"sms\"\ntype = \"sms\"\nfrom = \"+15550000001\"\npool = [\"+15550000002\"]\nendpoint = \"{api_base}\"\nsecret_env = \"{TWILIO_ENV}\"\nrate_per_second = 1000\n"
    )
}

pub fn webhook_channel() -> String {
    format!("[[channels]]\nid = \"hooks\"\ntype = \"webhook\"\nsecret_env = \"{HOOK_ENV}\"\nrate_per_second = 1000\ndestination_rate_per_second = 1000\n")
}

impl Harness {
    /// NATS with the topology and the page configs in KV, then a notifier
    /// with `extra` flags; waits until its planner leads.
    pub async fn start(pages: &[String], extra: &[&str]) -> Harness {
        set_secrets();
        let nats = NatsServer::start();
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let js = jetstream::new(client.clone());
        ensure(&js, &Topology::default()).await.expect("topology");
        let harness_clock = HlcClock::new();
        let config = js.get_key_value(KV_CONFIG).await.expect("KV config");
        for text in pages {
            let page = beacon_page::config::load(text).expect("a valid test page");
            let value = Envelope::new(&harness_clock, "test", page.clone())
                .encode()
                .expect("encode");
            config
                .put(&page.id, value.into())
                .await
                .expect("store the page");
        }
        let port = free_port();
        let inbound = format!("http://127.0.0.1:{port}");
        let notifier =
            DaemonProcess::spawn_with_admin("beacon-notifier", notifier_args(&nats, port, extra));
        notifier.wait_ready(LAND).await;
        let harness = Harness {
            nats,
            client,
            js,
            notifier,
            inbound,
            clock: harness_clock,
        };
        harness.wait_leading().await;
        harness
    }

    /// Another notifier on the same bus, with its own inbound port.
    pub async fn spawn_another(&self, extra: &[&str]) -> DaemonProcess {
        let notifier = DaemonProcess::spawn_with_admin(
            "beacon-notifier",
            notifier_args(&self.nats, free_port(), extra),
        );
        notifier.wait_ready(LAND).await;
        notifier
    }

    /// Waits until this harness's notifier holds the planner lease.
    pub async fn wait_leading(&self) {
        let admin = self.notifier.admin_url();
        wait_until("the notifier to lead the planner", LAND, || {
            let admin = admin.clone();
            async move {
                let body = reqwest::get(format!("{admin}/metrics"))
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                body.lines()
                    .any(|l| {
                        l.starts_with(
                            "beacon_notifier_lease_holder{partition=\"0\",role=\"notifier\"} 1",
                        )
                    })
                    .then_some(())
            }
        })
        .await;
    }

    /// A request to the subscriber API.
    pub async fn request<Req: Serialize, Res: DeserializeOwned>(
        &self,
        endpoint: beacon_contract::api::Endpoint<Req, Res>,
        body: &Req,
    ) -> ApiReply<Res> {
        let subject = endpoint.subject();
        let payload = serde_json::to_vec(body).expect("encode request");
        let reply = tokio::time::timeout(
            Duration::from_secs(10),
            self.client.request(subject.to_owned(), payload.into()),
        )
        .await
        .expect("the notifier answers in time")
        .expect("the notifier answers");
        serde_json::from_slice(&reply.payload).expect("an ApiReply")
    }

    /// Adds a subscriber, expecting success.
    pub async fn add(
        &self,
        page: &str,
        endpoints: Vec<SubscriberChannel>,
        confirmed: bool,
    ) -> SubscriberView {
        self.add_with(
            page,
            NewSubscriber {
                endpoints,
                components: vec![],
                instant: vec![],
                dedup: DedupMode::Every,
                digest: false,
            },
            confirmed,
        )
        .await
    }

    /// Adds a subscriber with every field, expecting success.
    pub async fn add_with(
        &self,
        page: &str,
        subscriber: NewSubscriber,
        confirmed: bool,
    ) -> SubscriberView {
        let reply: ApiReply<SubscriberView> = self
            .request(
                beacon_contract::api::SUBSCRIBER_ADD,
                &AddSubscriberRequest {
                    page: page.into(),
                    subscriber,
                    confirmed,
                    actor: "test".into(),
                },
            )
            .await;
        match reply {
            ApiReply::Ok { result } => result,
            other => panic!("add refused: {other:?}"),
        }
    }

    /// Publishes an event envelope on `subject`.
    pub async fn publish<T: Message>(&self, subject: &str, body: T) -> Envelope<T> {
        let envelope = Envelope::new(&self.clock, "test", body);
        publish(&self.js, subject, &envelope)
            .await
            .expect("publish an event");
        envelope
    }

    /// Every receipt so far.
    pub async fn receipts(&self) -> Vec<DeliveryReceipt> {
        history::read(
            &self.js,
            STREAM_DELIVERIES,
            beacon_contract::names::ALL_DELIVERIES,
        )
        .await
        .expect("read DELIVERIES")
        .iter()
        .map(|m| {
            Envelope::<DeliveryReceipt>::decode(&m.payload)
                .expect("a receipt")
                .data
        })
        .collect()
    }

    /// Waits until at least `n` receipts satisfy `want`.
    pub async fn wait_receipts(
        &self,
        what: &str,
        n: usize,
        want: impl Fn(&DeliveryReceipt) -> bool,
    ) -> Vec<DeliveryReceipt> {
        wait_until(what, LAND, || {
            let receipts = self.receipts();
            let want = &want;
            async move {
                let matching: Vec<DeliveryReceipt> =
                    receipts.await.into_iter().filter(|r| want(r)).collect();
                (matching.len() >= n).then_some(matching)
            }
        })
        .await
    }

    /// A metric's value from the notifier's `/metrics` (summed over lines
    /// starting with `prefix`).
    pub async fn metric(&self, prefix: &str) -> f64 {
        let Ok(response) = reqwest::get(format!("{}/metrics", self.notifier.admin_url())).await
        else {
            return 0.0;
        };
        let body = response.text().await.unwrap_or_default();
        body.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// The flags of a test notifier.
pub fn notifier_args(nats: &NatsServer, port: u16, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--nats-url".into(),
        nats.url(),
        "--public-url".into(),
        format!("http://127.0.0.1:{port}"),
        "--inbound-listen".into(),
        format!("127.0.0.1:{port}"),
        "--signing-secret".into(),
        SECRET.into(),
        "--webhook-allow".into(),
        "127.0.0.1/32".into(),
        "--retry-first".into(),
        "300ms".into(),
        "--retry-max".into(),
        "2s".into(),
        "--lease-ttl".into(),
        "2s".into(),
        "--lease-renew".into(),
        "500ms".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// An incident event that opens an incident (`created`).
pub fn created(
    page: &str,
    incident: &str,
    title: &str,
    impact: Impact,
    components: &[&str],
) -> IncidentEvent {
    let mut event = IncidentEvent::new(
        page,
        incident,
        IncidentAction::Created,
        "op",
        wall_clock_ms(),
    );
    event.lifecycle = Some(IncidentLifecycle::Open);
    event.title = Some(title.into());
    event.impact = Some(impact);
    event.state = Some(IncidentState::Investigating);
    event.components = Some(
        components
            .iter()
            .map(|c| AffectedComponent {
                component: (*c).into(),
                status: ComponentStatus::MajorOutage,
            })
            .collect(),
    );
    event.update = Some(update(
        "u0",
        IncidentState::Investigating,
        "We are looking into it.",
    ));
    event
}

/// A timeline update of an incident.
pub fn updated(
    page: &str,
    incident: &str,
    id: &str,
    state: IncidentState,
    body: &str,
) -> IncidentEvent {
    let action = if state == IncidentState::Resolved {
        IncidentAction::Resolved
    } else {
        IncidentAction::Updated
    };
    let mut event = IncidentEvent::new(page, incident, action, "op", wall_clock_ms());
    event.state = Some(state);
    event.update = Some(update(id, state, body));
    event
}

pub fn update(id: &str, state: IncidentState, body: &str) -> IncidentUpdate {
    IncidentUpdate {
        id: id.into(),
        state,
        body: body.into(),
        components: vec![],
        at_ms: wall_clock_ms(),
        actor: "op".into(),
    }
}

/// Publishes an incident event on its subject.
pub async fn incident(harness: &Harness, event: IncidentEvent) {
    let subject = incident_subject(&event.page, &event.incident);
    harness.publish(&subject, event).await;
}

/// The `token` query parameter of a link.
pub fn token_of(link: &str) -> String {
    link.split("token=")
        .nth(1)
        .unwrap_or_default()
        .trim_end_matches('>')
        .to_owned()
}

/// A fresh lowercase incident id.
pub fn incident_id() -> String {
    beacon_contract::event::EventId::new()
        .to_string()
        .to_ascii_lowercase()
}
