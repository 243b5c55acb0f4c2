//! The page config's JSON Schemas: the file operators write, the validated
//! config in KV `config`, and the `config.apply` and `config.get` endpoints.
//! With [`beacon_contract::schema::bus_schemas`] they are everything checked
//! in under `schemas/`.

use beacon_contract::schema::{api, envelope, NamedSchema};
use schemars::schema_for;

use crate::config::api::{CONFIG_APPLY, CONFIG_GET};
use crate::config::{PageConfig, RawPageConfig};

/// The page config's bus schemas: its KV value and its two endpoints.
pub fn bus_schemas() -> Vec<NamedSchema> {
    let mut schemas = vec![envelope::<PageConfig>()];
    schemas.extend(api(CONFIG_APPLY));
    schemas.extend(api(CONFIG_GET));
    schemas
}

/// The page config file.
pub fn config_schemas() -> Vec<NamedSchema> {
    vec![NamedSchema {
        file: "page.schema.json".into(),
        schema: schema_for!(RawPageConfig),
    }]
}
