//! `beaconctl status [--page P]`: the current status of every component,
//! read from KV bucket `status`.

use std::time::Duration;

use async_nats::jetstream;
use beacon_contract::event::Envelope;
use beacon_contract::messages::StatusRecord;
use beacon_contract::names::{self, KV_STATUS};
use beacon_runtime::connect::NatsArgs;
use futures::TryStreamExt;

use crate::cli::OutputFormat;
use crate::commands::connect;
use crate::exit::CtlError;
use crate::output;

/// Runs `status`.
pub async fn run(
    nats: &NatsArgs,
    page: Option<&str>,
    format: OutputFormat,
    timeout: Duration,
) -> Result<(), CtlError> {
    if let Some(page) = page {
        names::check_token(page).map_err(|e| CtlError::BadArgument {
            flag: "--page",
            reason: format!("{page:?} {e}"),
        })?;
    }
    let client = connect(nats).await?;
    let js = jetstream::ContextBuilder::new()
        .timeout(timeout)
        .build(client);
    let records = read_records(&js, page, timeout).await?;
    let text = match format {
        OutputFormat::Table => output::status_table(&records),
        OutputFormat::Json => output::json(&records)?,
        OutputFormat::Csv => output::status_csv(&records),
    };
    output::print(&text)
}

/// Reads every status record (of `page`, if given), sorted by key. Values
/// that do not decode are reported as warnings and skipped, so one bad
/// entry does not hide the others.
async fn read_records(
    js: &jetstream::Context,
    page: Option<&str>,
    timeout: Duration,
) -> Result<Vec<StatusRecord>, CtlError> {
    let bus = |what: &str, reason: String| CtlError::Bus {
        what: what.to_owned(),
        reason,
    };
    let kv = js
        .get_key_value(KV_STATUS)
        .await
        .map_err(|e| bus(&format!("cannot open KV bucket {KV_STATUS}"), e.to_string()))?;
    let list_keys = async {
        kv.keys()
            .await
            .map_err(|e| e.to_string())?
            .try_collect::<Vec<String>>()
            .await
            .map_err(|e| e.to_string())
    };
    // Each get has the context timeout; listing keys is a consumer with no
    // bound of its own, so bound it here.
    let mut keys = tokio::time::timeout(timeout, list_keys)
        .await
        .map_err(|_| {
            bus(
                &format!("cannot list keys of KV bucket {KV_STATUS}"),
                format!("no answer within {}", humantime::format_duration(timeout)),
            )
        })?
        .map_err(|reason| {
            bus(
                &format!("cannot list keys of KV bucket {KV_STATUS}"),
                reason,
            )
        })?;
    if let Some(page) = page {
        let prefix = format!("{page}.");
        keys.retain(|key| key.starts_with(&prefix));
    }
    keys.sort();

    let mut records = Vec::with_capacity(keys.len());
    for key in keys {
        let value = kv
            .get(key.as_str())
            .await
            .map_err(|e| bus(&format!("cannot read {KV_STATUS}/{key}"), e.to_string()))?;
        // Deleted between listing and reading: nothing to show.
        let Some(value) = value else { continue };
        match Envelope::<StatusRecord>::decode(&value) {
            Ok(envelope) => records.push(envelope.data),
            Err(e) => output::warn(&format!("skipping {KV_STATUS}/{key}: {e}")),
        }
    }
    Ok(records)
}
