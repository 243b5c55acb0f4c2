//! One region's view of one check: a pure state machine over its results.
//!
//! Each result is classed as ok, slow (passing, but over the check's
//! `degraded_latency`, or reported degraded by the probe) or down. The
//! tracker concludes `Down`, `Degraded` or `Up` only when a threshold says
//! so, either consecutive results or k of the latest n:
//!
//! | from               | to         | when                                              |
//! |--------------------|------------|---------------------------------------------------|
//! | any                | `Down`     | the failure rule holds for down results           |
//! | `Down`             | `Up`       | the recovery rule holds for passing, and for fast |
//! | `Down`             | `Degraded` | the recovery rule holds for passing, not for fast |
//! | `Unknown`, `Up`    | `Degraded` | the failure rule holds for slow results           |
//! | `Unknown`, `Degraded` | `Up`    | the recovery rule holds for fast results          |
//!
//! A result older than the newest one seen is ignored: redeliveries and
//! retries arrive out of order, and the newest result is the truth.

use beacon_contract::event::EventId;
use beacon_contract::messages::{Outcome, RegionState};
use beacon_page::config::{Check, KOfN};

/// How many result ids a tracker keeps as the evidence of its state.
pub const SAMPLES: usize = 5;

/// What a result says, for the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Passing, in time.
    Ok,
    /// Passing, but slow.
    Slow,
    /// Failing.
    Down,
}

/// How many results a threshold needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// This many in a row.
    Consecutive(u32),
    /// k of the latest n.
    Window(KOfN),
}

/// A check's thresholds, read once from its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// What calls a region down (and degraded, for slow results).
    pub failure: Threshold,
    /// What calls it up again.
    pub recovery: Threshold,
    /// Latency over which a passing result is slow.
    pub degraded_latency_ms: Option<u64>,
}

impl Rules {
    /// The rules of `check`.
    pub fn of(check: &Check) -> Rules {
        Rules {
            failure: check.failure_window.map_or(
                Threshold::Consecutive(check.failure_threshold),
                Threshold::Window,
            ),
            recovery: check.recovery_window.map_or(
                Threshold::Consecutive(check.recovery_threshold),
                Threshold::Window,
            ),
            degraded_latency_ms: check.degraded_latency_ms,
        }
    }

    /// Classes one result.
    pub fn classify(&self, outcome: Outcome, latency_ms: u64) -> Class {
        match outcome {
            Outcome::Down => Class::Down,
            Outcome::Degraded => Class::Slow,
            Outcome::Up if self.degraded_latency_ms.is_some_and(|l| latency_ms > l) => Class::Slow,
            Outcome::Up => Class::Ok,
        }
    }
}

/// The latest results as bits, newest in bit 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Bits {
    down: u64,
    slow: u64,
    len: u8,
}

impl Bits {
    fn push(&mut self, class: Class) {
        self.down = (self.down << 1) | u64::from(class == Class::Down);
        self.slow = (self.slow << 1) | u64::from(class == Class::Slow);
        self.len = self.len.saturating_add(1).min(64);
    }

    /// Among the latest `n`: (down, slow, passing, fast) counts, or `None`
    /// while fewer than `n` results were seen.
    fn counts(&self, n: u32) -> Option<(u32, u32, u32, u32)> {
        if u32::from(self.len) < n {
            return None;
        }
        let mask = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        let down = (self.down & mask).count_ones();
        let slow = (self.slow & mask).count_ones();
        Some((down, slow, n - down, n - down - slow))
    }
}

/// One region's running view of one check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tracker {
    state: Option<RegionState>,
    since_ms: Option<u64>,
    bits: Bits,
    down_run: u32,
    slow_run: u32,
    pass_run: u32,
    fast_run: u32,
    last_seen_ms: Option<u64>,
    last_result: Option<EventId>,
    last_error: Option<String>,
    samples: [Option<EventId>; SAMPLES],
}

/// A tracker's conclusion changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flip {
    /// Before.
    pub from: RegionState,
    /// After.
    pub to: RegionState,
}

impl Tracker {
    /// Applies one result taken at `at_ms`. Returns `None` when the result
    /// is older than the newest one seen (ignored), else whether the
    /// concluded state flipped.
    pub fn observe(
        &mut self,
        class: Class,
        at_ms: u64,
        id: EventId,
        error: Option<&str>,
        rules: &Rules,
    ) -> Option<Option<Flip>> {
        if self.last_seen_ms.is_some_and(|seen| at_ms < seen) {
            return None;
        }
        self.last_seen_ms = Some(at_ms);
        self.last_result = Some(id);
        self.samples.rotate_right(1);
        self.samples[0] = Some(id);
        self.bits.push(class);
        match class {
            Class::Down => {
                self.down_run = self.down_run.saturating_add(1);
                self.slow_run = 0;
                self.pass_run = 0;
                self.fast_run = 0;
                self.last_error = error.map(str::to_owned);
            }
            Class::Slow => {
                self.down_run = 0;
                self.slow_run = self.slow_run.saturating_add(1);
                self.pass_run = self.pass_run.saturating_add(1);
                self.fast_run = 0;
                self.last_error = error.map(str::to_owned);
            }
            Class::Ok => {
                self.down_run = 0;
                self.slow_run = 0;
                self.pass_run = self.pass_run.saturating_add(1);
                self.fast_run = self.fast_run.saturating_add(1);
                self.last_error = None;
            }
        }
        let before = self.state();
        let after = self.conclude(before, rules);
        if after == before {
            return Some(None);
        }
        self.state = Some(after);
        self.since_ms = Some(at_ms);
        Some(Some(Flip {
            from: before,
            to: after,
        }))
    }

    fn holds(&self, threshold: Threshold, run: u32, pick: fn((u32, u32, u32, u32)) -> u32) -> bool {
        match threshold {
            Threshold::Consecutive(n) => run >= n.max(1),
            Threshold::Window(KOfN { k, n }) => self.bits.counts(n).is_some_and(|c| pick(c) >= k),
        }
    }

    fn conclude(&self, now: RegionState, rules: &Rules) -> RegionState {
        let down = self.holds(rules.failure, self.down_run, |c| c.0);
        let slow = self.holds(rules.failure, self.slow_run, |c| c.1);
        let passing = self.holds(rules.recovery, self.pass_run, |c| c.2);
        let fast = self.holds(rules.recovery, self.fast_run, |c| c.3);
        match now {
            _ if down => RegionState::Down,
            RegionState::Down if passing && fast => RegionState::Up,
            RegionState::Down if passing => RegionState::Degraded,
            RegionState::Down => RegionState::Down,
            RegionState::Degraded if fast => RegionState::Up,
            RegionState::Unknown | RegionState::Up if slow => RegionState::Degraded,
            RegionState::Unknown if fast => RegionState::Up,
            other => other,
        }
    }

    /// The concluded state, `Unknown` before any threshold was reached.
    pub fn state(&self) -> RegionState {
        self.state.unwrap_or(RegionState::Unknown)
    }

    /// When the state was entered.
    pub fn since_ms(&self) -> Option<u64> {
        self.since_ms
    }

    /// When the newest result was taken.
    pub fn last_seen_ms(&self) -> Option<u64> {
        self.last_seen_ms
    }

    /// The newest result's id.
    pub fn last_result(&self) -> Option<EventId> {
        self.last_result
    }

    /// The newest failing result's error, while failing or slow.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Failures in a row.
    pub fn consecutive_failures(&self) -> u32 {
        self.down_run
    }

    /// Passing results in a row.
    pub fn consecutive_successes(&self) -> u32 {
        self.pass_run
    }

    /// Ids of the latest results, oldest first.
    pub fn samples(&self) -> Vec<EventId> {
        self.samples.iter().rev().flatten().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use Class::{Down as D, Ok as O, Slow as S};

    fn rules(failure: Threshold, recovery: Threshold) -> Rules {
        Rules {
            failure,
            recovery,
            degraded_latency_ms: Some(500),
        }
    }

    fn run(classes: &[Class], rules: &Rules) -> (Tracker, Vec<RegionState>) {
        let mut tracker = Tracker::default();
        let mut flips = Vec::new();
        for (i, class) in classes.iter().enumerate() {
            if let Some(Some(flip)) = tracker.observe(*class, i as u64, EventId::new(), None, rules)
            {
                flips.push(flip.to);
            }
        }
        (tracker, flips)
    }

    #[test]
    fn consecutive_thresholds() {
        use RegionState::{Degraded, Down, Unknown, Up};
        let r = rules(Threshold::Consecutive(2), Threshold::Consecutive(3));
        let table: &[(&[Class], RegionState)] = &[
            (&[], Unknown),
            (&[D], Unknown),
            (&[D, D], Down),
            (&[D, D, O, O], Down),
            (&[D, D, O, O, O], Up),
            (&[D, D, S, S, S], Degraded),
            (&[D, D, O, S, O], Degraded),
            (&[O, O], Unknown),
            (&[O, O, O], Up),
            (&[O, O, O, D], Up),
            (&[O, O, O, D, O, D], Up),
            (&[O, O, O, D, D], Down),
            (&[O, O, O, S], Up),
            (&[O, O, O, S, S], Degraded),
            (&[O, O, O, S, S, O, O], Degraded),
            (&[O, O, O, S, S, O, O, O], Up),
            (&[S, S], Degraded),
            (&[D, O, D, O, D, O], Unknown),
        ];
        for (classes, want) in table {
            assert_eq!(run(classes, &r).0.state(), *want, "{classes:?}");
        }
    }

    #[test]
    fn k_of_n_windows() {
        use RegionState::{Down, Unknown, Up};
        let r = rules(
            Threshold::Window(KOfN { k: 3, n: 5 }),
            Threshold::Window(KOfN { k: 4, n: 5 }),
        );
        let table: &[(&[Class], RegionState)] = &[
            (&[D, D, D], Unknown),
            (&[D, O, D, O, D], Down),
            (&[O, O, O, O, O], Up),
            (&[O, D, O, D, O], Unknown),
            (&[D, O, D, O, D, O, O], Down),
            (&[D, O, D, O, D, O, O, O], Up),
        ];
        for (classes, want) in table {
            assert_eq!(run(classes, &r).0.state(), *want, "{classes:?}");
        }
    }

    #[test]
    fn an_older_result_is_ignored() {
        let r = rules(Threshold::Consecutive(1), Threshold::Consecutive(1));
        let mut tracker = Tracker::default();
        assert!(tracker
            .observe(D, 10, EventId::new(), Some("x"), &r)
            .is_some());
        assert_eq!(tracker.observe(O, 5, EventId::new(), None, &r), None);
        assert_eq!(tracker.state(), RegionState::Down);
        assert_eq!(tracker.last_error(), Some("x"));
    }

    #[test]
    fn latency_over_the_limit_is_slow() {
        let r = rules(Threshold::Consecutive(1), Threshold::Consecutive(1));
        assert_eq!(r.classify(Outcome::Up, 501), Class::Slow);
        assert_eq!(r.classify(Outcome::Up, 500), Class::Ok);
        assert_eq!(r.classify(Outcome::Degraded, 1), Class::Slow);
        assert_eq!(r.classify(Outcome::Down, 1), Class::Down);
    }

    fn class() -> impl Strategy<Value = Class> {
        prop_oneof![Just(O), Just(S), Just(D)]
    }

    proptest! {
        /// No state change happens without its threshold: every flip to
        /// down is preceded by `failure` failures in a row, every flip to
        /// up by `recovery` fast passes in a row.
        #[test]
        fn no_transition_without_its_threshold(
            failure in 1u32..5,
            recovery in 1u32..5,
            classes in proptest::collection::vec(class(), 0..60),
        ) {
            let r = rules(Threshold::Consecutive(failure), Threshold::Consecutive(recovery));
            let mut tracker = Tracker::default();
            for (i, c) in classes.iter().enumerate() {
                let flip = tracker.observe(*c, i as u64, EventId::new(), None, &r).flatten();
                if let Some(flip) = flip {
                    let tail = &classes[..=i];
                    let run = |pred: &dyn Fn(&Class) -> bool| tail.iter().rev().take_while(|c| pred(c)).count() as u32;
                    match flip.to {
                        RegionState::Down => prop_assert!(run(&|c| *c == D) >= failure),
                        RegionState::Up => prop_assert!(run(&|c| *c == O) >= recovery),
                        RegionState::Degraded => prop_assert!(
                            run(&|c| *c == S) >= failure || run(&|c| *c != D) >= recovery
                        ),
                        _ => prop_assert!(false, "flipped to {:?}", flip.to),
                    }
                }
            }
        }

        /// Alternating results never settle a region (the component's
        /// flap detection sees it as no decision, not as flip-flop).
        #[test]
        fn alternating_results_never_flip_with_thresholds_of_two(n in 1usize..40) {
            let r = rules(Threshold::Consecutive(2), Threshold::Consecutive(2));
            let classes: Vec<Class> = (0..n).map(|i| if i % 2 == 0 { D } else { O }).collect();
            let (_, flips) = run(&classes, &r);
            prop_assert!(flips.is_empty(), "{flips:?}");
        }
    }
}
