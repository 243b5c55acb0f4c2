//! `beaconctl maintenance schedule|start|verify|complete|cancel|list`.

use std::time::{Duration, UNIX_EPOCH};

use beacon_contract::api;
use beacon_contract::api::{
    ChangeMaintenanceRequest, ListMaintenanceRequest, ScheduleMaintenanceRequest,
};
use beacon_contract::maintenance::Window;
use beacon_runtime::connect::NatsArgs;

use crate::cli::{MaintenanceChangeArgs, MaintenanceCommand, OutputFormat};
use crate::commands::{check_id, connect};
use crate::exit::CtlError;
use crate::output::{self, table, utc_timestamp};
use crate::request;

/// Parses a time: RFC 3339, `now`, or `+DURATION` from `now_ms`.
pub fn parse_time(flag: &'static str, text: &str, now_ms: u64) -> Result<u64, CtlError> {
    let bad = |reason: String| CtlError::BadArgument { flag, reason };
    if text == "now" {
        return Ok(now_ms);
    }
    if let Some(offset) = text.strip_prefix('+') {
        let offset = humantime::parse_duration(offset)
            .map_err(|e| bad(format!("{text:?}: {e}; write e.g. +30m")))?;
        return Ok(now_ms + offset.as_millis() as u64);
    }
    let at = humantime::parse_rfc3339_weak(text).map_err(|e| {
        bad(format!(
            "{text:?} is not a time ({e}); write e.g. 2026-12-01T03:00:00Z, now or +2h"
        ))
    })?;
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .map_err(|_| bad(format!("{text:?} is before 1970")))
}

fn change_request(change: MaintenanceChangeArgs) -> Result<ChangeMaintenanceRequest, CtlError> {
    check_id("PAGE", &change.page)?;
    check_id("MAINTENANCE", &change.maintenance)?;
    Ok(ChangeMaintenanceRequest {
        page: change.page,
        maintenance: change.maintenance,
        expected_revision: change.revision,
        body: change.message,
        actor: change.actor.name(),
    })
}

/// Runs `maintenance …`.
pub async fn run(
    nats: &NatsArgs,
    command: MaintenanceCommand,
    format: OutputFormat,
    timeout: Duration,
) -> Result<(), CtlError> {
    let now_ms = beacon_contract::hlc::wall_clock_ms();
    let (subject, verb, request) = match command {
        MaintenanceCommand::List { page, all } => {
            check_id("PAGE", &page)?;
            let client = connect(nats).await?;
            let windows: Vec<Window> = request::call(
                &client,
                api::MAINTENANCE_LIST,
                &ListMaintenanceRequest { page, all },
                timeout,
            )
            .await?;
            let text = match format {
                OutputFormat::Json => output::json(&windows)?,
                OutputFormat::Table | OutputFormat::Csv => list(&windows),
            };
            return output::print(&text);
        }
        MaintenanceCommand::Schedule {
            page,
            title,
            start,
            end,
            duration,
            components,
            recurrence,
            remind_before,
            verify_for,
            message,
            actor,
        } => {
            check_id("PAGE", &page)?;
            for component in &components {
                check_id("--component", component)?;
            }
            let starts_at_ms = parse_time("--start", &start, now_ms)?;
            let ends_at_ms = match (end, duration) {
                (Some(end), _) => parse_time("--end", &end, now_ms)?,
                (None, Some(duration)) => starts_at_ms + duration.as_millis() as u64,
                (None, None) => {
                    return Err(CtlError::BadArgument {
                        flag: "--end",
                        reason: "give --end or --duration".into(),
                    })
                }
            };
            let request = ScheduleMaintenanceRequest {
                page,
                title,
                body: message,
                starts_at_ms,
                ends_at_ms,
                components,
                recurrence,
                remind_before_ms: remind_before.map(|d| d.as_millis() as u64),
                verify_ms: verify_for.map(|d| d.as_millis() as u64),
                actor: actor.name(),
                idempotency_key: None,
            };
            let client = connect(nats).await?;
            let window: Window =
                request::call(&client, api::MAINTENANCE_SCHEDULE, &request, timeout).await?;
            return print(format, &window, "scheduled");
        }
        MaintenanceCommand::Start { change } => {
            (api::MAINTENANCE_START, "started", change_request(change)?)
        }
        MaintenanceCommand::Verify { change } => (
            api::MAINTENANCE_VERIFY,
            "verifying",
            change_request(change)?,
        ),
        MaintenanceCommand::Complete { change } => (
            api::MAINTENANCE_COMPLETE,
            "completed",
            change_request(change)?,
        ),
        MaintenanceCommand::Cancel { change } => (
            api::MAINTENANCE_CANCEL,
            "cancelled",
            change_request(change)?,
        ),
    };
    let client = connect(nats).await?;
    let window: Window = request::call(&client, subject, &request, timeout).await?;
    print(format, &window, verb)
}

fn print(format: OutputFormat, window: &Window, verb: &str) -> Result<(), CtlError> {
    let text = match format {
        OutputFormat::Json => output::json(window)?,
        OutputFormat::Table | OutputFormat::Csv => format!(
            "{verb} maintenance {} ({}, {} to {}, revision {})\n",
            window.state.maintenance,
            window.state.phase.as_str(),
            utc_timestamp(window.state.starts_at_ms),
            utc_timestamp(window.state.ends_at_ms),
            window.revision
        ),
    };
    output::print(&text)
}

/// The `maintenance list` table.
pub fn list(windows: &[Window]) -> String {
    if windows.is_empty() {
        return "no maintenance windows\n".to_owned();
    }
    let rows: Vec<Vec<String>> = windows
        .iter()
        .map(|w| {
            let s = &w.state;
            vec![
                s.maintenance.clone(),
                s.phase.as_str().to_owned(),
                utc_timestamp(s.starts_at_ms),
                utc_timestamp(s.ends_at_ms),
                s.recurrence.clone().unwrap_or_else(|| {
                    s.series
                        .clone()
                        .map_or("-".to_owned(), |id| format!("of {id}"))
                }),
                s.components.join(","),
                s.title.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "PHASE",
            "STARTS",
            "ENDS",
            "RECURS",
            "COMPONENTS",
            "TITLE",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_now_or_relative() {
        let now = 1_000_000;
        assert_eq!(parse_time("--start", "now", now).expect("now"), now);
        assert_eq!(
            parse_time("--start", "+90s", now).expect("relative"),
            now + 90_000
        );
        assert_eq!(
            parse_time("--start", "2026-12-01T03:00:00Z", now).expect("rfc3339"),
            1_796_094_000_000
        );
        for bad in ["tomorrow", "+soon", "2026-13-01T00:00:00Z"] {
            assert_eq!(
                parse_time("--start", bad, now).expect_err(bad).exit_code(),
                64,
                "{bad}"
            );
        }
    }
}
