//! A maintenance window as a fold over its events.
//!
//! Every [`MaintenanceEvent`] carries the window's whole state after it, so
//! the window is the event with the highest HLC (ties broken by event id),
//! and whether its reminder went out is whether any event says so. Like the
//! incident fold, it does not depend on the order events arrive in.
//!
//! [`Window::next_step`] says what happens next and when (remind, start,
//! verify, complete), so a scheduler that rebuilds its timers from the
//! stream after a restart finds exactly the steps still due.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::{Envelope, EventId};
use crate::hlc::Hlc;
use crate::messages::{MaintenanceAction, MaintenanceEvent, MaintenancePhase};

/// A maintenance window or recurring series, folded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// The latest state.
    pub state: MaintenanceEvent,
    /// Whether the reminder went out.
    pub reminded: bool,
    /// When it was first scheduled (Unix milliseconds).
    pub created_at_ms: u64,
    /// Stream sequence of its latest event on its subject (0 when unknown).
    pub revision: u64,
    /// Order key of the latest event.
    #[serde(skip)]
    #[schemars(skip)]
    latest: Option<(Hlc, EventId)>,
}

impl Window {
    /// Timestamp of its newest event: a change of it is stamped after
    /// this ([`crate::hlc::HlcClock::after`]).
    pub fn latest_hlc(&self) -> Option<Hlc> {
        self.latest.map(|(hlc, _)| hlc)
    }
}

/// What happens to a window next, at its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// Send the reminder.
    Remind,
    /// Begin: its components show `under_maintenance`.
    Start,
    /// The end of the window, with a verification period: go to verifying.
    Verify,
    /// The end: complete it.
    Complete,
}

impl Step {
    /// The action the step writes.
    pub fn action(self) -> MaintenanceAction {
        match self {
            Step::Remind => MaintenanceAction::Reminded,
            Step::Start => MaintenanceAction::Started,
            Step::Verify => MaintenanceAction::Verifying,
            Step::Complete => MaintenanceAction::Completed,
        }
    }

    /// The phase after the step.
    pub fn phase_after(self, before: MaintenancePhase) -> MaintenancePhase {
        match self {
            Step::Remind => before,
            Step::Start => MaintenancePhase::InProgress,
            Step::Verify => MaintenancePhase::Verifying,
            Step::Complete => MaintenancePhase::Completed,
        }
    }

    /// A short name for logs and timer keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Remind => "remind",
            Step::Start => "start",
            Step::Verify => "verify",
            Step::Complete => "complete",
        }
    }
}

impl Window {
    /// Folds one more event in. Idempotent and order-independent.
    pub fn apply(
        window: &mut Option<Window>,
        envelope: &Envelope<MaintenanceEvent>,
        sequence: u64,
    ) {
        let at = (envelope.hlc, envelope.id);
        let reminded = envelope.data.action == MaintenanceAction::Reminded;
        match window {
            None => {
                *window = Some(Window {
                    state: envelope.data.clone(),
                    reminded,
                    created_at_ms: envelope.data.at_ms,
                    revision: sequence,
                    latest: Some(at),
                });
            }
            Some(current) => {
                current.reminded |= reminded;
                current.revision = current.revision.max(sequence);
                current.created_at_ms = current.created_at_ms.min(envelope.data.at_ms);
                if current.latest.is_none_or(|latest| at > latest) {
                    current.state = envelope.data.clone();
                    current.latest = Some(at);
                }
            }
        }
    }

    /// Folds a whole history; `None` when it is empty.
    pub fn fold<'a>(
        events: impl IntoIterator<Item = (&'a Envelope<MaintenanceEvent>, u64)>,
    ) -> Option<Window> {
        let mut window = None;
        for (envelope, sequence) in events {
            Window::apply(&mut window, envelope, sequence);
        }
        window
    }

    /// Whether this is a recurring series rather than one window.
    pub fn is_series(&self) -> bool {
        self.state.recurrence.is_some()
    }

    /// Whether its components are under maintenance now.
    pub fn is_in_progress(&self) -> bool {
        !self.is_series() && self.state.phase == MaintenancePhase::InProgress
    }

    /// Whether it covers `component` (and is running).
    pub fn covers(&self, component: &str) -> bool {
        self.is_in_progress() && self.state.components.iter().any(|c| c == component)
    }

    /// The next step and when it is due (Unix milliseconds), or `None` once
    /// nothing more happens by itself. A series has no steps of its own:
    /// its occurrences do.
    pub fn next_step(&self) -> Option<(Step, u64)> {
        if self.is_series() {
            return None;
        }
        let s = &self.state;
        let end = s.ends_at_ms;
        match s.phase {
            MaintenancePhase::Scheduled => {
                let remind_at = s.starts_at_ms.saturating_sub(s.remind_before_ms);
                if !self.reminded && s.remind_before_ms > 0 && remind_at < s.starts_at_ms {
                    Some((Step::Remind, remind_at))
                } else {
                    Some((Step::Start, s.starts_at_ms))
                }
            }
            MaintenancePhase::InProgress if s.verify_ms > 0 => Some((Step::Verify, end)),
            MaintenancePhase::InProgress => Some((Step::Complete, end)),
            MaintenancePhase::Verifying => Some((Step::Complete, end.saturating_add(s.verify_ms))),
            MaintenancePhase::Completed | MaintenancePhase::Cancelled => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event(action: MaintenanceAction, phase: MaintenancePhase) -> MaintenanceEvent {
        MaintenanceEvent {
            page: "p".into(),
            maintenance: "m1".into(),
            action,
            actor: "op".into(),
            at_ms: 0,
            phase,
            title: "DB upgrade".into(),
            body: String::new(),
            starts_at_ms: 10_000,
            ends_at_ms: 20_000,
            components: vec!["db".into()],
            recurrence: None,
            series: None,
            remind_before_ms: 5_000,
            verify_ms: 0,
        }
    }

    fn at(wall: u64, data: MaintenanceEvent) -> Envelope<MaintenanceEvent> {
        Envelope::with_id(EventId::new(), Hlc::new(wall, 0), "eu", data)
    }

    #[test]
    fn steps_follow_the_phases() {
        use MaintenanceAction as A;
        use MaintenancePhase as P;
        let scheduled = at(1, event(A::Scheduled, P::Scheduled));
        let mut window = Window::fold([(&scheduled, 1)]).expect("one event");
        assert_eq!(window.next_step(), Some((Step::Remind, 5_000)));
        let reminded = at(2, event(A::Reminded, P::Scheduled));
        let mut folded = Some(window.clone());
        Window::apply(&mut folded, &reminded, 2);
        Window::apply(&mut folded, &reminded, 2);
        window = folded.expect("window");
        assert_eq!(window.next_step(), Some((Step::Start, 10_000)));
        let started = at(3, event(A::Started, P::InProgress));
        let mut folded = Some(window);
        Window::apply(&mut folded, &started, 3);
        let window = folded.expect("window");
        assert!(window.covers("db") && !window.covers("api"));
        assert_eq!(window.next_step(), Some((Step::Complete, 20_000)));
        let mut verifying = window.clone();
        verifying.state.verify_ms = 1_000;
        assert_eq!(verifying.next_step(), Some((Step::Verify, 20_000)));
        verifying.state.phase = P::Verifying;
        assert_eq!(verifying.next_step(), Some((Step::Complete, 21_000)));
        verifying.state.phase = P::Completed;
        assert_eq!(verifying.next_step(), None);
    }

    proptest! {
        #[test]
        fn the_fold_does_not_depend_on_arrival_order(order in Just(vec![0usize, 1, 2, 3]).prop_shuffle()) {
            use MaintenanceAction as A;
            use MaintenancePhase as P;
            let events = [
                at(1, event(A::Scheduled, P::Scheduled)),
                at(2, event(A::Reminded, P::Scheduled)),
                at(3, event(A::Started, P::InProgress)),
                at(4, event(A::Completed, P::Completed)),
            ];
            let reference = Window::fold(events.iter().zip(1..));
            let shuffled = Window::fold(order.iter().map(|&i| (&events[i], i as u64 + 1)));
            prop_assert_eq!(&shuffled, &reference);
            prop_assert!(reference.is_some_and(|w| w.reminded && w.state.phase == P::Completed));
        }
    }
}
