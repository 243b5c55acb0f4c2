//! The envelope: every message kind survives encode/decode unchanged, and
//! decoding refuses what it cannot read with the precise reason.

use std::fmt::Debug;

use beacon_contract::event::{DecodeError, Envelope, EventId, Message};
use beacon_contract::hlc::{Hlc, HlcClock};
use beacon_contract::messages::*;
use beacon_page::config;
use serde_json::{json, Value};

fn round_trip<T: Message + PartialEq + Debug>(body: T) {
    let clock = HlcClock::new();
    let sent = Envelope::new(&clock, "eu", body);
    assert_eq!(sent.kind, T::KIND);
    assert_eq!(sent.version, T::VERSION);
    let bytes = sent.encode().expect("encode");
    let received =
        Envelope::<T>::decode(&bytes).unwrap_or_else(|e| panic!("decode {}: {e}", T::KIND));
    assert_eq!(received, sent, "{} changed in transit", T::KIND);
}

fn evidence() -> Evidence {
    Evidence {
        rule: "quorum: 2 of 2 regions down".into(),
        trigger: Some(EventId::new()),
        regions: vec![RegionEvidence {
            consecutive_failures: 3,
            last_result: Some(EventId::new()),
            last_error: Some("timed out after 1s".into()),
            ..RegionEvidence::new("eu", RegionState::Down)
        }],
    }
}

fn health() -> HealthResult {
    HealthResult {
        page: "demo".into(),
        component: "api".into(),
        check: "http".into(),
        region: "eu".into(),
        kind: CheckKind::Http,
        outcome: Outcome::Up,
        started_at_ms: 1_732_233_000_000,
        latency_ms: 12,
        http_status: Some(200),
        error: None,
        error_kind: None,
        failed_condition: None,
        timings: None,
        observed: Default::default(),
    }
}

#[test]
fn every_kind_round_trips() {
    round_trip(health());
    round_trip(HealthResult {
        kind: CheckKind::Tcp,
        outcome: Outcome::Down,
        http_status: None,
        error: Some("connection refused".into()),
        error_kind: None,
        failed_condition: None,
        timings: None,
        observed: Default::default(),
        ..health()
    });
    round_trip(StatusRecord::new(
        "demo",
        "api",
        ComponentStatus::UnderMaintenance,
        1_732_233_000_000,
        EventId::new(),
        evidence(),
    ));
    let record = StatusRecord {
        flapping: true,
        source: StatusSource::Override,
        ..StatusRecord::new(
            "demo",
            "api",
            ComponentStatus::PartialOutage,
            1_732_233_000_000,
            EventId::new(),
            evidence(),
        )
    };
    round_trip(record.change_event());
    let mut resolved = IncidentEvent::new("demo", "inc-1", IncidentAction::Resolved, "op", 1);
    // Markup and non-ASCII travel as plain text; escaping is the renderer's job.
    resolved.title = Some("Ünïcode & <b>markup</b>".into());
    resolved.state = Some(IncidentState::Resolved);
    resolved.impact = Some(Impact::Critical);
    resolved.update = Some(IncidentUpdate {
        id: "u1".into(),
        state: IncidentState::Resolved,
        body: "Fixed.\nLine two.".into(),
        components: vec![AffectedComponent {
            component: "api".into(),
            status: ComponentStatus::Operational,
        }],
        at_ms: 1,
        actor: "op".into(),
    });
    round_trip(resolved);
    round_trip(MaintenanceEvent {
        page: "demo".into(),
        maintenance: "mnt-1".into(),
        action: MaintenanceAction::Cancelled,
        actor: "op".into(),
        at_ms: 1,
        phase: MaintenancePhase::Cancelled,
        title: "Upgrade".into(),
        body: String::new(),
        starts_at_ms: 1,
        ends_at_ms: u64::MAX,
        components: vec!["db".into(), "api".into()],
        recurrence: Some("0 3 * * TUE".into()),
        series: None,
        remind_before_ms: 0,
        verify_ms: 0,
    });
    round_trip(ChangelogEntry {
        page: "demo".into(),
        entry: "chg-1".into(),
        title: "New".into(),
        body_markdown: "# Heading".into(),
        category: "fix".into(),
        components: vec![],
        withdrawn: true,
        published_at_ms: 0,
        images: vec![],
        actor: String::new(),
    });
    for channel in [
        SubscriberChannel::Email {
            address: "a@example.com".into(),
        },
        SubscriberChannel::Sms {
            phone: "+15551234567".into(),
        },
        SubscriberChannel::Webhook {
            url: "https://example.com/hook".into(),
        },
        SubscriberChannel::Slack {
            url: "https://hooks.slack.com/x".into(),
        },
        SubscriberChannel::Teams {
            url: "https://example.webhook.office.com/x".into(),
        },
    ] {
        assert_eq!(
            SubscriberChannel::new(channel.kind(), channel.address()),
            channel
        );
        round_trip(Subscriber {
            page: "demo".into(),
            subscriber: "sub-1".into(),
            endpoints: vec![SubscriberEndpoint {
                channel,
                state: EndpointState::Pending,
                since_ms: 1,
                confirmation: Some(PendingConfirmation {
                    nonce: "n".into(),
                    expires_at_ms: 2,
                }),
            }],
            components: vec!["api".into()],
            instant: vec![],
            dedup: DedupMode::First,
            digest: false,
            created_at_ms: 1,
        });
    }
    round_trip(NotifyBatch {
        channel: ChannelKind::Sms,
        page: "demo".into(),
        lane: Lane::Normal,
        notice: Notice {
            id: "component-api.0".into(),
            kind: NoticeKind::ComponentStatus,
            page_name: "Demo".into(),
            page_url: None,
            subject: NoticeSubject::Component {
                component: NoticeComponent {
                    id: "api".into(),
                    name: "API".into(),
                    status: Some(ComponentStatus::MajorOutage),
                },
                from: Some(ComponentStatus::Operational),
                to: ComponentStatus::MajorOutage,
            },
            at_ms: 1,
            updates: 1,
        },
        subscribers: vec!["a".into(), "b".into()],
    });
    round_trip(DeliveryReceipt {
        channel: ChannelKind::Webhook,
        page: "demo".into(),
        subscriber: "sub-1".into(),
        idempotency_key: "k".into(),
        outcome: DeliveryOutcome::Dead,
        attempts: 10,
        detail: "410 Gone".into(),
    });
    round_trip(UptimeRollup {
        page: "demo".into(),
        component: "api".into(),
        days: vec![DayRollup {
            date: "2024-11-22".into(),
            up_ms: 86_400_000,
            degraded_ms: 0,
            down_ms: 0,
            ..DayRollup::default()
        }],
    });
    let demo = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/demo.toml"
    ))
    .expect("read examples/demo.toml");
    round_trip(config::load(&demo).expect("demo config is valid"));
}

#[test]
fn id_and_timestamp_survive_as_text() {
    // Other languages read these fields as strings; the text form is the contract.
    let id: EventId = "01JD5Y8ZK4J7Q8W1E5X9R3T2AB".parse().expect("ULID");
    let envelope = Envelope::with_id(id, Hlc::new(1_732_233_000_000, 7), "us", health());
    let value: Value = serde_json::from_slice(&envelope.encode().expect("encode")).expect("JSON");
    assert_eq!(value["id"], "01JD5Y8ZK4J7Q8W1E5X9R3T2AB");
    assert_eq!(value["hlc"], "1732233000000-00007");
    assert_eq!(value["origin"], "us");
    assert_eq!(value["kind"], "health_result");
    assert_eq!(value["version"], 1);
}

/// Which `DecodeError` variant a case must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    NotAnEnvelope,
    WrongKind,
    UnsupportedVersion,
    InvalidBody,
}

fn variant(error: &DecodeError) -> Want {
    match error {
        DecodeError::NotAnEnvelope(_) => Want::NotAnEnvelope,
        DecodeError::WrongKind { .. } => Want::WrongKind,
        DecodeError::UnsupportedVersion { .. } => Want::UnsupportedVersion,
        DecodeError::InvalidBody { .. } => Want::InvalidBody,
    }
}

/// A valid `health_result` envelope as JSON, for the cases to break.
fn valid() -> Value {
    serde_json::to_value(Envelope::new(&HlcClock::new(), "eu", health())).expect("to JSON")
}

fn with(mut value: Value, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    edit(&mut value);
    serde_json::to_vec(&value).expect("to bytes")
}

fn remove(value: &mut Value, key: &str) {
    value.as_object_mut().expect("a JSON object").remove(key);
}

#[test]
fn decode_refuses_with_the_precise_reason() {
    let cases: Vec<(&str, Vec<u8>, Want)> = vec![
        ("empty payload", Vec::new(), Want::NotAnEnvelope),
        ("not JSON", b"\x00\xffgarbage".to_vec(), Want::NotAnEnvelope),
        (
            "JSON but not an object",
            b"[1, 2, 3]".to_vec(),
            Want::NotAnEnvelope,
        ),
        (
            "no kind",
            with(valid(), |v| remove(v, "kind")),
            Want::NotAnEnvelope,
        ),
        (
            "no version",
            with(valid(), |v| remove(v, "version")),
            Want::NotAnEnvelope,
        ),
        (
            "version is text",
            with(valid(), |v| v["version"] = json!("1")),
            Want::NotAnEnvelope,
        ),
        (
            "another kind",
            with(valid(), |v| v["kind"] = json!("status_change")),
            Want::WrongKind,
        ),
        // Kind is compared exactly: a near miss is still another kind.
        (
            "kind in upper case",
            with(valid(), |v| v["kind"] = json!("HEALTH_RESULT")),
            Want::WrongKind,
        ),
        (
            "a newer version",
            with(valid(), |v| v["version"] = json!(2)),
            Want::UnsupportedVersion,
        ),
        (
            "version zero",
            with(valid(), |v| v["version"] = json!(0)),
            Want::UnsupportedVersion,
        ),
        (
            "body field missing",
            with(valid(), |v| remove(&mut v["data"], "page")),
            Want::InvalidBody,
        ),
        (
            "body field of the wrong type",
            with(valid(), |v| v["data"]["latency_ms"] = json!("fast")),
            Want::InvalidBody,
        ),
        (
            "unknown body field",
            with(valid(), |v| v["data"]["surprise"] = json!(1)),
            Want::InvalidBody,
        ),
        (
            "unknown envelope field",
            with(valid(), |v| v["extra"] = json!(1)),
            Want::InvalidBody,
        ),
        (
            "bad event id",
            with(valid(), |v| v["id"] = json!("nope")),
            Want::InvalidBody,
        ),
        (
            "bad timestamp",
            with(valid(), |v| v["hlc"] = json!("12:00")),
            Want::InvalidBody,
        ),
        (
            "no body",
            with(valid(), |v| remove(v, "data")),
            Want::InvalidBody,
        ),
    ];
    for (case, bytes, want) in cases {
        match Envelope::<HealthResult>::decode(&bytes) {
            Ok(envelope) => panic!("{case}: decoded {envelope:?}, wanted {want:?}"),
            Err(error) => {
                assert_eq!(variant(&error), want, "{case}: got {error}");
                // The reason ends up in dead-letter headers and logs.
                assert!(!error.to_string().is_empty(), "{case}");
            }
        }
    }
}

#[test]
fn decode_errors_name_what_was_expected_and_found() {
    let bytes = with(valid(), |v| v["kind"] = json!("status_change"));
    assert_eq!(
        Envelope::<HealthResult>::decode(&bytes),
        Err(DecodeError::WrongKind {
            expected: "health_result",
            found: "status_change".into(),
        })
    );
    let bytes = with(valid(), |v| v["version"] = json!(7));
    assert_eq!(
        Envelope::<HealthResult>::decode(&bytes),
        Err(DecodeError::UnsupportedVersion {
            kind: "health_result",
            found: 7,
            supported: 1,
        })
    );
}
