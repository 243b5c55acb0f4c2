//! The degradation ladder every daemon and the page speak of. Each level
//! is what is still true for users when parts are gone:
//!
//! | level | name | what still works |
//! |---|---|---|
//! | 0 | `full` | everything |
//! | 1 | `origin_degraded` | edges serve cached pages; live updates may fall back to polling; notifications may be delayed; an operator API that cannot write answers read-only |
//! | 2 | `compute_degraded` | a static snapshot, no live updates |
//! | 3 | `emergency` | `beaconctl emergency`'s notice and the DNS TXT record, written by hand |
//!
//! A daemon reports the level it sees (`beacon_<daemon>_degradation_level`)
//! and the page's `summary.json` carries the edge's view in
//! `beacon_degradation`.

use serde::Serialize;

/// One rung of the ladder; higher is worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Everything works.
    Full,
    /// An origin or a provider is failing; users see cached pages.
    OriginDegraded,
    /// The pipeline behind the page is not running; a static snapshot.
    ComputeDegraded,
    /// Only the hand-written emergency notice.
    Emergency,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 4] = [
        Level::Full,
        Level::OriginDegraded,
        Level::ComputeDegraded,
        Level::Emergency,
    ];

    /// The level's number, 0 to 3.
    pub fn number(self) -> u8 {
        match self {
            Level::Full => 0,
            Level::OriginDegraded => 1,
            Level::ComputeDegraded => 2,
            Level::Emergency => 3,
        }
    }

    /// The level's name, as in metrics labels and `summary.json`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Full => "full",
            Level::OriginDegraded => "origin_degraded",
            Level::ComputeDegraded => "compute_degraded",
            Level::Emergency => "emergency",
        }
    }
}

/// What `summary.json` says under `beacon_degradation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageDegradation {
    /// 0 to 3.
    pub level: u8,
    /// The level's name.
    pub state: &'static str,
    /// Whether the page updates live (false from level 2 on).
    pub live_updates: bool,
}

impl PageDegradation {
    /// The object for `level`.
    pub fn at(level: Level) -> PageDegradation {
        PageDegradation {
            level: level.number(),
            state: level.name(),
            live_updates: level < Level::ComputeDegraded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_numbered_alike() {
        for pair in Level::ALL.windows(2) {
            assert!(pair[0] < pair[1]);
            assert_eq!(pair[0].number() + 1, pair[1].number());
        }
        assert_eq!(
            serde_json::to_value(PageDegradation::at(Level::ComputeDegraded)).expect("json"),
            serde_json::json!({"level": 2, "state": "compute_degraded", "live_updates": false})
        );
    }
}
