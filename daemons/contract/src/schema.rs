//! JSON Schemas generated from the Rust types.
//!
//! `schemas/bus/*.schema.json` and `schemas/config/*.schema.json` are checked
//! in; a test in `beacon-page` fails when they drift from what [`bus_schemas`]
//! here and `beacon_page::schema` generate (the page config's schemas live
//! with the config). Regenerate with
//! `BEACON_UPDATE_SCHEMAS=1 cargo test -p beacon-page --test schemas`.

use schemars::{schema_for, JsonSchema, Schema};

use crate::api::*;
use crate::event::{Envelope, Message};
use crate::messages::*;

/// One generated schema and the file it belongs in.
#[derive(Debug, Clone)]
pub struct NamedSchema {
    /// File name, e.g. `health_result.v1.schema.json`.
    pub file: String,
    /// The schema.
    pub schema: Schema,
}

/// The request and reply schemas of `endpoint`, in files named after it.
pub fn api<Req: JsonSchema, Res: JsonSchema>(endpoint: Endpoint<Req, Res>) -> [NamedSchema; 2] {
    api_as(endpoint, endpoint.name())
}

/// The request and reply schemas of `endpoint`, in the files of `stem`:
/// for endpoints that share their types (see [`same_types`]).
pub fn api_as<Req: JsonSchema, Res: JsonSchema>(
    _endpoint: Endpoint<Req, Res>,
    stem: &str,
) -> [NamedSchema; 2] {
    [
        NamedSchema {
            file: format!("api.{stem}.request.schema.json"),
            schema: schema_for!(Req),
        },
        NamedSchema {
            file: format!("api.{stem}.reply.schema.json"),
            schema: schema_for!(ApiReply<Res>),
        },
    ]
}

/// Compiles only when every endpoint given has the types of the first:
/// endpoints documented by one pair of schema files must keep sharing them.
pub fn same_types<Req, Res>(_first: Endpoint<Req, Res>, _others: &[Endpoint<Req, Res>]) {}

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
    same_types(
        INCIDENT_UPDATE,
        &[
            INCIDENT_EDIT,
            INCIDENT_RESOLVE,
            INCIDENT_CONFIRM,
            INCIDENT_DISMISS,
            INCIDENT_POSTMORTEM,
        ],
    );
    same_types(
        MAINTENANCE_START,
        &[MAINTENANCE_VERIFY, MAINTENANCE_COMPLETE, MAINTENANCE_CANCEL],
    );
    let endpoints = [
        api(COMPONENT_SET),
        api(COMPONENT_CLEAR),
        api(COMPONENT_EXPLAIN),
        api(COMPONENT_LIST),
        api(INCIDENT_LIST),
        api(INCIDENT_SHOW),
        api(INCIDENT_CREATE),
        api_as(INCIDENT_UPDATE, "incident.change"),
        api(MAINTENANCE_SCHEDULE),
        api_as(MAINTENANCE_START, "maintenance.change"),
        api(MAINTENANCE_LIST),
        api(APIKEY_CREATE),
        api(APIKEY_LIST),
        api(APIKEY_REVOKE),
        api(SLA_REPORT),
        api(SUBSCRIBER_ADD),
        api(SUBSCRIBER_IMPORT),
        api(SUBSCRIBER_LIST),
        api(SUBSCRIBER_SHOW),
        api(SUBSCRIBER_REMOVE),
        api(SUBSCRIBER_CONFIRM),
        api(SUBSCRIBER_UNSUBSCRIBE),
        api(SUBSCRIBER_ERASE),
        api(CHANGELOG_PUBLISH),
        api(CHANGELOG_EDIT),
        api(CHANGELOG_DELETE),
        api(CHANGELOG_LIST),
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
        envelope::<UptimeRollup>(),
        envelope::<ComponentOverride>(),
        envelope::<ProbeHeartbeat>(),
        envelope::<ProbeVerdict>(),
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
