//! One component: its trackers per (check, region), automation's memory,
//! and what is stored for it, with the pure evaluation that turns all of
//! that, plus what operators and maintenance say, into the next record.
//!
//! The status shown is the first of these that applies:
//!
//! 1. an operator's override, until it is cleared or expires;
//! 2. `under_maintenance`, while a maintenance window covering it runs;
//! 3. the worst status an active incident's latest update gives it, unless
//!    automation sees a worse one and no operator set this component's
//!    status in that update: an incident never hides a worse outage the
//!    evidence shows (an operator's explicit status does win);
//! 4. automation: the decision across regions, held at the worst recent
//!    status while the component flaps.
//!
//! A change that must not page anyone says why ([`Inhibition`]): it comes
//! from maintenance, the component flaps, or a component it depends on is
//! down. An automatic change to an outage that is not inhibited, for a
//! component no incident covers yet, proposes an incident.

use std::time::Duration;

use beacon_contract::event::EventId;
use beacon_contract::messages::{
    ComponentOverride, ComponentStatus, Evidence, IncidentState, InhibitReason, Inhibition,
    RegionEvidence, RegionState, StatusRecord, StatusSource,
};
use beacon_page::config::Component;
use ulid::Ulid;

use crate::automation::{Automation, FlapRules};
use crate::quorum::{self, Decision};
use crate::tracker::{Class, Rules, Tracker};

/// A region is stale after this many intervals without a result.
pub const STALE_INTERVALS: u64 = 3;

/// One (check, region) of a component.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    /// Check id.
    pub check: String,
    /// Region.
    pub region: String,
    /// The check's thresholds.
    pub rules: Rules,
    /// The check's interval.
    pub interval_ms: u64,
    /// When the decider began to expect results for this pair (it started
    /// leading, or the check was added): without a result since, the
    /// region goes stale [`STALE_INTERVALS`] intervals later.
    pub baseline_ms: u64,
    /// The region's view of the check.
    pub tracker: Tracker,
}

impl Slot {
    /// Whether no result came for [`STALE_INTERVALS`] intervals.
    fn stale_at(&self, now_ms: u64) -> bool {
        now_ms > self.stale_deadline()
    }

    fn stale_deadline(&self) -> u64 {
        let from = self
            .tracker
            .last_seen_ms()
            .unwrap_or(0)
            .max(self.baseline_ms);
        from.saturating_add(STALE_INTERVALS * self.interval_ms)
    }
}

/// What is stored for a component in KV `status`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The record; `None` when the key holds nothing readable.
    pub record: Option<StatusRecord>,
    /// The key's KV revision, the base of the next compare-and-set; `None`
    /// when the key does not exist.
    pub revision: Option<u64>,
    /// Sequence of the component's latest STATUS event (0: none): the
    /// condition of the next publish.
    pub status_sequence: u64,
}

/// Everything the decider holds for one component.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentState {
    /// Trackers, one per (check, region) of the config.
    pub slots: Vec<Slot>,
    /// Automation's memory.
    pub automation: Automation,
    /// What KV and STATUS hold.
    pub stored: Stored,
}

/// What one result did to a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The component has no such check in that region.
    UnknownSlot,
    /// Older than (or the same as) the newest result already applied.
    Old,
    /// Applied; nothing the decision depends on changed (no tracker
    /// concluded anything new, no stale region came back), so the
    /// component need not be evaluated.
    Unchanged,
    /// Applied, and the decision may change: evaluate the component.
    Changed,
}

/// An active incident naming a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentLayer<'a> {
    /// Incident id.
    pub id: &'a str,
    /// The status it gives the component.
    pub status: ComponentStatus,
    /// Its state.
    pub state: IncidentState,
    /// Whether an operator set this component's status in the incident's
    /// latest update: then it stands even where automation sees worse.
    pub explicit: bool,
}

/// What else decides a component's status at evaluation time.
#[derive(Debug, Default)]
pub struct Context<'a> {
    /// The component's page.
    pub page: &'a str,
    /// Now (Unix milliseconds).
    pub now_ms: u64,
    /// Regions whose probes are suspect.
    pub suspect: Vec<&'a str>,
    /// The operator override, if any (expired ones are ignored).
    pub manual: Option<&'a ComponentOverride>,
    /// Maintenance windows running over it: (id, title).
    pub maintenance: Vec<(&'a str, &'a str)>,
    /// Active incidents naming it.
    pub incidents: Vec<IncidentLayer<'a>>,
    /// Whether a proposed or active incident names it already.
    pub covered_by_incident: bool,
    /// The components it depends on, with their current status.
    pub parents: Vec<(&'a str, Option<ComponentStatus>)>,
    /// The result that triggered the evaluation, if one did.
    pub trigger: Option<EventId>,
}

/// What the evaluation asks to store.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Nothing changed.
    Unchanged,
    /// The record changes but the shown status does not: write KV only.
    Quiet(StatusRecord),
    /// The shown status (or flapping) changed: write KV, then a STATUS
    /// event, then the proposal if there is one.
    Change(StatusRecord),
}

/// Salts mixed into ids derived from another id.
const CHANGE_SALT: u128 = 0x5354_4154_5553_4348_414e_4745; // "STATUSCHANGE"
const PROPOSAL_SALT: u128 = 0x5052_4f50_4f53_414c; // "PROPOSAL"

/// What a change decides, as far as its id goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeOf {
    /// The status shown before, if any.
    pub from: Option<ComponentStatus>,
    /// The status shown from now on.
    pub to: ComponentStatus,
    /// Whether the component flaps from now on.
    pub flapping: bool,
}

/// The status-change id for `decision` triggered by `trigger`: stable across
/// retries of the same decision on the same trigger, distinct from the
/// trigger, sorted with it. The decision is part of it: a trigger delivered
/// again in a new term may decide something else, and that change must not
/// share an id (the bus would drop its event as a duplicate).
pub fn change_id(trigger: EventId, decision: ChangeOf) -> EventId {
    let seed = format!(
        "{}|{}|{}",
        decision.from.map_or("none", ComponentStatus::as_str),
        decision.to.as_str(),
        decision.flapping
    );
    let mixed = u128::from(beacon_contract::names::fnv1a(seed.as_bytes())) << 16;
    EventId(Ulid::from_parts(
        trigger.0.timestamp_ms(),
        trigger.0.random() ^ CHANGE_SALT ^ mixed,
    ))
}

/// The incident a change proposes: a lowercase ULID derived from the
/// change id, so a retried proposal is the same incident.
pub fn proposal_id(change: EventId) -> String {
    Ulid::from_parts(change.0.timestamp_ms(), change.0.random() ^ PROPOSAL_SALT)
        .to_string()
        .to_ascii_lowercase()
}

impl ComponentState {
    /// A fresh state for `component`, with nothing stored yet.
    pub fn new(component: &Component, baseline_ms: u64, stored: Stored) -> Self {
        let automation = stored
            .record
            .as_ref()
            .map(|record| Automation {
                decided: record.automatic,
                recent: record.recent.clone(),
                flapping: record.flapping,
            })
            .unwrap_or_default();
        let mut state = Self {
            slots: Vec::new(),
            automation,
            stored,
        };
        state.sync(component, baseline_ms);
        state
    }

    /// Brings the slots in line with the component's checks: keeps the
    /// trackers of (check, region) pairs that remain, drops the rest, adds
    /// new ones as of `now_ms`.
    pub fn sync(&mut self, component: &Component, now_ms: u64) {
        let mut slots = Vec::new();
        for check in &component.checks {
            for region in &check.regions {
                let kept = self
                    .slots
                    .iter()
                    .position(|s| s.check == check.id && &s.region == region);
                let (tracker, baseline_ms) = match kept {
                    Some(i) => {
                        let slot = self.slots.swap_remove(i);
                        (slot.tracker, slot.baseline_ms)
                    }
                    None => (Tracker::default(), now_ms),
                };
                slots.push(Slot {
                    check: check.id.clone(),
                    region: region.clone(),
                    rules: Rules::of(check),
                    interval_ms: check.interval_ms,
                    baseline_ms,
                    tracker,
                });
            }
        }
        self.slots = slots;
    }

    /// Applies one result at `now_ms`.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        check: &str,
        region: &str,
        class_of: impl FnOnce(&Rules) -> Class,
        at_ms: u64,
        id: EventId,
        error: Option<&str>,
        now_ms: u64,
    ) -> Applied {
        let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| s.check == check && s.region == region)
        else {
            return Applied::UnknownSlot;
        };
        let was_stale = slot.stale_at(now_ms);
        let class = class_of(&slot.rules);
        match slot.tracker.observe(class, at_ms, id, error, &slot.rules) {
            None => Applied::Old,
            Some(Some(_)) => Applied::Changed,
            Some(None) if was_stale => Applied::Changed,
            Some(None) => Applied::Unchanged,
        }
    }

    /// Each region's state and evidence, sorted by region.
    pub fn regions(&self, now_ms: u64, suspect: &[&str]) -> Vec<RegionEvidence> {
        let mut names: Vec<&str> = self.slots.iter().map(|s| s.region.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names
            .into_iter()
            .map(|region| {
                let slots: Vec<&Slot> = self.slots.iter().filter(|s| s.region == region).collect();
                let fresh: Vec<&Slot> = slots
                    .iter()
                    .copied()
                    .filter(|s| !s.stale_at(now_ms))
                    .collect();
                let state = if suspect.contains(&region) {
                    RegionState::Suspect
                } else if fresh.is_empty() {
                    RegionState::Stale
                } else {
                    combine(fresh.iter().map(|s| s.tracker.state()))
                };
                // The most telling slot: one in the region's state with the
                // most failures, else the newest.
                let telling = slots
                    .iter()
                    .copied()
                    .max_by_key(|s| {
                        (
                            s.tracker.state() == state,
                            s.tracker.consecutive_failures(),
                            s.tracker.last_seen_ms(),
                        )
                    })
                    .map(|s| &s.tracker);
                RegionEvidence {
                    region: region.to_owned(),
                    state,
                    consecutive_failures: telling.map_or(0, Tracker::consecutive_failures),
                    consecutive_successes: slots
                        .iter()
                        .map(|s| s.tracker.consecutive_successes())
                        .min()
                        .unwrap_or(0),
                    last_result: telling.and_then(Tracker::last_result),
                    last_error: telling.and_then(|t| t.last_error().map(str::to_owned)),
                    since_ms: telling.and_then(Tracker::since_ms),
                    last_seen_ms: slots.iter().filter_map(|s| s.tracker.last_seen_ms()).max(),
                    samples: telling.map(Tracker::samples).unwrap_or_default(),
                }
            })
            .collect()
    }

    /// The next time something changes by itself: a region going stale,
    /// a change leaving the flap window, an override expiring.
    pub fn next_deadline_ms(
        &self,
        component: &Component,
        now_ms: u64,
        manual: Option<&ComponentOverride>,
    ) -> Option<u64> {
        let stale = self
            .slots
            .iter()
            .map(|s| s.stale_deadline().saturating_add(1))
            .filter(|at| *at > now_ms);
        let settle = self.automation.next_settle_ms(FlapRules::of(component));
        let expiry = manual
            .filter(|m| m.status.is_some())
            .and_then(|m| m.expires_at_ms)
            .filter(|at| *at > now_ms);
        stale.chain(settle).chain(expiry).min()
    }

    /// The current stored status.
    pub fn status(&self) -> Option<ComponentStatus> {
        self.stored.record.as_ref().map(|r| r.status)
    }

    /// Evaluates the component. Pure: returns automation's next memory and
    /// what to store; the caller keeps both only once stored.
    pub fn evaluate(&self, component: &Component, ctx: &Context<'_>) -> (Automation, Verdict) {
        let now = ctx.now_ms;
        let rules = FlapRules::of(component);
        let regions = self.regions(now, &ctx.suspect);
        let decision = if component.checks.is_empty() {
            None
        } else {
            let states: Vec<(&str, RegionState)> = regions
                .iter()
                .map(|r| (r.region.as_str(), r.state))
                .collect();
            quorum::decide(&states, component.quorum)
        };
        let mut automation = self.automation.clone();
        automation.decide(decision.as_ref().map(|d| d.status), now, rules);
        let Some((status, source, rule)) = layer(&automation, decision.as_ref(), ctx, rules) else {
            return (automation, Verdict::Unchanged);
        };
        let current = self.stored.record.as_ref();
        let shown_changed =
            current.is_none_or(|r| r.status != status || r.flapping != automation.flapping);
        let memory_changed = current.is_none_or(|r| {
            r.automatic != automation.decided || r.recent != automation.recent || r.source != source
        });
        if !shown_changed && !memory_changed {
            return (automation, Verdict::Unchanged);
        }
        let evidence = Evidence {
            rule,
            trigger: ctx.trigger,
            regions,
        };
        if !shown_changed {
            let mut record = current.cloned().expect("unchanged status implies a record");
            record.source = source;
            record.automatic = automation.decided;
            record.recent = automation.recent.clone();
            return (automation, Verdict::Quiet(record));
        }
        let decided = ChangeOf {
            from: current.map(|r| r.status),
            to: status,
            flapping: automation.flapping,
        };
        let change = ctx
            .trigger
            .map_or_else(EventId::new, |trigger| change_id(trigger, decided));
        let inhibited = inhibition(source, &automation, ctx);
        let proposes = source == StatusSource::Automatic
            && inhibited.is_none()
            && matches!(
                status,
                ComponentStatus::PartialOutage | ComponentStatus::MajorOutage
            )
            && !ctx.covered_by_incident;
        let record = StatusRecord {
            page: ctx.page.to_owned(),
            component: component.id.clone(),
            status,
            since_ms: now,
            change,
            evidence,
            from: current.map(|r| r.status),
            source,
            automatic: automation.decided,
            flapping: automation.flapping,
            inhibited,
            proposal: proposes.then(|| proposal_id(change)),
            recent: automation.recent.clone(),
        };
        (automation, Verdict::Change(record))
    }
}

/// A region's state from its fresh slots: down wins, then unknown (wait),
/// then degraded.
fn combine(states: impl Iterator<Item = RegionState>) -> RegionState {
    let mut seen = Vec::new();
    for state in states {
        seen.push(state);
    }
    for state in [
        RegionState::Down,
        RegionState::Unknown,
        RegionState::Degraded,
    ] {
        if seen.contains(&state) {
            return state;
        }
    }
    RegionState::Up
}

/// The shown status, what set it and the rule, by the layers in the module
/// docs; `None` when nothing has decided yet.
fn layer(
    automation: &Automation,
    decision: Option<&Decision>,
    ctx: &Context<'_>,
    rules: FlapRules,
) -> Option<(ComponentStatus, StatusSource, String)> {
    if let Some(manual) = ctx.manual.filter(|m| m.active_at(ctx.now_ms)) {
        let status = manual.status?;
        let until = manual.expires_at_ms.map_or(String::new(), |at| {
            format!(
                " until {}",
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + Duration::from_millis(at)
                )
            )
        });
        let reason = if manual.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", manual.reason)
        };
        return Some((
            status,
            StatusSource::Override,
            format!("override by {}{until}{reason}", manual.actor),
        ));
    }
    if let Some((id, title)) = ctx.maintenance.first() {
        return Some((
            ComponentStatus::UnderMaintenance,
            StatusSource::Maintenance,
            format!("maintenance {id} in progress: {title}"),
        ));
    }
    if let Some(incident) = ctx
        .incidents
        .iter()
        .max_by_key(|i| (i.status.severity(), std::cmp::Reverse(i.id)))
    {
        let seen = automation.held();
        match seen {
            Some(worse) if !incident.explicit && worse.severity() > incident.status.severity() => {
                return Some((
                    worse,
                    StatusSource::Automatic,
                    format!(
                        "automation sees {} while incident {} ({}) says {}",
                        worse.as_str(),
                        incident.id,
                        incident.state.as_str(),
                        incident.status.as_str()
                    ),
                ));
            }
            _ => {
                return Some((
                    incident.status,
                    StatusSource::Incident,
                    format!(
                        "incident {} ({}) sets it",
                        incident.id,
                        incident.state.as_str()
                    ),
                ));
            }
        }
    }
    let held = automation.held()?;
    let rule = match (automation.flapping, decision) {
        (true, _) => format!(
            "flapping: {} changes in {}; holding {} (automation says {})",
            automation.recent.len(),
            humantime::format_duration(Duration::from_millis(rules.window_ms)),
            held.as_str(),
            automation
                .decided
                .map_or("nothing yet", ComponentStatus::as_str),
        ),
        (false, Some(decision)) => decision.rule.clone(),
        (false, None) => "no new decision; keeping the last".to_owned(),
    };
    Some((held, StatusSource::Automatic, rule))
}

/// Why a change must not notify, if it must not.
fn inhibition(
    source: StatusSource,
    automation: &Automation,
    ctx: &Context<'_>,
) -> Option<Inhibition> {
    if source == StatusSource::Maintenance {
        let (id, _) = ctx.maintenance.first()?;
        return Some(Inhibition {
            reason: InhibitReason::Maintenance,
            detail: format!("maintenance {id} in progress"),
        });
    }
    if source != StatusSource::Automatic {
        return None;
    }
    if automation.flapping {
        return Some(Inhibition {
            reason: InhibitReason::Flapping,
            detail: format!(
                "flapping: {} changes within the flap window",
                automation.recent.len()
            ),
        });
    }
    let down: Vec<String> = ctx
        .parents
        .iter()
        .filter_map(|(parent, status)| match status {
            Some(s @ (ComponentStatus::PartialOutage | ComponentStatus::MajorOutage)) => {
                Some(format!("{parent}, which is {}", s.as_str()))
            }
            _ => None,
        })
        .collect();
    (!down.is_empty()).then(|| Inhibition {
        reason: InhibitReason::DependsOn,
        detail: format!("depends on {}", down.join(" and ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_contract::messages::Outcome;
    use beacon_page::config::{load, PageConfig};
    use proptest::prelude::*;

    fn config() -> PageConfig {
        load(
            r#"
            [page]
            id = "p"
            name = "P"
            [defaults]
            regions = ["eu", "us", "ap"]
            interval = "10s"
            timeout = "1s"
            failure_threshold = 2
            recovery_threshold = 2
            flap_transitions = 3
            flap_window = "10m"
            [[components]]
            id = "db"
            name = "DB"
            [[components.checks]]
            type = "tcp"
            address = "127.0.0.1:1"
            [[components]]
            id = "api"
            name = "API"
            depends_on = ["db"]
            [[components.checks]]
            type = "http"
            url = "http://127.0.0.1:1/"
            "#,
        )
        .expect("test config is valid")
    }

    const START: u64 = 1_000_000;

    struct Sim {
        config: PageConfig,
        state: ComponentState,
        changes: Vec<StatusRecord>,
    }

    impl Sim {
        fn new() -> Self {
            let config = config();
            let state = ComponentState::new(
                config.component("api").expect("api"),
                START,
                Stored {
                    record: None,
                    revision: None,
                    status_sequence: 0,
                },
            );
            Self {
                config,
                state,
                changes: Vec::new(),
            }
        }

        fn result(&mut self, region: &str, outcome: Outcome, at_ms: u64) {
            self.result_with(region, outcome, at_ms, Context::default());
        }

        fn result_with(
            &mut self,
            region: &str,
            outcome: Outcome,
            at_ms: u64,
            mut ctx: Context<'_>,
        ) {
            let id = EventId::new();
            self.state.apply(
                "http",
                region,
                |rules| rules.classify(outcome, 10),
                at_ms,
                id,
                None,
                at_ms,
            );
            ctx.now_ms = at_ms;
            ctx.trigger = Some(id);
            self.evaluate(ctx);
        }

        fn evaluate(&mut self, ctx: Context<'_>) {
            let component = self.config.component("api").expect("api").clone();
            let (automation, verdict) = self.state.evaluate(&component, &ctx);
            self.state.automation = automation;
            match verdict {
                Verdict::Unchanged => {}
                Verdict::Quiet(record) => self.state.stored.record = Some(record),
                Verdict::Change(record) => {
                    self.changes.push(record.clone());
                    self.state.stored.record = Some(record);
                }
            }
        }

        fn statuses(&self) -> Vec<ComponentStatus> {
            self.changes.iter().map(|c| c.status).collect()
        }
    }

    #[test]
    fn nothing_is_decided_before_every_region_concluded() {
        let mut sim = Sim::new();
        sim.result("eu", Outcome::Up, START + 1);
        sim.result("eu", Outcome::Up, START + 2);
        sim.result("us", Outcome::Up, START + 3);
        sim.result("us", Outcome::Up, START + 4);
        assert!(
            sim.changes.is_empty(),
            "ap has not spoken: {:?}",
            sim.statuses()
        );
        sim.result("ap", Outcome::Up, START + 5);
        sim.result("ap", Outcome::Up, START + 6);
        assert_eq!(sim.statuses(), [ComponentStatus::Operational]);
        assert_eq!(sim.changes[0].evidence.rule, "all 3 regions up");
    }

    #[test]
    fn a_region_with_no_results_goes_stale_and_stops_counting() {
        let mut sim = Sim::new();
        for i in 0..2 {
            sim.result("eu", Outcome::Down, START + i);
            sim.result("us", Outcome::Up, START + i);
        }
        assert!(
            sim.changes.is_empty(),
            "ap unknown holds back a partial outage"
        );
        // ap says nothing; three intervals (30 s) after the start it is stale.
        for i in 1..4u64 {
            sim.result("eu", Outcome::Down, START + i * 10_000 + 5);
            sim.result("us", Outcome::Up, START + i * 10_000 + 5);
        }
        let last = sim.changes.last().expect("a decision");
        assert_eq!(last.status, ComponentStatus::PartialOutage);
        let ap = last
            .evidence
            .regions
            .iter()
            .find(|r| r.region == "ap")
            .expect("ap");
        assert_eq!(ap.state, RegionState::Stale);
        assert!(
            last.evidence.rule.contains("left out: ap stale"),
            "{}",
            last.evidence.rule
        );
    }

    #[test]
    fn a_suspect_region_is_left_out() {
        let mut sim = Sim::new();
        for i in 0..2 {
            for region in ["us", "ap"] {
                sim.result(region, Outcome::Up, START + i);
            }
            sim.result_with(
                "eu",
                Outcome::Down,
                START + i,
                Context {
                    suspect: vec!["eu"],
                    ..Context::default()
                },
            );
        }
        assert_eq!(sim.statuses(), [ComponentStatus::Operational]);
    }

    #[test]
    fn a_majority_down_is_a_major_outage_and_proposes_an_incident() {
        let mut sim = Sim::new();
        for i in 0..2 {
            for region in ["eu", "us", "ap"] {
                sim.result(region, Outcome::Up, START + i);
            }
        }
        for i in 2..4 {
            for region in ["eu", "us"] {
                sim.result(region, Outcome::Down, START + i);
            }
        }
        // eu fails first (one region of three: partial), then us (two of
        // three: the majority).
        assert_eq!(
            sim.statuses(),
            [
                ComponentStatus::Operational,
                ComponentStatus::PartialOutage,
                ComponentStatus::MajorOutage
            ]
        );
        let major = &sim.changes[2];
        assert!(major.proposal.is_some());
        assert_eq!(major.from, Some(ComponentStatus::PartialOutage));
        assert!(
            major
                .evidence
                .rule
                .starts_with("quorum: 2 of 3 regions down"),
            "{}",
            major.evidence.rule
        );
    }

    #[test]
    fn a_down_parent_inhibits_the_child() {
        let mut sim = Sim::new();
        let ctx = || Context {
            parents: vec![("db", Some(ComponentStatus::MajorOutage))],
            ..Context::default()
        };
        for i in 0..2 {
            for region in ["eu", "us", "ap"] {
                sim.result_with(region, Outcome::Down, START + i, ctx());
            }
        }
        let change = sim.changes.last().expect("decided");
        assert_eq!(
            change.status,
            ComponentStatus::MajorOutage,
            "the status stays truthful"
        );
        assert_eq!(
            change.inhibited.as_ref().map(|i| i.reason),
            Some(InhibitReason::DependsOn)
        );
        assert!(change.proposal.is_none());
    }

    #[test]
    fn an_override_wins_until_it_expires() {
        let mut sim = Sim::new();
        for i in 0..2 {
            for region in ["eu", "us", "ap"] {
                sim.result(region, Outcome::Up, START + i);
            }
        }
        let manual = ComponentOverride {
            page: "p".into(),
            component: "api".into(),
            status: Some(ComponentStatus::PartialOutage),
            reason: "upstream".into(),
            actor: "alice".into(),
            expires_at_ms: Some(START + 5_000),
        };
        sim.evaluate(Context {
            now_ms: START + 10,
            manual: Some(&manual),
            ..Context::default()
        });
        let set = sim.changes.last().expect("override applied");
        assert_eq!(
            (set.status, set.source),
            (ComponentStatus::PartialOutage, StatusSource::Override)
        );
        assert!(set.proposal.is_none(), "operators' changes propose nothing");
        sim.result_with(
            "eu",
            Outcome::Up,
            START + 5_001,
            Context {
                manual: Some(&manual),
                ..Context::default()
            },
        );
        let back = sim.changes.last().expect("expired");
        assert_eq!(
            (back.status, back.source),
            (ComponentStatus::Operational, StatusSource::Automatic)
        );
    }

    #[test]
    fn a_change_id_names_the_decision_not_only_its_trigger() {
        let trigger = EventId::new();
        let decision = |to, flapping| ChangeOf {
            from: Some(ComponentStatus::Operational),
            to,
            flapping,
        };
        let major = change_id(trigger, decision(ComponentStatus::MajorOutage, false));
        // A retry of the same decision is the same change.
        assert_eq!(
            major,
            change_id(trigger, decision(ComponentStatus::MajorOutage, false))
        );
        // The same trigger deciding something else (in a new term, say) is
        // another change, whose event the bus must not drop as a duplicate.
        assert_ne!(
            major,
            change_id(trigger, decision(ComponentStatus::PartialOutage, false))
        );
        assert_ne!(
            major,
            change_id(trigger, decision(ComponentStatus::MajorOutage, true))
        );
        assert_ne!(major, trigger);
        assert_eq!(major.0.timestamp_ms(), trigger.0.timestamp_ms());
    }

    #[test]
    fn an_incident_never_hides_a_worse_outage_unless_an_operator_said_so() {
        let mut sim = Sim::new();
        for i in 0..2 {
            for region in ["eu", "us", "ap"] {
                sim.result(region, Outcome::Up, START + i);
            }
        }
        // Every region sees the site down: automation says major_outage.
        for i in 2..4 {
            for region in ["eu", "us", "ap"] {
                sim.result(region, Outcome::Down, START + i);
            }
        }
        assert_eq!(sim.statuses().last(), Some(&ComponentStatus::MajorOutage));
        // A confirmed incident still at its proposal's partial_outage, with
        // no operator naming the component's status in its latest update.
        let confirmed = |explicit| IncidentLayer {
            id: "inc-1",
            status: ComponentStatus::PartialOutage,
            state: IncidentState::Investigating,
            explicit,
        };
        sim.evaluate(Context {
            now_ms: START + 10,
            incidents: vec![confirmed(false)],
            covered_by_incident: true,
            ..Context::default()
        });
        assert_eq!(
            sim.statuses().last(),
            Some(&ComponentStatus::MajorOutage),
            "the page shows what the evidence shows"
        );
        // An operator who set partial_outage for it in that update is heard.
        sim.evaluate(Context {
            now_ms: START + 20,
            incidents: vec![confirmed(true)],
            covered_by_incident: true,
            ..Context::default()
        });
        let set = sim.changes.last().expect("the operator's status");
        assert_eq!(
            (set.status, set.source),
            (ComponentStatus::PartialOutage, StatusSource::Incident)
        );
        // An incident worse than automation's view always shows.
        let worse = IncidentLayer {
            status: ComponentStatus::MajorOutage,
            ..confirmed(false)
        };
        sim.evaluate(Context {
            now_ms: START + 30,
            incidents: vec![worse],
            covered_by_incident: true,
            ..Context::default()
        });
        assert_eq!(sim.statuses().last(), Some(&ComponentStatus::MajorOutage));
    }

    #[test]
    fn maintenance_shows_under_maintenance_and_proposes_nothing() {
        let mut sim = Sim::new();
        let ctx = || Context {
            maintenance: vec![("m1", "DB upgrade")],
            ..Context::default()
        };
        for i in 0..2 {
            for region in ["eu", "us", "ap"] {
                sim.result_with(region, Outcome::Down, START + i, ctx());
            }
        }
        assert_eq!(sim.statuses(), [ComponentStatus::UnderMaintenance]);
        assert!(sim.changes[0].proposal.is_none());
        let stored = sim.state.stored.record.as_ref().expect("stored");
        assert_eq!(
            stored.automatic,
            Some(ComponentStatus::MajorOutage),
            "automation kept deciding"
        );
    }

    /// Feeds `rounds` of (eu, us, ap) outcomes, a round per interval.
    fn feed(sim: &mut Sim, rounds: &[[Outcome; 3]]) {
        for (i, round) in rounds.iter().enumerate() {
            for (region, outcome) in ["eu", "us", "ap"].iter().zip(round) {
                sim.result(region, *outcome, START + i as u64 * 10_000 + 1);
            }
        }
    }

    #[test]
    fn alternating_outages_are_reported_as_flapping_not_as_flip_flop() {
        use Outcome::{Down as D, Up as U};
        let mut sim = Sim::new();
        let mut rounds = Vec::new();
        for _ in 0..6 {
            rounds.extend([[D, D, D], [D, D, D], [U, U, U], [U, U, U]]);
        }
        feed(&mut sim, &rounds);
        let flapping_from = sim
            .changes
            .iter()
            .position(|c| c.flapping)
            .expect("reported as flapping");
        // After that, the shown status holds: no more flip-flop.
        let after: Vec<ComponentStatus> = sim.changes[flapping_from..]
            .iter()
            .map(|c| c.status)
            .collect();
        assert!(
            after.iter().all(|s| *s == ComponentStatus::MajorOutage),
            "{after:?}"
        );
        assert!(sim.changes[flapping_from..].iter().all(|c| c
            .inhibited
            .as_ref()
            .is_some_and(|i| i.reason == InhibitReason::Flapping)));
    }

    fn outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            Just(Outcome::Up),
            Just(Outcome::Down),
            Just(Outcome::Degraded)
        ]
    }

    proptest! {
        /// The same evidence in any region order gives the same status.
        #[test]
        fn region_order_within_a_round_does_not_matter(
            rounds in proptest::collection::vec([outcome(), outcome(), outcome()], 1..12),
            order in Just(vec![0usize, 1, 2]).prop_shuffle(),
        ) {
            let mut forward = Sim::new();
            let mut shuffled = Sim::new();
            let regions = ["eu", "us", "ap"];
            for (i, round) in rounds.iter().enumerate() {
                let at = START + i as u64 * 10_000 + 1;
                for k in 0..3 {
                    forward.state.apply("http", regions[k], |r| r.classify(round[k], 10), at, EventId::new(), None, at);
                    let j = order[k];
                    shuffled.state.apply("http", regions[j], |r| r.classify(round[j], 10), at, EventId::new(), None, at);
                }
                forward.evaluate(Context { now_ms: at, ..Context::default() });
                shuffled.evaluate(Context { now_ms: at, ..Context::default() });
            }
            prop_assert_eq!(forward.statuses(), shuffled.statuses());
        }

        /// No status change without its evidence: every automatic outage
        /// names a region that crossed its failure threshold (trackers
        /// only conclude `down` past it), and `operational` needs every
        /// region that counts to be up.
        #[test]
        fn no_change_without_its_evidence(rounds in proptest::collection::vec([outcome(), outcome(), outcome()], 1..20)) {
            let mut sim = Sim::new();
            feed(&mut sim, &rounds);
            for change in sim.changes.iter().filter(|c| !c.flapping) {
                let regions = &change.evidence.regions;
                match change.status {
                    ComponentStatus::PartialOutage | ComponentStatus::MajorOutage => {
                        prop_assert!(regions.iter().any(|r| r.state == RegionState::Down));
                    }
                    ComponentStatus::Operational => {
                        prop_assert!(regions.iter().all(|r| r.state == RegionState::Up || r.state.is_excluded()));
                    }
                    _ => {}
                }
            }
        }
    }
}
