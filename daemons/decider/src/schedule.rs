//! Maintenance at its times: recurrence rules, occurrences of a series, and
//! the events a step writes. Pure; the engine owns the timers.
//!
//! A recurring series is one maintenance record with a rule (an RFC 5545
//! `RRULE`, or a five-field cron expression, both in UTC). The leading
//! decider materialises each occurrence that starts within
//! [`HORIZON_MS`] as a window of its own (id `{series}-{start minute, hex}`,
//! so every decider derives the same id), and each window then goes
//! through its steps: reminder, start, (verifying,) completion.

use std::str::FromStr;

use beacon_contract::maintenance::{Step, Window};
use beacon_contract::messages::{MaintenanceAction, MaintenanceEvent, MaintenancePhase};
use chrono::{DateTime, TimeZone, Utc};

/// How far ahead occurrences of a series are announced.
pub const HORIZON_MS: u64 = 7 * 24 * 3600 * 1000;

/// Most occurrences announced per series at once.
const MAX_AHEAD: usize = 32;

/// A parsed recurrence rule.
#[derive(Debug, Clone)]
pub enum Recurrence {
    /// `RRULE:FREQ=…`, anchored at the series' first start.
    RRule(Box<rrule::RRuleSet>),
    /// A cron expression.
    Cron(Box<croner::Cron>),
}

impl Recurrence {
    /// Parses `text` for a series whose first occurrence starts at
    /// `first_start_ms`; the error says what is wrong, for people.
    pub fn parse(text: &str, first_start_ms: u64) -> Result<Recurrence, String> {
        let trimmed = text.trim();
        let rule = trimmed.strip_prefix("RRULE:").unwrap_or(trimmed);
        if rule.contains("FREQ=") {
            let start = rrule::Tz::UTC
                .timestamp_millis_opt(first_start_ms as i64)
                .single()
                .ok_or_else(|| "the first start is not a valid time".to_owned())?;
            let parsed: rrule::RRule<rrule::Unvalidated> = rule
                .parse()
                .map_err(|e| format!("{text:?} is not a valid RRULE: {e}"))?;
            let set = parsed
                .build(start)
                .map_err(|e| format!("{text:?} is not a valid RRULE: {e}"))?;
            return Ok(Recurrence::RRule(Box::new(set)));
        }
        if rule.split_whitespace().count() != 5 {
            return Err(format!(
                "{text:?} is neither an RRULE (\"RRULE:FREQ=WEEKLY;BYDAY=TU\") nor a five-field cron expression (\"0 3 * * TUE\")"
            ));
        }
        croner::Cron::from_str(rule)
            .map(|cron| Recurrence::Cron(Box::new(cron)))
            .map_err(|e| format!("{text:?} is not a valid cron expression: {e}"))
    }

    /// Start times (Unix ms) of occurrences in `[from_ms, until_ms)`, at
    /// most [`MAX_AHEAD`].
    pub fn starts_between(&self, from_ms: u64, until_ms: u64) -> Vec<u64> {
        let millis = |ms: i64| u64::try_from(ms).unwrap_or(0);
        match self {
            Recurrence::RRule(set) => {
                let (Some(from), Some(until)) = (
                    rrule::Tz::UTC.timestamp_millis_opt(from_ms as i64).single(),
                    rrule::Tz::UTC
                        .timestamp_millis_opt(until_ms as i64)
                        .single(),
                ) else {
                    return Vec::new();
                };
                set.as_ref()
                    .clone()
                    .after(from)
                    .before(until)
                    .all(MAX_AHEAD as u16)
                    .dates
                    .into_iter()
                    .map(|d| millis(d.timestamp_millis()))
                    .filter(|ms| (from_ms..until_ms).contains(ms))
                    .collect()
            }
            Recurrence::Cron(cron) => {
                // Cron fires on whole seconds; start a second before `from`
                // (rounded down) so an occurrence exactly at `from` counts.
                let whole = (from_ms / 1000 * 1000) as i64;
                let Some(from) = Utc.timestamp_millis_opt(whole).single() else {
                    return Vec::new();
                };
                let before: DateTime<Utc> = from - chrono::Duration::seconds(1);
                cron.iter_after(before)
                    .take(MAX_AHEAD)
                    .map(|d| millis(d.timestamp_millis()))
                    .take_while(|ms| *ms < until_ms)
                    .filter(|ms| *ms >= from_ms)
                    .collect()
            }
        }
    }
}

/// The id of a series' occurrence starting at `start_ms`.
pub fn occurrence_id(series: &str, start_ms: u64) -> String {
    format!("{series}-{:x}", start_ms / 60_000)
}

/// The occurrences of `series` to announce at `now_ms` that are not in
/// `known`, as their scheduling events.
pub fn occurrences_due(
    series: &Window,
    now_ms: u64,
    known: impl Fn(&str) -> bool,
) -> Result<Vec<MaintenanceEvent>, String> {
    let s = &series.state;
    let Some(rule) = &s.recurrence else {
        return Ok(Vec::new());
    };
    if s.phase.is_final() {
        return Ok(Vec::new());
    }
    let duration = s.ends_at_ms.saturating_sub(s.starts_at_ms);
    let recurrence = Recurrence::parse(rule, s.starts_at_ms)?;
    // An occurrence still running counts too, so a restart in the middle of
    // one does not skip it.
    let from = now_ms.saturating_sub(duration).max(s.starts_at_ms);
    let starts = recurrence.starts_between(from, now_ms.saturating_add(HORIZON_MS));
    Ok(starts
        .into_iter()
        .filter_map(|start| {
            let id = occurrence_id(&s.maintenance, start);
            (!known(&id)).then(|| MaintenanceEvent {
                page: s.page.clone(),
                maintenance: id,
                action: MaintenanceAction::Scheduled,
                actor: crate::store::ACTOR.to_owned(),
                at_ms: now_ms,
                phase: MaintenancePhase::Scheduled,
                title: s.title.clone(),
                body: s.body.clone(),
                starts_at_ms: start,
                ends_at_ms: start.saturating_add(duration),
                components: s.components.clone(),
                recurrence: None,
                series: Some(s.maintenance.clone()),
                remind_before_ms: s.remind_before_ms,
                verify_ms: s.verify_ms,
            })
        })
        .collect())
}

/// The event that takes `window` through `step` at `now_ms`.
pub fn step_event(window: &Window, step: Step, now_ms: u64) -> MaintenanceEvent {
    let mut event = window.state.clone();
    event.action = step.action();
    event.phase = step.phase_after(window.state.phase);
    event.actor = crate::store::ACTOR.to_owned();
    event.at_ms = now_ms;
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_contract::event::{Envelope, EventId};
    use beacon_contract::hlc::Hlc;

    /// 2025-11-04 00:00:00 UTC, a Tuesday.
    const TUESDAY: u64 = 1_762_214_400_000;
    const DAY: u64 = 24 * 3600 * 1000;

    fn series(rule: &str) -> Window {
        let event = MaintenanceEvent {
            page: "p".into(),
            maintenance: "s1".into(),
            action: MaintenanceAction::Scheduled,
            actor: "op".into(),
            at_ms: 0,
            phase: MaintenancePhase::Scheduled,
            title: "Weekly".into(),
            body: String::new(),
            starts_at_ms: TUESDAY + 3 * 3600 * 1000,
            ends_at_ms: TUESDAY + 4 * 3600 * 1000,
            components: vec!["db".into()],
            recurrence: Some(rule.into()),
            series: None,
            remind_before_ms: 3_600_000,
            verify_ms: 0,
        };
        Window::fold([(
            &Envelope::with_id(EventId::new(), Hlc::new(1, 0), "eu", event),
            1,
        )])
        .expect("one event")
    }

    #[test]
    fn rrule_and_cron_give_the_same_weekly_occurrences() {
        for rule in [
            "RRULE:FREQ=WEEKLY;BYDAY=TU;BYHOUR=3;BYMINUTE=0;BYSECOND=0",
            "0 3 * * TUE",
        ] {
            let due = occurrences_due(&series(rule), TUESDAY, |_| false).expect("valid rule");
            let starts: Vec<u64> = due.iter().map(|e| e.starts_at_ms).collect();
            assert_eq!(
                starts,
                [TUESDAY + 3 * 3600 * 1000],
                "{rule}: one within 7 days"
            );
            assert_eq!(due[0].ends_at_ms - due[0].starts_at_ms, 3600 * 1000);
            assert_eq!(due[0].series.as_deref(), Some("s1"));
            let later =
                occurrences_due(&series(rule), TUESDAY + 5 * DAY, |_| false).expect("valid");
            let starts: Vec<u64> = later.iter().map(|e| e.starts_at_ms).collect();
            assert_eq!(starts, [TUESDAY + 7 * DAY + 3 * 3600 * 1000], "{rule}");
        }
    }

    #[test]
    fn known_occurrences_are_not_announced_again() {
        let window = series("0 3 * * TUE");
        let id = occurrence_id("s1", TUESDAY + 3 * 3600 * 1000);
        let due = occurrences_due(&window, TUESDAY, |known| known == id).expect("valid");
        assert!(due.is_empty());
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        for rule in ["RRULE:FREQ=SOMETIMES", "every tuesday", "61 * * * *"] {
            let error = Recurrence::parse(rule, TUESDAY).expect_err(rule);
            assert!(error.contains(rule), "{error}");
        }
    }
}
