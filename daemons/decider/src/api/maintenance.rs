//! `maintenance.schedule|start|verify|complete|cancel|list`.
//!
//! A window is scheduled with its times, components and optional
//! recurrence; the leading decider then takes it through its steps at
//! their times. Operators may move it on early (start, verify, complete)
//! or cancel it; cancelling a series also cancels its occurrences that
//! have not begun. Every write is conditional on the window's revision.

use beacon_contract::api::{
    ApiReply, ChangeMaintenanceRequest, ListMaintenanceRequest, MaintenanceList,
    ScheduleMaintenanceRequest,
};
use beacon_contract::event::{Envelope, EventId};
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::maintenance::Window;
use beacon_contract::messages::{MaintenanceAction, MaintenanceEvent, MaintenancePhase};
use beacon_contract::names::{check_token, maintenance_subject, STREAM_MAINTENANCE};
use beacon_page::config::ConfigError;
use beacon_runtime::history;
use beacon_runtime::publish::{publish_expecting, PublishFailure};

use super::{check_text, refuse, regional, Api, MAX_BODY, MAX_TITLE};
use crate::schedule::Recurrence;

/// Which change a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Begin now.
    Start,
    /// Work done, checking.
    Verify,
    /// End now.
    Complete,
    /// Call it off.
    Cancel,
}

/// Default reminder before the start.
pub const DEFAULT_REMIND_MS: u64 = 3_600_000;
/// Longest window, reminder or verification period accepted.
const MAX_SPAN_MS: u64 = 7 * 24 * 3600 * 1000;

/// `beacon.api.maintenance.schedule`.
pub async fn schedule(api: &Api, request: ScheduleMaintenanceRequest) -> ApiReply<Window> {
    let page = match api.page(&request.page) {
        Ok(page) => page,
        Err(reply) => return reply,
    };
    let now = wall_clock_ms();
    let mut errors = Vec::new();
    let mut problem = |location: &str, message: String| {
        errors.push(ConfigError {
            location: location.to_owned(),
            message,
        })
    };
    if request.components.is_empty() {
        problem("components", "name at least one component".into());
    }
    for (i, component) in request.components.iter().enumerate() {
        if page.component(component).is_none() {
            problem(
                &format!("components[{i}]"),
                format!("page {} has no component {component:?}", request.page),
            );
        }
    }
    if request.ends_at_ms <= request.starts_at_ms {
        problem("ends_at", "must be after the start".into());
    } else if request.ends_at_ms - request.starts_at_ms > MAX_SPAN_MS {
        problem("ends_at", "a window lasts at most 7 days".into());
    }
    if request.recurrence.is_none() && request.ends_at_ms <= now {
        problem("ends_at", "is in the past".into());
    }
    for (field, value) in [
        ("remind_before", request.remind_before_ms),
        ("verify", request.verify_ms),
    ] {
        if value.is_some_and(|v| v > MAX_SPAN_MS) {
            problem(field, "must be at most 7 days".into());
        }
    }
    if let Some(rule) = &request.recurrence {
        if let Err(e) = Recurrence::parse(rule, request.starts_at_ms) {
            problem("recurrence", e);
        }
    }
    check_text(&mut errors, "title", &request.title, MAX_TITLE, true);
    check_text(&mut errors, "body", &request.body, MAX_BODY, false);
    check_text(&mut errors, "actor", &request.actor, 200, true);
    if let Some(reply) = refuse(errors) {
        return reply;
    }
    // The same idempotency key names the same window, so a retried schedule
    // finds the first one instead of making a second.
    let id = match &request.idempotency_key {
        Some(key) => format!(
            "k{:016x}",
            beacon_runtime::lease::fnv1a(format!("{}\u{0}{key}", request.page).as_bytes())
        ),
        None => EventId::new().to_string().to_ascii_lowercase(),
    };
    let event = MaintenanceEvent {
        page: request.page.clone(),
        maintenance: id.clone(),
        action: MaintenanceAction::Scheduled,
        actor: request.actor,
        at_ms: now,
        phase: MaintenancePhase::Scheduled,
        title: request.title,
        body: request.body,
        starts_at_ms: request.starts_at_ms,
        ends_at_ms: request.ends_at_ms,
        components: request.components,
        recurrence: request.recurrence,
        series: None,
        remind_before_ms: request.remind_before_ms.unwrap_or(DEFAULT_REMIND_MS),
        verify_ms: request.verify_ms.unwrap_or(0),
    };
    append(api, None, event, false).await
}

/// Reads one window from its subject.
async fn read(api: &Api, page: &str, id: &str) -> Result<Option<Window>, String> {
    let stored = history::read(
        &api.daemon.js,
        STREAM_MAINTENANCE,
        &maintenance_subject(page, id),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut events = Vec::with_capacity(stored.len());
    for message in &stored {
        match Envelope::<MaintenanceEvent>::decode(&message.payload) {
            Ok(event) => events.push((event, message.sequence)),
            Err(e) => {
                tracing::warn!(page, maintenance = id, error = %e, "Unreadable maintenance event skipped.")
            }
        }
    }
    Ok(Window::fold(events.iter().map(|(e, s)| (e, *s))))
}

/// Appends `event` to its window if the window is still at `base`'s
/// revision (a new window: if its subject is empty).
/// Cut off from the cluster (`cut_off`, or the write refused or timed
/// out), the event goes to the region's own stream instead
/// ([`regional`]).
async fn append(
    api: &Api,
    base: Option<&Window>,
    event: MaintenanceEvent,
    cut_off: bool,
) -> ApiReply<Window> {
    let subject = maintenance_subject(&event.page, &event.maintenance);
    let (page, id) = (event.page.clone(), event.maintenance.clone());
    // After the newest event of the window it changes, however fast the
    // clock that stamped it.
    let stamp = base.and_then(Window::latest_hlc).map_or_else(
        || api.daemon.clock.now(),
        |seen| api.daemon.clock.after(seen, wall_clock_ms()),
    );
    let envelope = Envelope::with_id(EventId::new(), stamp, &api.daemon.origin, event);
    let expected = base.map_or(0, |w| w.revision);
    let stored = if cut_off {
        None
    } else {
        Some(publish_expecting(&api.daemon.js, &subject, &envelope, expected).await)
    };
    let Some(stored) = stored else {
        return append_regionally(api, base, &envelope).await;
    };
    match stored {
        Ok(stored) => {
            api.books.apply_maintenance(&envelope, stored.sequence);
            tracing::info!(%page, maintenance = %id, action = envelope.data.action.as_str(),
                actor = %envelope.data.actor, "Maintenance changed.");
            let mut window = base.cloned();
            Window::apply(&mut window, &envelope, stored.sequence);
            match window {
                Some(window) => ApiReply::Ok { result: window },
                None => ApiReply::failed("the window did not fold"),
            }
        }
        // A new window whose subject is taken: the same idempotency key
        // scheduled it before; answer with it.
        Err(e) if e.kind() == PublishFailure::WrongLastSequence && base.is_none() => {
            match read(api, &page, &id).await {
                Ok(Some(window)) => ApiReply::Ok { result: window },
                _ => ApiReply::failed("the window exists but cannot be read yet; try again"),
            }
        }
        Err(e) if e.kind() == PublishFailure::WrongLastSequence => ApiReply::Conflict {
            message: format!(
                "maintenance {id} changed while this change was being made; read it again"
            ),
            current: read(api, &page, &id).await.ok().flatten(),
        },
        Err(_) if regional::available(api) => append_regionally(api, base, &envelope).await,
        Err(e) => ApiReply::failed(format!("cannot store the maintenance change: {e}")),
    }
}

/// Stores a maintenance event in the region's own stream.
async fn append_regionally(
    api: &Api,
    base: Option<&Window>,
    envelope: &Envelope<MaintenanceEvent>,
) -> ApiReply<Window> {
    let (page, id) = (&envelope.data.page, &envelope.data.maintenance);
    match regional::write(api, "maintenance", page, id, envelope).await {
        Ok(_) => {
            api.books.apply_maintenance(envelope, 0);
            let mut window = base.cloned();
            Window::apply(&mut window, envelope, 0);
            match window {
                Some(window) => ApiReply::Ok { result: window },
                None => ApiReply::failed("the window did not fold"),
            }
        }
        Err(e) => ApiReply::failed(format!(
            "cannot store the maintenance change in the cluster nor in the region's own stream: {e}"
        )),
    }
}

/// `beacon.api.maintenance.start|verify|complete|cancel`.
pub async fn change(
    api: &Api,
    request: ChangeMaintenanceRequest,
    change: Change,
) -> ApiReply<Window> {
    if let Err(reply) = api.page::<Window>(&request.page) {
        return reply;
    }
    if let Err(e) = check_token(&request.maintenance) {
        return ApiReply::invalid("maintenance", format!("invalid maintenance id: {e}"));
    }
    let mut errors = Vec::new();
    check_text(&mut errors, "body", &request.body, MAX_BODY, false);
    check_text(&mut errors, "actor", &request.actor, 200, true);
    if let Some(reply) = refuse(errors) {
        return reply;
    }
    let no_window = || {
        ApiReply::invalid(
            "maintenance",
            format!(
                "page {} has no maintenance {:?}",
                request.page, request.maintenance
            ),
        )
    };
    // Cut off from the cluster, the region changes what it knows.
    let (window, cut_off) = match read(api, &request.page, &request.maintenance).await {
        Ok(Some(window)) => (window, false),
        // A server cut off from the others may answer a read from a stale
        // copy; what this decider has followed is then newer.
        Ok(None) => match api.books.window(&request.page, &request.maintenance) {
            Some(window) => (window, false),
            None => return no_window(),
        },
        Err(e) if regional::available(api) => {
            match api.books.window(&request.page, &request.maintenance) {
                Some(window) => {
                    tracing::warn!(page = %request.page, maintenance = %request.maintenance, error = %e,
                        "Cannot read the window from the cluster; changing the region's own view of it.");
                    (window, true)
                }
                None => return no_window(),
            }
        }
        Err(e) => return ApiReply::failed(e),
    };
    if let Some(expected) = request.expected_revision {
        if expected != window.revision {
            return ApiReply::Conflict {
                message: format!(
                    "maintenance {} is at revision {}, not {expected}; read it again",
                    request.maintenance, window.revision
                ),
                current: Some(window),
            };
        }
    }
    let now = wall_clock_ms();
    let phase = window.state.phase;
    let series = window.is_series();
    let refuse_with = |why: &str| {
        ApiReply::invalid(
            "maintenance",
            format!("maintenance {} {why}", request.maintenance),
        )
    };
    use MaintenancePhase as P;
    let (action, next) =
        match (change, phase) {
            (_, P::Completed | P::Cancelled) => {
                return refuse_with(&format!(
                    "is {}; nothing more can happen to it",
                    phase.as_str()
                ))
            }
            (Change::Cancel, _) => (MaintenanceAction::Cancelled, P::Cancelled),
            (_, _) if series => return refuse_with(
                "is a recurring series; start, verify or complete one of its occurrences instead",
            ),
            (Change::Start, P::Scheduled) => (MaintenanceAction::Started, P::InProgress),
            (Change::Start, _) => return refuse_with("has started already"),
            (Change::Verify, P::InProgress) => (MaintenanceAction::Verifying, P::Verifying),
            (Change::Verify, P::Scheduled) => return refuse_with("has not started yet"),
            (Change::Verify, _) => return refuse_with("is verifying already"),
            (Change::Complete, P::InProgress | P::Verifying) => {
                (MaintenanceAction::Completed, P::Completed)
            }
            (Change::Complete, P::Scheduled) => {
                return refuse_with("has not started yet; cancel it instead")
            }
        };
    let mut event = window.state.clone();
    event.action = action;
    event.phase = next;
    event.actor = request.actor.clone();
    event.at_ms = now;
    if !request.body.trim().is_empty() {
        event.body = request.body.clone();
    }
    match change {
        Change::Start => event.starts_at_ms = event.starts_at_ms.min(now),
        Change::Verify | Change::Complete => {
            event.ends_at_ms = event.ends_at_ms.min(now).max(event.starts_at_ms)
        }
        Change::Cancel => {}
    }
    let reply = append(api, Some(&window), event, cut_off).await;
    if change == Change::Cancel && series && matches!(reply, ApiReply::Ok { .. }) {
        cancel_occurrences(api, &request).await;
    }
    reply
}

/// Cancels the occurrences of a cancelled series that have not begun.
async fn cancel_occurrences(api: &Api, request: &ChangeMaintenanceRequest) {
    for occurrence in api.books.windows(&request.page) {
        if occurrence.state.series.as_deref() != Some(request.maintenance.as_str())
            || occurrence.state.phase != MaintenancePhase::Scheduled
        {
            continue;
        }
        let mut event = occurrence.state.clone();
        event.action = MaintenanceAction::Cancelled;
        event.phase = MaintenancePhase::Cancelled;
        event.actor = request.actor.clone();
        event.at_ms = wall_clock_ms();
        if let ApiReply::Failed { message } | ApiReply::Conflict { message, .. } =
            append(api, Some(&occurrence), event, false).await
        {
            tracing::warn!(page = %request.page, maintenance = %occurrence.state.maintenance, %message,
                "Cannot cancel an occurrence of a cancelled series.");
        }
    }
}

/// `beacon.api.maintenance.list`.
pub async fn list(api: &Api, request: ListMaintenanceRequest) -> ApiReply<MaintenanceList> {
    if let Err(reply) = api.page::<MaintenanceList>(&request.page) {
        return reply;
    }
    let windows = api
        .books
        .windows(&request.page)
        .into_iter()
        .filter(|w| request.all || !w.state.phase.is_final())
        .collect();
    ApiReply::Ok { result: windows }
}
