//! `incident.list|show|create|update|resolve|confirm|dismiss|postmortem`.
//!
//! A change reads the incident's events from its subject, folds them,
//! checks that the change may follow ([`Incident::check`]) and appends its
//! event on the condition that the subject's latest sequence is the
//! revision the client saw (or, without one, the one just read). A stale
//! writer gets a conflict with the current incident; nothing is written.

use beacon_contract::api::{
    ApiReply, ChangeIncidentRequest, CreateIncidentRequest, IncidentList, ListIncidentsRequest,
    ShowIncidentRequest,
};
use beacon_contract::event::{Envelope, EventId};
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::incident::Incident;
use beacon_contract::messages::{
    AffectedComponent, ComponentStatus, IncidentAction, IncidentEvent, IncidentLifecycle,
    IncidentState, IncidentUpdate,
};
use beacon_contract::names::{check_token, incident_subject, STREAM_INCIDENTS};
use beacon_page::config::ConfigError;
use beacon_runtime::history;
use beacon_runtime::lease::fnv1a;
use beacon_runtime::publish::{publish_expecting, PublishFailure};

use super::{check_text, refuse, regional, Api, MAX_BODY, MAX_TITLE};
use crate::configs::Page;

/// Which change a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Add an update to the timeline.
    Update,
    /// Correct title, impact or components, without a timeline entry.
    Edit,
    /// Resolve it.
    Resolve,
    /// Confirm a proposal.
    Confirm,
    /// Dismiss a proposal.
    Dismiss,
    /// Publish the postmortem.
    Postmortem,
}

fn new_id() -> String {
    EventId::new().to_string().to_ascii_lowercase()
}

/// `beacon.api.incident.list`.
pub async fn list(api: &Api, request: ListIncidentsRequest) -> ApiReply<IncidentList> {
    if let Err(reply) = api.page::<IncidentList>(&request.page) {
        return reply;
    }
    let incidents = api
        .books
        .incidents(&request.page)
        .into_iter()
        .filter(|i| request.all || i.is_pending_or_active())
        .collect();
    ApiReply::Ok { result: incidents }
}

/// Reads one incident from its subject: every event, folded.
async fn read(api: &Api, page: &str, incident: &str) -> Result<Option<Incident>, String> {
    let stored = history::read(
        &api.daemon.js,
        STREAM_INCIDENTS,
        &incident_subject(page, incident),
    )
    .await
    .map_err(|e| e.to_string())?;
    let revision = stored.last().map_or(0, |s| s.sequence);
    let mut events = Vec::with_capacity(stored.len());
    for message in &stored {
        match Envelope::<IncidentEvent>::decode(&message.payload) {
            Ok(event) => events.push(event),
            Err(e) => {
                tracing::warn!(page, incident, sequence = message.sequence, error = %e, "Unreadable incident event skipped.")
            }
        }
    }
    Ok(Incident::fold(&events, revision))
}

/// `beacon.api.incident.show`.
pub async fn show(api: &Api, request: ShowIncidentRequest) -> ApiReply<Incident> {
    if let Err(reply) = api.page::<Incident>(&request.page) {
        return reply;
    }
    if let Err(e) = check_token(&request.incident) {
        return ApiReply::invalid("incident", format!("invalid incident id: {e}"));
    }
    match read(api, &request.page, &request.incident).await {
        Ok(Some(incident)) => ApiReply::Ok { result: incident },
        Ok(None) => ApiReply::invalid(
            "incident",
            format!(
                "page {} has no incident {:?}",
                request.page, request.incident
            ),
        ),
        Err(e) => ApiReply::failed(e),
    }
}

fn check_components(errors: &mut Vec<ConfigError>, page: &Page, components: &[AffectedComponent]) {
    for (i, affected) in components.iter().enumerate() {
        if page.component(&affected.component).is_none() {
            errors.push(ConfigError {
                location: format!("components[{i}]"),
                message: format!(
                    "page {} has no component {:?}",
                    page.config.id, affected.component
                ),
            });
        }
    }
}

/// `beacon.api.incident.create`.
pub async fn create(api: &Api, request: CreateIncidentRequest) -> ApiReply<Incident> {
    let page = match api.page(&request.page) {
        Ok(page) => page,
        Err(reply) => return reply,
    };
    let mut errors = Vec::new();
    check_text(&mut errors, "title", &request.title, MAX_TITLE, true);
    check_text(&mut errors, "body", &request.body, MAX_BODY, false);
    check_text(&mut errors, "actor", &request.actor, 200, true);
    check_components(&mut errors, &page, &request.components);
    if let Some(key) = &request.idempotency_key {
        check_text(&mut errors, "idempotency_key", key, 200, true);
    }
    if request.state == Some(IncidentState::Resolved) {
        errors.push(ConfigError {
            location: "state".into(),
            message: "a new incident cannot start resolved".into(),
        });
    }
    if let Some(reply) = refuse(errors) {
        return reply;
    }
    // The same idempotency key names the same incident, so a retried create
    // finds the first one instead of making a second.
    let id = match &request.idempotency_key {
        Some(key) => format!(
            "k{:016x}",
            fnv1a(format!("{}\u{0}{key}", request.page).as_bytes())
        ),
        None => new_id(),
    };
    let now = wall_clock_ms();
    let state = request.state.unwrap_or(IncidentState::Investigating);
    let mut event = IncidentEvent::new(
        &request.page,
        &id,
        IncidentAction::Created,
        &request.actor,
        now,
    );
    event.lifecycle = Some(IncidentLifecycle::Open);
    event.title = Some(request.title);
    event.impact = Some(request.impact);
    event.state = Some(state);
    event.components = Some(request.components.clone());
    event.update = Some(IncidentUpdate {
        id: new_id(),
        state,
        body: request.body,
        components: request.components,
        at_ms: now,
        actor: request.actor,
    });
    let subject = incident_subject(&request.page, &id);
    let envelope = Envelope::new(&api.daemon.clock, &api.daemon.origin, event);
    match publish_expecting(&api.daemon.js, &subject, &envelope, 0).await {
        Ok(stored) => {
            api.books.apply_incident(envelope.clone(), stored.sequence);
            tracing::info!(page = %request.page, incident = %id, actor = %envelope.data.actor, "Incident created.");
            match Incident::fold([&envelope], stored.sequence) {
                Some(incident) => ApiReply::Ok { result: incident },
                None => ApiReply::failed("the incident did not fold"),
            }
        }
        // The key was used before: answer with that incident.
        Err(e) if e.kind() == PublishFailure::WrongLastSequence => {
            match read(api, &request.page, &id).await {
                Ok(Some(incident)) => ApiReply::Ok { result: incident },
                Ok(None) => {
                    ApiReply::failed("the incident exists but cannot be read yet; try again")
                }
                Err(e) => ApiReply::failed(e),
            }
        }
        Err(e) if regional::available(api) => {
            match regional::write(api, "incident", &request.page, &id, &envelope).await {
                Ok(_) => {
                    api.books.apply_incident(envelope.clone(), 0);
                    match api.books.incident(&request.page, &id) {
                        Some(incident) => ApiReply::Ok { result: incident },
                        None => ApiReply::failed("the incident did not fold"),
                    }
                }
                Err(regional) => ApiReply::failed(format!(
                    "cannot store the incident: {e}; nor in the region's own stream: {regional}"
                )),
            }
        }
        Err(e) => ApiReply::failed(format!("cannot store the incident: {e}")),
    }
}

/// `beacon.api.incident.update|resolve|confirm|dismiss|postmortem`.
pub async fn change(
    api: &Api,
    request: ChangeIncidentRequest,
    change: Change,
) -> ApiReply<Incident> {
    let page = match api.page(&request.page) {
        Ok(page) => page,
        Err(reply) => return reply,
    };
    if let Err(e) = check_token(&request.incident) {
        return ApiReply::invalid("incident", format!("invalid incident id: {e}"));
    }
    let mut errors = Vec::new();
    let body_required = matches!(change, Change::Update | Change::Postmortem);
    check_text(&mut errors, "body", &request.body, MAX_BODY, body_required);
    check_text(&mut errors, "actor", &request.actor, 200, true);
    if let Some(title) = &request.title {
        check_text(&mut errors, "title", title, MAX_TITLE, true);
    }
    if let Some(components) = &request.components {
        check_components(&mut errors, &page, components);
    }
    if let Some(reply) = refuse(errors) {
        return reply;
    }
    let no_incident = || {
        ApiReply::invalid(
            "incident",
            format!(
                "page {} has no incident {:?}",
                request.page, request.incident
            ),
        )
    };
    // Cut off from the cluster, the region changes what it knows: its
    // follower's fold of everything up to the cut and its own writes since.
    let (current, cut_off) = match read(api, &request.page, &request.incident).await {
        Ok(Some(incident)) => (incident, false),
        // A server cut off from the others may answer a read from a stale
        // copy; what this decider has followed is then newer.
        Ok(None) => match api.books.incident(&request.page, &request.incident) {
            Some(incident) => (incident, false),
            None => return no_incident(),
        },
        Err(e) if regional::available(api) => {
            match api.books.incident(&request.page, &request.incident) {
                Some(incident) => {
                    tracing::warn!(page = %request.page, incident = %request.incident, error = %e,
                        "Cannot read the incident from the cluster; changing the region's own view of it.");
                    (incident, true)
                }
                None => return no_incident(),
            }
        }
        Err(e) => return ApiReply::failed(e),
    };
    let expected = request.expected_revision.unwrap_or(current.revision);
    if expected != current.revision {
        return ApiReply::Conflict {
            message: format!(
                "incident {} is at revision {}, not {expected}; read it again",
                current.id, current.revision
            ),
            current: Some(current),
        };
    }
    // A retried change with the same idempotency key finds its timeline
    // entry already there and changes nothing.
    if let Some(key) = &request.idempotency_key {
        let id = keyed_update_id(&request, key);
        if current.updates.iter().any(|u| u.id == id) {
            return ApiReply::Ok { result: current };
        }
    }
    let event = match build(&request, &current, change) {
        Ok(event) => event,
        Err(refusal) => return ApiReply::invalid("incident", refusal),
    };
    let subject = incident_subject(&request.page, &request.incident);
    // After the newest event it read, however fast the clock that stamped
    // it: a change that saw a write must win over it.
    let stamp = current.latest.map_or_else(
        || api.daemon.clock.now(),
        |seen| api.daemon.clock.after(seen, wall_clock_ms()),
    );
    let envelope = Envelope::with_id(EventId::new(), stamp, &api.daemon.origin, event);
    let stored = if cut_off {
        None
    } else {
        Some(publish_expecting(&api.daemon.js, &subject, &envelope, expected).await)
    };
    match stored {
        Some(Ok(stored)) => {
            api.books.apply_incident(envelope.clone(), stored.sequence);
            tracing::info!(page = %request.page, incident = %request.incident,
                action = envelope.data.action.as_str(), actor = %request.actor, "Incident changed.");
            match read(api, &request.page, &request.incident).await {
                Ok(Some(incident)) if incident.revision >= stored.sequence => {
                    ApiReply::Ok { result: incident }
                }
                // Stored, but not readable here yet (a cut, a stale copy):
                // the change is folded into what this decider follows.
                _ => match api.books.incident(&request.page, &request.incident) {
                    Some(incident) => ApiReply::Ok { result: incident },
                    None => ApiReply::failed(
                        "the change is stored but the incident cannot be read back; show it again",
                    ),
                },
            }
        }
        Some(Err(e)) if e.kind() == PublishFailure::WrongLastSequence => {
            let now = read(api, &request.page, &request.incident)
                .await
                .ok()
                .flatten();
            ApiReply::Conflict {
                message: format!(
                    "incident {} changed while this change was being made; read it again",
                    request.incident
                ),
                current: now,
            }
        }
        Some(Err(e)) if !regional::available(api) => {
            ApiReply::failed(format!("cannot store the change: {e}"))
        }
        None | Some(Err(_)) => {
            match regional::write(api, "incident", &request.page, &request.incident, &envelope)
                .await
            {
                Ok(_) => {
                    api.books.apply_incident(envelope.clone(), 0);
                    tracing::info!(page = %request.page, incident = %request.incident,
                        action = envelope.data.action.as_str(), actor = %request.actor, "Incident changed in the region.");
                    match api.books.incident(&request.page, &request.incident) {
                        Some(incident) => ApiReply::Ok { result: incident },
                        None => ApiReply::failed("the incident did not fold"),
                    }
                }
                Err(e) => ApiReply::failed(format!(
                    "cannot store the change in the cluster nor in the region's own stream: {e}"
                )),
            }
        }
    }
}

/// The timeline entry id of a change made with idempotency key `key`: the
/// same for every retry of it.
fn keyed_update_id(request: &ChangeIncidentRequest, key: &str) -> String {
    let text = format!("{}\u{0}{}\u{0}{key}", request.page, request.incident);
    format!("k{:016x}", fnv1a(text.as_bytes()))
}

/// The event a change writes, or why it may not happen.
fn build(
    request: &ChangeIncidentRequest,
    current: &Incident,
    change: Change,
) -> Result<IncidentEvent, String> {
    let now = wall_clock_ms();
    let action = match change {
        Change::Update if request.state == Some(IncidentState::Resolved) => {
            IncidentAction::Resolved
        }
        Change::Update => IncidentAction::Updated,
        Change::Edit => IncidentAction::Edited,
        Change::Resolve => IncidentAction::Resolved,
        Change::Confirm => IncidentAction::Confirmed,
        Change::Dismiss => IncidentAction::Dismissed,
        Change::Postmortem => IncidentAction::Postmortem,
    };
    current.check(action).map_err(|refusal| refusal.0)?;
    let mut event = IncidentEvent::new(
        &request.page,
        &request.incident,
        action,
        &request.actor,
        now,
    );
    event.title = request.title.clone();
    event.impact = request.impact;
    let update_id = request
        .idempotency_key
        .as_deref()
        .map_or_else(new_id, |key| keyed_update_id(request, key));
    let timeline =
        |state: IncidentState, body: String, components: Vec<AffectedComponent>| IncidentUpdate {
            id: update_id.clone(),
            state,
            body,
            components,
            at_ms: now,
            actor: request.actor.clone(),
        };
    match action {
        IncidentAction::Updated | IncidentAction::Resolved => {
            let state = match action {
                IncidentAction::Resolved => IncidentState::Resolved,
                _ => request.state.unwrap_or(current.state),
            };
            let components = match (&request.components, action) {
                (Some(components), _) => components.clone(),
                // Resolving sets what it affected back to operational.
                (None, IncidentAction::Resolved) => current
                    .components
                    .iter()
                    .map(|c| AffectedComponent {
                        component: c.component.clone(),
                        status: ComponentStatus::Operational,
                    })
                    .collect(),
                (None, _) => current.components.clone(),
            };
            let body = if request.body.trim().is_empty() {
                "This incident has been resolved.".to_owned()
            } else {
                request.body.clone()
            };
            event.state = Some(state);
            event.components = Some(components.clone());
            event.update = Some(timeline(state, body, components));
        }
        IncidentAction::Confirmed => {
            event.lifecycle = Some(IncidentLifecycle::Open);
            if let Some(components) = &request.components {
                event.components = Some(components.clone());
            }
            if !request.body.trim().is_empty() {
                let components = request
                    .components
                    .clone()
                    .unwrap_or_else(|| current.components.clone());
                event.update = Some(timeline(current.state, request.body.clone(), components));
            }
        }
        IncidentAction::Dismissed => {
            event.lifecycle = Some(IncidentLifecycle::Dismissed);
            event.reason = Some(request.body.clone());
        }
        IncidentAction::Postmortem => event.postmortem = Some(request.body.clone()),
        IncidentAction::Edited => {
            if request.title.is_none() && request.impact.is_none() && request.components.is_none() {
                return Err(
                    "an edit changes the title, the impact or the components; give one".into(),
                );
            }
            event.components = request.components.clone();
        }
        IncidentAction::Proposed | IncidentAction::Created => {}
    }
    Ok(event)
}
