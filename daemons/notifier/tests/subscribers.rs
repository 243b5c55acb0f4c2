//! The subscriber API: bad input refused with clear errors at the field it
//! is about, imports that refuse only the bad rows, header injection in
//! operators' text encoded, GDPR erasure that leaves no plaintext address
//! on the bus or on disk, and the suppression that follows it.

mod common;

use std::path::Path;
use std::time::Duration;

use beacon_contract::api;
use beacon_contract::api::{
    AddSubscriberRequest, ApiReply, EraseRequest, Erased, ImportResult, ImportSubscribersRequest,
    LinkRequest, NewSubscriber, SubscriberView, Unsubscribed,
};
use beacon_contract::messages::{
    DedupMode, DeliveryOutcome, EndpointState, Impact, SubscriberChannel,
};
use beacon_testkit::receivers::smtp::SmtpSink;
use beacon_testkit::receivers::web::{Reply, WebSink};
use beacon_testkit::{wait_until, DaemonProcess};
use common::*;
use futures::StreamExt;
use serde_json::json;

fn new(endpoints: Vec<SubscriberChannel>) -> NewSubscriber {
    NewSubscriber {
        endpoints,
        components: vec![],
        instant: vec![],
        dedup: DedupMode::Every,
        digest: false,
    }
}

async fn add(
    h: &Harness,
    page: &str,
    subscriber: NewSubscriber,
    confirmed: bool,
) -> ApiReply<SubscriberView> {
    h.request(
        api::SUBSCRIBER_ADD,
        &AddSubscriberRequest {
            page: page.into(),
            subscriber,
            confirmed,
            actor: "test".into(),
        },
    )
    .await
}

fn email(a: &str) -> SubscriberChannel {
    SubscriberChannel::Email { address: a.into() }
}

#[tokio::test]
async fn bad_input_is_refused_at_its_field_with_a_clear_error() {
    let smtp = SmtpSink::start().await;
    let extra = format!(
        "{}{}",
        email_channel(&smtp.endpoint()),
        sms_channel("http://127.0.0.1:9")
    );
    let h = Harness::start(&[page("bad", &["api"], &extra)], &[]).await;
    let cases: Vec<(NewSubscriber, &str, &str)> = vec![
        (
            new(vec![email("ada@example.com\r\nBcc: eve@example.com")]),
            "subscriber.endpoints[0].address",
            "control characters",
        ),
        (
            new(vec![email("not-an-address")]),
            "subscriber.endpoints[0].address",
            "not an email address",
        ),
        (
            new(vec![email("Ada <ada@example.com>")]),
            "subscriber.endpoints[0].address",
            "not an email address",
        ),
        (
            new(vec![SubscriberChannel::Sms {
                phone: "555-1234".into(),
            }]),
            "subscriber.endpoints[0].phone",
            "E.164",
        ),
        (
            new(vec![SubscriberChannel::Webhook {
                url: "https://hooks.example.com/x".into(),
            }]),
            "subscriber.endpoints[0].url",
            "offers no webhook channel",
        ),
        (
            new(vec![email("a@example.com"), email("b@example.com")]),
            "subscriber.endpoints[1].address",
            "one per kind",
        ),
        (new(vec![]), "subscriber.endpoints", "at least one"),
        (
            NewSubscriber {
                components: vec!["nope".into()],
                ..new(vec![email("c@example.com")])
            },
            "subscriber.components[0]",
            "no component",
        ),
        (
            NewSubscriber {
                digest: true,
                ..new(vec![SubscriberChannel::Sms {
                    phone: "+15551234567".into(),
                }])
            },
            "subscriber.digest",
            "by email",
        ),
    ];
    for (subscriber, location, words) in cases {
        match add(&h, "bad", subscriber.clone(), true).await {
            ApiReply::Invalid { errors } => {
                assert!(
                    errors
                        .iter()
                        .any(|e| e.location == location && e.message.contains(words)),
                    "{subscriber:?}: want {location} saying {words:?}, got {errors:?}"
                );
            }
            other => panic!("{subscriber:?} was accepted: {other:?}"),
        }
    }
    let unknown_page = h
        .request::<_, SubscriberView>(
            api::SUBSCRIBER_ADD,
            &AddSubscriberRequest {
                page: "Nope!".into(),
                subscriber: new(vec![email("d@example.com")]),
                confirmed: true,
                actor: "t".into(),
            },
        )
        .await;
    assert!(
        matches!(&unknown_page, ApiReply::Invalid { errors } if errors[0].location == "page"),
        "{unknown_page:?}"
    );

    // An import stores the good rows, skips what exists, and names each bad row.
    add(&h, "bad", new(vec![email("exists@example.com")]), true).await;
    let reply: ApiReply<ImportResult> = h
        .request(
            api::SUBSCRIBER_IMPORT,
            &ImportSubscribersRequest {
                page: "bad".into(),
                rows: vec![
                    new(vec![email("one@example.com")]),
                    new(vec![email("broken")]),
                    new(vec![email("EXISTS@example.com")]),
                    new(vec![SubscriberChannel::Sms {
                        phone: "+15557654321".into(),
                    }]),
                    new(vec![email("one@example.com")]),
                ],
                confirmed: true,
                actor: "t".into(),
            },
        )
        .await;
    let ApiReply::Ok { result } = reply else {
        panic!("import: {reply:?}")
    };
    assert_eq!((result.created, result.existing), (2, 2), "{result:?}");
    assert_eq!(result.refused.len(), 1);
    assert_eq!(result.refused[0].location, "rows[1].endpoints[0].address");

    // Operators' text with a line break cannot start a header of its own.
    add(&h, "bad", new(vec![email("reader@example.com")]), true).await;
    let mut event = created(
        "bad",
        &incident_id(),
        "Down\r\nBcc: eve@example.com",
        Impact::Minor,
        &["api"],
    );
    event.title = Some("Down\r\nBcc: eve@example.com\r\nX-Injected: 1".into());
    incident(&h, event).await;
    wait_until("the email", LAND, || {
        let n = smtp.count();
        async move { (n >= 3).then_some(()) }
    })
    .await;
    for mail in smtp.mails() {
        let names = mail.header_names();
        assert!(
            !names
                .iter()
                .any(|n| n.eq_ignore_ascii_case("bcc") || n.eq_ignore_ascii_case("x-injected")),
            "{names:?}"
        );
        assert!(!mail.to.contains(&"eve@example.com".to_owned()));
    }
}

#[tokio::test]
async fn bad_flags_exit_64_naming_every_problem() {
    let nats = beacon_testkit::NatsServer::start();
    let mut notifier = DaemonProcess::spawn(
        "beacon-notifier",
        vec![
            "--nats-url".into(),
            nats.url(),
            "--public-url".into(),
            "status.example.com".into(),
            "--signing-secret".into(),
            "short".into(),
            "--webhook-allow".into(),
            "10.0.0.0/99".into(),
        ],
    );
    let status = notifier.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(64));
    let logs = notifier.logs();
    for flag in ["--public-url", "--signing-secret", "--webhook-allow"] {
        assert!(logs.contains(flag), "{flag} missing:\n{logs}");
    }
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn erasure_leaves_no_plaintext_address_on_the_bus_or_on_disk() {
    let smtp = SmtpSink::start().await;
    let twilio = WebSink::start().await;
    twilio.respond(|_| Reply::json(201, json!({"sid": "SM1"})));
    let extra = format!(
        "{}{}",
        email_channel(&smtp.endpoint()),
        sms_channel(&twilio.url())
    );
    let h = Harness::start(&[page("gdpr", &["api"], &extra)], &[]).await;
    let address = "forget.me@example.com";
    let phone = "+15559990001";
    let sub = h
        .add(
            "gdpr",
            vec![
                email(address),
                SubscriberChannel::Sms {
                    phone: phone.into(),
                },
            ],
            true,
        )
        .await;
    incident(
        &h,
        created("gdpr", &incident_id(), "Down", Impact::Major, &["api"]),
    )
    .await;
    h.wait_receipts("both delivered", 2, |r| {
        r.outcome == DeliveryOutcome::Delivered
    })
    .await;
    // Leave a superseded revision behind: unsubscribe the SMS by its link.
    let sms = twilio.received()[0].form();
    let body = &sms["Body"];
    let start = body.find("token=").expect("a link in the SMS") + "token=".len();
    let token: String = body[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let reply: ApiReply<Unsubscribed> = h
        .request(api::SUBSCRIBER_UNSUBSCRIBE, &LinkRequest { token })
        .await;
    assert!(
        matches!(&reply, ApiReply::Ok { result } if !result.removed_subscriber),
        "{reply:?}"
    );

    let erased: ApiReply<Erased> = h
        .request(
            api::SUBSCRIBER_ERASE,
            &EraseRequest {
                page: "gdpr".into(),
                address: Some("Forget.Me@Example.com".into()),
                subscriber: None,
                actor: "dpo".into(),
            },
        )
        .await;
    let ApiReply::Ok { result } = erased else {
        panic!("erase: {erased:?}")
    };
    assert_eq!(
        result.subscribers,
        std::slice::from_ref(&sub.subscriber.subscriber)
    );
    assert!(result.suppressed >= 1);

    // Every message of every stream, as the bus serves it.
    let mut names = h.js.stream_names();
    let mut streams = Vec::new();
    while let Some(name) = names.next().await {
        streams.push(name.expect("a stream name"));
    }
    for name in &streams {
        // Message by message, work queues included.
        let mut stream = h.js.get_stream(name).await.expect("a stream");
        let state = stream.info().await.expect("stream info").state.clone();
        for sequence in state.first_sequence..=state.last_sequence {
            let Ok(message) = stream.get_raw_message(sequence).await else {
                continue;
            };
            let text = String::from_utf8_lossy(&message.payload).to_lowercase();
            assert!(
                !text.contains(address) && !text.contains(phone),
                "{name} still has it: {text}"
            );
        }
    }
    // And the server's files on disk, after it has written them out.
    let mut nats = h.nats;
    nats.restart();
    for needle in [address, phone] {
        let found = files_containing(&nats.store_dir(), needle.as_bytes());
        assert!(found.is_empty(), "{needle} is still on disk in {found:?}");
    }
}

#[tokio::test]
async fn an_erased_address_comes_back_only_through_its_owners_own_sign_up() {
    let smtp = SmtpSink::start().await;
    let h = Harness::start(
        &[page("supp", &["api"], &email_channel(&smtp.endpoint()))],
        &[],
    )
    .await;
    h.add("supp", vec![email("gone@example.com")], true).await;
    let erased: ApiReply<Erased> = h
        .request(
            api::SUBSCRIBER_ERASE,
            &EraseRequest {
                page: "supp".into(),
                address: Some("gone@example.com".into()),
                subscriber: None,
                actor: "dpo".into(),
            },
        )
        .await;
    assert!(matches!(erased, ApiReply::Ok { .. }));
    // An operator's import or add may not bring it back.
    match add(&h, "supp", new(vec![email("gone@example.com")]), true).await {
        ApiReply::Invalid { errors } => assert!(errors[0].message.contains("erased"), "{errors:?}"),
        other => panic!("re-added: {other:?}"),
    }
    // Its owner may, by signing up and confirming.
    match add(&h, "supp", new(vec![email("gone@example.com")]), false).await {
        ApiReply::Ok { result } => {
            assert_eq!(result.subscriber.endpoints[0].state, EndpointState::Pending)
        }
        other => panic!("sign-up refused: {other:?}"),
    }
}
