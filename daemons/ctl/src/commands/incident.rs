//! `beaconctl incident list|show|create|update|resolve|confirm|dismiss|postmortem`.

use std::time::Duration;

use beacon_contract::api;
use beacon_contract::api::{
    ChangeIncidentRequest, CreateIncidentRequest, ListIncidentsRequest, ShowIncidentRequest,
};
use beacon_contract::incident::Incident;
use beacon_contract::messages::{AffectedComponent, Impact, IncidentState};
use beacon_runtime::connect::NatsArgs;

use crate::cli::{IncidentChangeArgs, IncidentCommand, OutputFormat};
use crate::commands::component::parse_status;
use crate::commands::{check_id, connect, parse_word};
use crate::exit::CtlError;
use crate::output::{self, table, utc_timestamp};
use crate::request;

const IMPACTS: [Impact; 4] = [Impact::None, Impact::Minor, Impact::Major, Impact::Critical];
const STATES: [IncidentState; 4] = [
    IncidentState::Investigating,
    IncidentState::Identified,
    IncidentState::Monitoring,
    IncidentState::Resolved,
];

fn impact(text: &str) -> Result<Impact, CtlError> {
    parse_word("--impact", text, &IMPACTS, Impact::as_str)
}

fn state(text: &str) -> Result<IncidentState, CtlError> {
    parse_word("--state", text, &STATES, IncidentState::as_str)
}

/// Parses `api=major_outage` pairs.
pub fn components(pairs: &[String]) -> Result<Vec<AffectedComponent>, CtlError> {
    pairs
        .iter()
        .map(|pair| {
            let (component, status) =
                pair.split_once('=').ok_or_else(|| CtlError::BadArgument {
                    flag: "--component",
                    reason: format!("{pair:?} is not COMPONENT=STATUS, e.g. api=major_outage"),
                })?;
            check_id("--component", component)?;
            Ok(AffectedComponent {
                component: component.to_owned(),
                status: parse_status(status)?,
            })
        })
        .collect()
}

fn change_request(change: IncidentChangeArgs) -> Result<ChangeIncidentRequest, CtlError> {
    check_id("PAGE", &change.page)?;
    check_id("INCIDENT", &change.incident)?;
    Ok(ChangeIncidentRequest {
        page: change.page,
        incident: change.incident,
        expected_revision: change.revision,
        state: None,
        body: change.message,
        title: None,
        impact: None,
        components: None,
        actor: change.actor.name(),
        idempotency_key: None,
    })
}

/// Runs `incident …`.
pub async fn run(
    nats: &NatsArgs,
    command: IncidentCommand,
    format: OutputFormat,
    timeout: Duration,
) -> Result<(), CtlError> {
    let (subject, verb, request): (
        api::Endpoint<ChangeIncidentRequest, Incident>,
        &str,
        ChangeIncidentRequest,
    ) = match command {
        IncidentCommand::List { page, all } => {
            check_id("PAGE", &page)?;
            let client = connect(nats).await?;
            let incidents: Vec<Incident> = request::call(
                &client,
                api::INCIDENT_LIST,
                &ListIncidentsRequest { page, all },
                timeout,
            )
            .await?;
            let text = match format {
                OutputFormat::Json => output::json(&incidents)?,
                OutputFormat::Table | OutputFormat::Csv => list(&incidents),
            };
            return output::print(&text);
        }
        IncidentCommand::Show { page, incident } => {
            check_id("PAGE", &page)?;
            check_id("INCIDENT", &incident)?;
            let client = connect(nats).await?;
            let incident: Incident = request::call(
                &client,
                api::INCIDENT_SHOW,
                &ShowIncidentRequest { page, incident },
                timeout,
            )
            .await?;
            return print(format, &incident, "");
        }
        IncidentCommand::Create {
            page,
            title,
            impact: impact_text,
            state: state_text,
            message,
            components: pairs,
            idempotency_key,
            actor,
        } => {
            check_id("PAGE", &page)?;
            let request = CreateIncidentRequest {
                page,
                title,
                impact: impact(&impact_text)?,
                state: state_text.as_deref().map(state).transpose()?,
                body: message,
                components: components(&pairs)?,
                actor: actor.name(),
                idempotency_key,
            };
            let client = connect(nats).await?;
            let incident: Incident =
                request::call(&client, api::INCIDENT_CREATE, &request, timeout).await?;
            return print(format, &incident, "created");
        }
        IncidentCommand::Update {
            change,
            state: state_text,
            components: pairs,
            title,
            impact: impact_text,
        } => {
            let mut request = change_request(change)?;
            request.state = state_text.as_deref().map(state).transpose()?;
            request.components = (!pairs.is_empty())
                .then(|| components(&pairs))
                .transpose()?;
            request.title = title;
            request.impact = impact_text.as_deref().map(impact).transpose()?;
            (api::INCIDENT_UPDATE, "updated", request)
        }
        IncidentCommand::Edit {
            change,
            title,
            impact: impact_text,
            components: pairs,
        } => {
            let mut request = change_request(change)?;
            request.title = title;
            request.impact = impact_text.as_deref().map(impact).transpose()?;
            request.components = (!pairs.is_empty())
                .then(|| components(&pairs))
                .transpose()?;
            (api::INCIDENT_EDIT, "edited", request)
        }
        IncidentCommand::Resolve { change } => {
            (api::INCIDENT_RESOLVE, "resolved", change_request(change)?)
        }
        IncidentCommand::Confirm {
            change,
            title,
            impact: impact_text,
        } => {
            let mut request = change_request(change)?;
            request.title = title;
            request.impact = impact_text.as_deref().map(impact).transpose()?;
            (api::INCIDENT_CONFIRM, "confirmed", request)
        }
        IncidentCommand::Dismiss { change } => {
            (api::INCIDENT_DISMISS, "dismissed", change_request(change)?)
        }
        IncidentCommand::Postmortem { change } => (
            api::INCIDENT_POSTMORTEM,
            "postmortem published for",
            change_request(change)?,
        ),
    };
    let client = connect(nats).await?;
    let incident: Incident = request::call(&client, subject, &request, timeout).await?;
    print(format, &incident, verb)
}

fn print(format: OutputFormat, incident: &Incident, verb: &str) -> Result<(), CtlError> {
    let text = match format {
        OutputFormat::Json => output::json(incident)?,
        OutputFormat::Table | OutputFormat::Csv if verb.is_empty() => show(incident),
        OutputFormat::Table | OutputFormat::Csv => format!(
            "{verb} incident {} (revision {})\n",
            incident.id, incident.revision
        ),
    };
    output::print(&text)
}

/// The `incident list` table.
pub fn list(incidents: &[Incident]) -> String {
    if incidents.is_empty() {
        return "no incidents\n".to_owned();
    }
    let rows: Vec<Vec<String>> = incidents
        .iter()
        .map(|i| {
            vec![
                i.id.clone(),
                i.lifecycle.as_str().to_owned(),
                i.state.as_str().to_owned(),
                i.impact.as_str().to_owned(),
                utc_timestamp(i.created_at_ms),
                i.components
                    .iter()
                    .map(|c| c.component.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                i.title.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "LIFECYCLE",
            "STATE",
            "IMPACT",
            "CREATED",
            "COMPONENTS",
            "TITLE",
        ],
        &rows,
    )
}

/// The `incident show` text: header and timeline.
pub fn show(incident: &Incident) -> String {
    let mut text = format!(
        "{} — {}\n{} · {} · impact {} · revision {} · by {} at {}\n",
        incident.id,
        incident.title,
        incident.lifecycle.as_str(),
        incident.state.as_str(),
        incident.impact.as_str(),
        incident.revision,
        incident.created_by,
        utc_timestamp(incident.created_at_ms)
    );
    if !incident.components.is_empty() {
        let affected: Vec<String> = incident
            .components
            .iter()
            .map(|c| format!("{}={}", c.component, c.status.as_str()))
            .collect();
        text.push_str(&format!("components: {}\n", affected.join(", ")));
    }
    if let Some(evidence) = &incident.evidence {
        text.push_str(&format!("evidence: {}\n", evidence.rule));
    }
    if let Some(reason) = &incident.dismissal_reason {
        text.push_str(&format!("dismissed: {reason}\n"));
    }
    for update in &incident.updates {
        text.push_str(&format!(
            "\n{} {} ({})\n{}\n",
            utc_timestamp(update.at_ms),
            update.state.as_str(),
            update.actor,
            update.body
        ));
    }
    if let Some(postmortem) = &incident.postmortem {
        text.push_str(&format!("\npostmortem:\n{postmortem}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_contract::messages::ComponentStatus;

    #[test]
    fn component_pairs_are_parsed_and_bad_ones_named() {
        let parsed = components(&["api=major_outage".into()]).expect("valid");
        assert_eq!(parsed[0].status, ComponentStatus::MajorOutage);
        for bad in ["api", "api=down", "API=major_outage"] {
            let error = components(&[bad.into()]).expect_err(bad);
            assert_eq!(error.exit_code(), 64, "{bad}");
        }
    }

    #[test]
    fn words_are_checked() {
        assert!(impact("critical").is_ok());
        assert!(impact("huge").is_err());
        assert!(state("monitoring").is_ok());
        assert!(state("fixed").is_err());
    }
}
