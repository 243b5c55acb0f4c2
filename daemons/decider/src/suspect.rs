//! Telling a broken probe from a broken target.
//!
//! Per region, the latest result of every check seen within the window
//! (default one minute) is kept. A region is suspect when
//!
//! - its canary fails (the probe says so in its heartbeat), or
//! - it fails at least `share` of at least `min_checks` checks, while
//!   another region with at least `min_checks` checks fails less than that
//!   share: what fails everywhere is the targets, not one probe.
//!
//! It is cleared once its canary passes and its failing share is under
//! half of `share` (or it has too few checks to judge). A suspect region's
//! results are left out of every component's count and reported as a probe
//! problem, never as a customer incident. Counting is incremental, so a
//! result costs O(1).

use std::collections::{BTreeMap, HashMap, VecDeque};

/// When a region is suspect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuspectRules {
    /// Fewest checks with a recent result to judge a region by.
    pub min_checks: u32,
    /// Share of failing checks (0..=1) that makes a region suspect.
    pub share: f64,
    /// How far back a result counts.
    pub window_ms: u64,
}

impl Default for SuspectRules {
    /// At least 50 % of at least 10 checks within a minute.
    fn default() -> Self {
        Self {
            min_checks: 10,
            share: 0.5,
            window_ms: 60_000,
        }
    }
}

/// One region's recent results.
#[derive(Debug, Default)]
struct Region {
    /// Latest result per check: (failing, taken at).
    latest: HashMap<u64, (bool, u64)>,
    /// (taken at, check) in arrival order, for expiry.
    queue: VecDeque<(u64, u64)>,
    failing: u32,
    /// Failing canaries by probe: the error and when the report expires
    /// (a probe that stops reporting does not keep its region suspect).
    canaries: HashMap<String, (String, u64)>,
    suspect: bool,
}

impl Region {
    fn checks(&self) -> u32 {
        self.latest.len() as u32
    }

    fn share(&self) -> f64 {
        if self.latest.is_empty() {
            0.0
        } else {
            f64::from(self.failing) / f64::from(self.checks())
        }
    }
}

/// A region's verdict changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The region.
    pub region: String,
    /// Whether its results are left out now.
    pub suspect: bool,
    /// Why, for people.
    pub reason: String,
    /// Checks with a recent result.
    pub checks: u32,
    /// Of those, failing.
    pub failing: u32,
}

/// Every region's recent results.
#[derive(Debug, Default)]
pub struct Suspects {
    regions: BTreeMap<String, Region>,
}

impl Suspects {
    /// Counts one result of check `check` (any stable hash of page,
    /// component and check) from `region`.
    pub fn observe(&mut self, region: &str, check: u64, failing: bool, at_ms: u64) {
        let r = match self.regions.get_mut(region) {
            Some(r) => r,
            None => self.regions.entry(region.to_owned()).or_default(),
        };
        match r.latest.insert(check, (failing, at_ms)) {
            Some((was_failing, _)) => {
                r.failing = r.failing + u32::from(failing) - u32::from(was_failing);
            }
            None => r.failing += u32::from(failing),
        }
        r.queue.push_back((at_ms, check));
    }

    /// Records one probe's canary in `region`: `Some(error)` while it
    /// fails, until `expires_ms` unless reported again.
    pub fn canary(&mut self, region: &str, probe: &str, failing: Option<String>, expires_ms: u64) {
        let canaries = &mut self.regions.entry(region.to_owned()).or_default().canaries;
        match failing {
            Some(error) => {
                canaries.insert(probe.to_owned(), (error, expires_ms));
            }
            None => {
                canaries.remove(probe);
            }
        }
    }

    /// Whether `region` is suspect now.
    pub fn is_suspect(&self, region: &str) -> bool {
        self.regions.get(region).is_some_and(|r| r.suspect)
    }

    /// The suspect regions.
    pub fn suspect_regions(&self) -> Vec<&str> {
        self.regions
            .iter()
            .filter(|(_, r)| r.suspect)
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// Forgets results older than the window, re-judges every region and
    /// returns the verdicts that changed.
    pub fn judge(&mut self, now_ms: u64, rules: &SuspectRules) -> Vec<Verdict> {
        let horizon = now_ms.saturating_sub(rules.window_ms);
        for region in self.regions.values_mut() {
            region.canaries.retain(|_, (_, expires)| *expires > now_ms);
            while let Some(&(at, check)) = region.queue.front() {
                if at >= horizon {
                    break;
                }
                region.queue.pop_front();
                // Only the check's latest result counts; an older queue
                // entry for it is just dropped.
                if let Some(&(failing, latest_at)) = region.latest.get(&check) {
                    if latest_at == at {
                        region.latest.remove(&check);
                        region.failing -= u32::from(failing);
                    }
                }
            }
        }
        let judged = |r: &Region| r.checks() >= rules.min_checks;
        let healthy_elsewhere = |name: &str, regions: &BTreeMap<String, Region>| {
            regions
                .iter()
                .any(|(other, r)| other != name && judged(r) && r.share() < rules.share)
        };
        let mut verdicts = Vec::new();
        let names: Vec<String> = self.regions.keys().cloned().collect();
        for name in names {
            let r = &self.regions[&name];
            let failing_most = judged(r) && r.share() >= rules.share;
            let canary = r.canaries.iter().min_by_key(|(probe, _)| probe.as_str());
            let (suspect, reason) = if let Some((probe, (error, _))) = canary {
                (true, format!("its canary fails (probe {probe}): {error}"))
            } else if failing_most && healthy_elsewhere(&name, &self.regions) {
                (
                    true,
                    format!(
                        "it fails {} of {} checks while other regions pass them",
                        r.failing,
                        r.checks()
                    ),
                )
            } else if r.suspect && judged(r) && r.share() >= rules.share / 2.0 {
                (
                    true,
                    format!("it still fails {} of {} checks", r.failing, r.checks()),
                )
            } else {
                (
                    false,
                    format!("it fails {} of {} checks", r.failing, r.checks()),
                )
            };
            let (checks, failing) = (r.checks(), r.failing);
            let region = self.regions.get_mut(&name).expect("listed above");
            if region.suspect != suspect {
                region.suspect = suspect;
                verdicts.push(Verdict {
                    region: name,
                    suspect,
                    reason,
                    checks,
                    failing,
                });
            }
        }
        verdicts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: SuspectRules = SuspectRules {
        min_checks: 10,
        share: 0.5,
        window_ms: 60_000,
    };

    fn feed(s: &mut Suspects, region: &str, checks: u64, failing: u64, at: u64) {
        for c in 0..checks {
            s.observe(region, c, c < failing, at);
        }
    }

    #[test]
    fn one_region_failing_everything_is_suspect_and_clears_when_it_recovers() {
        let mut s = Suspects::default();
        feed(&mut s, "eu", 12, 12, 1_000);
        feed(&mut s, "us", 12, 0, 1_000);
        let verdicts = s.judge(1_000, &RULES);
        assert_eq!(verdicts.len(), 1);
        assert!(verdicts[0].suspect && verdicts[0].region == "eu");
        assert!(s.is_suspect("eu") && !s.is_suspect("us"));
        feed(&mut s, "eu", 12, 0, 2_000);
        let verdicts = s.judge(2_000, &RULES);
        assert_eq!(verdicts.len(), 1);
        assert!(!verdicts[0].suspect);
    }

    #[test]
    fn everything_failing_everywhere_is_the_targets_not_the_probes() {
        let mut s = Suspects::default();
        feed(&mut s, "eu", 12, 12, 1_000);
        feed(&mut s, "us", 12, 12, 1_000);
        assert!(s.judge(1_000, &RULES).is_empty());
    }

    #[test]
    fn too_few_checks_are_not_judged() {
        let mut s = Suspects::default();
        feed(&mut s, "eu", 5, 5, 1_000);
        feed(&mut s, "us", 12, 0, 1_000);
        assert!(s.judge(1_000, &RULES).is_empty());
    }

    #[test]
    fn a_failing_canary_is_suspect_at_once() {
        let mut s = Suspects::default();
        s.canary("eu", "p1", Some("connect timed out".into()), 10_000);
        let verdicts = s.judge(1_000, &RULES);
        assert!(verdicts[0].suspect && verdicts[0].reason.contains("canary"));
        // Another probe of the region passing does not clear it.
        s.canary("eu", "p2", None, 10_000);
        assert!(s.judge(1_000, &RULES).is_empty());
        s.canary("eu", "p1", None, 10_000);
        assert!(!s.judge(1_000, &RULES)[0].suspect);
        // A failing report that is not renewed expires.
        s.canary("eu", "p1", Some("down".into()), 2_000);
        assert!(s.judge(1_500, &RULES)[0].suspect);
        assert!(!s.judge(2_500, &RULES)[0].suspect);
    }

    #[test]
    fn old_results_leave_the_window() {
        let mut s = Suspects::default();
        feed(&mut s, "eu", 12, 12, 1_000);
        feed(&mut s, "us", 12, 0, 1_000);
        assert_eq!(s.judge(1_000, &RULES).len(), 1);
        // A minute later nothing from eu is recent: too few checks to judge.
        feed(&mut s, "us", 12, 0, 70_000);
        let verdicts = s.judge(70_000, &RULES);
        assert_eq!(verdicts.len(), 1);
        assert!(!verdicts[0].suspect);
    }
}
