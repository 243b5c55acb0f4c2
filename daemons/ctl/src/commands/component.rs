//! `beaconctl component set|clear|explain|list`.

use std::time::Duration;

use beacon_contract::api;
use beacon_contract::api::{
    ClearComponentRequest, ComponentRequest, ComponentView, SetComponentRequest,
};
use beacon_contract::messages::{ComponentStatus, RegionEvidence};
use beacon_runtime::connect::NatsArgs;

use crate::cli::{ComponentCommand, OutputFormat};
use crate::commands::{check_id, connect, parse_word};
use crate::exit::CtlError;
use crate::output::{self, table, utc_timestamp};
use crate::request;

/// Parses a component status by its wire name.
pub fn parse_status(text: &str) -> Result<ComponentStatus, CtlError> {
    parse_word(
        "STATUS",
        text,
        &ComponentStatus::ALL,
        ComponentStatus::as_str,
    )
}

/// Runs `component …`.
pub async fn run(
    nats: &NatsArgs,
    command: ComponentCommand,
    format: OutputFormat,
    timeout: Duration,
) -> Result<(), CtlError> {
    let text = match command {
        ComponentCommand::Set {
            page,
            component,
            status,
            duration,
            reason,
            actor,
        } => {
            check_id("PAGE", &page)?;
            check_id("COMPONENT", &component)?;
            let status = parse_status(&status)?;
            let request = SetComponentRequest {
                page,
                component,
                status,
                reason,
                expires_in_ms: duration.map(|d| d.as_millis() as u64),
                actor: actor.name(),
            };
            let client = connect(nats).await?;
            let view: ComponentView =
                request::call(&client, api::COMPONENT_SET, &request, timeout).await?;
            render(format, &view, |v| {
                format!(
                    "override set: {}/{} shows {}{}\n",
                    v.page,
                    v.component,
                    status.as_str(),
                    duration.map_or(String::new(), |d| format!(
                        " for {}",
                        humantime::format_duration(d)
                    ))
                )
            })?
        }
        ComponentCommand::Clear {
            page,
            component,
            actor,
        } => {
            check_id("PAGE", &page)?;
            check_id("COMPONENT", &component)?;
            let request = ClearComponentRequest {
                page,
                component,
                actor: actor.name(),
            };
            let client = connect(nats).await?;
            let view: ComponentView =
                request::call(&client, api::COMPONENT_CLEAR, &request, timeout).await?;
            render(format, &view, |v| {
                format!(
                    "override cleared: automation decides {}/{} again\n",
                    v.page, v.component
                )
            })?
        }
        ComponentCommand::Explain { page, component } => {
            check_id("PAGE", &page)?;
            check_id("COMPONENT", &component)?;
            let request = ComponentRequest {
                page,
                component: Some(component),
            };
            let client = connect(nats).await?;
            let view: ComponentView =
                request::call(&client, api::COMPONENT_EXPLAIN, &request, timeout).await?;
            render(format, &view, explain)?
        }
        ComponentCommand::List { page } => {
            check_id("PAGE", &page)?;
            let request = ComponentRequest {
                page,
                component: None,
            };
            let client = connect(nats).await?;
            let views: Vec<ComponentView> =
                request::call(&client, api::COMPONENT_LIST, &request, timeout).await?;
            match format {
                OutputFormat::Json => output::json(&views)?,
                OutputFormat::Table | OutputFormat::Csv => list(&views),
            }
        }
    };
    output::print(&text)
}

fn render(
    format: OutputFormat,
    view: &ComponentView,
    table: impl Fn(&ComponentView) -> String,
) -> Result<String, CtlError> {
    match format {
        OutputFormat::Json => output::json(view),
        OutputFormat::Table | OutputFormat::Csv => Ok(table(view)),
    }
}

fn status_word(view: &ComponentView) -> String {
    view.record.as_ref().map_or_else(
        || "no status yet".to_owned(),
        |r| r.status.as_str().to_owned(),
    )
}

/// The `component list` table.
pub fn list(views: &[ComponentView]) -> String {
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            let mut notes = Vec::new();
            if let Some(record) = &v.record {
                if record.flapping {
                    notes.push("flapping".to_owned());
                }
                notes.push(record.source.as_str().to_owned());
            }
            if v.manual_override.is_some() {
                notes.push("override".to_owned());
            }
            notes.extend(v.maintenance.iter().map(|m| format!("maintenance {m}")));
            notes.extend(v.incidents.iter().map(|i| format!("incident {i}")));
            notes.dedup();
            vec![
                v.component.clone(),
                status_word(v),
                v.record
                    .as_ref()
                    .map_or("-".to_owned(), |r| utc_timestamp(r.since_ms)),
                notes.join(", "),
            ]
        })
        .collect();
    table(&["COMPONENT", "STATUS", "SINCE", "NOTES"], &rows)
}

/// The `component explain` text: status, rule, regions with their sample
/// results, and what holds the status.
pub fn explain(view: &ComponentView) -> String {
    let mut text = format!("{} ({}) on page {}\n", view.component, view.name, view.page);
    match &view.record {
        None if view.automated => text.push_str("status: none yet (automation has not decided)\n"),
        None => text.push_str("status: none yet (no checks; set it with `component set`)\n"),
        Some(record) => {
            text.push_str(&format!(
                "status: {} since {} (set by {}{})\n",
                record.status.as_str(),
                utc_timestamp(record.since_ms),
                record.source.as_str(),
                if record.flapping { ", flapping" } else { "" }
            ));
            if let Some(automatic) = record.automatic.filter(|a| *a != record.status) {
                text.push_str(&format!("automation says: {}\n", automatic.as_str()));
            }
            text.push_str(&format!("rule: {}\n", record.evidence.rule));
            if let Some(trigger) = record.evidence.trigger {
                text.push_str(&format!("trigger: result {trigger}\n"));
            }
            if let Some(inhibited) = &record.inhibited {
                text.push_str(&format!("notifications held back: {}\n", inhibited.detail));
            }
            if let Some(proposal) = &record.proposal {
                text.push_str(&format!("proposed incident: {proposal}\n"));
            }
            if !record.evidence.regions.is_empty() {
                text.push_str("regions:\n");
                text.push_str(&regions(&record.evidence.regions));
            }
        }
    }
    if let Some(manual) = &view.manual_override {
        let until = manual
            .expires_at_ms
            .map_or("until cleared".to_owned(), |at| {
                format!("until {}", utc_timestamp(at))
            });
        text.push_str(&format!(
            "override: {} by {} {until}{}\n",
            manual.status.map_or("cleared", ComponentStatus::as_str),
            manual.actor,
            if manual.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", manual.reason)
            }
        ));
    }
    for id in &view.maintenance {
        text.push_str(&format!("maintenance in progress: {id}\n"));
    }
    for id in &view.incidents {
        text.push_str(&format!("incident: {id}\n"));
    }
    if !view.depends_on.is_empty() {
        text.push_str(&format!("depends on: {}\n", view.depends_on.join(", ")));
    }
    text
}

fn regions(regions: &[RegionEvidence]) -> String {
    let rows: Vec<Vec<String>> = regions
        .iter()
        .map(|r| {
            vec![
                r.region.clone(),
                r.state.as_str().to_owned(),
                r.consecutive_failures.to_string(),
                r.last_seen_ms.map_or("-".to_owned(), utc_timestamp),
                r.samples
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
                r.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "REGION",
            "STATE",
            "FAILURES",
            "LAST RESULT",
            "SAMPLES",
            "LAST ERROR",
        ],
        &rows,
    )
    .lines()
    .map(|line| format!("  {line}\n"))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_contract::event::EventId;
    use beacon_contract::messages::{Evidence, RegionState, StatusRecord};

    fn view() -> ComponentView {
        let sample = EventId::new();
        let mut record = StatusRecord::new(
            "demo",
            "api",
            ComponentStatus::MajorOutage,
            1_732_233_000_000,
            EventId::new(),
            Evidence {
                rule: "quorum: 2 of 2 regions down (quorum majority)".into(),
                trigger: Some(sample),
                regions: vec![RegionEvidence {
                    consecutive_failures: 3,
                    last_error: Some("connection refused".into()),
                    samples: vec![sample],
                    ..RegionEvidence::new("eu", RegionState::Down)
                }],
            },
        );
        record.proposal = Some("01abc".into());
        ComponentView {
            page: "demo".into(),
            component: "api".into(),
            name: "API".into(),
            automated: true,
            record: Some(record),
            manual_override: None,
            maintenance: vec![],
            incidents: vec!["01abc".into()],
            depends_on: vec!["db".into()],
        }
    }

    #[test]
    fn explain_names_the_rule_the_regions_and_the_samples() {
        let text = explain(&view());
        assert!(
            text.contains("status: major_outage since 2024-11-21T23:50:00Z (set by automatic)"),
            "{text}"
        );
        assert!(
            text.contains("rule: quorum: 2 of 2 regions down (quorum majority)"),
            "{text}"
        );
        assert!(text.contains("  eu      down   3 "), "{text}");
        assert!(text.contains("connection refused"), "{text}");
        assert!(text.contains("depends on: db"), "{text}");
    }

    #[test]
    fn an_undecided_component_says_so() {
        let mut undecided = view();
        undecided.record = None;
        assert!(explain(&undecided).contains("status: none yet"));
        assert!(list(&[undecided]).contains("no status yet"));
    }

    #[test]
    fn statuses_are_parsed_by_their_wire_names() {
        assert_eq!(
            parse_status("major_outage").expect("valid"),
            ComponentStatus::MajorOutage
        );
        let error = parse_status("down").expect_err("invalid");
        assert_eq!(error.exit_code(), 64);
        assert!(
            error
                .to_string()
                .contains("operational, degraded_performance"),
            "{error}"
        );
    }
}
