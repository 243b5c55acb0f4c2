//! The invariants a chaos run must keep, checked over what the run read
//! back from the streams, KV, ClickHouse and the receivers. Pure: the run
//! gathers the facts, these functions judge them.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

/// Examples kept per broken invariant.
const EXAMPLES: usize = 5;

/// One invariant's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// What it promises.
    pub name: &'static str,
    /// Whether it held.
    pub held: bool,
    /// Cases checked.
    pub checked: u64,
    /// Cases that broke it.
    pub broken: u64,
    /// The first few broken cases.
    pub examples: Vec<String>,
}

impl Verdict {
    /// A verdict with nothing checked yet.
    pub fn new(name: &'static str) -> Verdict {
        Verdict {
            name,
            held: true,
            checked: 0,
            broken: 0,
            examples: Vec::new(),
        }
    }

    /// Counts `cases` that held.
    pub fn held_by(&mut self, cases: u64) {
        self.checked += cases;
    }

    /// Checks one case; `example` says what broke.
    pub fn case(&mut self, ok: bool, example: impl FnOnce() -> String) {
        self.checked += 1;
        if !ok {
            self.held = false;
            self.broken += 1;
            if self.examples.len() < EXAMPLES {
                self.examples.push(example());
            }
        }
    }
}

/// One STATUS event, as the checker needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEvent {
    /// Component.
    pub component: String,
    /// Status before (`None`: its first decision).
    pub from: Option<String>,
    /// Status after.
    pub to: String,
    /// Envelope id.
    pub id: String,
}

/// Every component's STATUS events form one chain: each starts where the
/// one before ended and changes something, so no change was published twice
/// and none is missing between two others; and KV `status` shows each
/// component where its chain ends.
pub fn status_chain(events: &[StatusEvent], kv: &BTreeMap<String, String>) -> (Verdict, Verdict) {
    let mut chain = Verdict::new("every status change has exactly one STATUS event");
    let mut last: BTreeMap<&str, &StatusEvent> = BTreeMap::new();
    for event in events {
        let previous = last.get(event.component.as_str()).copied();
        let ok = match previous {
            None => true,
            Some(before) => {
                event.from.as_deref() == Some(before.to.as_str())
                    && event.from.as_deref() != Some(event.to.as_str())
            }
        };
        chain.case(ok, || {
            format!(
                "{}: event {} goes {:?} -> {} after event {} ended at {}",
                event.component,
                event.id,
                event.from,
                event.to,
                previous.map_or("-", |p| p.id.as_str()),
                previous.map_or("-", |p| p.to.as_str()),
            )
        });
        last.insert(&event.component, event);
    }
    let mut agrees = Verdict::new("KV status agrees with the last STATUS event");
    let components: HashSet<&str> = last
        .keys()
        .copied()
        .chain(kv.keys().map(String::as_str))
        .collect();
    let mut components: Vec<&str> = components.into_iter().collect();
    components.sort_unstable();
    for component in components {
        let stream = last.get(component).map(|e| e.to.as_str());
        let stored = kv.get(component).map(String::as_str);
        agrees.case(stream == stored, || {
            format!("{component}: STATUS ends at {stream:?}, KV says {stored:?}")
        });
    }
    (chain, agrees)
}

/// Each component ends where the evidence and the operators left it.
pub fn final_status(expected: &BTreeMap<String, String>, kv: &BTreeMap<String, String>) -> Verdict {
    let mut verdict = Verdict::new("every component ends at the status its evidence gives");
    for (component, want) in expected {
        let got = kv.get(component);
        verdict.case(got == Some(want), || {
            format!("{component}: expected {want}, KV says {got:?}")
        });
    }
    verdict
}

/// Every id of `what` (e.g. `health result`) in `wanted` is in `present`.
pub fn all_present<'a>(
    name: &'static str,
    what: &str,
    wanted: impl IntoIterator<Item = &'a str>,
    present: &HashSet<String>,
) -> Verdict {
    let mut verdict = Verdict::new(name);
    for id in wanted {
        verdict.case(present.contains(id), || format!("{what} {id} has no row"));
    }
    verdict
}

/// A subscriber as the checker knows it from the run's own records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follower {
    /// Subscriber id.
    pub id: String,
    /// Components followed; empty: the whole page.
    pub components: Vec<String>,
    /// Its one endpoint's channel (`email`, `sms`, `webhook`, `slack`, `teams`).
    pub channel: &'static str,
}

/// A thread of notices the run caused through acknowledged writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// `incident-{id}` or `maintenance-{id}`.
    pub thread: String,
    /// Components it is about.
    pub components: Vec<String>,
    /// Whether SMS may carry it.
    pub sms: bool,
    /// Notices at least (acknowledged writes that notify).
    pub at_least: u32,
    /// Notices at most (those plus writes whose answer never came).
    pub at_most: u32,
}

impl Expected {
    /// Whether `follower` should get this thread's notices.
    pub fn reaches(&self, follower: &Follower) -> bool {
        let interested = follower.components.is_empty()
            || follower
                .components
                .iter()
                .any(|c| self.components.contains(c));
        interested && (follower.channel != "sms" || self.sms)
    }
}

/// What the receivers show about the notices.
#[derive(Debug, Clone, PartialEq)]
pub struct Deliveries {
    /// Every eligible subscriber got every notice at least once.
    pub complete: Verdict,
    /// Nobody got a notice they should not have (or more notices than writes).
    pub wanted: Verdict,
    /// Per channel: deliveries received and those that repeated a key.
    pub per_channel: BTreeMap<String, ChannelDuplicates>,
}

/// Duplicates on one channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChannelDuplicates {
    /// Deliveries received, repeats included.
    pub received: u64,
    /// Distinct idempotency keys.
    pub distinct: u64,
    /// Repeats of a key already received.
    pub duplicates: u64,
    /// Repeats per 100,000 distinct deliveries.
    pub per_100k: f64,
}

/// Splits `{thread}.{send}:{subscriber}:{channel}`.
fn split_key(key: &str) -> Option<(&str, &str, &str)> {
    let mut parts = key.rsplitn(3, ':');
    let channel = parts.next()?;
    let subscriber = parts.next()?;
    let notice = parts.next()?;
    let (thread, _send) = notice.rsplit_once('.')?;
    Some((thread, subscriber, channel))
}

/// The deliveries an eligible follower must have at least, over all threads.
pub fn deliveries_due(followers: &[Follower], expected: &[Expected]) -> u64 {
    let mut due = 0u64;
    for thread in expected {
        let reached = followers.iter().filter(|f| thread.reaches(f)).count() as u64;
        due += reached * u64::from(thread.at_least);
    }
    due
}

/// Judges what the receivers got against what the run caused.
pub fn deliveries(
    followers: &[Follower],
    expected: &[Expected],
    received: &HashMap<String, u32>,
) -> Deliveries {
    let mut per_channel: BTreeMap<String, ChannelDuplicates> = BTreeMap::new();
    // Distinct notices per (thread, subscriber, channel).
    let mut got: HashMap<(&str, &str, &str), u32> = HashMap::new();
    let mut wanted = Verdict::new("nobody gets a notice they should not");
    for (key, times) in received {
        let Some((thread, subscriber, channel)) = split_key(key) else {
            wanted.case(false, || {
                format!("a delivery with an unreadable key {key:?}")
            });
            continue;
        };
        let figures = per_channel.entry(channel.to_owned()).or_default();
        figures.received += u64::from(*times);
        figures.distinct += 1;
        figures.duplicates += u64::from(times.saturating_sub(1));
        *got.entry((thread, subscriber, channel)).or_default() += 1;
    }
    for figures in per_channel.values_mut() {
        figures.per_100k = if figures.distinct == 0 {
            0.0
        } else {
            (figures.duplicates as f64 * 100_000.0 / figures.distinct as f64 * 100.0).round()
                / 100.0
        };
    }
    let mut complete = Verdict::new("every eligible subscriber gets every notice at least once");
    for thread in expected {
        for follower in followers {
            let n = got
                .remove(&(
                    thread.thread.as_str(),
                    follower.id.as_str(),
                    follower.channel,
                ))
                .unwrap_or(0);
            if thread.reaches(follower) {
                complete.case(n >= thread.at_least, || {
                    format!(
                        "{} by {} got {n} of {} notices of {}",
                        follower.id, follower.channel, thread.at_least, thread.thread
                    )
                });
                wanted.case(n <= thread.at_most, || {
                    format!(
                        "{} by {} got {n} distinct notices of {}, more than the {} writes",
                        follower.id, follower.channel, thread.thread, thread.at_most
                    )
                });
            } else {
                wanted.case(n == 0, || {
                    format!(
                        "{} by {} got {n} notices of {}, which it does not follow",
                        follower.id, follower.channel, thread.thread
                    )
                });
            }
        }
    }
    // Anything left is a thread or a subscriber the run never caused.
    let mut left: Vec<_> = got.into_iter().collect();
    left.sort_unstable();
    for ((thread, subscriber, channel), n) in left {
        wanted.case(false, || {
            format!("{subscriber} by {channel} got {n} notices of {thread}, which no write caused")
        });
    }
    Deliveries {
        complete,
        wanted,
        per_channel,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(component: &str, from: Option<&str>, to: &str, id: &str) -> StatusEvent {
        StatusEvent {
            component: component.into(),
            from: from.map(str::to_owned),
            to: to.into(),
            id: id.into(),
        }
    }

    fn kv(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_status_change_published_twice_or_skipped_breaks_the_chain() {
        let good = [
            event("f1", None, "operational", "a"),
            event("f1", Some("operational"), "major_outage", "b"),
            event("f2", None, "operational", "c"),
            event("f1", Some("major_outage"), "operational", "d"),
        ];
        let (chain, agrees) =
            status_chain(&good, &kv(&[("f1", "operational"), ("f2", "operational")]));
        assert!(chain.held && agrees.held, "{chain:?} {agrees:?}");
        assert_eq!(chain.checked, 4);

        let doubled = [
            event("f1", None, "operational", "a"),
            event("f1", Some("operational"), "major_outage", "b"),
            event("f1", Some("operational"), "major_outage", "b2"),
        ];
        let (chain, _) = status_chain(&doubled, &kv(&[("f1", "major_outage")]));
        assert_eq!(chain.broken, 1);
        assert!(chain.examples[0].contains("b2"), "{:?}", chain.examples);

        let skipped = [
            event("f1", None, "operational", "a"),
            event("f1", Some("major_outage"), "operational", "c"),
        ];
        assert!(!status_chain(&skipped, &kv(&[("f1", "operational")])).0.held);

        let (_, agrees) =
            status_chain(&good, &kv(&[("f1", "major_outage"), ("f2", "operational")]));
        assert_eq!(agrees.broken, 1);
        let (_, agrees) = status_chain(
            &good,
            &kv(&[
                ("f1", "operational"),
                ("f2", "operational"),
                ("f3", "operational"),
            ]),
        );
        assert_eq!(agrees.broken, 1, "a KV record with no STATUS event");
    }

    fn followers() -> Vec<Follower> {
        vec![
            Follower {
                id: "big1".into(),
                components: vec!["core".into()],
                channel: "email",
            },
            Follower {
                id: "big2".into(),
                components: vec!["core".into()],
                channel: "sms",
            },
            Follower {
                id: "few1".into(),
                components: vec![],
                channel: "webhook",
            },
            Follower {
                id: "few2".into(),
                components: vec!["side".into()],
                channel: "sms",
            },
        ]
    }

    fn threads() -> Vec<Expected> {
        vec![
            Expected {
                thread: "incident-A".into(),
                components: vec!["core".into()],
                sms: true,
                at_least: 2,
                at_most: 2,
            },
            Expected {
                thread: "maintenance-M".into(),
                components: vec!["side".into()],
                sms: false,
                at_least: 1,
                at_most: 1,
            },
        ]
    }

    fn received(keys: &[(&str, u32)]) -> HashMap<String, u32> {
        keys.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    #[test]
    fn every_eligible_subscriber_must_get_every_notice_and_nobody_else_any() {
        let all = received(&[
            ("incident-A.0:big1:email", 1),
            ("incident-A.1:big1:email", 2),
            ("incident-A.0:big2:sms", 1),
            ("incident-A.1:big2:sms", 1),
            ("incident-A.0:few1:webhook", 1),
            ("incident-A.1:few1:webhook", 1),
            ("maintenance-M.0:few1:webhook", 1),
        ]);
        assert_eq!(deliveries_due(&followers(), &threads()), 7);
        let judged = deliveries(&followers(), &threads(), &all);
        assert!(judged.complete.held && judged.wanted.held, "{judged:?}");
        assert_eq!(judged.per_channel["email"].duplicates, 1);
        assert_eq!(judged.per_channel["email"].per_100k, 50_000.0);

        let mut missing = all.clone();
        missing.remove("incident-A.1:big2:sms");
        let judged = deliveries(&followers(), &threads(), &missing);
        assert_eq!(judged.complete.broken, 1);
        assert!(judged.complete.examples[0].contains("big2"));

        let mut unwanted = all.clone();
        unwanted.insert("maintenance-M.0:few2:sms".into(), 1);
        unwanted.insert("incident-A.2:big1:email".into(), 1);
        unwanted.insert("component-f1.0:few1:webhook".into(), 1);
        let judged = deliveries(&followers(), &threads(), &unwanted);
        assert!(judged.complete.held);
        assert_eq!(judged.wanted.broken, 3, "{:?}", judged.wanted.examples);
    }
}
