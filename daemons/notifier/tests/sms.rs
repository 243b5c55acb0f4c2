//! SMS end to end against a loopback server speaking the Twilio Messages
//! API: the request Twilio would get, 429 with `Retry-After`, error 21610,
//! and the inbound STOP/START webhook with its signature checked (and a
//! forged one refused).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use beacon_contract::api;
use beacon_contract::api::{ApiReply, SubscriberRequest, SubscriberView};
use beacon_contract::messages::{DeliveryOutcome, EndpointState, Impact, SubscriberChannel};
use beacon_testkit::receivers::signatures;
use beacon_testkit::receivers::web::{Reply, WebSink};
use common::*;
use serde_json::json;

fn phone(number: &str) -> SubscriberChannel {
    SubscriberChannel::Sms {
        phone: number.into(),
    }
}

fn created_reply() -> Reply {
    Reply::json(
        201,
        json!({"sid": "SM0123456789abcdef", "status": "queued"}),
    )
}

async fn state_of(h: &Harness, page: &str, subscriber: &str) -> EndpointState {
    let reply: ApiReply<SubscriberView> = h
        .request(
            api::SUBSCRIBER_SHOW,
            &SubscriberRequest {
                page: page.into(),
                subscriber: subscriber.into(),
                actor: String::new(),
            },
        )
        .await;
    match reply {
        ApiReply::Ok { result } => result.subscriber.endpoints[0].state,
        other => panic!("show: {other:?}"),
    }
}

/// POSTs an inbound SMS to the notifier as Twilio would, signed with
/// `token`; returns the HTTP status.
async fn inbound(h: &Harness, from: &str, body: &str, token: &str) -> u16 {
    let url = format!("{}/sms/twilio", h.inbound);
    let params: BTreeMap<String, String> = [
        ("AccountSid", TWILIO_SID),
        ("Body", body),
        ("From", from),
        ("MessageSid", "SM00000000000000000000000000000001"),
        ("To", "+15550000001"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let signature = signatures::twilio(token, &url, &params);
    reqwest::Client::new()
        .post(&url)
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .expect("POST the inbound SMS")
        .status()
        .as_u16()
}

#[tokio::test]
async fn sms_goes_through_the_twilio_api_and_429_and_21610_are_honoured() {
    let twilio = WebSink::start().await;
    let throttled = Arc::new(AtomicUsize::new(0));
    let seen = throttled.clone();
    twilio.respond(move |request| {
        let form = request.form();
        match form.get("To").map(String::as_str) {
            // The first message to this number is throttled for a second.
            Some("+15551110002") if seen.fetch_add(1, Ordering::SeqCst) == 0 => {
                Reply::json(429, json!({"code": 20429, "message": "Too Many Requests", "status": 429}))
                    .with_header("Retry-After", "1")
            }
            Some("+15551110003") => Reply::json(
                400,
                json!({"code": 21610, "message": "Attempt to send to unsubscribed recipient +15551110003", "status": 400}),
            ),
            _ => created_reply(),
        }
    });
    let h = Harness::start(&[page("sms", &["api"], &sms_channel(&twilio.url()))], &[]).await;
    let ok = h.add("sms", vec![phone("+15551110001")], true).await;
    let slow = h.add("sms", vec![phone("+15551110002")], true).await;
    let gone = h.add("sms", vec![phone("+15551110003")], true).await;

    incident(
        &h,
        created(
            "sms",
            &incident_id(),
            "Database down",
            Impact::Major,
            &["api"],
        ),
    )
    .await;
    h.wait_receipts("two delivered", 2, |r| {
        r.outcome == DeliveryOutcome::Delivered
    })
    .await;
    let dead = h
        .wait_receipts("21610 dead", 1, |r| r.outcome == DeliveryOutcome::Dead)
        .await;
    assert_eq!(dead[0].subscriber, gone.subscriber.subscriber);
    assert_eq!(
        dead[0].detail, "twilio 400 error 21610",
        "no provider text, which echoes the number"
    );

    // What Twilio got: basic auth, To, From from the pool, a body with the
    // unsubscribe link and STOP instructions.
    let requests = twilio.received();
    let first = requests
        .iter()
        .find(|r| r.form().get("To").map(String::as_str) == Some("+15551110001"))
        .expect("a message to the first number");
    assert_eq!(
        first.path,
        format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages.json")
    );
    let auth = first.header("authorization").expect("basic auth");
    use base64::Engine;
    let expected =
        base64::engine::general_purpose::STANDARD.encode(format!("{TWILIO_SID}:{TWILIO_TOKEN}"));
    assert_eq!(auth, format!("Basic {expected}"));
    let form = first.form();
    assert!(["+15550000001", "+15550000002"].contains(&form["From"].as_str()));
    assert!(form["Body"].contains("Database down"), "{}", form["Body"]);
    assert!(form["Body"].contains("Reply STOP"));
    assert!(form["Body"].contains("/unsubscribe?token="));
    assert!(first
        .header("idempotency-key")
        .is_some_and(|k| k.ends_with(":sms")));

    // The 429 was waited out: the retry came at least a second later.
    let slow_requests: Vec<_> = requests
        .iter()
        .filter(|r| r.form().get("To").map(String::as_str) == Some("+15551110002"))
        .collect();
    assert_eq!(slow_requests.len(), 2, "throttled once, then accepted");
    let gap = slow_requests[1].at.duration_since(slow_requests[0].at);
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?}, before Retry-After"
    );
    assert_eq!(
        slow_requests[0].header("idempotency-key"),
        slow_requests[1].header("idempotency-key"),
        "a retry carries the same key"
    );

    // 21610 stopped the endpoint; the others are untouched.
    assert_eq!(
        state_of(&h, "sms", &gone.subscriber.subscriber).await,
        EndpointState::Stopped
    );
    assert_eq!(
        state_of(&h, "sms", &ok.subscriber.subscriber).await,
        EndpointState::Active
    );
    assert_eq!(
        state_of(&h, "sms", &slow.subscriber.subscriber).await,
        EndpointState::Active
    );
}

#[tokio::test]
async fn stop_and_start_arrive_signed_and_a_forged_stop_changes_nothing() {
    let twilio = WebSink::start().await;
    twilio.respond(|_| created_reply());
    let h = Harness::start(&[page("stop", &["api"], &sms_channel(&twilio.url()))], &[]).await;
    let sub = h.add("stop", vec![phone("+15552220001")], true).await;
    let id = sub.subscriber.subscriber.clone();

    // Forged: signed with the wrong token, or not signed at all.
    assert_eq!(
        inbound(&h, "+15552220001", "STOP", "not-the-token").await,
        403
    );
    let unsigned = reqwest::Client::new()
        .post(format!("{}/sms/twilio", h.inbound))
        .form(&[
            ("AccountSid", TWILIO_SID),
            ("From", "+15552220001"),
            ("Body", "STOP"),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(unsigned.status(), 403);
    assert_eq!(state_of(&h, "stop", &id).await, EndpointState::Active);
    assert!(
        h.metric("beacon_notifier_inbound_total{kind=\"sms\",outcome=\"forged\"}")
            .await
            >= 2.0
    );

    // A real STOP stops it, and nothing more goes out to it.
    assert_eq!(inbound(&h, "+15552220001", "stop", TWILIO_TOKEN).await, 200);
    assert_eq!(state_of(&h, "stop", &id).await, EndpointState::Stopped);
    incident(
        &h,
        created("stop", &incident_id(), "Down", Impact::Critical, &["api"]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(twilio.count(), 0, "a stopped number gets nothing");

    // START brings it back.
    assert_eq!(
        inbound(&h, "+15552220001", "START", TWILIO_TOKEN).await,
        200
    );
    assert_eq!(state_of(&h, "stop", &id).await, EndpointState::Active);
    incident(
        &h,
        created(
            "stop",
            &incident_id(),
            "Down again",
            Impact::Critical,
            &["api"],
        ),
    )
    .await;
    h.wait_receipts("delivered after START", 1, |r| {
        r.outcome == DeliveryOutcome::Delivered
    })
    .await;

    // Minor incidents do not go by SMS on a page that allows only major
    // and critical ones (the default).
    incident(
        &h,
        created("stop", &incident_id(), "Slow", Impact::Minor, &["api"]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(twilio.count(), 1);
}
