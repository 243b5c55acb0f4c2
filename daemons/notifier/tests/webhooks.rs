//! Webhooks, Slack and Teams end to end, and the SSRF guard: signatures a
//! receiver verifies, Statuspage's shape, 410 disabling an endpoint,
//! private addresses refused at sign-up and again at send time, redirects
//! not followed, and DNS rebinding between the check and the connect.

mod common;

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use beacon_contract::api;
use beacon_contract::api::{
    AddSubscriberRequest, ApiReply, NewSubscriber, SubscriberRequest, SubscriberView,
};
use beacon_contract::event::Envelope;
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::messages::{
    ChannelKind, DedupMode, DeliveryOutcome, EndpointState, Impact, IncidentState, Notice,
    NoticeKind, NoticeSubject, Subscriber, SubscriberChannel, SubscriberEndpoint,
};
use beacon_contract::names::KV_SUBSCRIBERS;
use beacon_notifier::notify::limits::Waits;
use beacon_notifier::notify::{Delivery, SendError, Senders};
use beacon_notifier::render::Links;
use beacon_notifier::ssrf::{Cidr, Guard, Lookup};
use beacon_testkit::receivers::signatures;
use beacon_testkit::receivers::web::{Reply, WebSink};
use beacon_testkit::wait_until;
use common::*;

fn hook(url: &str) -> SubscriberChannel {
    SubscriberChannel::Webhook { url: url.into() }
}

fn pages_with_hooks() -> String {
    page(
        "hooks",
        &["api"],
        &format!("{}[[channels]]\nid = \"slack\"\ntype = \"slack\"\n[[channels]]\nid = \"teams\"\ntype = \"teams\"\n", webhook_channel()),
    )
}

#[tokio::test]
async fn webhooks_are_signed_in_statuspage_shape_and_a_410_disables_the_endpoint() {
    let receiver = WebSink::start().await;
    let slack = WebSink::start().await;
    let teams = WebSink::start().await;
    let gone = WebSink::start().await;
    gone.respond(|_| Reply::status(410));
    let h = Harness::start(&[pages_with_hooks()], &[]).await;
    let sub = h
        .add(
            "hooks",
            vec![hook(&format!("{}/beacon", receiver.url()))],
            true,
        )
        .await;
    let secret = sub
        .webhook_secret
        .clone()
        .expect("the add reply gives the webhook secret");
    h.add(
        "hooks",
        vec![SubscriberChannel::Slack {
            url: format!("{}/services/T/B/x", slack.url()),
        }],
        true,
    )
    .await;
    h.add(
        "hooks",
        vec![SubscriberChannel::Teams {
            url: format!("{}/webhookb2/x", teams.url()),
        }],
        true,
    )
    .await;
    let doomed = h
        .add("hooks", vec![hook(&format!("{}/old", gone.url()))], true)
        .await;

    let id = incident_id();
    incident(
        &h,
        created("hooks", &id, "API errors", Impact::Major, &["api"]),
    )
    .await;
    h.wait_receipts("three delivered", 3, |r| {
        r.outcome == DeliveryOutcome::Delivered
    })
    .await;
    h.wait_receipts("the 410 dead", 1, |r| r.outcome == DeliveryOutcome::Dead)
        .await;

    let request = &receiver.received()[0];
    let (wid, timestamp, signature) = (
        request.header("webhook-id").expect("webhook-id"),
        request
            .header("webhook-timestamp")
            .expect("webhook-timestamp"),
        request
            .header("webhook-signature")
            .expect("webhook-signature"),
    );
    assert!(
        signatures::standard_webhooks_valid(&secret, wid, timestamp, &request.body, signature),
        "the receiver verifies the signature with its own secret"
    );
    assert!(!signatures::standard_webhooks_valid(
        &secret,
        wid,
        timestamp,
        b"{\"tampered\":1}",
        signature
    ));
    let other = h
        .add(
            "hooks",
            vec![hook(&format!("{}/other", receiver.url()))],
            true,
        )
        .await;
    assert_ne!(
        other.webhook_secret,
        Some(secret),
        "each endpoint has its own secret"
    );
    let body = request.json();
    assert_eq!(body["incident"]["id"], id);
    assert_eq!(body["incident"]["name"], "API errors");
    assert_eq!(body["incident"]["status"], "investigating");
    assert_eq!(body["incident"]["impact"], "major");
    assert_eq!(
        body["incident"]["incident_updates"][0]["body"],
        "We are looking into it."
    );
    assert_eq!(body["page"]["id"], "hooks");
    assert!(body["meta"]["unsubscribe"]
        .as_str()
        .is_some_and(|u| u.contains("/unsubscribe?token=")));

    let slack_body = slack.received()[0].json();
    assert!(slack_body["text"]
        .as_str()
        .is_some_and(|t| t.contains("API errors")));
    assert_eq!(slack_body["blocks"][0]["type"], "header");
    let teams_body = teams.received()[0].json();
    assert_eq!(
        teams_body["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );

    // 410 disabled the endpoint: the next update does not try it.
    let state: ApiReply<SubscriberView> = h
        .request(
            api::SUBSCRIBER_SHOW,
            &SubscriberRequest {
                page: "hooks".into(),
                subscriber: doomed.subscriber.subscriber.clone(),
                actor: String::new(),
            },
        )
        .await;
    assert!(
        matches!(&state, ApiReply::Ok { result } if result.subscriber.endpoints[0].state == EndpointState::Disabled),
        "{state:?}"
    );
    incident(
        &h,
        updated("hooks", &id, "u1", IncidentState::Resolved, "Fixed"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(gone.count(), 1, "a disabled endpoint gets nothing more");
}

#[tokio::test]
async fn private_addresses_are_refused_at_sign_up_and_at_send_time_and_redirects_are_not_followed()
{
    // 127.0.0.2 is loopback but not in the harness's --webhook-allow.
    let private = WebSink::start_on("127.0.0.2").await;
    let redirector = WebSink::start().await;
    let target = format!("{}/internal", private.url());
    let location = target.clone();
    redirector.respond(move |_| Reply::status(302).with_header("Location", &location));
    let h = Harness::start(&[pages_with_hooks()], &[]).await;

    for url in [
        "http://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.2]:8080/hook",
        "http://[::1]/hook",
        "http://100.64.1.1/hook",
        "http://0x7f000002/hook",
        target.as_str(),
    ] {
        let reply: ApiReply<SubscriberView> = h
            .request(
                api::SUBSCRIBER_ADD,
                &AddSubscriberRequest {
                    page: "hooks".into(),
                    subscriber: NewSubscriber {
                        endpoints: vec![hook(url)],
                        components: vec![],
                        instant: vec![],
                        dedup: DedupMode::Every,
                        digest: false,
                    },
                    confirmed: true,
                    actor: "test".into(),
                },
            )
            .await;
        match reply {
            ApiReply::Invalid { errors } => {
                assert_eq!(errors[0].location, "subscriber.endpoints[0].url", "{url}");
                assert!(
                    errors[0].message.contains("refused"),
                    "{url}: {}",
                    errors[0].message
                );
            }
            other => panic!("{url} was accepted: {other:?}"),
        }
    }

    // A record that names a private address anyway (written before a DNS
    // change, or behind the API's back) is refused again at send time.
    let sneaky = Subscriber {
        page: "hooks".into(),
        subscriber: beacon_notifier::index::new_id(),
        endpoints: vec![SubscriberEndpoint {
            channel: hook(&target),
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
    let kv =
        h.js.get_key_value(KV_SUBSCRIBERS)
            .await
            .expect("KV subscribers");
    let value = Envelope::new(&h.clock, "test", sneaky.clone())
        .encode()
        .expect("encode");
    kv.put(format!("hooks.{}", sneaky.subscriber), value.into())
        .await
        .expect("write");
    // And one whose endpoint redirects to it.
    let bounced = h
        .add(
            "hooks",
            vec![hook(&format!("{}/bounce", redirector.url()))],
            true,
        )
        .await;
    let show = SubscriberRequest {
        page: "hooks".into(),
        subscriber: sneaky.subscriber.clone(),
        actor: String::new(),
    };
    wait_until("the notifier to see the written record", LAND, || {
        let reply = h.request::<_, SubscriberView>(api::SUBSCRIBER_SHOW, &show);
        async move { matches!(reply.await, ApiReply::Ok { .. }).then_some(()) }
    })
    .await;

    incident(
        &h,
        created("hooks", &incident_id(), "Down", Impact::Major, &["api"]),
    )
    .await;
    let dead = h
        .wait_receipts("both refused", 2, |r| r.outcome == DeliveryOutcome::Dead)
        .await;
    let refused = dead
        .iter()
        .find(|r| r.subscriber == sneaky.subscriber)
        .expect("the private one");
    assert!(
        refused.detail.contains("refused range"),
        "{}",
        refused.detail
    );
    let redirected = dead
        .iter()
        .find(|r| r.subscriber == bounced.subscriber.subscriber)
        .expect("the redirect");
    assert!(redirected.detail.contains("302"), "{}", redirected.detail);
    assert_eq!(redirector.count(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        private.count(),
        0,
        "nothing ever reached the private address"
    );
}

/// Answers a scripted list of addresses, one per lookup, counting lookups.
struct Scripted {
    answers: Vec<IpAddr>,
    calls: Arc<AtomicUsize>,
}

impl Lookup for Scripted {
    fn lookup(
        &self,
        _host: String,
    ) -> Pin<Box<dyn std::future::Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let ip = self.answers[call.min(self.answers.len() - 1)];
        Box::pin(async move { Ok(vec![ip]) })
    }
}

#[tokio::test]
async fn dns_rebinding_between_check_and_connect_reaches_nothing_private() {
    // The same port on an allowed and a refused loopback address.
    let allowed = WebSink::start_on("127.0.0.1").await;
    let port = allowed.addr().port();
    let refused = tokio::net::TcpListener::bind(("127.0.0.2", port))
        .await
        .expect("bind 127.0.0.2");
    let refused_hits = Arc::new(AtomicUsize::new(0));
    let hits = refused_hits.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = refused.accept().await {
            hits.fetch_add(1, Ordering::SeqCst);
        }
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let guard = Guard::new(
        vec![Cidr::parse("127.0.0.1/32").expect("cidr")],
        Arc::new(Scripted {
            answers: vec![
                "127.0.0.1".parse().expect("ip"),
                "127.0.0.2".parse().expect("ip"),
            ],
            calls: calls.clone(),
        }),
    );
    // The check at sign-up sees the allowed address (lookup one)…
    let url = url::Url::parse(&format!("http://rebind.example:{port}/hook")).expect("url");
    assert!(guard.check_url(&url).await.is_ok());
    // …and at send time the name resolves to the refused one (lookup two):
    // the guard is the client's resolver, so the refused address is never
    // connected to.
    set_secrets();
    let senders = Senders::new(guard.clone(), Duration::from_secs(2)).expect("senders");
    let page = beacon_page::config::load(&pages_with_hooks()).expect("page");
    let notice = Notice {
        id: "incident-x.0".into(),
        kind: NoticeKind::IncidentCreated,
        page_name: "Hooks".into(),
        page_url: None,
        subject: NoticeSubject::Confirmation,
        at_ms: wall_clock_ms(),
        updates: 1,
    };
    let links = Links {
        unsubscribe: "https://n.example/unsubscribe?token=x".into(),
        confirm: None,
    };
    let address = url.to_string();
    let template = beacon_notifier::render::Template::new(ChannelKind::Webhook, &notice, "hooks");
    let delivery = Delivery {
        page: &page,
        notice: &notice,
        subscriber: "01jd5k2s9x8y7z6w5v4t3r2q1p",
        address: &address,
        key: "incident-x.0:01jd5k2s9x8y7z6w5v4t3r2q1p:webhook",
        links: &links,
        template: &template,
    };
    let result = senders
        .send(ChannelKind::Webhook, &delivery, &Waits::default())
        .await;
    assert!(
        matches!(&result, Err(SendError::Permanent { detail, .. }) if detail.contains("refused range")),
        "{result:?}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "one lookup for the check, one for the send"
    );
    // A name that resolves to the allowed address is delivered there.
    let good = Guard::new(
        vec![Cidr::parse("127.0.0.1/32").expect("cidr")],
        Arc::new(Scripted {
            answers: vec!["127.0.0.1".parse().expect("ip")],
            calls: Arc::new(AtomicUsize::new(0)),
        }),
    );
    let senders = Senders::new(good, Duration::from_secs(2)).expect("senders");
    let result = senders
        .send(ChannelKind::Webhook, &delivery, &Waits::default())
        .await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(allowed.count(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        refused_hits.load(Ordering::SeqCst),
        0,
        "nothing connected to the refused address"
    );
}
