//! What the api daemon stores (KV `apikeys`) has a checked-in JSON Schema
//! in `schemas/api/`, generated from `beacon_api::keys::ApiKeyRecord`; a
//! real record validates against it. Regenerate with
//! `BEACON_UPDATE_SCHEMAS=1 cargo test -p beacon-api --test schemas`.

use beacon_api::keys::ApiKeyRecord;
use beacon_contract::api::ApiScope;
use beacon_contract::event::{Envelope, Message};
use beacon_contract::hlc::HlcClock;
use beacon_contract::schema::{envelope as schema_of, to_file_text};
use beacon_testkit::schemas::{assert_checked_in, assert_valid, SchemaFile};

const DIR: &str = "api";
const REGENERATE: &str = "BEACON_UPDATE_SCHEMAS=1 cargo test -p beacon-api --test schemas";

fn generated() -> Vec<SchemaFile> {
    let named = schema_of::<ApiKeyRecord>();
    vec![SchemaFile {
        file: named.file,
        text: to_file_text(&named.schema),
    }]
}

#[test]
fn the_checked_in_key_schema_matches_the_record() {
    assert_checked_in(DIR, &generated(), REGENERATE);
}

#[test]
fn a_stored_key_validates() {
    let record = ApiKeyRecord {
        id: "3f9a0c1d2e4b5a69".into(),
        page: "demo".into(),
        name: "ci deploys".into(),
        scopes: vec![ApiScope::IncidentsWrite, ApiScope::ChangelogWrite],
        secret_sha256: "0".repeat(64),
        rate_per_minute: 600,
        created_at_ms: 1_732_233_000_000,
        created_by: "alice".into(),
        revoked_at_ms: Some(1_732_234_000_000),
    };
    let file = format!(
        "{}.v{}.schema.json",
        ApiKeyRecord::KIND,
        ApiKeyRecord::VERSION
    );
    let value = serde_json::to_value(Envelope::new(&HlcClock::new(), "eu", record)).expect("JSON");
    assert_valid(DIR, &file, &generated(), &value);
}
