//! The page config's JSON Schemas: the file operators write, the validated
//! config in KV `config`, and the `config.apply` and `config.get` endpoints.
//! With [`beacon_contract::schema::bus_schemas`] they are everything checked
//! in under `schemas/`.

use beacon_contract::api::ApiReply;
use beacon_contract::schema::{envelope, NamedSchema};
use schemars::schema_for;

use crate::config::api::{ApplyConfigRequest, ApplyConfigResult, GetConfigRequest};
use crate::config::{PageConfig, RawPageConfig};

/// The page config's bus schemas: its KV value and its two endpoints.
pub fn bus_schemas() -> Vec<NamedSchema> {
    vec![
        envelope::<PageConfig>(),
        NamedSchema {
            file: "api.config.apply.request.schema.json".into(),
            schema: schema_for!(ApplyConfigRequest),
        },
        NamedSchema {
            file: "api.config.apply.reply.schema.json".into(),
            schema: schema_for!(ApiReply<ApplyConfigResult>),
        },
        NamedSchema {
            file: "api.config.get.request.schema.json".into(),
            schema: schema_for!(GetConfigRequest),
        },
        NamedSchema {
            file: "api.config.get.reply.schema.json".into(),
            schema: schema_for!(ApiReply<PageConfig>),
        },
    ]
}

/// The page config file.
pub fn config_schemas() -> Vec<NamedSchema> {
    vec![NamedSchema {
        file: "page.schema.json".into(),
        schema: schema_for!(RawPageConfig),
    }]
}
