//! The seeded schedule of a chaos run: which faults strike when, and what
//! the workload does meanwhile. Pure: the same seed, duration and fault
//! kinds give the same plan on every machine, so a run that broke an
//! invariant can be run again.
//!
//! The run has three parts: a warm-up with no faults (the stack settles
//! and the first fan-out starts), the faults, one at a time, each held for
//! a while and then repaired, and a quiet end in which the workload winds
//! down (every incident it opened is resolved) and the checker waits for
//! the stack to catch up.

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// No fault strikes before this.
pub const WARMUP: Duration = Duration::from_secs(10);
/// Nothing strikes in the last part of the run, so the last fault's
/// repair has happened before the workload winds down.
pub const QUIET_END: Duration = Duration::from_secs(10);
/// The shortest run: a warm-up, one fault with its longest hold, the quiet end.
pub const MIN_DURATION: Duration = Duration::from_secs(30);
/// The longest run accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// `kill -9` a daemon, start it again after the hold.
    Kill,
    /// SIGSTOP a daemon, SIGCONT after the hold.
    Pause,
    /// Cut every open connection between a daemon and NATS (or the
    /// recorder and ClickHouse); it reconnects at once.
    Cut,
    /// Cut and refuse a daemon's connections to NATS (or the recorder's to
    /// ClickHouse) for the hold.
    Partition,
    /// Kill NATS, start it again (same port, same store) after the hold.
    NatsRestart,
    /// Kill ClickHouse, start it again after the hold.
    ClickHouseRestart,
}

impl FaultKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Cut,
        FaultKind::Partition,
        FaultKind::NatsRestart,
        FaultKind::ClickHouseRestart,
    ];

    /// The word on the command line and in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Cut => "cut",
            FaultKind::Partition => "partition",
            FaultKind::NatsRestart => "nats-restart",
            FaultKind::ClickHouseRestart => "clickhouse-restart",
        }
    }

    /// The longest hold of this kind.
    fn longest_hold(self) -> Duration {
        match self {
            FaultKind::Cut => Duration::ZERO,
            FaultKind::Kill | FaultKind::NatsRestart | FaultKind::ClickHouseRestart => {
                Duration::from_secs(5)
            }
            FaultKind::Pause | FaultKind::Partition => Duration::from_secs(8),
        }
    }
}

/// The daemons of the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Daemon {
    /// `beacon-decider`.
    Decider,
    /// `beacon-notifier`.
    Notifier,
    /// `beacon-recorder`.
    Recorder,
    /// `beacon-publisher`.
    Publisher,
}

impl Daemon {
    /// Every daemon, in start order.
    pub const ALL: [Daemon; 4] = [
        Daemon::Decider,
        Daemon::Notifier,
        Daemon::Recorder,
        Daemon::Publisher,
    ];

    /// Its binary.
    pub fn binary(self) -> &'static str {
        match self {
            Daemon::Decider => "beacon-decider",
            Daemon::Notifier => "beacon-notifier",
            Daemon::Recorder => "beacon-recorder",
            Daemon::Publisher => "beacon-publisher",
        }
    }

    /// Its short name.
    pub fn as_str(self) -> &'static str {
        match self {
            Daemon::Decider => "decider",
            Daemon::Notifier => "notifier",
            Daemon::Recorder => "recorder",
            Daemon::Publisher => "publisher",
        }
    }
}

/// What a fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Victim {
    /// A daemon process.
    Daemon(Daemon),
    /// The connection between a daemon and NATS.
    NatsLink(Daemon),
    /// The connection between the recorder and ClickHouse.
    ClickHouseLink,
    /// The NATS server.
    Nats,
    /// The ClickHouse server.
    ClickHouse,
}

impl fmt::Display for Victim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Victim::Daemon(d) => write!(f, "{}", d.as_str()),
            Victim::NatsLink(d) => write!(f, "{}<->nats", d.as_str()),
            Victim::ClickHouseLink => write!(f, "recorder<->clickhouse"),
            Victim::Nats => write!(f, "nats"),
            Victim::ClickHouse => write!(f, "clickhouse"),
        }
    }
}

/// One fault of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// When it strikes, from the start of the run.
    pub at: Duration,
    /// What it does.
    pub kind: FaultKind,
    /// What it strikes.
    pub victim: Victim,
    /// How long until it is repaired (zero for a cut).
    pub hold: Duration,
}

/// The components of the chaos page.
pub const CORE: &str = "core";
/// A component only the small group of subscribers follows.
pub const SIDE: &str = "side";
/// Components whose health flips (every region sees the same).
pub const FLIPPING: [&str; 4] = ["f1", "f2", "f3", "f4"];

/// Which subscribers an incident reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Component `core`: every subscriber of the big group too.
    Everyone,
    /// Component `side`: the small group only.
    Few,
}

/// One thing the workload does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Component `FLIPPING[component]` goes down (or comes back) in every region.
    Flip {
        /// Index into [`FLIPPING`].
        component: usize,
        /// Down from now on.
        down: bool,
    },
    /// An operator opens incident number `incident` (numbered in order).
    Open {
        /// Its number in the run.
        incident: usize,
        /// Who it reaches.
        reach: Reach,
        /// Critical (else major).
        critical: bool,
    },
    /// An operator posts an update to it.
    Update {
        /// Its number.
        incident: usize,
    },
    /// An operator resolves it.
    Resolve {
        /// Its number.
        incident: usize,
    },
    /// An operator schedules a maintenance window a day ahead.
    Schedule {
        /// Its number in the run.
        maintenance: usize,
    },
}

/// One step of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// When, from the start of the run.
    pub at: Duration,
    /// What.
    pub action: Action,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The seed it came from.
    pub seed: u64,
    /// The run's length (faults and workload).
    pub duration: Duration,
    /// Faults in time order, never overlapping.
    pub faults: Vec<Fault>,
    /// Workload steps in time order.
    pub steps: Vec<Step>,
}

/// What the command line asked for, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// `--seed`.
    pub seed: &'a str,
    /// `--duration`.
    pub duration: &'a str,
    /// `--faults`: kinds separated by commas.
    pub faults: &'a str,
    /// `--fault-every`: the mean time between faults.
    pub fault_every: &'a str,
    /// `--incident-every`: the mean time between incidents opened.
    pub incident_every: &'a str,
}

/// A plan that cannot run; every problem found is listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the chaos schedule cannot run: {}", .0.join("; "))]
pub struct PlanError(pub Vec<String>);

fn duration(errors: &mut Vec<String>, flag: &str, text: &str) -> Option<Duration> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) => Some(d),
        Err(e) => {
            errors.push(format!("{flag} {text:?} is not a duration: {e}"));
            None
        }
    }
}

/// Parses the fault kinds of `--faults`.
pub fn parse_kinds(text: &str) -> Result<Vec<FaultKind>, String> {
    let mut kinds = Vec::new();
    for word in text.split(',').map(str::trim) {
        if word.is_empty() {
            continue;
        }
        let kind = FaultKind::ALL
            .into_iter()
            .find(|k| k.as_str() == word)
            .ok_or_else(|| {
                let known: Vec<&str> = FaultKind::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "--faults: unknown fault kind {word:?} (known: {})",
                    known.join(", ")
                )
            })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.is_empty() {
        return Err("--faults: name at least one fault kind".into());
    }
    Ok(kinds)
}

/// Validates the request and draws the plan from its seed.
pub fn plan(request: &Request<'_>) -> Result<Plan, PlanError> {
    let mut errors = Vec::new();
    let seed = match request.seed.trim().parse::<u64>() {
        Ok(seed) => Some(seed),
        Err(_) => {
            errors.push(format!(
                "--seed {:?} is not a whole number from 0 to {}",
                request.seed,
                u64::MAX
            ));
            None
        }
    };
    let run = duration(&mut errors, "--duration", request.duration);
    let every = duration(&mut errors, "--fault-every", request.fault_every);
    let incident_every = duration(&mut errors, "--incident-every", request.incident_every);
    let kinds = match parse_kinds(request.faults) {
        Ok(kinds) => Some(kinds),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    if let Some(run) = run {
        if run < MIN_DURATION {
            errors.push(format!(
                "--duration {} is too short for one fault: a run needs {} of warm-up, a fault and {} of quiet at the end, at least {}",
                humantime::format_duration(run),
                humantime::format_duration(WARMUP),
                humantime::format_duration(QUIET_END),
                humantime::format_duration(MIN_DURATION),
            ));
        } else if run > MAX_DURATION {
            errors.push(format!(
                "--duration {} is longer than {}",
                humantime::format_duration(run),
                humantime::format_duration(MAX_DURATION)
            ));
        }
    }
    if let Some(every) = every {
        if every < Duration::from_secs(1) {
            errors.push("--fault-every must be at least 1s".into());
        }
    }
    if let Some(every) = incident_every {
        if every < Duration::from_secs(10) {
            errors.push(
                "--incident-every must be at least 10s (an incident is opened, updated and resolved)"
                    .into(),
            );
        }
    }
    match (seed, run, every, incident_every, kinds) {
        (Some(seed), Some(run), Some(every), Some(incident_every), Some(kinds))
            if errors.is_empty() =>
        {
            Ok(draw(seed, run, every, incident_every, &kinds))
        }
        _ => Err(PlanError(errors)),
    }
}

/// Draws a plan; the request is valid.
fn draw(
    seed: u64,
    run: Duration,
    every: Duration,
    incident_every: Duration,
    kinds: &[FaultKind],
) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed);
    let faults = draw_faults(&mut rng, run, every, kinds);
    let steps = draw_steps(&mut rng, run, incident_every);
    Plan {
        seed,
        duration: run,
        faults,
        steps,
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Between `low` and `high`, drawn.
fn between(rng: &mut StdRng, low: Duration, high: Duration) -> Duration {
    if high <= low {
        return low;
    }
    Duration::from_millis(rng.random_range(millis(low)..=millis(high)))
}

fn draw_faults(
    rng: &mut StdRng,
    run: Duration,
    every: Duration,
    kinds: &[FaultKind],
) -> Vec<Fault> {
    let end = run - QUIET_END;
    let mut faults = Vec::new();
    let mut at = WARMUP;
    // Kinds go round in a shuffled order, so a short run still sees each
    // kind and a long one sees them all about equally often.
    let mut deck: Vec<FaultKind> = Vec::new();
    loop {
        if deck.is_empty() {
            deck = kinds.to_vec();
            for i in (1..deck.len()).rev() {
                let j = rng.random_range(0..=i);
                deck.swap(i, j);
            }
        }
        let kind = deck[deck.len() - 1];
        let hold = match kind {
            FaultKind::Cut => Duration::ZERO,
            other => between(rng, Duration::from_secs(1), other.longest_hold()),
        };
        if at + hold > end {
            break;
        }
        deck.pop();
        let victim = match kind {
            FaultKind::Kill | FaultKind::Pause => {
                Victim::Daemon(Daemon::ALL[rng.random_range(0..Daemon::ALL.len())])
            }
            FaultKind::Cut | FaultKind::Partition => {
                // One choice in five is the recorder's ClickHouse link.
                let pick = rng.random_range(0..Daemon::ALL.len() + 1);
                Daemon::ALL
                    .get(pick)
                    .map_or(Victim::ClickHouseLink, |d| Victim::NatsLink(*d))
            }
            FaultKind::NatsRestart => Victim::Nats,
            FaultKind::ClickHouseRestart => Victim::ClickHouse,
        };
        faults.push(Fault {
            at,
            kind,
            victim,
            hold,
        });
        // The next strikes after this one's repair, `every` apart on average.
        let gap = between(rng, every / 2, every + every / 2);
        at = at + hold + gap;
    }
    faults
}

fn draw_steps(rng: &mut StdRng, run: Duration, incident_every: Duration) -> Vec<Step> {
    let end = run - QUIET_END;
    let mut steps = Vec::new();
    // Health flips: one component every few seconds, all the way to the
    // quiet end, so decisions are being made while faults strike.
    let mut down = [false; FLIPPING.len()];
    let mut at = Duration::from_secs(3);
    while at < end {
        let component = rng.random_range(0..FLIPPING.len());
        down[component] = !down[component];
        steps.push(Step {
            at,
            action: Action::Flip {
                component,
                down: down[component],
            },
        });
        at += between(rng, Duration::from_secs(2), Duration::from_secs(6));
    }
    // Incidents: opened every `incident_every` on average, each updated and
    // resolved within the next part of the run. The first reaches everyone
    // (the big fan-out), then one in three.
    let mut incident = 0;
    let mut at = Duration::from_secs(2);
    loop {
        let update = at + between(rng, incident_every / 5, incident_every / 3);
        let resolve = update + between(rng, incident_every / 5, incident_every / 3);
        if resolve > end {
            break;
        }
        let reach = if incident == 0 || rng.random_range(0..3) == 0 {
            Reach::Everyone
        } else {
            Reach::Few
        };
        let critical = rng.random_bool(0.5);
        steps.push(Step {
            at,
            action: Action::Open {
                incident,
                reach,
                critical,
            },
        });
        steps.push(Step {
            at: update,
            action: Action::Update { incident },
        });
        steps.push(Step {
            at: resolve,
            action: Action::Resolve { incident },
        });
        incident += 1;
        at += between(rng, incident_every / 2, incident_every + incident_every / 2);
    }
    // Maintenance: one window scheduled in the first third, another every
    // five minutes after.
    let mut maintenance = 0;
    let mut at = run / 3;
    while at < end {
        steps.push(Step {
            at,
            action: Action::Schedule { maintenance },
        });
        maintenance += 1;
        at += Duration::from_secs(300);
    }
    steps.sort_by_key(|s| s.at);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request<'a>(seed: &'a str, duration: &'a str, faults: &'a str) -> Request<'a> {
        Request {
            seed,
            duration,
            faults,
            fault_every: "15s",
            incident_every: "30s",
        }
    }

    const ALL: &str = "kill,pause,cut,partition,nats-restart,clickhouse-restart";

    #[test]
    fn the_same_seed_gives_the_same_plan_and_another_seed_another() {
        let one = plan(&request("7", "10m", ALL)).expect("a plan");
        let again = plan(&request("7", "10m", ALL)).expect("a plan");
        let other = plan(&request("8", "10m", ALL)).expect("a plan");
        assert_eq!(one, again);
        assert_ne!(one.faults, other.faults);
    }

    #[test]
    fn a_ten_minute_run_strikes_every_kind_and_opens_a_big_incident() {
        let plan = plan(&request("1", "10m", ALL)).expect("a plan");
        for kind in FaultKind::ALL {
            assert!(
                plan.faults.iter().any(|f| f.kind == kind),
                "{kind:?} missing from {:?}",
                plan.faults
            );
        }
        assert!(plan.steps.iter().any(|s| matches!(
            s.action,
            Action::Open {
                reach: Reach::Everyone,
                ..
            }
        )));
        assert!(plan
            .steps
            .iter()
            .any(|s| matches!(s.action, Action::Schedule { .. })));
    }

    #[test]
    fn the_suites_short_run_strikes_every_kind() {
        let plan = plan(&Request {
            seed: "3",
            duration: "100s",
            faults: ALL,
            fault_every: "5s",
            incident_every: "30s",
        })
        .expect("a plan");
        for kind in FaultKind::ALL {
            assert!(
                plan.faults.iter().any(|f| f.kind == kind),
                "{kind:?} missing from {:?}",
                plan.faults
            );
        }
    }

    #[test]
    fn bad_requests_are_refused_with_every_reason() {
        let error = plan(&Request {
            seed: "minus one",
            duration: "10s",
            faults: "kill,meteor",
            fault_every: "0s",
            incident_every: "1s",
        })
        .expect_err("refused");
        let text = error.to_string();
        assert_eq!(error.0.len(), 5, "{text}");
        assert!(text.contains("--seed \"minus one\""), "{text}");
        assert!(text.contains("too short for one fault"), "{text}");
        assert!(text.contains("unknown fault kind \"meteor\""), "{text}");
        assert!(text.contains("--fault-every"), "{text}");
        assert!(text.contains("--incident-every"), "{text}");
        let none = plan(&request("1", "1m", " , ")).expect_err("no kinds");
        assert!(none.to_string().contains("at least one fault kind"));
        let long = plan(&request("1", "2days", ALL)).expect_err("too long");
        assert!(long.to_string().contains("longer than"));
    }

    proptest! {
        #[test]
        fn faults_never_overlap_and_end_before_the_quiet_end(
            seed in any::<u64>(),
            seconds in 30u64..1200,
        ) {
            let plan = plan(&request(&seed.to_string(), &format!("{seconds}s"), ALL)).expect("a plan");
            let end = plan.duration - QUIET_END;
            let mut free_from = WARMUP;
            for fault in &plan.faults {
                prop_assert!(fault.at >= free_from, "{:?}", plan.faults);
                prop_assert!(fault.at + fault.hold <= end);
                prop_assert!(fault.hold <= fault.kind.longest_hold());
                free_from = fault.at + fault.hold;
            }
            prop_assert!(plan.faults.windows(2).all(|w| w[0].at < w[1].at));
        }

        #[test]
        fn every_incident_is_opened_then_updated_then_resolved_before_the_end(
            seed in any::<u64>(),
            seconds in 30u64..1200,
        ) {
            let plan = plan(&request(&seed.to_string(), &format!("{seconds}s"), ALL)).expect("a plan");
            let end = plan.duration - QUIET_END;
            let mut stage = std::collections::BTreeMap::new();
            for step in &plan.steps {
                prop_assert!(step.at <= end);
                match step.action {
                    Action::Open { incident, .. } => {
                        prop_assert!(stage.insert(incident, 1).is_none());
                    }
                    Action::Update { incident } => {
                        prop_assert_eq!(stage.insert(incident, 2), Some(1));
                    }
                    Action::Resolve { incident } => {
                        prop_assert_eq!(stage.insert(incident, 3), Some(2));
                    }
                    Action::Flip { component, .. } => prop_assert!(component < FLIPPING.len()),
                    Action::Schedule { .. } => {}
                }
            }
            prop_assert!(stage.values().all(|s| *s == 3));
            prop_assert!(plan.steps.windows(2).all(|w| w[0].at <= w[1].at));
        }
    }
}
