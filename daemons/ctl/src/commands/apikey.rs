//! `beaconctl apikey create|list|revoke`: HTTP API keys, owned by the api
//! daemon. A new key is printed once; only its hash is stored.

use std::time::Duration;

use beacon_contract::api;
use beacon_contract::api::{
    ApiKeyView, ApiScope, CreateApiKeyRequest, CreatedApiKey, ListApiKeysRequest,
    RevokeApiKeyRequest,
};
use beacon_runtime::connect::NatsArgs;

use crate::cli::{ApikeyCommand, OutputFormat};
use crate::commands::{check_id, connect};
use crate::exit::CtlError;
use crate::output::{self, table, utc_timestamp};
use crate::request;

/// Parses scope words, naming the ones there are.
pub fn scopes(words: &[String]) -> Result<Vec<ApiScope>, CtlError> {
    words
        .iter()
        .map(|word| {
            ApiScope::parse(word).ok_or_else(|| CtlError::BadArgument {
                flag: "--scope",
                reason: format!(
                    "{word:?} is not one of {}",
                    ApiScope::ALL.map(ApiScope::as_str).join(", ")
                ),
            })
        })
        .collect()
}

/// Runs `apikey …`.
pub async fn run(
    nats: &NatsArgs,
    command: ApikeyCommand,
    format: OutputFormat,
    timeout: Duration,
) -> Result<(), CtlError> {
    let text = match command {
        ApikeyCommand::Create {
            page,
            name,
            scopes: words,
            rate_per_minute,
            actor,
        } => {
            check_id("--page", &page)?;
            let request = CreateApiKeyRequest {
                page,
                name,
                scopes: scopes(&words)?,
                rate_per_minute,
                actor: actor.name(),
            };
            let client = connect(nats).await?;
            let created: CreatedApiKey =
                request::call(&client, api::APIKEY_CREATE, &request, timeout).await?;
            match format {
                OutputFormat::Json => output::json(&created)?,
                OutputFormat::Table | OutputFormat::Csv => format!(
                    "{}\nThis is the only time the key is shown: store it now.\n\n{}",
                    created.key,
                    list(std::slice::from_ref(&created.view))
                ),
            }
        }
        ApikeyCommand::List { page } => {
            if let Some(page) = &page {
                check_id("--page", page)?;
            }
            let client = connect(nats).await?;
            let keys: Vec<ApiKeyView> = request::call(
                &client,
                api::APIKEY_LIST,
                &ListApiKeysRequest { page },
                timeout,
            )
            .await?;
            match format {
                OutputFormat::Json => output::json(&keys)?,
                OutputFormat::Table | OutputFormat::Csv => list(&keys),
            }
        }
        ApikeyCommand::Revoke { id, actor } => {
            check_id("ID", &id)?;
            let client = connect(nats).await?;
            let request = RevokeApiKeyRequest {
                id,
                actor: actor.name(),
            };
            let key: ApiKeyView =
                request::call(&client, api::APIKEY_REVOKE, &request, timeout).await?;
            match format {
                OutputFormat::Json => output::json(&key)?,
                OutputFormat::Table | OutputFormat::Csv => {
                    format!("revoked key {} ({})\n", key.id, key.name)
                }
            }
        }
    };
    output::print(&text)
}

/// The key table.
pub fn list(keys: &[ApiKeyView]) -> String {
    if keys.is_empty() {
        return "no API keys\n".to_owned();
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.id.clone(),
                k.page.clone(),
                k.name.clone(),
                k.scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                k.rate_per_minute.to_string(),
                utc_timestamp(k.created_at_ms),
                k.revoked_at_ms.map_or("-".to_owned(), utc_timestamp),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "PAGE",
            "NAME",
            "SCOPES",
            "PER MINUTE",
            "CREATED",
            "REVOKED",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_checked_by_name() {
        let parsed = scopes(&["incidents:write".into(), "changelog:write".into()]).expect("valid");
        assert_eq!(parsed, [ApiScope::IncidentsWrite, ApiScope::ChangelogWrite]);
        let error = scopes(&["incidents:delete".into()]).expect_err("invalid");
        assert_eq!(error.exit_code(), 64);
        assert!(error.to_string().contains("incidents:read"), "{error}");
    }
}
