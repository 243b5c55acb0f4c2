//! `beaconctl changelog publish|edit|delete|list`: the changelog, through
//! the publisher's bus API. Images given with `--image` are uploaded with
//! the entry and become `assets/<file name>` of the page.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use beacon_contract::api;
use beacon_contract::api::{
    ChangelogImage, ChangelogView, DeleteChangelogRequest, EditChangelogRequest,
    ListChangelogRequest, PublishChangelogRequest, CHANGELOG_IMAGE_MAX_BYTES,
};
use beacon_runtime::connect::NatsArgs;

use crate::cli::{ChangelogCommand, OutputFormat};
use crate::commands::maintenance::parse_time;
use crate::commands::{check_id, connect};
use crate::exit::CtlError;
use crate::output::{self, table, utc_timestamp};
use crate::request;

/// Reads `--image` files into upload form: the file name, the bytes in base64.
fn images(paths: &[PathBuf]) -> Result<Vec<ChangelogImage>, CtlError> {
    let mut out = Vec::new();
    for path in paths {
        let bytes = std::fs::read(path).map_err(|source| CtlError::ReadFile {
            path: path.clone(),
            source,
        })?;
        if bytes.len() > CHANGELOG_IMAGE_MAX_BYTES {
            return Err(CtlError::BadArgument {
                flag: "--image",
                reason: format!(
                    "{} is larger than {CHANGELOG_IMAGE_MAX_BYTES} bytes",
                    path.display()
                ),
            });
        }
        let name =
            path.file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| CtlError::BadArgument {
                    flag: "--image",
                    reason: format!("{} has no file name", path.display()),
                })?;
        out.push(ChangelogImage {
            name: name.to_owned(),
            data_base64: base64::engine::general_purpose::STANDARD.encode(&bytes),
        });
    }
    Ok(out)
}

/// The body: `-m TEXT` or `--body-file FILE`.
fn body(message: Option<String>, file: Option<PathBuf>) -> Result<Option<String>, CtlError> {
    match (message, file) {
        (Some(text), _) => Ok(Some(text)),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(Some)
            .map_err(|source| CtlError::ReadFile { path, source }),
        (None, None) => Ok(None),
    }
}

/// Runs `changelog …`.
pub async fn run(
    nats: &NatsArgs,
    command: ChangelogCommand,
    format: OutputFormat,
    timeout: Duration,
) -> Result<(), CtlError> {
    let now_ms = beacon_contract::hlc::wall_clock_ms();
    let (view, verb): (ChangelogView, &str) = match command {
        ChangelogCommand::List { page, all } => {
            check_id("PAGE", &page)?;
            let client = connect(nats).await?;
            let entries: Vec<ChangelogView> = request::call(
                &client,
                api::CHANGELOG_LIST,
                &ListChangelogRequest { page, all },
                timeout,
            )
            .await?;
            let text = match format {
                OutputFormat::Json => output::json(&entries)?,
                OutputFormat::Table | OutputFormat::Csv => list(&entries),
            };
            return output::print(&text);
        }
        ChangelogCommand::Publish {
            page,
            title,
            category,
            components,
            message,
            body_file,
            images: image_paths,
            published_at,
            idempotency_key,
            actor,
        } => {
            check_id("PAGE", &page)?;
            let body_markdown = body(message, body_file)?.ok_or(CtlError::BadArgument {
                flag: "--message",
                reason: "give the entry's text with -m or --body-file".into(),
            })?;
            let published_at_ms = published_at
                .map(|t| parse_time("--published-at", &t, now_ms))
                .transpose()?;
            let request = PublishChangelogRequest {
                page,
                title,
                body_markdown,
                category,
                components,
                published_at_ms,
                images: images(&image_paths)?,
                actor: actor.name(),
                idempotency_key,
            };
            let client = connect(nats).await?;
            let view = request::call(&client, api::CHANGELOG_PUBLISH, &request, timeout).await?;
            (view, "published")
        }
        ChangelogCommand::Edit {
            page,
            entry,
            title,
            category,
            components,
            message,
            body_file,
            images: image_paths,
            published_at,
            revision,
            actor,
        } => {
            check_id("PAGE", &page)?;
            check_id("ENTRY", &entry)?;
            let published_at_ms = published_at
                .map(|t| parse_time("--published-at", &t, now_ms))
                .transpose()?;
            let request = EditChangelogRequest {
                page,
                entry,
                expected_revision: revision,
                title,
                body_markdown: body(message, body_file)?,
                category,
                components: (!components.is_empty()).then_some(components),
                published_at_ms,
                images: images(&image_paths)?,
                actor: actor.name(),
            };
            let client = connect(nats).await?;
            let view = request::call(&client, api::CHANGELOG_EDIT, &request, timeout).await?;
            (view, "edited")
        }
        ChangelogCommand::Delete {
            page,
            entry,
            revision,
            actor,
        } => {
            check_id("PAGE", &page)?;
            check_id("ENTRY", &entry)?;
            let request = DeleteChangelogRequest {
                page,
                entry,
                expected_revision: revision,
                actor: actor.name(),
            };
            let client = connect(nats).await?;
            let view = request::call(&client, api::CHANGELOG_DELETE, &request, timeout).await?;
            (view, "deleted")
        }
    };
    let text = match format {
        OutputFormat::Json => output::json(&view)?,
        OutputFormat::Table | OutputFormat::Csv => format!(
            "{verb} changelog entry {} ({}, revision {})\n",
            view.entry.entry, view.entry.category, view.revision
        ),
    };
    output::print(&text)
}

/// The `changelog list` table.
pub fn list(entries: &[ChangelogView]) -> String {
    if entries.is_empty() {
        return "no changelog entries\n".to_owned();
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|v| {
            let when = if v.entry.published_at_ms > 0 {
                v.entry.published_at_ms
            } else {
                v.created_at_ms
            };
            vec![
                v.entry.entry.clone(),
                utc_timestamp(when),
                v.entry.category.clone(),
                if v.entry.withdrawn { "withdrawn" } else { "-" }.to_owned(),
                v.revision.to_string(),
                v.entry.title.clone(),
            ]
        })
        .collect();
    table(
        &["ID", "PUBLISHED", "CATEGORY", "STATE", "REVISION", "TITLE"],
        &rows,
    )
}
