//! Who gets a send: the planner's pure core.
//!
//! A *thread* (an incident, a maintenance window, a component's status)
//! is a list of sends. Each send is a [`Rule`]: its time, the components
//! it is about, and whether it went at once (`after: None`) or closes the
//! batching window of those whose last message was send `k`
//! (`after: Some(k)`). Who got which send is never stored: applying the
//! rules in order to a subscriber gives its last send ([`last_send`]), so a
//! thread stays a few hundred bytes for a million subscribers, and a
//! replay after a crash plans exactly the same recipients.
//!
//! For a new send, each subscriber is [`Verdict::Receives`] (interested,
//! active, and its window is closed or the components are ones it wants at
//! once), [`Verdict::Held`] (interested, but its window is open: a flush of
//! its last send will bring the newest state) or [`Verdict::Outside`].
//! [`plan`] does that for a whole page and picks each recipient's endpoints
//! (every one, or the first allowed one, as the subscriber prefers).

use std::collections::{BTreeMap, BTreeSet};

use beacon_contract::messages::{
    ChannelKind, ComponentStatus, DedupMode, EndpointState, Lane, NoticeKind, NoticeSubject,
};
use beacon_page::config::notifications::SmsImpact;
use beacon_runtime::lease::fnv1a;

/// One endpoint as planning sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberEndpoint {
    /// Channel kind.
    pub kind: ChannelKind,
    /// Whether it gets messages.
    pub state: EndpointState,
    /// Since when.
    pub since_ms: u64,
}

/// One subscriber as planning sees it: components are the page's interned
/// component numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The subscriber id (a ULID).
    pub id: u128,
    /// Components of interest; empty: the whole page.
    pub components: Box<[u16]>,
    /// Components whose news goes at once.
    pub instant: Box<[u16]>,
    /// Every endpoint or the first.
    pub dedup: DedupMode,
    /// Wants the changelog digest.
    pub digest: bool,
    /// Endpoints in order of preference.
    pub endpoints: Box<[MemberEndpoint]>,
}

impl Member {
    /// When its first still-active endpoint became active; `None` when
    /// none is active.
    pub fn active_since(&self) -> Option<u64> {
        self.endpoints
            .iter()
            .filter(|e| e.state == EndpointState::Active)
            .map(|e| e.since_ms)
            .min()
    }

    /// Whether news about `components` concerns it.
    pub fn interested(&self, components: &[u16]) -> bool {
        self.components.is_empty() || intersects(&self.components, components)
    }

    /// Whether it wants news about `components` at once.
    pub fn instant_for(&self, components: &[u16]) -> bool {
        intersects(&self.instant, components)
    }
}

fn intersects(a: &[u16], b: &[u16]) -> bool {
    a.iter().any(|x| b.contains(x))
}

/// One send of a thread, as a rule over subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule<'a> {
    /// When it was planned (Unix milliseconds).
    pub at_ms: u64,
    /// Components it is about.
    pub components: &'a [u16],
    /// `None`: at once; `Some(k)`: the flush of those whose last was send `k`.
    pub after: Option<u32>,
}

/// Where a subscriber stands for a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It gets this send.
    Receives,
    /// It is interested, but its window (opened by send `after`) is open.
    Held {
        /// Its last send.
        after: u32,
    },
    /// Not its news (not interested, not active yet, not its flush).
    Outside,
}

/// Whether `member`, whose last send was `last` (index and time), gets
/// `rule`.
pub fn verdict_after(
    member: &Member,
    rule: &Rule<'_>,
    last: Option<(u32, u64)>,
    window_ms: u64,
) -> Verdict {
    let Some(since) = member.active_since() else {
        return Verdict::Outside;
    };
    if since > rule.at_ms || !member.interested(rule.components) {
        return Verdict::Outside;
    }
    match rule.after {
        None => match last {
            Some((k, at)) if rule.at_ms < at.saturating_add(window_ms) => {
                if member.instant_for(rule.components) {
                    Verdict::Receives
                } else {
                    Verdict::Held { after: k }
                }
            }
            _ => Verdict::Receives,
        },
        Some(k) => match last {
            Some((last, _)) if last == k => Verdict::Receives,
            _ => Verdict::Outside,
        },
    }
}

/// The last send of `sends` that `member` got: its index and time.
pub fn last_send(member: &Member, sends: &[Rule<'_>], window_ms: u64) -> Option<(u32, u64)> {
    let mut last = None;
    for (index, rule) in sends.iter().enumerate() {
        if verdict_after(member, rule, last, window_ms) == Verdict::Receives {
            last = Some((index as u32, rule.at_ms));
        }
    }
    last
}

/// Where `member` stands for `rule`, given the thread's earlier `sends`.
pub fn verdict(member: &Member, sends: &[Rule<'_>], rule: &Rule<'_>, window_ms: u64) -> Verdict {
    verdict_after(member, rule, last_send(member, sends, window_ms), window_ms)
}

/// The endpoints a recipient gets a notice on: its active endpoints whose
/// kind `allowed` admits, in its order; only the first with
/// [`DedupMode::First`].
pub fn endpoints_for(member: &Member, allowed: &dyn Fn(ChannelKind) -> bool) -> Vec<ChannelKind> {
    let mut chosen = Vec::new();
    for endpoint in member.endpoints.iter() {
        if endpoint.state == EndpointState::Active && allowed(endpoint.kind) {
            chosen.push(endpoint.kind);
            if member.dedup == DedupMode::First {
                break;
            }
        }
    }
    chosen
}

/// A send, planned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Recipients per channel, in scan order.
    pub by_channel: BTreeMap<ChannelKind, Vec<u128>>,
    /// Sends whose recipients have news held for their window's end.
    pub held: BTreeSet<u32>,
    /// Subscribers that get it on at least one endpoint.
    pub recipients: usize,
}

impl Plan {
    /// Deliveries in all.
    pub fn deliveries(&self) -> usize {
        self.by_channel.values().map(Vec::len).sum()
    }

    fn add(&mut self, member: &Member, channels: Vec<ChannelKind>) {
        if channels.is_empty() {
            return;
        }
        self.recipients += 1;
        for kind in channels {
            self.by_channel.entry(kind).or_default().push(member.id);
        }
    }
}

/// Plans `rule` after `sends` over every member.
pub fn plan<'m>(
    members: impl IntoIterator<Item = &'m Member>,
    sends: &[Rule<'_>],
    rule: &Rule<'_>,
    window_ms: u64,
    allowed: &dyn Fn(ChannelKind) -> bool,
) -> Plan {
    let mut plan = Plan::default();
    for member in members {
        match verdict(member, sends, rule, window_ms) {
            Verdict::Receives => plan.add(member, endpoints_for(member, allowed)),
            Verdict::Held { after } => {
                plan.held.insert(after);
            }
            Verdict::Outside => {}
        }
    }
    plan
}

/// Plans a changelog digest: every active member that asked for it, by
/// email only.
pub fn plan_digest<'m>(members: impl IntoIterator<Item = &'m Member>, email_offered: bool) -> Plan {
    let mut plan = Plan::default();
    if !email_offered {
        return plan;
    }
    for member in members {
        if member.digest {
            let email = endpoints_for(member, &|kind| kind == ChannelKind::Email);
            plan.add(member, email);
        }
    }
    plan
}

/// Batches needed for `deliveries` at `batch_size` a batch (at least one
/// when there is anything).
pub fn chunk_count(deliveries: usize, batch_size: usize) -> u32 {
    deliveries.div_ceil(batch_size.max(1)) as u32
}

/// The batch a recipient goes into: a hash of its id and the notice, so a
/// replay puts everyone into the same batch whatever else changed.
pub fn chunk_of(id: u128, notice: &str, count: u32) -> u32 {
    let mut bytes = id.to_be_bytes().to_vec();
    bytes.extend_from_slice(notice.as_bytes());
    (fnv1a(&bytes) % u64::from(count.max(1))) as u32
}

/// New and resolved incidents (and confirmations, which someone is
/// waiting for) go first.
pub fn lane_of(kind: NoticeKind) -> Lane {
    match kind {
        NoticeKind::IncidentCreated | NoticeKind::IncidentResolved | NoticeKind::Confirmation => {
            Lane::Urgent
        }
        NoticeKind::IncidentUpdated
        | NoticeKind::MaintenanceScheduled
        | NoticeKind::MaintenanceReminded
        | NoticeKind::MaintenanceStarted
        | NoticeKind::MaintenanceCompleted
        | NoticeKind::ComponentStatus
        | NoticeKind::Digest => Lane::Normal,
    }
}

/// What a notice counts as for `[notifications] sms_impacts`; `None`: never
/// by SMS (digests, confirmations).
pub fn sms_impact(subject: &NoticeSubject) -> Option<SmsImpact> {
    let of_status = |status: ComponentStatus| match status {
        ComponentStatus::MajorOutage => SmsImpact::Major,
        ComponentStatus::PartialOutage | ComponentStatus::DegradedPerformance => SmsImpact::Minor,
        ComponentStatus::Operational | ComponentStatus::UnderMaintenance => SmsImpact::None,
    };
    let rank = |impact: SmsImpact| match impact {
        SmsImpact::None | SmsImpact::Maintenance => 0,
        SmsImpact::Minor => 1,
        SmsImpact::Major => 2,
        SmsImpact::Critical => 3,
    };
    match subject {
        NoticeSubject::Incident { impact, .. } => Some(SmsImpact::of(*impact)),
        NoticeSubject::Maintenance { .. } => Some(SmsImpact::Maintenance),
        // A recovery from a major outage is as much news as the outage.
        NoticeSubject::Component { from, to, .. } => {
            let to = of_status(*to);
            let from = from.map_or(SmsImpact::None, of_status);
            Some(if rank(from) > rank(to) { from } else { to })
        }
        NoticeSubject::Digest { .. } | NoticeSubject::Confirmation => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const API: u16 = 0;
    const DB: u16 = 1;
    const WINDOW: u64 = 15 * 60_000;
    const MIN: u64 = 60_000;

    fn member(id: u128, components: &[u16], instant: &[u16]) -> Member {
        Member {
            id,
            components: components.into(),
            instant: instant.into(),
            dedup: DedupMode::Every,
            digest: false,
            endpoints: vec![MemberEndpoint {
                kind: ChannelKind::Email,
                state: EndpointState::Active,
                since_ms: 0,
            }]
            .into(),
        }
    }

    fn now(at_ms: u64, components: &'static [u16]) -> Rule<'static> {
        Rule {
            at_ms,
            components,
            after: None,
        }
    }

    #[test]
    fn the_first_update_goes_at_once_and_later_ones_wait_for_the_window() {
        let everyone = member(1, &[], &[]);
        let t0 = 1_000 * MIN;
        let first = now(t0, &[API]);
        assert_eq!(verdict(&everyone, &[], &first, WINDOW), Verdict::Receives);
        let second = now(t0 + 5 * MIN, &[API]);
        assert_eq!(
            verdict(&everyone, &[first], &second, WINDOW),
            Verdict::Held { after: 0 }
        );
        // The flush of send 0 at the window's end brings the newest state.
        let flush = Rule {
            at_ms: t0 + WINDOW,
            components: &[API],
            after: Some(0),
        };
        assert_eq!(
            verdict(&everyone, &[first, second], &flush, WINDOW),
            Verdict::Receives
        );
        // The flush opened a new window.
        let third = now(t0 + WINDOW + 2 * MIN, &[API]);
        assert_eq!(
            verdict(&everyone, &[first, second, flush], &third, WINDOW),
            Verdict::Held { after: 2 }
        );
        // Past the window, an update goes at once again.
        let late = now(t0 + 2 * WINDOW + MIN, &[API]);
        assert_eq!(
            verdict(&everyone, &[first, second, flush], &late, WINDOW),
            Verdict::Receives
        );
    }

    #[test]
    fn filters_instant_components_and_late_subscribers() {
        let t0 = 1_000 * MIN;
        let first = now(t0, &[API]);
        let second = now(t0 + MIN, &[API, DB]);
        let table: &[(Member, Verdict, Verdict)] = &[
            // Only db: the first send is not its news, the second goes at once.
            (member(1, &[DB], &[]), Verdict::Outside, Verdict::Receives),
            // Wants api at once: never held for api news.
            (member(2, &[], &[API]), Verdict::Receives, Verdict::Receives),
            // Instant for db only, and the second is also about db.
            (member(3, &[], &[DB]), Verdict::Receives, Verdict::Receives),
            // Nothing special: held.
            (
                member(4, &[API], &[]),
                Verdict::Receives,
                Verdict::Held { after: 0 },
            ),
            // Interested in neither.
            (member(5, &[7], &[]), Verdict::Outside, Verdict::Outside),
        ];
        for (m, want_first, want_second) in table {
            assert_eq!(
                verdict(m, &[], &first, WINDOW),
                *want_first,
                "member {}",
                m.id
            );
            assert_eq!(
                verdict(m, &[first], &second, WINDOW),
                *want_second,
                "member {}",
                m.id
            );
        }
        // A subscriber whose endpoint became active after a send was not
        // in it: its next update goes at once.
        let mut late = member(6, &[], &[]);
        late.endpoints = vec![MemberEndpoint {
            kind: ChannelKind::Email,
            state: EndpointState::Active,
            since_ms: t0 + 1,
        }]
        .into();
        assert_eq!(verdict(&late, &[], &first, WINDOW), Verdict::Outside);
        assert_eq!(verdict(&late, &[first], &second, WINDOW), Verdict::Receives);
        // No active endpoint: nothing.
        let mut pending = member(7, &[], &[]);
        pending.endpoints = vec![MemberEndpoint {
            kind: ChannelKind::Email,
            state: EndpointState::Pending,
            since_ms: 0,
        }]
        .into();
        assert_eq!(verdict(&pending, &[], &first, WINDOW), Verdict::Outside);
    }

    #[test]
    fn a_zero_window_sends_everything_at_once() {
        let m = member(1, &[], &[]);
        let sends = [now(10, &[API]), now(11, &[API])];
        assert_eq!(verdict(&m, &sends, &now(12, &[API]), 0), Verdict::Receives);
    }

    #[test]
    fn dedup_picks_the_first_allowed_endpoint() {
        let mut m = member(1, &[], &[]);
        m.endpoints = vec![
            MemberEndpoint {
                kind: ChannelKind::Sms,
                state: EndpointState::Active,
                since_ms: 0,
            },
            MemberEndpoint {
                kind: ChannelKind::Email,
                state: EndpointState::Active,
                since_ms: 0,
            },
            MemberEndpoint {
                kind: ChannelKind::Slack,
                state: EndpointState::Stopped,
                since_ms: 0,
            },
        ]
        .into();
        let all = |_: ChannelKind| true;
        let no_sms = |k: ChannelKind| k != ChannelKind::Sms;
        assert_eq!(
            endpoints_for(&m, &all),
            [ChannelKind::Sms, ChannelKind::Email]
        );
        m.dedup = DedupMode::First;
        assert_eq!(endpoints_for(&m, &all), [ChannelKind::Sms]);
        // SMS not allowed for this news: the next preference takes it.
        assert_eq!(endpoints_for(&m, &no_sms), [ChannelKind::Email]);
    }

    #[test]
    fn plans_group_by_channel_and_collect_held_sends() {
        let members = [
            member(1, &[], &[]),
            member(2, &[DB], &[]),
            member(3, &[], &[API]),
        ];
        let first = now(0, &[API]);
        let plan1 = plan(&members, &[], &first, WINDOW, &|_| true);
        assert_eq!(plan1.by_channel[&ChannelKind::Email], [1, 3]);
        assert!(plan1.held.is_empty());
        let second = now(MIN, &[API]);
        let plan2 = plan(&members, &[first], &second, WINDOW, &|_| true);
        assert_eq!(plan2.by_channel[&ChannelKind::Email], [3]);
        assert_eq!(plan2.held, BTreeSet::from([0]));
        assert_eq!((plan2.recipients, plan2.deliveries()), (1, 1));
    }

    #[test]
    fn chunks_are_stable_and_spread() {
        let count = chunk_count(10_000, 500);
        assert_eq!(count, 20);
        assert_eq!(chunk_count(0, 500), 0);
        assert_eq!(chunk_count(1, 500), 1);
        let mut sizes = vec![0u32; count as usize];
        for id in 0..10_000u128 {
            let chunk = chunk_of(id * 7_919, "incident-x.0", count);
            assert_eq!(chunk, chunk_of(id * 7_919, "incident-x.0", count));
            sizes[chunk as usize] += 1;
        }
        assert!(sizes.iter().all(|s| (350..650).contains(s)), "{sizes:?}");
    }

    #[test]
    fn lanes_and_sms_impacts() {
        assert_eq!(lane_of(NoticeKind::IncidentCreated), Lane::Urgent);
        assert_eq!(lane_of(NoticeKind::IncidentResolved), Lane::Urgent);
        assert_eq!(lane_of(NoticeKind::IncidentUpdated), Lane::Normal);
        assert_eq!(lane_of(NoticeKind::MaintenanceStarted), Lane::Normal);
        let component = |from, to| NoticeSubject::Component {
            component: beacon_contract::messages::NoticeComponent {
                id: "api".into(),
                name: "API".into(),
                status: None,
            },
            from,
            to,
        };
        assert_eq!(
            sms_impact(&component(
                Some(ComponentStatus::MajorOutage),
                ComponentStatus::Operational
            )),
            Some(SmsImpact::Major)
        );
        assert_eq!(
            sms_impact(&component(
                Some(ComponentStatus::Operational),
                ComponentStatus::DegradedPerformance
            )),
            Some(SmsImpact::Minor)
        );
        assert_eq!(sms_impact(&NoticeSubject::Confirmation), None);
    }

    /// Random threads of updates over random subscribers.
    fn scenario() -> impl Strategy<Value = (Vec<Member>, Vec<(u64, Vec<u16>)>)> {
        let interests = (
            proptest::collection::vec(0u16..3, 0..3),
            proptest::collection::vec(0u16..3, 0..2),
        );
        (
            proptest::collection::vec(interests, 1..12),
            proptest::collection::vec((1u64..40, proptest::collection::vec(0u16..3, 0..3)), 1..12),
        )
            .prop_map(|(members, updates)| {
                let members = members
                    .into_iter()
                    .enumerate()
                    .map(|(i, (components, instant))| member(i as u128, &components, &instant))
                    .collect();
                // Minutes between updates, accumulated into times.
                let mut at = 0;
                let updates = updates
                    .into_iter()
                    .map(|(gap, components)| {
                        at += gap * MIN;
                        (at, components)
                    })
                    .collect();
                (members, updates)
            })
    }

    /// Runs a thread as the planner does: each update at once, flushes at
    /// their due time; returns each member's receive times and the time of
    /// the last update it was interested in.
    fn run(members: &[Member], updates: &[(u64, Vec<u16>)]) -> Vec<(Vec<u64>, Option<u64>)> {
        let mut sends: Vec<(u64, Vec<u16>, Option<u32>)> = Vec::new();
        let mut pending: BTreeMap<u32, (u64, Vec<u16>)> = BTreeMap::new();
        let rules = |sends: &[(u64, Vec<u16>, Option<u32>)]| -> Vec<(u64, Vec<u16>, Option<u32>)> {
            sends.to_vec()
        };
        let mut events: Vec<(u64, Option<Vec<u16>>)> = updates
            .iter()
            .map(|(at, c)| (*at, Some(c.clone())))
            .collect();
        events.sort_by_key(|e| e.0);
        let mut i = 0;
        loop {
            // The next thing: an update, or the earliest due flush.
            let next_flush = pending.iter().map(|(k, (due, _))| (*due, *k)).min();
            let next_update = events.get(i).map(|e| e.0);
            let take_flush = match (next_flush, next_update) {
                (Some((due, _)), Some(at)) => due <= at,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let owned = rules(&sends);
            let borrowed: Vec<Rule<'_>> = owned
                .iter()
                .map(|(at, c, after)| Rule {
                    at_ms: *at,
                    components: c,
                    after: *after,
                })
                .collect();
            let (rule_at, components, after) = if take_flush {
                let (due, k) = next_flush.expect("a flush");
                let (_, components) = pending.remove(&k).expect("pending");
                (due, components, Some(k))
            } else {
                let (at, components) = events[i].clone();
                i += 1;
                (at, components.expect("an update"), None)
            };
            let rule = Rule {
                at_ms: rule_at,
                components: &components,
                after,
            };
            let planned = plan(members, &borrowed, &rule, WINDOW, &|_| true);
            for k in planned.held {
                let due = owned[k as usize].0 + WINDOW;
                let slot = pending.entry(k).or_insert((due, Vec::new()));
                for c in &components {
                    if !slot.1.contains(c) {
                        slot.1.push(*c);
                    }
                }
            }
            sends.push((rule_at, components.clone(), after));
        }
        let owned = sends.clone();
        let borrowed: Vec<Rule<'_>> = owned
            .iter()
            .map(|(at, c, after)| Rule {
                at_ms: *at,
                components: c,
                after: *after,
            })
            .collect();
        members
            .iter()
            .map(|m| {
                let mut got = Vec::new();
                let mut last = None;
                for (index, rule) in borrowed.iter().enumerate() {
                    if verdict_after(m, rule, last, WINDOW) == Verdict::Receives {
                        got.push(rule.at_ms);
                        last = Some((index as u32, rule.at_ms));
                    }
                }
                let interested = updates
                    .iter()
                    .filter(|(_, c)| m.interested(c))
                    .map(|(at, _)| *at)
                    .max();
                (got, interested)
            })
            .collect()
    }

    proptest! {
        /// Nobody hears twice within a window unless they asked for those
        /// components at once, and everyone interested hears of the newest
        /// update, at most one window after it.
        #[test]
        fn windows_hold_but_never_lose_news((members, updates) in scenario()) {
            let outcome = run(&members, &updates);
            for (m, (got, last_interesting)) in members.iter().zip(&outcome) {
                if m.instant.is_empty() {
                    for pair in got.windows(2) {
                        prop_assert!(pair[1] >= pair[0] + WINDOW, "member {} got {:?}", m.id, got);
                    }
                }
                if let Some(last) = last_interesting {
                    let heard = got.iter().any(|t| *t >= *last && *t <= last + WINDOW);
                    prop_assert!(heard, "member {} got {:?}, last news at {}", m.id, got, last);
                }
            }
        }
    }
}
