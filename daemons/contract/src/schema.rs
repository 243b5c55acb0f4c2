//! JSON Schemas generated from the Rust types.
//!
//! `schemas/bus/*.schema.json` and `schemas/config/*.schema.json` are checked
//! in; a test in `beacon-page` fails when they drift from what [`bus_schemas`]
//! here and `beacon_page::schema` generate (the page config's schemas live
//! with the config). Regenerate with
//! `BEACON_UPDATE_SCHEMAS=1 cargo test -p beacon-page --test schemas`.

use schemars::{schema_for, Schema};

use crate::api::*;
use crate::event::{Envelope, Message};
use crate::incident::Incident;
use crate::messages::*;

/// One generated schema and the file it belongs in.
#[derive(Debug, Clone)]
pub struct NamedSchema {
    /// File name, e.g. `health_result.v1.schema.json`.
    pub file: String,
    /// The schema.
    pub schema: Schema,
}

/// The request and reply schemas of the endpoint `name`.
pub fn api<Req: schemars::JsonSchema, Res: schemars::JsonSchema>(name: &str) -> [NamedSchema; 2] {
    [
        NamedSchema {
            file: format!("api.{name}.request.schema.json"),
            schema: schema_for!(Req),
        },
        NamedSchema {
            file: format!("api.{name}.reply.schema.json"),
            schema: schema_for!(ApiReply<Res>),
        },
    ]
}

/// The schema of `T` in its envelope.
pub fn envelope<T: Message>() -> NamedSchema {
    NamedSchema {
        file: format!("{}.v{}.schema.json", T::KIND, T::VERSION),
        schema: schema_for!(Envelope<T>),
    }
}

/// Every bus message and KV value of the contract, in its envelope, and
/// every API endpoint's request and reply (the page config's are in
/// `beacon_page::schema`).
pub fn bus_schemas() -> Vec<NamedSchema> {
    let endpoints = [
        api::<SetComponentRequest, ComponentView>("component.set"),
        api::<ClearComponentRequest, ComponentView>("component.clear"),
        api::<ComponentRequest, ComponentView>("component.explain"),
        api::<ComponentRequest, Vec<ComponentView>>("component.list"),
        api::<ListIncidentsRequest, IncidentList>("incident.list"),
        api::<ShowIncidentRequest, Incident>("incident.show"),
        api::<CreateIncidentRequest, Incident>("incident.create"),
        api::<ChangeIncidentRequest, Incident>("incident.change"),
        api::<ScheduleMaintenanceRequest, crate::maintenance::Window>("maintenance.schedule"),
        api::<ChangeMaintenanceRequest, crate::maintenance::Window>("maintenance.change"),
        api::<ListMaintenanceRequest, MaintenanceList>("maintenance.list"),
        api::<CreateApiKeyRequest, CreatedApiKey>("apikey.create"),
        api::<ListApiKeysRequest, Vec<ApiKeyView>>("apikey.list"),
        api::<RevokeApiKeyRequest, ApiKeyView>("apikey.revoke"),
        api::<SlaReportRequest, SlaReport>("sla.report"),
        api::<AddSubscriberRequest, SubscriberView>("subscriber.add"),
        api::<ImportSubscribersRequest, ImportResult>("subscriber.import"),
        api::<ListSubscribersRequest, SubscriberList>("subscriber.list"),
        api::<SubscriberRequest, SubscriberView>("subscriber.show"),
        api::<SubscriberRequest, RemovedSubscriber>("subscriber.remove"),
        api::<LinkRequest, SubscriberView>("subscriber.confirm"),
        api::<LinkRequest, Unsubscribed>("subscriber.unsubscribe"),
        api::<EraseRequest, Erased>("subscriber.erase"),
        api::<SmsInboundRequest, SmsInboundResult>("subscriber.sms_inbound"),
        api::<PublishChangelogRequest, ChangelogView>("changelog.publish"),
        api::<EditChangelogRequest, ChangelogView>("changelog.edit"),
        api::<DeleteChangelogRequest, ChangelogView>("changelog.delete"),
        api::<ListChangelogRequest, ChangelogList>("changelog.list"),
    ];
    let mut schemas = vec![
        envelope::<HealthResult>(),
        envelope::<StatusChange>(),
        envelope::<StatusRecord>(),
        envelope::<IncidentEvent>(),
        envelope::<MaintenanceEvent>(),
        envelope::<ChangelogEntry>(),
        envelope::<Subscriber>(),
        envelope::<NotifyBatch>(),
        envelope::<DeliveryReceipt>(),
        envelope::<NoticeThread>(),
        envelope::<DeliveryLedger>(),
        envelope::<Suppression>(),
        envelope::<UptimeRollup>(),
        envelope::<ComponentOverride>(),
        envelope::<ProbeHeartbeat>(),
        envelope::<ProbeVerdict>(),
        envelope::<ApiKeyRecord>(),
    ];
    schemas.extend(endpoints.into_iter().flatten());
    schemas
}

/// Pretty JSON with a trailing newline, as checked in.
pub fn to_file_text(schema: &Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}
