//! The checked-in OpenAPI document matches what the code generates.
//! Regenerate with `BEACON_UPDATE_SCHEMAS=1 cargo test -p beacon-api --test openapi`.

use std::path::Path;

#[test]
fn the_checked_in_openapi_document_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/openapi/beacon-api.json");
    let generated = beacon_api::openapi::document();
    if std::env::var("BEACON_UPDATE_SCHEMAS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write the document");
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "schemas/openapi/beacon-api.json differs from what the code generates; \
         regenerate with BEACON_UPDATE_SCHEMAS=1 cargo test -p beacon-api --test openapi"
    );
}

#[test]
fn every_route_is_documented() {
    let document: serde_json::Value =
        serde_json::from_str(&beacon_api::openapi::document()).expect("JSON");
    let paths = document["paths"].as_object().expect("paths");
    for path in [
        "/api/v1/incidents",
        "/api/v1/incidents/{id}",
        "/api/v1/incidents/{id}/updates",
        "/api/v1/components",
        "/api/v1/components/{id}/status",
        "/api/v1/maintenance",
        "/api/v1/maintenance/{id}/{action}",
        "/v1/pages/{page_id}/incidents",
        "/v1/pages/{page_id}/incidents/{incident_id}",
        "/v1/pages/{page_id}/components",
        "/v1/pages/{page_id}/components/{component_id}",
        "/api/v1/subscribers",
        "/api/v1/subscribers/{id}",
        "/v1/pages/{page_id}/subscribers",
        "/v1/pages/{page_id}/subscribers/{subscriber_id}",
        "/api/v1/changelog",
        "/api/v2/subscribers.json",
        "/api/v2/subscribers/confirm",
        "/api/v2/subscribers/unsubscribe",
    ] {
        assert!(paths.contains_key(path), "{path} is not in the document");
    }
}

#[test]
fn operation_ids_are_unique() {
    let document: serde_json::Value =
        serde_json::from_str(&beacon_api::openapi::document()).expect("JSON");
    let mut seen = std::collections::BTreeSet::new();
    for operations in document["paths"].as_object().expect("paths").values() {
        for operation in operations.as_object().expect("operations").values() {
            if let Some(id) = operation["operationId"].as_str() {
                assert!(seen.insert(id.to_owned()), "operationId {id} is used twice");
            }
        }
    }
}
