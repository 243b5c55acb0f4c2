//! Email end to end: real SMTP over TCP to a loopback SMTP server, the
//! double opt-in, the unsubscribe link and its headers, a forged link,
//! a transient SMTP refusal retried with the same Message-ID, and a
//! refused recipient with and without pipelined commands.

mod common;

use beacon_contract::api;
use beacon_contract::api::{ApiReply, LinkRequest, SubscriberView, Unsubscribed};
use beacon_contract::messages::{
    DeliveryOutcome, EndpointState, Impact, IncidentState, SubscriberChannel,
};
use beacon_testkit::receivers::smtp::SmtpSink;
use beacon_testkit::wait_until;
use common::*;

fn email(address: &str) -> SubscriberChannel {
    SubscriberChannel::Email {
        address: address.into(),
    }
}

#[tokio::test]
async fn an_incident_reaches_subscribers_by_smtp_with_unsubscribe_headers_and_the_link_works_once()
{
    let smtp = SmtpSink::start().await;
    let h = Harness::start(
        &[page("mail", &["api"], &email_channel(&smtp.endpoint()))],
        &[],
    )
    .await;
    let ada = h.add("mail", vec![email("ada@example.com")], true).await;
    let bob = h.add("mail", vec![email("bob@example.com")], true).await;
    assert_eq!(ada.subscriber.endpoints[0].state, EndpointState::Active);

    let id = incident_id();
    incident(
        &h,
        created("mail", &id, "Checkout <errors>", Impact::Major, &["api"]),
    )
    .await;
    wait_until("two emails", LAND, || {
        let n = smtp.count();
        async move { (n >= 2).then_some(()) }
    })
    .await;
    let receipts = h
        .wait_receipts("two delivered receipts", 2, |r| {
            r.outcome == DeliveryOutcome::Delivered
        })
        .await;
    let mails = smtp.mails();
    assert_eq!(mails.len(), 2, "one email each, no more");
    let to_ada = mails
        .iter()
        .find(|m| m.to == ["ada@example.com"])
        .expect("ada's email");
    let key = format!("incident-{id}.0:{}:email", ada.subscriber.subscriber);
    assert_eq!(
        to_ada.header("X-Beacon-Idempotency-Key").as_deref(),
        Some(key.as_str())
    );
    assert!(receipts.iter().any(|r| r.idempotency_key == key));
    // Receipts name subscribers by id, never by address.
    for receipt in &receipts {
        assert!(
            !format!("{receipt:?}").contains("@example.com"),
            "{receipt:?}"
        );
    }
    assert_eq!(
        to_ada.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let unsubscribe = to_ada.header("List-Unsubscribe").expect("List-Unsubscribe");
    assert!(
        unsubscribe.starts_with(&format!("<{}/unsubscribe?token=", h.inbound)),
        "{unsubscribe}"
    );
    let message_id = to_ada.header("Message-ID").expect("Message-ID");
    assert!(message_id.ends_with("@example.com>"), "{message_id}");
    assert!(to_ada.data.contains("multipart/alternative"));
    assert!(to_ada.data.contains("text/html"));
    assert!(
        to_ada.data.contains("Checkout &lt;errors&gt;"),
        "HTML is escaped"
    );

    // A forged token (Bob's subscriber id under Ada's signature, or a
    // made-up one) changes nothing.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let ada_token = token_of(&unsubscribe);
    let (_, mac) = ada_token.split_once('.').expect("payload.mac");
    let bob_payload = b64.encode(format!("u|mail|{}|email", bob.subscriber.subscriber));
    for forged in [
        format!("{bob_payload}.{mac}"),
        format!("{bob_payload}.AAAAAAAAAAAAAAAAAAAAAA"),
        "nonsense".to_owned(),
    ] {
        let reply: ApiReply<Unsubscribed> = h
            .request(api::SUBSCRIBER_UNSUBSCRIBE, &LinkRequest { token: forged })
            .await;
        assert!(matches!(reply, ApiReply::Invalid { .. }), "{reply:?}");
    }
    let forged_post = reqwest::Client::new()
        .post(format!(
            "{}/unsubscribe?token={bob_payload}.{mac}",
            h.inbound
        ))
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("POST a forged link");
    assert_eq!(forged_post.status(), 400);
    // The one-click POST that mail clients send (RFC 8058) unsubscribes.
    let link = unsubscribe.trim_matches(['<', '>']).to_owned();
    let response = reqwest::Client::new()
        .post(&link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("POST the unsubscribe link");
    assert_eq!(response.status(), 200);
    let shown: ApiReply<SubscriberView> = h
        .request(
            api::SUBSCRIBER_SHOW,
            &beacon_contract::api::SubscriberRequest {
                page: "mail".into(),
                subscriber: ada.subscriber.subscriber.clone(),
                actor: String::new(),
            },
        )
        .await;
    assert!(
        matches!(shown, ApiReply::Invalid { .. }),
        "Ada is gone: {shown:?}"
    );
    let still_bob: ApiReply<SubscriberView> = h
        .request(
            api::SUBSCRIBER_SHOW,
            &beacon_contract::api::SubscriberRequest {
                page: "mail".into(),
                subscriber: bob.subscriber.subscriber.clone(),
                actor: String::new(),
            },
        )
        .await;
    assert!(
        matches!(still_bob, ApiReply::Ok { .. }),
        "Bob stays: {still_bob:?}"
    );

    // The next update goes to Bob only (and is held for his window, so
    // resolve with a zero-window page is not needed: check nothing new
    // reached Ada).
    incident(
        &h,
        updated("mail", &id, "u1", IncidentState::Identified, "Found it"),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        smtp.mails()
            .iter()
            .filter(|m| m.to == ["ada@example.com"])
            .count()
            == 1
    );
}

#[tokio::test]
async fn double_opt_in_sends_one_confirmation_whose_link_works_once_and_expires() {
    let smtp = SmtpSink::start().await;
    let h = Harness::start(
        &[page("optin", &["api"], &email_channel(&smtp.endpoint()))],
        &["--confirm-ttl", "3s"],
    )
    .await;
    let pending = h.add("optin", vec![email("cy@example.com")], false).await;
    assert_eq!(
        pending.subscriber.endpoints[0].state,
        EndpointState::Pending
    );
    assert!(
        pending.subscriber.endpoints[0].confirmation.is_none(),
        "the API never shows the nonce"
    );

    // Nothing but the confirmation goes to a pending endpoint.
    incident(
        &h,
        created("optin", &incident_id(), "Down", Impact::Major, &["api"]),
    )
    .await;
    wait_until("the confirmation email", LAND, || {
        let n = smtp.count();
        async move { (n >= 1).then_some(()) }
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mails = smtp.mails();
    assert_eq!(
        mails.len(),
        1,
        "only the confirmation: {:?}",
        mails
            .iter()
            .map(|m| m.header("Subject"))
            .collect::<Vec<_>>()
    );
    let text = &mails[0].decoded();
    let start = text
        .find(&format!("{}/confirm?token=", h.inbound))
        .expect("a confirm link");
    let link: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '<' && *c != '"')
        .collect();
    let token = token_of(&link);

    // Following it confirms; following it again is refused.
    let confirmed: ApiReply<SubscriberView> = h
        .request(
            api::SUBSCRIBER_CONFIRM,
            &LinkRequest {
                token: token.clone(),
            },
        )
        .await;
    let ApiReply::Ok { result } = confirmed else {
        panic!("not confirmed: {confirmed:?}")
    };
    assert_eq!(result.subscriber.endpoints[0].state, EndpointState::Active);
    let again: ApiReply<SubscriberView> = h
        .request(api::SUBSCRIBER_CONFIRM, &LinkRequest { token })
        .await;
    assert!(
        matches!(&again, ApiReply::Invalid { errors } if errors[0].message.contains("used")),
        "{again:?}"
    );

    // A link past its expiry is refused and the endpoint stays pending.
    let late = h.add("optin", vec![email("dee@example.com")], false).await;
    wait_until("the second confirmation", LAND, || {
        let n = smtp.count();
        async move { (n >= 2).then_some(()) }
    })
    .await;
    let mail = smtp
        .mails()
        .into_iter()
        .find(|m| m.to == ["dee@example.com"])
        .expect("dee's confirmation");
    let text = mail.decoded();
    let start = text.find("/confirm?token=").expect("a link");
    let token: String = text[start + "/confirm?token=".len()..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '<' && *c != '"')
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(3_200)).await;
    let expired: ApiReply<SubscriberView> = h
        .request(api::SUBSCRIBER_CONFIRM, &LinkRequest { token })
        .await;
    assert!(
        matches!(&expired, ApiReply::Invalid { errors } if errors[0].message.contains("expired")),
        "{expired:?}"
    );
    let still: ApiReply<SubscriberView> = h
        .request(
            api::SUBSCRIBER_SHOW,
            &beacon_contract::api::SubscriberRequest {
                page: "optin".into(),
                subscriber: late.subscriber.subscriber,
                actor: String::new(),
            },
        )
        .await;
    assert!(
        matches!(&still, ApiReply::Ok { result } if result.subscriber.endpoints[0].state == EndpointState::Pending)
    );
}

#[tokio::test]
async fn a_transient_smtp_refusal_is_retried_with_the_same_message_id() {
    let smtp = SmtpSink::start().await;
    smtp.fail_next(1);
    let h = Harness::start(
        &[page("retry", &["api"], &email_channel(&smtp.endpoint()))],
        &[],
    )
    .await;
    let eve = h.add("retry", vec![email("eve@example.com")], true).await;
    incident(
        &h,
        created("retry", &incident_id(), "Down", Impact::Minor, &["api"]),
    )
    .await;
    let retrying = h
        .wait_receipts("a retrying receipt", 1, |r| {
            r.outcome == DeliveryOutcome::Retrying
        })
        .await;
    assert_eq!(retrying[0].detail, "smtp 451");
    let delivered = h
        .wait_receipts("the retry delivered", 1, |r| {
            r.outcome == DeliveryOutcome::Delivered
        })
        .await;
    assert_eq!(delivered[0].idempotency_key, retrying[0].idempotency_key);
    assert_eq!(delivered[0].attempts, 2);
    assert_eq!(delivered[0].subscriber, eve.subscriber.subscriber);
    assert_eq!(smtp.count(), 1, "the refused attempt was not kept");
}

/// One subscriber refused for good, one accepted: the refused one is dead
/// at once (no retry), the other delivered, and the connection pool goes
/// on working after the refusal.
async fn a_refused_recipient_is_dead_and_the_others_delivered(
    smtp: SmtpSink,
    page_id: &str,
) -> SmtpSink {
    smtp.refuse("eve@example.com");
    let h = Harness::start(
        &[page(page_id, &["api"], &email_channel(&smtp.endpoint()))],
        &[],
    )
    .await;
    let eve = h.add(page_id, vec![email("eve@example.com")], true).await;
    let ada = h.add(page_id, vec![email("ada@example.com")], true).await;
    let bob = h.add(page_id, vec![email("bob@example.com")], true).await;
    incident(
        &h,
        created(page_id, &incident_id(), "Down", Impact::Minor, &["api"]),
    )
    .await;
    let receipts = h
        .wait_receipts("three final receipts", 3, |r| {
            matches!(
                r.outcome,
                DeliveryOutcome::Delivered | DeliveryOutcome::Dead
            )
        })
        .await;
    let outcome_of = |id: &str| {
        receipts
            .iter()
            .find(|r| r.subscriber == id)
            .map(|r| (r.outcome, r.detail.clone()))
    };
    assert_eq!(
        outcome_of(&eve.subscriber.subscriber),
        Some((DeliveryOutcome::Dead, "smtp 550".to_owned()))
    );
    for accepted in [&ada, &bob] {
        assert_eq!(
            outcome_of(&accepted.subscriber.subscriber).map(|o| o.0),
            Some(DeliveryOutcome::Delivered)
        );
    }
    let mut to: Vec<String> = smtp.mails().into_iter().flat_map(|m| m.to).collect();
    to.sort();
    assert_eq!(to, ["ada@example.com", "bob@example.com"]);
    smtp
}

#[tokio::test]
async fn a_refused_recipient_with_pipelined_commands() {
    let smtp =
        a_refused_recipient_is_dead_and_the_others_delivered(SmtpSink::start().await, "piped")
            .await;
    assert!(smtp.pipelined() > 0, "the commands came pipelined");
}

#[tokio::test]
async fn a_refused_recipient_without_pipelining() {
    let smtp = a_refused_recipient_is_dead_and_the_others_delivered(
        SmtpSink::start_without_pipelining().await,
        "unpiped",
    )
    .await;
    assert_eq!(smtp.pipelined(), 0, "one command at a time");
}
