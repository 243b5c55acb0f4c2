//! A region whose clock runs ahead cannot make its writes win for good: a
//! change made after reading its write is stamped after it, whatever the
//! clocks say. Against a real `beacon-decider` and `nats-server`.

use beacon_contract::api::{
    ApiReply, ChangeIncidentRequest, CreateIncidentRequest, Endpoint, ShowIncidentRequest,
    INCIDENT_CREATE, INCIDENT_SHOW, INCIDENT_UPDATE,
};
use beacon_contract::event::{Envelope, EventId};
use beacon_contract::hlc::{wall_clock_ms, Hlc};
use beacon_contract::incident::Incident;
use beacon_contract::messages::{Impact, IncidentAction, IncidentEvent};
use beacon_contract::names::incident_subject;
use beacon_page::config::api::{ApplyConfigRequest, CONFIG_APPLY};
use beacon_runtime::publish::publish;
use beacon_testkit::wait::{wait_until, READY, SOON};
use beacon_testkit::{DaemonProcess, NatsServer};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// How far ahead the other region's clock runs.
const AHEAD_MS: u64 = 30_000;

async fn ask<Req: Serialize, Res: DeserializeOwned>(
    client: &async_nats::Client,
    endpoint: Endpoint<Req, Res>,
    request: &Req,
) -> ApiReply<Res> {
    let payload = serde_json::to_vec(request).expect("encode");
    let reply = client
        .request(endpoint.subject(), payload.into())
        .await
        .expect("an answer");
    serde_json::from_slice(&reply.payload).expect("an ApiReply")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_after_reading_a_write_from_a_fast_clock_wins_over_it() {
    let nats = NatsServer::start();
    let decider =
        DaemonProcess::spawn_with_admin("beacon-decider", vec!["--nats-url".into(), nats.url()]);
    decider.wait_ready(READY).await;
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client.clone());

    let config = beacon_page::config::parse_toml(
        "[page]\nid = \"skew\"\nname = \"Skew\"\n[[components]]\nid = \"api\"\nname = \"API\"\n",
    )
    .expect("a page");
    let applied = ask(
        &client,
        CONFIG_APPLY,
        &ApplyConfigRequest {
            config,
            expected_revision: None,
        },
    )
    .await;
    assert!(matches!(applied, ApiReply::Ok { .. }), "{applied:?}");
    let ApiReply::Ok { result: opened } = ask(
        &client,
        INCIDENT_CREATE,
        &CreateIncidentRequest {
            page: "skew".into(),
            title: "Slow responses".into(),
            impact: Impact::Minor,
            state: None,
            body: "Looking into it.".into(),
            components: vec![],
            actor: "here".into(),
            idempotency_key: None,
        },
    )
    .await
    else {
        panic!("the incident was not opened");
    };

    // The other region, its clock 30 s fast, renames the incident.
    let ahead = wall_clock_ms() + AHEAD_MS;
    let mut event = IncidentEvent::new("skew", &opened.id, IncidentAction::Edited, "there", ahead);
    event.title = Some("Renamed by the fast region".into());
    let write = Envelope::with_id(EventId::new(), Hlc::new(ahead, 0), "ap", event);
    publish(&js, &incident_subject("skew", &opened.id), &write)
        .await
        .expect("publish the fast region's write");

    // An operator here reads it and renames the incident again, well
    // within the 30 s: the later change is what the incident shows.
    let renamed = wait_until("the rename to be accepted", SOON, || async {
        let request = ChangeIncidentRequest {
            page: "skew".into(),
            incident: opened.id.clone(),
            expected_revision: None,
            state: None,
            body: "Renamed after reading the other region's title.".into(),
            title: Some("Renamed here, later".into()),
            impact: None,
            components: None,
            actor: "here".into(),
            idempotency_key: Some("rename-here".into()),
        };
        match ask(&client, INCIDENT_UPDATE, &request).await {
            ApiReply::Ok { result } => Some(result),
            ApiReply::Conflict { .. } => None,
            other => panic!("the rename was refused: {other:?}"),
        }
    })
    .await;
    assert!(wall_clock_ms() < ahead, "the test ran past the skew");
    assert_eq!(renamed.title, "Renamed here, later");
    let ApiReply::Ok { result: shown } = ask(
        &client,
        INCIDENT_SHOW,
        &ShowIncidentRequest {
            page: "skew".into(),
            incident: opened.id.clone(),
        },
    )
    .await
    else {
        panic!("the incident cannot be shown");
    };
    let shown: Incident = shown;
    assert_eq!(shown.title, "Renamed here, later");
    // The decider's clock did not jump to the fast region's: an incident
    // opened now is stamped by its own wall clock.
    let ApiReply::Ok { result: next } = ask(
        &client,
        INCIDENT_CREATE,
        &CreateIncidentRequest {
            page: "skew".into(),
            title: "Another".into(),
            impact: Impact::Minor,
            state: None,
            body: "Unrelated.".into(),
            components: vec![],
            actor: "here".into(),
            idempotency_key: None,
        },
    )
    .await
    else {
        panic!("the second incident was not opened");
    };
    let stream = js
        .get_stream(beacon_contract::names::STREAM_INCIDENTS)
        .await
        .expect("INCIDENTS");
    let stored = stream
        .get_last_raw_message_by_subject(&incident_subject("skew", &next.id))
        .await
        .expect("its event");
    let event = Envelope::<IncidentEvent>::decode(&stored.payload).expect("an incident event");
    assert!(
        event.hlc.wall_ms < ahead,
        "the decider's clock followed the fast region: {}",
        event.hlc
    );
}
