//! The OpenAPI document, generated from the handlers and types with
//! `utoipa`. It is checked in as `schemas/openapi/beacon-api.json`, and a
//! test fails when the two drift apart.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::{changelog, dto, public, seed, statuspage, subscribers};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("bk_{id}_{secret}")
                    .description(Some("An API key: `Authorization: Bearer bk_…`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "oauth_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "Statuspage's form: `Authorization: OAuth bk_…`",
            ))),
        );
    }
}

/// The document's definition.
#[derive(OpenApi)]
#[openapi(
    info(title = "Beacon HTTP API", description = "Operators' write API, Statuspage-compatible management routes and public sign-up. Every write goes to the bus API of the daemon that owns the data."),
    paths(
        seed::create_incident, seed::add_update, seed::list_incidents, seed::show_incident,
        seed::list_components, seed::set_status, seed::clear_status,
        seed::list_maintenance, seed::schedule_maintenance, seed::change_maintenance,
        statuspage::list, statuspage::unresolved, statuspage::scheduled, statuspage::create,
        statuspage::show_one, statuspage::update, statuspage::delete,
        statuspage::list_components, statuspage::show_component, statuspage::update_component,
        public::sign_up, public::confirm_page, public::confirm, public::unsubscribe_page, public::unsubscribe,
    ),
    components(schemas(
        dto::Status, dto::Impact, dto::IncidentStatus, dto::Affected, dto::Update, dto::Incident,
        dto::Component, dto::Maintenance, dto::SpComponent, dto::SpAffectedComponent,
        dto::SpIncidentUpdate, dto::SpIncident,
        public::SignUp, public::NewPublicSubscriber, public::SignUpAccepted,
    )),
    modifiers(&Security),
    tags((name = "incidents"), (name = "components"), (name = "maintenance"), (name = "statuspage", description = "Statuspage's REST API v1 paths and fields"), (name = "sign-up", description = "Public sign-up without a key, and the links subscribers are mailed")),
)]
pub struct ApiDoc;

/// The document as pretty JSON with a trailing newline, as checked in.
pub fn document() -> String {
    let mut document = ApiDoc::openapi();
    document.merge(subscribers::SubscribersDoc::openapi());
    document.merge(changelog::ChangelogDoc::openapi());
    let mut text = document.to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}
