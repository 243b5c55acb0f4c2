//! A new leadership term claims its components in KV `status`, so a
//! deposed leader cannot store a decision after the new term began: its
//! compare-and-set, prepared against the revision it knew, fails. Against a
//! real `nats-server`, through the same store the engine uses.

use std::time::Duration;

use beacon_contract::event::EventId;
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::messages::{ComponentStatus, Evidence, StatusRecord};
use beacon_contract::names::KV_STATUS;
use beacon_decider::component::Stored;
use beacon_decider::store::{Store, StoreError};
use beacon_page::config::Component;
use beacon_runtime::daemon::{CommonArgs, Daemon};
use beacon_testkit::proxy::FaultProxy;
use beacon_testkit::NatsServer;

async fn leader(nats: &NatsServer) -> Store {
    leader_at(nats.url()).await
}

async fn leader_at(url: String) -> Store {
    let common = CommonArgs::in_process(url, Duration::from_secs(1));
    let daemon = Daemon::start("decider", "global", &common)
        .await
        .expect("start a decider process");
    let status = daemon.js.get_key_value(KV_STATUS).await.expect("KV status");
    Store::new(daemon, status)
}

fn record(status: ComponentStatus) -> StatusRecord {
    StatusRecord::new(
        "claim",
        "api",
        status,
        wall_clock_ms(),
        EventId::new(),
        Evidence {
            rule: "test".into(),
            trigger: None,
            regions: vec![],
        },
    )
}

/// Page `claim` with one component, `api`.
fn page() -> beacon_page::config::PageConfig {
    beacon_page::config::load(
        "[page]\nid = \"claim\"\nname = \"Claim\"\n[[components]]\nid = \"api\"\nname = \"API\"\n",
    )
    .expect("a page config")
}

/// A leader's term: it loads `component`, stores a record, and knows its
/// revision.
async fn loads_and_stores(leader: &Store, component: &Component) -> Stored {
    let (stored, _) = leader.load("claim", component, true).await.expect("load");
    leader
        .commit(
            &record(ComponentStatus::Operational),
            component,
            &stored,
            false,
        )
        .await
        .expect("the old leader stores while it leads")
}

/// The deposed leader's decision is refused; the new leader's lands.
async fn only_the_new_term_stores(
    old: &Store,
    stale: &Stored,
    new: &Store,
    claimed: &Stored,
    component: &Component,
) {
    let late = old
        .commit(
            &record(ComponentStatus::MajorOutage),
            component,
            stale,
            true,
        )
        .await;
    assert!(
        matches!(late, Err(StoreError::Conflict(_))),
        "a deposed leader stored a decision: {late:?}"
    );
    new.commit(
        &record(ComponentStatus::PartialOutage),
        component,
        claimed,
        true,
    )
    .await
    .expect("the new leader stores");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_cannot_store_after_the_new_term_claimed_its_components() {
    let nats = NatsServer::start();
    let config = page();
    let component = config.component("api").expect("api");

    // The old leader's term: it loads, stores a record, and knows its revision.
    let old = leader(&nats).await;
    let stored = loads_and_stores(&old, component).await;

    // A new term begins elsewhere and claims the component.
    let new = leader(&nats).await;
    let (claimed, _) = new.load("claim", component, true).await.expect("claim");

    // The old leader, not knowing it was deposed, decides something: only
    // the new term's decision lands.
    only_the_new_term_stores(&old, &stored, &new, &claimed, component).await;
    // And a reload within a term claims nothing: it does not move the
    // revision under its own leader.
    let before = new_revision(&nats).await;
    let (again, _) = new.load("claim", component, false).await.expect("reload");
    assert_eq!(new_revision(&nats).await, before, "the reload wrote");
    assert_eq!(again.revision, before);
}

async fn new_revision(nats: &NatsServer) -> Option<u64> {
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let kv = js.get_key_value(KV_STATUS).await.expect("KV status");
    kv.entry("claim.api")
        .await
        .expect("read")
        .map(|entry| entry.revision)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_cannot_make_the_first_record_after_the_new_term_claimed_it() {
    let nats = NatsServer::start();
    let config = page();
    let component = config.component("api").expect("api");

    // The old leader loaded the component before anything was stored.
    let old = leader(&nats).await;
    let (nothing, _) = old.load("claim", component, true).await.expect("load");
    assert!(nothing.record.is_none());

    // A new term claims the key that has no record yet.
    let new = leader(&nats).await;
    let (claimed, _) = new.load("claim", component, true).await.expect("claim");

    // The old leader's first record is refused; the new leader's lands.
    only_the_new_term_stores(&old, &nothing, &new, &claimed, component).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_held_on_the_wire_while_the_new_term_claims_is_refused_when_it_arrives() {
    let nats = NatsServer::start();
    let config = page();
    let component = config.component("api").expect("api");

    // The old leader reaches NATS through a proxy; it stores while it leads.
    let wire = FaultProxy::start(([127, 0, 0, 1], nats.port()).into()).await;
    let old = leader_at(wire.nats_url()).await;
    let stored = loads_and_stores(&old, component).await;

    // Its next decision leaves it but is held on the way (a stalled link,
    // a long pause): it was prepared against the revision it knew.
    wire.stall();
    let outage = record(ComponentStatus::MajorOutage);
    let late = old.commit(&outage, component, &stored, true);
    tokio::pin!(late);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut late)
            .await
            .is_err(),
        "the stalled write answered"
    );

    // Meanwhile a new term claims the component; then the link recovers
    // and the held write arrives: refused, and the new term's record stands.
    let new = leader(&nats).await;
    let (claimed, _) = new.load("claim", component, true).await.expect("claim");
    wire.resume();
    let late = late.await;
    assert!(
        matches!(late, Err(StoreError::Conflict(_))),
        "a write held on the wire landed after the new term claimed: {late:?}"
    );
    assert_eq!(new_revision(&nats).await, claimed.revision);
    new.commit(
        &record(ComponentStatus::PartialOutage),
        component,
        &claimed,
        true,
    )
    .await
    .expect("the new leader stores");
}
