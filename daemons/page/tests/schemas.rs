//! The checked-in JSON Schemas under `schemas/` match the Rust types, and
//! realistic messages validate against them.
//!
//! Regenerate the files with
//! `BEACON_UPDATE_SCHEMAS=1 cargo test -p beacon-page --test schemas`.

use std::collections::BTreeSet;
use std::path::Path;

use beacon_contract::api::*;
use beacon_contract::event::{Envelope, EventId, Message};
use beacon_contract::hlc::HlcClock;
use beacon_contract::incident::Incident;
use beacon_contract::maintenance::Window;
use beacon_contract::messages::*;
use beacon_contract::schema::{bus_schemas, to_file_text, NamedSchema};
use beacon_page::config::api::{ApplyConfigRequest, ApplyConfigResult, GetConfigRequest};
use beacon_page::config::{self, ConfigError, PageConfig, RawPageConfig};
use beacon_testkit::schemas::{self, SchemaFile};
use serde::Serialize;
use serde_json::{json, Value};

const REGENERATE: &str = "BEACON_UPDATE_SCHEMAS=1 cargo test -p beacon-page --test schemas";

/// Each schema directory and the schemas generated into it.
fn generated() -> [(&'static str, Vec<NamedSchema>); 2] {
    [
        ("bus", every_bus_schema()),
        ("config", beacon_page::schema::config_schemas()),
    ]
}

/// The contract's bus schemas and the page config's.
fn every_bus_schema() -> Vec<NamedSchema> {
    let mut bus = bus_schemas();
    bus.extend(beacon_page::schema::bus_schemas());
    bus
}

/// The generated files of `dir`, as checked in.
fn files_of(dir: &str) -> Vec<SchemaFile> {
    generated()
        .into_iter()
        .filter(|(d, _)| *d == dir)
        .flat_map(|(_, schemas)| schemas)
        .map(|NamedSchema { file, schema }| SchemaFile {
            file,
            text: to_file_text(&schema),
        })
        .collect()
}

#[test]
fn checked_in_schemas_match_the_types() {
    let problems: Vec<String> = generated()
        .iter()
        .flat_map(|(dir, _)| schemas::problems(dir, &files_of(dir)))
        .collect();
    assert!(
        problems.is_empty(),
        "schema files are out of date:\n  - {}\nRegenerate with: {REGENERATE}",
        problems.join("\n  - ")
    );
}

// ---------------------------------------------------------------------------
// Samples validate against the generated schemas.
// ---------------------------------------------------------------------------

/// The checked-in schema for `file` in `dir`, compiled.
fn validator(dir: &str, file: &str) -> jsonschema::Validator {
    schemas::validator(dir, file, &files_of(dir))
}

fn errors_of(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn to_value(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("serialize sample")
}

fn envelope<T: Message>(body: T) -> (String, Value) {
    let file = format!("{}.v{}.schema.json", T::KIND, T::VERSION);
    (file, to_value(&Envelope::new(&HlcClock::new(), "eu", body)))
}

fn demo_raw() -> RawPageConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo.toml");
    let text = std::fs::read_to_string(&path).expect("read examples/demo.toml");
    config::parse_toml(&text).unwrap_or_else(|e| panic!("examples/demo.toml:\n{e}"))
}

fn demo_config() -> PageConfig {
    config::validate(&demo_raw()).unwrap_or_else(|e| panic!("examples/demo.toml:\n{e}"))
}

fn evidence(trigger: EventId) -> Evidence {
    Evidence {
        rule: "quorum: 2 of 2 regions down".into(),
        trigger: Some(trigger),
        regions: vec![
            RegionEvidence {
                region: "eu".into(),
                state: RegionState::Down,
                consecutive_failures: 2,
                consecutive_successes: 0,
                last_result: Some(trigger),
                last_error: Some("connection refused".into()),
                since_ms: Some(1_732_233_000_000),
                last_seen_ms: Some(1_732_233_000_000),
                samples: vec![trigger],
            },
            // Optional fields left out, as a region with no results yet sends them.
            RegionEvidence::new("us", RegionState::Stale),
        ],
    }
}

/// One realistic sample of every bus message kind and API payload, keyed by
/// the schema file it must satisfy.
fn samples() -> Vec<(String, Value)> {
    let trigger = EventId::new();
    let now_ms = 1_732_233_000_000;
    let mut samples = vec![
        envelope(HealthResult {
            page: "demo".into(),
            component: "api".into(),
            check: "http".into(),
            region: "eu".into(),
            kind: CheckKind::Http,
            outcome: Outcome::Down,
            started_at_ms: now_ms,
            latency_ms: 1_000,
            http_status: Some(503),
            error: Some("status 503, expected 2xx".into()),
            error_kind: Some(ErrorKind::Status),
            failed_condition: None,
            timings: Some(Timings {
                dns_us: Some(350),
                connect_us: Some(1_200),
                tls_us: Some(8_400),
                first_byte_us: Some(990_000),
                total_us: 1_000_000,
            }),
            observed: Observed {
                status: Some(503),
                response_time_ms: Some(1_000),
                certificate_expires_at_ms: Some(now_ms + 40 * 86_400_000),
                body_bytes: Some(12),
                redirects: Some(1),
                ..Observed::default()
            },
        }),
        // A failed condition, and the observations of the other kinds.
        envelope(HealthResult {
            page: "demo".into(),
            component: "api".into(),
            check: "cert".into(),
            region: "eu".into(),
            kind: CheckKind::Http,
            outcome: Outcome::Down,
            started_at_ms: now_ms,
            latency_ms: 20,
            http_status: Some(200),
            error: Some("[CERTIFICATE_EXPIRATION] was 3.0d".into()),
            error_kind: Some(ErrorKind::Condition),
            failed_condition: Some("[CERTIFICATE_EXPIRATION] > 14d".into()),
            timings: None,
            observed: Observed {
                packet_loss_percent: Some(33.3),
                rtt_avg_us: Some(80),
                rtt_max_us: Some(120),
                dns_rcode: Some("NOERROR".into()),
                dns_answers: vec!["127.0.0.1".into()],
                ..Observed::default()
            },
        }),
        envelope(HealthResult {
            page: "demo".into(),
            component: "cron".into(),
            check: "nightly".into(),
            region: "eu".into(),
            kind: CheckKind::Push,
            outcome: Outcome::Degraded,
            started_at_ms: now_ms,
            latency_ms: 0,
            http_status: None,
            error: Some("alert DiskFilling is firing".into()),
            error_kind: Some(ErrorKind::Alert),
            failed_condition: None,
            timings: None,
            observed: Observed::default(),
        }),
        envelope(status_change(trigger)),
        envelope(status_record(trigger)),
        envelope(incident_event()),
        envelope(maintenance_event()),
        envelope(ComponentOverride {
            page: "demo".into(),
            component: "api".into(),
            status: Some(ComponentStatus::DegradedPerformance),
            reason: "Known slowness while we migrate".into(),
            actor: "alice".into(),
            expires_at_ms: Some(now_ms + 3_600_000),
        }),
        envelope(ProbeHeartbeat {
            region: "eu".into(),
            probe: "probe-eu-1".into(),
            at_ms: now_ms,
            interval_ms: 10_000,
            checks: 1_200,
            canary: Some(CanaryResult {
                outcome: Outcome::Down,
                error: Some("connect timed out".into()),
            }),
        }),
        envelope(ProbeVerdict {
            region: "eu".into(),
            suspect: true,
            reason: "fails 12 of 12 checks while us fails 0 of 12".into(),
            checks: 12,
            failing: 12,
            at_ms: now_ms,
        }),
        envelope(ChangelogEntry {
            page: "demo".into(),
            entry: "chg-1".into(),
            title: "Faster pages".into(),
            body_markdown: "Pages render in *half* the time.".into(),
            category: "improvement".into(),
            components: vec!["api".into()],
            withdrawn: false,
            published_at_ms: 1_790_812_800_000,
            images: vec!["chart.png".into()],
            actor: "alice".into(),
        }),
        envelope(subscriber()),
        envelope(NotifyBatch {
            channel: ChannelKind::Email,
            page: "demo".into(),
            lane: Lane::Urgent,
            notice: notice(),
            subscribers: vec!["01jd5k2s9x8y7z6w5v4t3r2q1p".into()],
        }),
        envelope(DeliveryReceipt {
            channel: ChannelKind::Email,
            page: "demo".into(),
            subscriber: "01jd5k2s9x8y7z6w5v4t3r2q1p".into(),
            idempotency_key: notice().key("01jd5k2s9x8y7z6w5v4t3r2q1p", ChannelKind::Email),
            outcome: DeliveryOutcome::Retrying,
            attempts: 2,
            detail: "421 try again later".into(),
        }),
        envelope(UptimeRollup {
            page: "demo".into(),
            component: "api".into(),
            days: vec![DayRollup {
                date: "2024-11-22".into(),
                up_ms: 86_000_000,
                degraded_ms: 300_000,
                down_ms: 100_000,
                partial_ms: 60_000,
                major_ms: 40_000,
                maintenance_ms: 3_600_000,
                no_data_ms: 0,
                uptime_percent: Some(99.9444),
            }],
        }),
        envelope(demo_config()),
        (
            "api.config.apply.request.schema.json".into(),
            to_value(&ApplyConfigRequest {
                config: demo_raw(),
                expected_revision: None,
            }),
        ),
        (
            "api.config.apply.reply.schema.json".into(),
            to_value(&ApiReply::Ok {
                result: ApplyConfigResult {
                    page: "demo".into(),
                    revision: 3,
                    changed: true,
                },
            }),
        ),
        (
            "api.config.apply.reply.schema.json".into(),
            to_value(&ApiReply::<ApplyConfigResult>::Invalid {
                errors: vec![ConfigError {
                    location: "components[0].checks[0].url".into(),
                    message: "URL \"ftp://x/\" must use http or https".into(),
                }],
            }),
        ),
        (
            "api.config.get.request.schema.json".into(),
            to_value(&GetConfigRequest {
                page: "demo".into(),
            }),
        ),
        (
            "api.config.get.reply.schema.json".into(),
            to_value(&ApiReply::Ok {
                result: demo_config(),
            }),
        ),
        (
            "api.config.get.reply.schema.json".into(),
            to_value(&ApiReply::<PageConfig>::Failed {
                message: "KV config unavailable".into(),
            }),
        ),
    ];
    samples.extend(api_samples(trigger));
    samples.extend(apikey_samples());
    samples
}

fn status_change(trigger: EventId) -> StatusChange {
    StatusChange {
        page: "demo".into(),
        component: "api".into(),
        from: Some(ComponentStatus::Operational),
        to: ComponentStatus::MajorOutage,
        at_ms: 1_732_233_000_000,
        source: StatusSource::Automatic,
        flapping: false,
        inhibited: Some(Inhibition {
            reason: InhibitReason::DependsOn,
            detail: "depends on db, which is major_outage".into(),
        }),
        proposal: None,
        evidence: evidence(trigger),
    }
}

fn status_record(trigger: EventId) -> StatusRecord {
    let mut record = StatusRecord::new(
        "demo",
        "api",
        ComponentStatus::MajorOutage,
        1_732_233_000_000,
        EventId::new(),
        evidence(trigger),
    );
    record.from = Some(ComponentStatus::Operational);
    record.proposal = Some("01jd7x9c0000000000000000aa".into());
    record.recent = vec![RecentChange {
        at_ms: 1_732_233_000_000,
        status: ComponentStatus::MajorOutage,
    }];
    record
}

fn incident_event() -> IncidentEvent {
    let mut event = IncidentEvent::new(
        "demo",
        "inc-1",
        IncidentAction::Proposed,
        "decider",
        1_732_233_000_000,
    );
    event.lifecycle = Some(IncidentLifecycle::Proposed);
    event.title = Some("API unavailable <script>".into());
    event.state = Some(IncidentState::Investigating);
    event.impact = Some(Impact::Major);
    let components = vec![AffectedComponent {
        component: "api".into(),
        status: ComponentStatus::MajorOutage,
    }];
    event.components = Some(components.clone());
    event.update = Some(IncidentUpdate {
        id: "01jd7x9c0000000000000000ab".into(),
        state: IncidentState::Investigating,
        body: "We are **looking** into it.".into(),
        components,
        at_ms: 1_732_233_000_000,
        actor: "decider".into(),
    });
    event.evidence = Some(evidence(EventId::new()));
    event
}

fn maintenance_event() -> MaintenanceEvent {
    MaintenanceEvent {
        page: "demo".into(),
        maintenance: "mnt-1".into(),
        action: MaintenanceAction::Started,
        actor: "decider".into(),
        at_ms: 1_732_233_000_000,
        phase: MaintenancePhase::InProgress,
        title: "Database upgrade".into(),
        body: String::new(),
        starts_at_ms: 1_732_233_000_000,
        ends_at_ms: 1_732_236_600_000,
        components: vec!["db".into()],
        recurrence: None,
        series: Some("weekly-db".into()),
        remind_before_ms: 3_600_000,
        verify_ms: 0,
    }
}

fn subscriber() -> Subscriber {
    Subscriber {
        page: "demo".into(),
        subscriber: "01jd5k2s9x8y7z6w5v4t3r2q1p".into(),
        endpoints: vec![
            SubscriberEndpoint {
                channel: SubscriberChannel::Email {
                    address: "ada@example.com".into(),
                },
                state: EndpointState::Pending,
                since_ms: 1_732_233_000_000,
                confirmation: Some(PendingConfirmation {
                    nonce: "9f2c".into(),
                    expires_at_ms: 1_732_400_000_000,
                }),
            },
            SubscriberEndpoint {
                channel: SubscriberChannel::Webhook {
                    url: "https://hooks.example.com/beacon".into(),
                },
                state: EndpointState::Active,
                since_ms: 1_732_233_000_000,
                confirmation: None,
            },
        ],
        components: vec!["api".into()],
        instant: vec!["api".into()],
        dedup: DedupMode::First,
        digest: true,
        created_at_ms: 1_732_233_000_000,
    }
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
            updates: vec![IncidentUpdate {
                id: "upd-1".into(),
                state: IncidentState::Investigating,
                body: "We are looking into it.".into(),
                components: vec![],
                at_ms: 1_732_233_000_000,
                actor: "alice".into(),
            }],
            created_at_ms: 1_732_233_000_000,
            updated_at_ms: 1_732_233_000_000,
            resolved_at_ms: None,
        },
        at_ms: 1_732_233_000_000,
        updates: 1,
    }
}

/// A request and a reply for every operator endpoint.
fn api_samples(trigger: EventId) -> Vec<(String, Value)> {
    let view = ComponentView {
        page: "demo".into(),
        component: "api".into(),
        name: "API".into(),
        automated: true,
        record: Some(status_record(trigger)),
        manual_override: None,
        maintenance: vec![],
        incidents: vec!["inc-1".into()],
        depends_on: vec!["db".into()],
    };
    let incident = Incident::fold(
        &[Envelope::new(&HlcClock::new(), "eu", incident_event())],
        4,
    )
    .expect("one event");
    let window = Window::fold([(
        &Envelope::new(&HlcClock::new(), "eu", maintenance_event()),
        7,
    )])
    .expect("one event");
    let change = ChangeIncidentRequest {
        page: "demo".into(),
        incident: "inc-1".into(),
        expected_revision: Some(4),
        state: Some(IncidentState::Identified),
        body: "Cause found.".into(),
        title: None,
        impact: None,
        components: None,
        actor: "alice".into(),
        idempotency_key: Some("retry-1".into()),
    };
    let file = |name: &str, kind: &str| format!("api.{name}.{kind}.schema.json");
    let sla_report = SlaReport {
        page: "demo".into(),
        page_name: "Beacon Demo".into(),
        period: "2026-10".into(),
        from_ms: 1_790_812_800_000,
        to_ms: 1_793_491_200_000,
        generated_at_ms: 1_793_491_300_000,
        weights: config::sla::StatusWeights::default(),
        components: vec![SlaComponent {
            component: "api".into(),
            name: "API".into(),
            target_percent: 99.9,
            uptime_percent: Some(99.95),
            met: Some(true),
            operational_ms: 2_670_000_000,
            degraded_ms: 0,
            partial_ms: 0,
            major_ms: 1_339_200,
            maintenance_ms: 7_200_000,
            no_data_ms: 0,
            downtime_minutes: 22.32,
            budget_minutes: 44.5,
            budget_used_percent: Some(50.2),
            budget_left_minutes: 22.18,
            incidents: 1,
        }],
        total_components: 1,
        next: None,
        incidents: SlaIncidents {
            count: 1,
            resolved: 1,
            mttr_minutes: Some(22.3),
        },
    };
    let subscriber_view = SubscriberView {
        subscriber: subscriber(),
        webhook_secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
    };
    let new_subscriber = NewSubscriber {
        endpoints: vec![SubscriberChannel::Sms {
            phone: "+15551234567".into(),
        }],
        components: vec!["api".into()],
        instant: vec![],
        dedup: DedupMode::Every,
        digest: false,
    };
    let mut samples = vec![
        (
            file("subscriber.add", "request"),
            to_value(&AddSubscriberRequest {
                page: "demo".into(),
                subscriber: new_subscriber.clone(),
                confirmed: false,
                actor: "public".into(),
            }),
        ),
        (
            file("subscriber.add", "reply"),
            to_value(&ApiReply::Ok {
                result: subscriber_view.clone(),
            }),
        ),
        (
            file("subscriber.add", "reply"),
            to_value(&ApiReply::<SubscriberView>::invalid(
                "subscriber.endpoints[0].phone",
                "\"555\" is not an E.164 phone number like +15551234567",
            )),
        ),
        (
            file("subscriber.import", "request"),
            to_value(&ImportSubscribersRequest {
                page: "demo".into(),
                rows: vec![new_subscriber],
                confirmed: true,
                actor: "alice".into(),
            }),
        ),
        (
            file("subscriber.import", "reply"),
            to_value(&ApiReply::Ok {
                result: ImportResult {
                    created: 998,
                    existing: 1,
                    refused: vec![ConfigError {
                        location: "rows[7].endpoints[0].address".into(),
                        message: "not an email address".into(),
                    }],
                },
            }),
        ),
        (
            file("subscriber.list", "request"),
            to_value(&ListSubscribersRequest {
                page: "demo".into(),
                after: Some("01jd5k2s9x8y7z6w5v4t3r2q1p".into()),
                limit: Some(500),
            }),
        ),
        (
            file("subscriber.list", "reply"),
            to_value(&ApiReply::Ok {
                result: SubscriberList {
                    subscribers: vec![subscriber()],
                    total: 1,
                    next: None,
                },
            }),
        ),
        (
            file("subscriber.show", "request"),
            to_value(&SubscriberRequest {
                page: "demo".into(),
                subscriber: "01jd5k2s9x8y7z6w5v4t3r2q1p".into(),
                actor: String::new(),
            }),
        ),
        (
            file("subscriber.show", "reply"),
            to_value(&ApiReply::Ok {
                result: subscriber_view.clone(),
            }),
        ),
        (
            file("subscriber.remove", "request"),
            to_value(&SubscriberRequest {
                page: "demo".into(),
                subscriber: "01jd5k2s9x8y7z6w5v4t3r2q1p".into(),
                actor: "alice".into(),
            }),
        ),
        (
            file("subscriber.remove", "reply"),
            to_value(&ApiReply::Ok {
                result: RemovedSubscriber {
                    page: "demo".into(),
                    subscriber: "01jd5k2s9x8y7z6w5v4t3r2q1p".into(),
                },
            }),
        ),
        (
            file("subscriber.confirm", "request"),
            to_value(&LinkRequest {
                token: "v1.ZGVtbw.c2ln".into(),
            }),
        ),
        (
            file("subscriber.confirm", "reply"),
            to_value(&ApiReply::Ok {
                result: subscriber_view,
            }),
        ),
        (
            file("subscriber.unsubscribe", "request"),
            to_value(&LinkRequest {
                token: "v1.ZGVtbw.c2ln".into(),
            }),
        ),
        (
            file("subscriber.unsubscribe", "reply"),
            to_value(&ApiReply::Ok {
                result: Unsubscribed {
                    page: "demo".into(),
                    subscriber: "01jd5k2s9x8y7z6w5v4t3r2q1p".into(),
                    channel: ChannelKind::Email,
                    removed_subscriber: false,
                },
            }),
        ),
        (
            file("subscriber.erase", "request"),
            to_value(&EraseRequest {
                page: "demo".into(),
                address: Some("ada@example.com".into()),
                subscriber: None,
                actor: "dpo".into(),
            }),
        ),
        (
            file("subscriber.erase", "reply"),
            to_value(&ApiReply::Ok {
                result: Erased {
                    subscribers: vec!["01jd5k2s9x8y7z6w5v4t3r2q1p".into()],
                    suppressed: 1,
                },
            }),
        ),
    ];
    let changelog = ChangelogView {
        entry: ChangelogEntry {
            page: "demo".into(),
            entry: "01jchg".into(),
            title: "Faster pages".into(),
            body_markdown: "Pages render in *half* the time.".into(),
            category: "improvement".into(),
            components: vec!["api".into()],
            withdrawn: false,
            published_at_ms: 1_790_812_800_000,
            images: vec![],
            actor: "alice".into(),
        },
        created_at_ms: 1_790_812_800_000,
        updated_at_ms: 1_790_812_900_000,
        revision: 3,
    };
    samples.extend(vec![
        (
            file("changelog.publish", "request"),
            to_value(&PublishChangelogRequest {
                page: "demo".into(),
                title: "Faster pages".into(),
                body_markdown: "Pages render in *half* the time.\n\n![chart](assets/chart.png)"
                    .into(),
                category: "improvement".into(),
                components: vec!["api".into()],
                published_at_ms: None,
                images: vec![ChangelogImage {
                    name: "chart.png".into(),
                    data_base64: "iVBORw0KGgo=".into(),
                }],
                actor: "alice".into(),
                idempotency_key: Some("k1".into()),
            }),
        ),
        (
            file("changelog.publish", "reply"),
            to_value(&ApiReply::Ok {
                result: changelog.clone(),
            }),
        ),
        (
            file("changelog.edit", "request"),
            to_value(&EditChangelogRequest {
                page: "demo".into(),
                entry: "01jchg".into(),
                expected_revision: Some(3),
                title: Some("Much faster pages".into()),
                body_markdown: None,
                category: None,
                components: None,
                published_at_ms: None,
                images: vec![],
                actor: "alice".into(),
            }),
        ),
        (
            file("changelog.edit", "reply"),
            to_value(&ApiReply::Conflict {
                message: "entry 01jchg changed since revision 2".into(),
                current: Some(changelog.clone()),
            }),
        ),
        (
            file("changelog.delete", "request"),
            to_value(&DeleteChangelogRequest {
                page: "demo".into(),
                entry: "01jchg".into(),
                expected_revision: None,
                actor: "alice".into(),
            }),
        ),
        (
            file("changelog.delete", "reply"),
            to_value(&ApiReply::Ok {
                result: changelog.clone(),
            }),
        ),
        (
            file("changelog.list", "request"),
            to_value(&ListChangelogRequest {
                page: "demo".into(),
                all: false,
            }),
        ),
        (
            file("changelog.list", "reply"),
            to_value(&ApiReply::Ok {
                result: vec![changelog],
            }),
        ),
        (
            file("sla.report", "request"),
            to_value(&SlaReportRequest {
                page: "demo".into(),
                period: "2026-10".into(),
                after: None,
                limit: Some(100),
            }),
        ),
        (
            file("sla.report", "reply"),
            to_value(&ApiReply::Ok { result: sla_report }),
        ),
        (
            file("component.set", "request"),
            to_value(&SetComponentRequest {
                page: "demo".into(),
                component: "api".into(),
                status: ComponentStatus::MajorOutage,
                reason: "Upstream outage".into(),
                expires_in_ms: Some(600_000),
                actor: "alice".into(),
            }),
        ),
        (
            file("component.set", "reply"),
            to_value(&ApiReply::Ok {
                result: view.clone(),
            }),
        ),
        (
            file("component.clear", "request"),
            to_value(&ClearComponentRequest {
                page: "demo".into(),
                component: "api".into(),
                actor: "alice".into(),
            }),
        ),
        (
            file("component.clear", "reply"),
            to_value(&ApiReply::<ComponentView>::invalid(
                "component",
                "no component \"x\"",
            )),
        ),
        (
            file("component.explain", "request"),
            to_value(&ComponentRequest {
                page: "demo".into(),
                component: Some("api".into()),
            }),
        ),
        (
            file("component.explain", "reply"),
            to_value(&ApiReply::Ok {
                result: view.clone(),
            }),
        ),
        (
            file("component.list", "request"),
            to_value(&ComponentRequest {
                page: "demo".into(),
                component: None,
            }),
        ),
        (
            file("component.list", "reply"),
            to_value(&ApiReply::Ok { result: vec![view] }),
        ),
        (
            file("incident.list", "request"),
            to_value(&ListIncidentsRequest {
                page: "demo".into(),
                all: true,
            }),
        ),
        (
            file("incident.list", "reply"),
            to_value(&ApiReply::Ok {
                result: vec![incident.clone()],
            }),
        ),
        (
            file("incident.show", "request"),
            to_value(&ShowIncidentRequest {
                page: "demo".into(),
                incident: "inc-1".into(),
            }),
        ),
        (
            file("incident.show", "reply"),
            to_value(&ApiReply::Ok {
                result: incident.clone(),
            }),
        ),
        (
            file("incident.create", "request"),
            to_value(&CreateIncidentRequest {
                page: "demo".into(),
                title: "Checkout errors".into(),
                impact: Impact::Minor,
                state: None,
                body: "Some payments fail.".into(),
                components: vec![AffectedComponent {
                    component: "api".into(),
                    status: ComponentStatus::PartialOutage,
                }],
                actor: "alice".into(),
                idempotency_key: Some("ticket-4711".into()),
            }),
        ),
        (
            file("incident.create", "reply"),
            to_value(&ApiReply::Ok {
                result: incident.clone(),
            }),
        ),
        (file("incident.change", "request"), to_value(&change)),
        (
            file("incident.change", "reply"),
            to_value(&ApiReply::Conflict {
                message: "incident inc-1 is at revision 5, not 4".into(),
                current: Some(incident),
            }),
        ),
        (
            file("maintenance.schedule", "request"),
            to_value(&ScheduleMaintenanceRequest {
                page: "demo".into(),
                title: "Database upgrade".into(),
                body: String::new(),
                starts_at_ms: 1_732_233_000_000,
                ends_at_ms: 1_732_236_600_000,
                components: vec!["db".into()],
                recurrence: Some("RRULE:FREQ=WEEKLY;BYDAY=TU".into()),
                remind_before_ms: None,
                verify_ms: Some(600_000),
                actor: "alice".into(),
                idempotency_key: None,
            }),
        ),
        (
            file("maintenance.schedule", "reply"),
            to_value(&ApiReply::Ok {
                result: window.clone(),
            }),
        ),
        (
            file("maintenance.change", "request"),
            to_value(&ChangeMaintenanceRequest {
                page: "demo".into(),
                maintenance: "mnt-1".into(),
                expected_revision: None,
                body: "Done early.".into(),
                actor: "alice".into(),
            }),
        ),
        (
            file("maintenance.change", "reply"),
            to_value(&ApiReply::Ok {
                result: window.clone(),
            }),
        ),
        (
            file("maintenance.list", "request"),
            to_value(&ListMaintenanceRequest {
                page: "demo".into(),
                all: false,
            }),
        ),
        (
            file("maintenance.list", "reply"),
            to_value(&ApiReply::Ok {
                result: vec![window],
            }),
        ),
    ]);
    samples
}

#[test]
fn every_bus_schema_has_a_sample() {
    // A new message kind without a sample would never be validated below.
    let sampled: BTreeSet<String> = samples().into_iter().map(|(file, _)| file).collect();
    let generated: BTreeSet<String> = every_bus_schema().into_iter().map(|s| s.file).collect();
    assert_eq!(sampled, generated, "samples() and the bus schemas disagree");
}

#[test]
fn samples_validate_against_the_schemas() {
    for (file, instance) in samples() {
        let errors = errors_of(&validator("bus", &file), &instance);
        assert!(
            errors.is_empty(),
            "sample for {file} does not validate:\n{errors:#?}\n{instance:#}"
        );
    }
}

#[test]
fn demo_config_validates_against_the_page_schema() {
    // Editors use page.schema.json to check TOML files as the operator types;
    // it must accept what the loader accepts.
    let instance = to_value(&demo_raw());
    let errors = errors_of(&validator("config", "page.schema.json"), &instance);
    assert!(
        errors.is_empty(),
        "examples/demo.toml does not validate:\n{errors:#?}"
    );
}

/// A broken copy of a valid sample, and why the schema must refuse it.
type Breakage = (&'static str, &'static str, fn(&mut Value));

#[test]
fn broken_samples_fail_validation() {
    let breakages: &[Breakage] = &[
        ("health_result.v1.schema.json", "unknown status word", |v| {
            v["data"]["outcome"] = json!("sideways")
        }),
        (
            "health_result.v1.schema.json",
            "required field missing",
            |v| {
                v["data"]
                    .as_object_mut()
                    .expect("object")
                    .remove("component");
            },
        ),
        ("health_result.v1.schema.json", "negative latency", |v| {
            v["data"]["latency_ms"] = json!(-1)
        }),
        (
            "health_result.v1.schema.json",
            "event id is not a ULID",
            |v| v["id"] = json!("not-a-ulid"),
        ),
        (
            "status_change.v1.schema.json",
            "unknown field in a deny_unknown_fields body",
            |v| v["data"]["extra"] = json!(true),
        ),
        (
            "status_change.v1.schema.json",
            "malformed HLC timestamp",
            |v| v["hlc"] = json!("yesterday"),
        ),
        (
            "subscriber.v2.schema.json",
            "channel without its type tag",
            |v| v["data"]["endpoints"][0]["channel"] = json!({"url": "https://x"}),
        ),
        ("subscriber.v2.schema.json", "unknown endpoint state", |v| {
            v["data"]["endpoints"][0]["state"] = json!("maybe")
        }),
        (
            "status_change.v1.schema.json",
            "an envelope claiming another kind",
            |v| v["kind"] = json!("health_result"),
        ),
        (
            "health_result.v1.schema.json",
            "a version this schema does not describe",
            |v| v["version"] = json!(2),
        ),
        ("notify_batch.v2.schema.json", "unknown channel kind", |v| {
            v["data"]["channel"] = json!("fax")
        }),
        ("notify_batch.v2.schema.json", "unknown lane", |v| {
            v["data"]["lane"] = json!("fastest")
        }),
    ];
    let samples = samples();
    for (file, why, break_it) in breakages {
        let (_, sample) = samples
            .iter()
            .find(|(f, _)| f == file)
            .unwrap_or_else(|| panic!("no sample for {file}"));
        let mut broken = sample.clone();
        break_it(&mut broken);
        assert!(
            !validator("bus", file).is_valid(&broken),
            "{file} accepted a sample with {why}:\n{broken:#}"
        );
    }
}

#[test]
fn broken_page_config_fails_the_page_schema() {
    let validator = validator("config", "page.schema.json");
    let mut typo = to_value(&demo_raw());
    typo["defaults"]["intervall"] = json!("30s");
    assert!(
        !validator.is_valid(&typo),
        "page.schema.json accepted an unknown field"
    );
    let mut no_page = to_value(&demo_raw());
    no_page.as_object_mut().expect("object").remove("page");
    assert!(
        !validator.is_valid(&no_page),
        "page.schema.json accepted a config without [page]"
    );
}

/// The key management endpoints.
fn apikey_samples() -> Vec<(String, Value)> {
    let view = ApiKeyView {
        id: "3f9a0c1d2e4b5a69".into(),
        page: "demo".into(),
        name: "ci deploys".into(),
        scopes: vec![ApiScope::IncidentsWrite, ApiScope::ChangelogWrite],
        rate_per_minute: 600,
        created_at_ms: 1_732_233_000_000,
        created_by: "alice".into(),
        revoked_at_ms: None,
    };
    let file = |name: &str, kind: &str| format!("api.{name}.{kind}.schema.json");
    vec![
        (
            file("apikey.create", "request"),
            to_value(&CreateApiKeyRequest {
                page: "demo".into(),
                name: "ci deploys".into(),
                scopes: vec![ApiScope::IncidentsWrite],
                rate_per_minute: Some(120),
                actor: "alice".into(),
            }),
        ),
        (
            file("apikey.create", "reply"),
            to_value(&ApiReply::Ok {
                result: CreatedApiKey {
                    key: format!("bk_{}_{}", view.id, "a".repeat(43)),
                    view: view.clone(),
                },
            }),
        ),
        (
            file("apikey.list", "request"),
            to_value(&ListApiKeysRequest {
                page: Some("demo".into()),
            }),
        ),
        (
            file("apikey.list", "reply"),
            to_value(&ApiReply::Ok {
                result: vec![view.clone()],
            }),
        ),
        (
            file("apikey.revoke", "request"),
            to_value(&RevokeApiKeyRequest {
                id: view.id.clone(),
                actor: "alice".into(),
            }),
        ),
        (
            file("apikey.revoke", "reply"),
            to_value(&ApiReply::Ok { result: view }),
        ),
    ]
}
