//! What the notifier alone stores (KV `notices`, `ledger`, `suppressions`)
//! has checked-in JSON Schemas in `schemas/notifier/`, generated from
//! `beacon_notifier::records`; real records validate against them.
//! Regenerate with `BEACON_UPDATE_SCHEMAS=1 cargo test -p beacon-notifier --test schemas`.

use beacon_contract::event::{Envelope, Message};
use beacon_contract::hlc::HlcClock;
use beacon_contract::messages::*;
use beacon_contract::schema::{envelope as schema_of, to_file_text, NamedSchema};
use beacon_notifier::records::*;
use beacon_testkit::schemas::{assert_checked_in, assert_valid, SchemaFile};
use serde_json::Value;

const DIR: &str = "notifier";
const REGENERATE: &str = "BEACON_UPDATE_SCHEMAS=1 cargo test -p beacon-notifier --test schemas";

fn generated() -> Vec<SchemaFile> {
    [
        schema_of::<NoticeThread>(),
        schema_of::<DeliveryLedger>(),
        schema_of::<Suppression>(),
    ]
    .into_iter()
    .map(|NamedSchema { file, schema }| SchemaFile {
        file,
        text: to_file_text(&schema),
    })
    .collect()
}

fn envelope<T: Message>(body: T) -> (String, Value) {
    let file = format!("{}.v{}.schema.json", T::KIND, T::VERSION);
    let value = serde_json::to_value(Envelope::new(&HlcClock::new(), "eu", body)).expect("JSON");
    (file, value)
}

fn notice() -> Notice {
    Notice {
        id: "incident-inc-1.0".into(),
        kind: NoticeKind::IncidentCreated,
        page_name: "Beacon Demo".into(),
        page_url: Some("https://status.example.com".into()),
        subject: NoticeSubject::Incident {
            id: "inc-1".into(),
            title: "Checkout errors".into(),
            impact: Impact::Major,
            state: IncidentState::Investigating,
            components: vec![NoticeComponent {
                id: "api".into(),
                name: "API".into(),
                status: Some(ComponentStatus::MajorOutage),
            }],
            updates: vec![],
            created_at_ms: 1_732_233_000_000,
            updated_at_ms: 1_732_233_000_000,
            resolved_at_ms: None,
        },
        at_ms: 1_732_233_000_000,
        updates: 1,
    }
}

fn samples() -> Vec<(String, Value)> {
    let now_ms = 1_732_233_000_000;
    vec![
        envelope(NoticeThread {
            page: "demo".into(),
            thread: "incident-inc-1".into(),
            sends: vec![ThreadSend {
                index: 0,
                at_ms: now_ms,
                source: "upd-1".into(),
                components: vec!["api".into()],
                after: None,
                notice: notice().id,
                chunks: vec![SendChunks {
                    channel: ChannelKind::Email,
                    count: 3,
                }],
                published: true,
            }],
            pending: vec![PendingFlush {
                after: 0,
                due_ms: now_ms + 900_000,
                components: vec!["api".into()],
            }],
            latest: Some(notice()),
            latest_lane: Some(Lane::Normal),
        }),
        envelope(DeliveryLedger {
            states: "dd.rxs".into(),
        }),
        envelope(Suppression {
            page: "demo".into(),
            reason: SuppressionReason::Erased,
            at_ms: now_ms,
        }),
    ]
}

#[test]
fn checked_in_schemas_match_the_records() {
    assert_checked_in(DIR, &generated(), REGENERATE);
}

#[test]
fn every_record_has_a_sample_and_samples_validate() {
    let generated = generated();
    let mut sampled: Vec<String> = samples().into_iter().map(|(file, _)| file).collect();
    let mut files: Vec<String> = generated.iter().map(|s| s.file.clone()).collect();
    sampled.sort();
    files.sort();
    assert_eq!(sampled, files, "every stored record needs a sample");
    for (file, instance) in samples() {
        assert_valid(DIR, &file, &generated, &instance);
    }
}
