//! Hybrid logical clock timestamps.
//!
//! Every event carries an HLC timestamp so that state folded from events
//! (last-writer-wins registers) orders the same way in every region, even
//! when wall clocks disagree a little. The timestamp is physical milliseconds
//! since the Unix epoch plus a logical counter that breaks ties and keeps the
//! clock monotonic when the wall clock steps back.
//!
//! # Skew
//!
//! A clock that runs ahead (a region whose wall clock is 30 s fast) must not
//! drag every other clock with it, nor let its writes win for good over
//! later ones. Two rules bound it:
//!
//! - [`HlcClock::observe`] follows a remote timestamp at most
//!   [`MAX_AHEAD_MS`] past the local wall clock; a remote time further
//!   ahead is clamped there (and reported), so one bad clock moves the
//!   others by a bounded amount.
//! - A write that changes state it has read is stamped with
//!   [`HlcClock::after`] the newest timestamp of that state, however far
//!   ahead it is. A later write that saw an earlier one therefore always
//!   orders after it; only writes that did not see each other (two sides of
//!   a partition) are ordered by their clocks, and a fast clock wins those
//!   only until the next write that saw it.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One HLC timestamp. Orders by wall time, then by the logical counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch.
    pub wall_ms: u64,
    /// Tie-breaker for events within the same millisecond.
    pub logical: u32,
}

impl Hlc {
    /// A timestamp from its parts.
    pub const fn new(wall_ms: u64, logical: u32) -> Self {
        Self { wall_ms, logical }
    }
}

/// Text form: `{wall_ms:013}-{logical:05}`, e.g. `1732233000000-00000`.
/// Fixed width, so the strings sort the same way the timestamps do.
impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:013}-{:05}", self.wall_ms, self.logical)
    }
}

/// Why a string is not an HLC timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid HLC timestamp {0:?}: expected WALLMS-LOGICAL, e.g. 1732233000000-00000")]
pub struct ParseHlcError(pub String);

impl FromStr for Hlc {
    type Err = ParseHlcError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseHlcError(s.to_owned());
        let (wall, logical) = s.split_once('-').ok_or_else(bad)?;
        Ok(Self {
            wall_ms: wall.parse().map_err(|_| bad())?,
            logical: logical.parse().map_err(|_| bad())?,
        })
    }
}

impl Serialize for Hlc {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hlc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::event::parse_text(deserializer)
    }
}

impl JsonSchema for Hlc {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Hlc".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]{13,}-[0-9]{5,}$",
            "description": "Hybrid logical clock: wall milliseconds since the Unix epoch, '-', logical counter"
        })
    }
}

/// How far past the local wall clock [`HlcClock::observe`] follows a
/// remote timestamp: further ahead is clamped to this.
pub const MAX_AHEAD_MS: u64 = 60_000;

/// A clock handing out strictly increasing HLC timestamps.
///
/// One per process; pass it by reference. It is a plain value rather than a
/// global so tests can drive it with their own wall clock.
#[derive(Debug, Default)]
pub struct HlcClock {
    last: Mutex<Hlc>,
}

impl HlcClock {
    /// A clock that has not issued anything yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next timestamp for a local event, read against the system clock.
    pub fn now(&self) -> Hlc {
        self.tick(wall_clock_ms())
    }

    /// The next timestamp for a local event, given the wall clock reading.
    pub fn tick(&self, wall_ms: u64) -> Hlc {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let next = if wall_ms > last.wall_ms {
            Hlc::new(wall_ms, 0)
        } else {
            Hlc::new(last.wall_ms, last.logical.saturating_add(1))
        };
        *last = next;
        next
    }

    /// Merges a timestamp seen on a remote event so that later local events
    /// order after it, as the HLC algorithm requires; a remote time more
    /// than [`MAX_AHEAD_MS`] past `wall_ms` is followed only that far.
    pub fn observe(&self, remote: Hlc, wall_ms: u64) -> Observed {
        let limit = wall_ms.saturating_add(MAX_AHEAD_MS);
        let clamped = remote.wall_ms > limit;
        let remote = if clamped { Hlc::new(limit, 0) } else { remote };
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let wall = wall_ms.max(last.wall_ms).max(remote.wall_ms);
        let logical = if wall == last.wall_ms && wall == remote.wall_ms {
            last.logical.max(remote.logical).saturating_add(1)
        } else if wall == last.wall_ms {
            last.logical.saturating_add(1)
        } else if wall == remote.wall_ms {
            remote.logical.saturating_add(1)
        } else {
            0
        };
        *last = Hlc::new(wall, logical);
        Observed {
            now: *last,
            clamped,
        }
    }

    /// The timestamp of a local write that changes state whose newest
    /// event is stamped `seen`: the next tick, or just after `seen` when
    /// that is later (its writer's clock runs ahead). The clock itself
    /// does not jump: only this write orders after what it read.
    pub fn after(&self, seen: Hlc, wall_ms: u64) -> Hlc {
        let now = self.tick(wall_ms);
        if now > seen {
            now
        } else {
            Hlc::new(seen.wall_ms, seen.logical.saturating_add(1))
        }
    }
}

/// What [`HlcClock::observe`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// The clock after the merge.
    pub now: Hlc,
    /// The remote time was too far ahead and was followed only to
    /// [`MAX_AHEAD_MS`] past the wall clock.
    pub clamped: bool,
}

/// Milliseconds since the Unix epoch by the system clock (0 if it is before 1970).
pub fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_form_round_trips_and_sorts() {
        let a = Hlc::new(1_732_233_000_000, 7);
        assert_eq!(a.to_string(), "1732233000000-00007");
        assert_eq!("1732233000000-00007".parse::<Hlc>(), Ok(a));
        assert!("nope".parse::<Hlc>().is_err());
        assert!(Hlc::new(5, 99).to_string() < Hlc::new(6, 0).to_string());
    }

    #[test]
    fn clock_stays_monotonic_when_the_wall_clock_steps_back() {
        let clock = HlcClock::new();
        let a = clock.tick(1000);
        let b = clock.tick(900);
        let c = clock.tick(1000);
        assert!(a < b && b < c, "{a} {b} {c}");
    }

    #[test]
    fn observing_a_remote_future_timestamp_moves_the_clock_past_it() {
        let clock = HlcClock::new();
        let remote = Hlc::new(5000, 3);
        let merged = clock.observe(remote, 1000);
        assert!(merged.now > remote && !merged.clamped);
        assert!(clock.tick(1000) > merged.now);
    }

    #[test]
    fn a_remote_time_too_far_ahead_moves_the_clock_only_to_the_bound() {
        let clock = HlcClock::new();
        let wall = 1_000_000;
        let far = Hlc::new(wall + 3_600_000, 0);
        let merged = clock.observe(far, wall);
        assert!(merged.clamped);
        assert_eq!(merged.now.wall_ms, wall + MAX_AHEAD_MS);
        assert!(clock.tick(wall) < far);
        // Thirty seconds ahead is within the bound: followed.
        let skewed = Hlc::new(wall + 30_000, 4);
        let merged = HlcClock::new().observe(skewed, wall);
        assert!(!merged.clamped && merged.now > skewed);
    }

    #[test]
    fn a_write_after_state_from_a_fast_clock_orders_after_it_without_moving_the_clock() {
        let clock = HlcClock::new();
        let wall = 1_000_000;
        // The state was written by a clock 30 s (or a day) ahead.
        for ahead in [30_000, 86_400_000] {
            let seen = Hlc::new(wall + ahead, 2);
            let stamp = clock.after(seen, wall);
            assert!(stamp > seen, "{stamp} after {seen}");
            assert!(clock.tick(wall) < seen, "the clock jumped");
        }
        // State from a slower clock: the write's own tick.
        let stamp = clock.after(Hlc::new(wall - 5_000, 0), wall);
        assert!(stamp.wall_ms >= wall);
    }

    proptest! {
        #[test]
        fn ticks_strictly_increase(walls in proptest::collection::vec(0u64..10_000, 1..200)) {
            let clock = HlcClock::new();
            let mut previous = None;
            for wall in walls {
                let now = clock.tick(wall);
                if let Some(p) = previous { prop_assert!(now > p); }
                previous = Some(now);
            }
        }

        #[test]
        fn text_order_matches_value_order(a in 0u64..10_000_000_000_000, la in 0u32..99_999,
                                          b in 0u64..10_000_000_000_000, lb in 0u32..99_999) {
            let (x, y) = (Hlc::new(a, la), Hlc::new(b, lb));
            prop_assert_eq!(x.cmp(&y), x.to_string().cmp(&y.to_string()));
        }
    }
}
