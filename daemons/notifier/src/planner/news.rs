//! Which events are news, and the notice each one makes. Pure.
//!
//! - Incidents (folded with [`Incident::fold`]): created or confirmed
//!   (the moment it becomes public), updated and resolved notify, and only
//!   while the incident is open; proposals, dismissals, edits and
//!   postmortems do not.
//! - Maintenance: scheduled (a one-off window or one occurrence of a
//!   series, never the series itself), reminded, started, completed.
//! - Status changes, on pages that opt in: only changes no incident or
//!   maintenance explains, not inhibited (dependencies, flapping,
//!   maintenance), and not a component's first decision.

use beacon_contract::incident::Incident;
use beacon_contract::messages::{
    IncidentAction, IncidentLifecycle, MaintenanceAction, MaintenanceEvent, NoticeComponent,
    NoticeKind, NoticeSubject, StatusChange, StatusSource,
};
use beacon_page::config::PageConfig;

/// Timeline entries a notice carries, newest first.
pub const NOTICE_UPDATES: usize = 5;

/// A notifying event, before it is planned.
#[derive(Debug, Clone, PartialEq)]
pub struct News {
    /// Thread id (`incident-{id}`, `maintenance-{id}`, `component-{id}`).
    pub thread: String,
    /// What caused it; a replay of the same event finds its send by this.
    pub source: String,
    /// Components it is about.
    pub components: Vec<String>,
    /// What kind of news.
    pub kind: NoticeKind,
    /// What it is about, in its newest state.
    pub subject: NoticeSubject,
    /// When it happened.
    pub at_ms: u64,
    /// Whether the page's batching window applies (incidents, components).
    pub windowed: bool,
}

fn named(page: &PageConfig, id: &str) -> NoticeComponent {
    NoticeComponent {
        id: id.to_owned(),
        name: page
            .component(id)
            .map_or_else(|| id.to_owned(), |c| c.name.clone()),
        status: None,
    }
}

/// The news an incident event makes, if any. `source` is the event's own
/// id, used when it adds no timeline entry.
pub fn incident(
    page: &PageConfig,
    action: IncidentAction,
    update_id: Option<&str>,
    source: &str,
    incident: &Incident,
) -> Option<News> {
    if incident.lifecycle != IncidentLifecycle::Open {
        return None;
    }
    let kind = match action {
        IncidentAction::Created | IncidentAction::Confirmed => NoticeKind::IncidentCreated,
        IncidentAction::Updated => NoticeKind::IncidentUpdated,
        IncidentAction::Resolved => NoticeKind::IncidentResolved,
        IncidentAction::Proposed
        | IncidentAction::Dismissed
        | IncidentAction::Edited
        | IncidentAction::Postmortem => return None,
    };
    let components: Vec<String> = incident
        .components
        .iter()
        .map(|c| c.component.clone())
        .collect();
    Some(News {
        thread: format!("incident-{}", incident.id),
        source: update_id.unwrap_or(source).to_owned(),
        kind,
        subject: NoticeSubject::Incident {
            id: incident.id.clone(),
            title: incident.title.clone(),
            impact: incident.impact,
            state: incident.state,
            components: incident
                .components
                .iter()
                .map(|c| NoticeComponent {
                    status: Some(c.status),
                    ..named(page, &c.component)
                })
                .collect(),
            updates: incident
                .updates
                .iter()
                .rev()
                .take(NOTICE_UPDATES)
                .cloned()
                .collect(),
            created_at_ms: incident.created_at_ms,
            updated_at_ms: incident.updated_at_ms,
            resolved_at_ms: incident.resolved_at_ms,
        },
        components,
        at_ms: incident.updated_at_ms,
        windowed: true,
    })
}

/// The news a maintenance event makes, if any.
pub fn maintenance(page: &PageConfig, event: &MaintenanceEvent, source: &str) -> Option<News> {
    let kind = match event.action {
        // A series is announced by its occurrences, one window each.
        MaintenanceAction::Scheduled if event.recurrence.is_some() => return None,
        MaintenanceAction::Scheduled => NoticeKind::MaintenanceScheduled,
        MaintenanceAction::Reminded => NoticeKind::MaintenanceReminded,
        MaintenanceAction::Started => NoticeKind::MaintenanceStarted,
        MaintenanceAction::Completed => NoticeKind::MaintenanceCompleted,
        MaintenanceAction::Updated
        | MaintenanceAction::Verifying
        | MaintenanceAction::Cancelled => return None,
    };
    Some(News {
        thread: format!("maintenance-{}", event.maintenance),
        source: source.to_owned(),
        kind,
        subject: NoticeSubject::Maintenance {
            id: event.maintenance.clone(),
            title: event.title.clone(),
            body: event.body.clone(),
            phase: event.phase,
            starts_at_ms: event.starts_at_ms,
            ends_at_ms: event.ends_at_ms,
            components: event.components.iter().map(|c| named(page, c)).collect(),
        },
        components: event.components.clone(),
        at_ms: event.at_ms,
        windowed: false,
    })
}

/// The news a status change makes on `page`, if any.
pub fn status(page: &PageConfig, change: &StatusChange, source: &str) -> Option<News> {
    if !page.notifications.component_status || !change.notifies() {
        return None;
    }
    let from = change.from?;
    if from == change.to
        || !matches!(
            change.source,
            StatusSource::Automatic | StatusSource::Override
        )
    {
        return None;
    }
    Some(News {
        thread: format!("component-{}", change.component),
        source: source.to_owned(),
        kind: NoticeKind::ComponentStatus,
        subject: NoticeSubject::Component {
            component: NoticeComponent {
                status: Some(change.to),
                ..named(page, &change.component)
            },
            from: Some(from),
            to: change.to,
        },
        components: vec![change.component.clone()],
        at_ms: change.at_ms,
        windowed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_contract::event::{Envelope, EventId};
    use beacon_contract::hlc::HlcClock;
    use beacon_contract::messages::{
        AffectedComponent, ComponentStatus, Evidence, Impact, IncidentEvent, IncidentState,
        IncidentUpdate, InhibitReason, Inhibition, MaintenancePhase,
    };

    fn page(component_status: bool) -> PageConfig {
        let mut page = beacon_page::config::load(
            "[page]\nid = \"demo\"\nname = \"Demo\"\n[[components]]\nid = \"api\"\nname = \"Public API\"\n",
        )
        .expect("a page");
        page.notifications.component_status = component_status;
        page
    }

    fn incident(lifecycle: IncidentLifecycle) -> Incident {
        let clock = HlcClock::new();
        let mut event = IncidentEvent::new("demo", "inc1", IncidentAction::Created, "op", 5);
        event.lifecycle = Some(lifecycle);
        event.title = Some("Errors".into());
        event.impact = Some(Impact::Major);
        event.state = Some(IncidentState::Investigating);
        event.components = Some(vec![AffectedComponent {
            component: "api".into(),
            status: ComponentStatus::MajorOutage,
        }]);
        event.update = Some(IncidentUpdate {
            id: "u1".into(),
            state: IncidentState::Investigating,
            body: "Looking".into(),
            components: vec![],
            at_ms: 5,
            actor: "op".into(),
        });
        Incident::fold(&[Envelope::new(&clock, "eu", event)], 1).expect("one event")
    }

    #[test]
    fn incidents_notify_only_when_open_and_for_public_actions() {
        let page = page(false);
        let open = incident(IncidentLifecycle::Open);
        let table = [
            (IncidentAction::Created, Some(NoticeKind::IncidentCreated)),
            (IncidentAction::Confirmed, Some(NoticeKind::IncidentCreated)),
            (IncidentAction::Updated, Some(NoticeKind::IncidentUpdated)),
            (IncidentAction::Resolved, Some(NoticeKind::IncidentResolved)),
            (IncidentAction::Proposed, None),
            (IncidentAction::Dismissed, None),
            (IncidentAction::Edited, None),
            (IncidentAction::Postmortem, None),
        ];
        for (action, want) in table {
            let news = super::incident(&page, action, Some("u1"), "ev", &open);
            assert_eq!(news.as_ref().map(|n| n.kind), want, "{action:?}");
        }
        let news =
            super::incident(&page, IncidentAction::Created, Some("u1"), "ev", &open).expect("news");
        assert_eq!(news.thread, "incident-inc1");
        assert_eq!(news.source, "u1");
        assert_eq!(news.components, ["api"]);
        assert!(
            matches!(&news.subject, NoticeSubject::Incident { components, .. } if components[0].name == "Public API")
        );
        for lifecycle in [IncidentLifecycle::Proposed, IncidentLifecycle::Dismissed] {
            assert!(super::incident(
                &page,
                IncidentAction::Created,
                None,
                "ev",
                &incident(lifecycle)
            )
            .is_none());
        }
    }

    fn window(action: MaintenanceAction, recurrence: Option<&str>) -> MaintenanceEvent {
        MaintenanceEvent {
            page: "demo".into(),
            maintenance: "m1".into(),
            action,
            actor: "decider".into(),
            at_ms: 9,
            phase: MaintenancePhase::Scheduled,
            title: "DB upgrade".into(),
            body: String::new(),
            starts_at_ms: 10,
            ends_at_ms: 20,
            components: vec!["api".into()],
            recurrence: recurrence.map(str::to_owned),
            series: None,
            remind_before_ms: 0,
            verify_ms: 0,
        }
    }

    #[test]
    fn maintenance_notifies_four_steps_and_not_the_series_itself() {
        let page = page(false);
        let kinds: Vec<Option<NoticeKind>> = [
            MaintenanceAction::Scheduled,
            MaintenanceAction::Reminded,
            MaintenanceAction::Started,
            MaintenanceAction::Completed,
            MaintenanceAction::Updated,
            MaintenanceAction::Verifying,
            MaintenanceAction::Cancelled,
        ]
        .into_iter()
        .map(|a| maintenance(&page, &window(a, None), "e").map(|n| n.kind))
        .collect();
        assert_eq!(
            kinds,
            [
                Some(NoticeKind::MaintenanceScheduled),
                Some(NoticeKind::MaintenanceReminded),
                Some(NoticeKind::MaintenanceStarted),
                Some(NoticeKind::MaintenanceCompleted),
                None,
                None,
                None
            ]
        );
        assert!(maintenance(
            &page,
            &window(MaintenanceAction::Scheduled, Some("RRULE:FREQ=DAILY")),
            "e"
        )
        .is_none());
        assert!(
            !maintenance(&page, &window(MaintenanceAction::Started, None), "e")
                .expect("news")
                .windowed
        );
    }

    fn change(
        from: Option<ComponentStatus>,
        source: StatusSource,
        inhibited: bool,
    ) -> StatusChange {
        StatusChange {
            page: "demo".into(),
            component: "api".into(),
            from,
            to: ComponentStatus::MajorOutage,
            at_ms: 1,
            source,
            flapping: false,
            inhibited: inhibited.then(|| Inhibition {
                reason: InhibitReason::DependsOn,
                detail: "db is down".into(),
            }),
            proposal: None,
            evidence: Evidence {
                rule: "r".into(),
                trigger: Some(EventId::new()),
                regions: vec![],
            },
        }
    }

    #[test]
    fn status_changes_notify_only_on_opted_in_pages_and_never_when_inhibited() {
        let on = page(true);
        let off = page(false);
        let up = Some(ComponentStatus::Operational);
        assert!(status(&on, &change(up, StatusSource::Automatic, false), "e").is_some());
        assert!(status(&on, &change(up, StatusSource::Override, false), "e").is_some());
        assert!(status(&off, &change(up, StatusSource::Automatic, false), "e").is_none());
        assert!(
            status(&on, &change(up, StatusSource::Automatic, true), "e").is_none(),
            "inhibited"
        );
        assert!(status(&on, &change(up, StatusSource::Incident, false), "e").is_none());
        assert!(status(&on, &change(up, StatusSource::Maintenance, false), "e").is_none());
        assert!(
            status(&on, &change(None, StatusSource::Automatic, false), "e").is_none(),
            "first decision"
        );
    }
}
