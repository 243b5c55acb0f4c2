//! What the notifier knows of pages and subscribers, in memory, kept up to
//! date by following KV `config`, `subscribers` and `suppressions`.
//!
//! - [`Pages`]: every page's validated config.
//! - [`Subscribers`]: every subscriber, per page, in a compact form that
//!   holds a million per page: ids as 128-bit ULIDs in a `BTreeMap` (so
//!   listing in id order is cheap), component filters as numbers interned
//!   per page, planning data ([`Member`]) next to the addresses and
//!   pending confirmations. A hash of each normalized address finds
//!   duplicates, STOP replies and erasures.
//! - [`Suppressions`]: the keyed hashes of erased addresses.
//!
//! Each is behind one lock; the planner scans a page under a read lock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use beacon_contract::messages::{
    ChannelKind, EndpointState, PendingConfirmation, Subscriber, SubscriberChannel,
    SubscriberEndpoint,
};
use beacon_page::config::PageConfig;
use beacon_runtime::lease::fnv1a;
use ulid::Ulid;

use crate::addresses::normalize;
use crate::planner::plan::{Member, MemberEndpoint};

/// Page configs by page id.
#[derive(Debug, Clone, Default)]
pub struct Pages {
    inner: Arc<RwLock<HashMap<String, Arc<PageConfig>>>>,
}

impl Pages {
    /// The page's config.
    pub fn get(&self, page: &str) -> Option<Arc<PageConfig>> {
        read(&self.inner).get(page).cloned()
    }

    /// Every page id.
    pub fn ids(&self) -> Vec<String> {
        read(&self.inner).keys().cloned().collect()
    }

    /// Every page.
    pub fn all(&self) -> Vec<Arc<PageConfig>> {
        read(&self.inner).values().cloned().collect()
    }

    /// Sets or removes a page.
    pub fn set(&self, page: &str, config: Option<PageConfig>) {
        let mut pages = write(&self.inner);
        match config {
            Some(config) => {
                pages.insert(page.to_owned(), Arc::new(config));
            }
            None => {
                pages.remove(page);
            }
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

/// Parses a subscriber id (a ULID, any case).
pub fn parse_id(id: &str) -> Option<u128> {
    Ulid::from_string(&id.to_ascii_uppercase())
        .ok()
        .map(u128::from)
}

/// The wire form of a subscriber id: a lowercase ULID.
pub fn format_id(id: u128) -> String {
    Ulid::from(id).to_string().to_ascii_lowercase()
}

/// A fresh subscriber id.
pub fn new_id() -> String {
    format_id(u128::from(Ulid::new()))
}

/// The hash an address is found by.
fn address_hash(kind: ChannelKind, address: &str) -> u64 {
    let normal = normalize(kind, address);
    fnv1a(normal.as_bytes()) ^ (kind as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// One subscriber, compact.
#[derive(Debug, Clone)]
struct Entry {
    member: Member,
    created_at_ms: u64,
    revision: u64,
    addresses: Box<[Box<str>]>,
    confirmations: Box<[Option<PendingConfirmation>]>,
}

/// Numbers for a page's component ids.
#[derive(Debug, Default)]
struct Interner {
    ids: Vec<String>,
    numbers: HashMap<String, u16>,
}

impl Interner {
    fn number(&mut self, id: &str) -> u16 {
        if let Some(n) = self.numbers.get(id) {
            return *n;
        }
        let n = self.ids.len().min(u16::MAX as usize) as u16;
        self.ids.push(id.to_owned());
        self.numbers.insert(id.to_owned(), n);
        n
    }

    fn known(&self, id: &str) -> Option<u16> {
        self.numbers.get(id).copied()
    }

    fn name(&self, n: u16) -> String {
        self.ids.get(n as usize).cloned().unwrap_or_default()
    }
}

#[derive(Debug, Default)]
struct PageSubscribers {
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    by_id: BTreeMap<u128, u32>,
    by_address: HashMap<u64, Vec<u32>>,
    components: Interner,
}

impl PageSubscribers {
    fn remove(&mut self, id: u128) -> Option<Entry> {
        let slot = self.by_id.remove(&id)?;
        let entry = self.slots.get_mut(slot as usize)?.take()?;
        for (endpoint, address) in entry.member.endpoints.iter().zip(entry.addresses.iter()) {
            let hash = address_hash(endpoint.kind, address);
            if let Some(slots) = self.by_address.get_mut(&hash) {
                slots.retain(|s| *s != slot);
                if slots.is_empty() {
                    self.by_address.remove(&hash);
                }
            }
        }
        self.free.push(slot);
        Some(entry)
    }

    fn insert(&mut self, entry: Entry) {
        let id = entry.member.id;
        self.remove(id);
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        for (endpoint, address) in entry.member.endpoints.iter().zip(entry.addresses.iter()) {
            self.by_address
                .entry(address_hash(endpoint.kind, address))
                .or_default()
                .push(slot);
        }
        self.slots[slot as usize] = Some(entry);
        self.by_id.insert(id, slot);
    }

    fn entry(&self, id: u128) -> Option<&Entry> {
        let slot = *self.by_id.get(&id)?;
        self.slots.get(slot as usize)?.as_ref()
    }

    fn record(&self, page: &str, entry: &Entry) -> Subscriber {
        Subscriber {
            page: page.to_owned(),
            subscriber: format_id(entry.member.id),
            endpoints: entry
                .member
                .endpoints
                .iter()
                .zip(entry.addresses.iter())
                .zip(entry.confirmations.iter())
                .map(|((e, address), confirmation)| SubscriberEndpoint {
                    channel: SubscriberChannel::new(e.kind, address.to_string()),
                    state: e.state,
                    since_ms: e.since_ms,
                    confirmation: confirmation.clone(),
                })
                .collect(),
            components: entry
                .member
                .components
                .iter()
                .map(|n| self.components.name(*n))
                .collect(),
            instant: entry
                .member
                .instant
                .iter()
                .map(|n| self.components.name(*n))
                .collect(),
            dedup: entry.member.dedup,
            digest: entry.member.digest,
            created_at_ms: entry.created_at_ms,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    pages: HashMap<String, PageSubscribers>,
    count: usize,
}

/// One endpoint of one subscriber, as a sender needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The address, phone number or URL.
    pub address: String,
    /// Whether it gets messages.
    pub state: EndpointState,
    /// The double opt-in in progress.
    pub confirmation: Option<PendingConfirmation>,
}

/// Every subscriber of every page.
#[derive(Debug, Clone, Default)]
pub struct Subscribers {
    inner: Arc<RwLock<Inner>>,
}

impl Subscribers {
    /// Stores `subscriber` as the record at `revision`.
    pub fn put(&self, subscriber: &Subscriber, revision: u64) {
        let Some(id) = parse_id(&subscriber.subscriber) else {
            tracing::warn!(page = %subscriber.page, "Subscriber id is not a ULID; ignored.");
            return;
        };
        let mut inner = write(&self.inner);
        let page = inner.pages.entry(subscriber.page.clone()).or_default();
        let components = subscriber
            .components
            .iter()
            .map(|c| page.components.number(c))
            .collect();
        let instant = subscriber
            .instant
            .iter()
            .map(|c| page.components.number(c))
            .collect();
        let entry = Entry {
            member: Member {
                id,
                components,
                instant,
                dedup: subscriber.dedup,
                digest: subscriber.digest,
                endpoints: subscriber
                    .endpoints
                    .iter()
                    .map(|e| MemberEndpoint {
                        kind: e.channel.kind(),
                        state: e.state,
                        since_ms: e.since_ms,
                    })
                    .collect(),
            },
            created_at_ms: subscriber.created_at_ms,
            revision,
            addresses: subscriber
                .endpoints
                .iter()
                .map(|e| Box::from(e.channel.address()))
                .collect(),
            confirmations: subscriber
                .endpoints
                .iter()
                .map(|e| e.confirmation.clone())
                .collect(),
        };
        let existed = page.by_id.contains_key(&id);
        page.insert(entry);
        if !existed {
            inner.count += 1;
        }
    }

    /// Forgets a subscriber.
    pub fn remove(&self, page: &str, subscriber: &str) {
        let Some(id) = parse_id(subscriber) else {
            return;
        };
        let mut inner = write(&self.inner);
        let removed = inner
            .pages
            .get_mut(page)
            .and_then(|p| p.remove(id))
            .is_some();
        if removed {
            inner.count -= 1;
        }
    }

    /// Subscribers in all.
    pub fn count(&self) -> usize {
        read(&self.inner).count
    }

    /// Subscribers of one page.
    pub fn page_count(&self, page: &str) -> usize {
        read(&self.inner)
            .pages
            .get(page)
            .map_or(0, |p| p.by_id.len())
    }

    /// The record and its revision.
    pub fn get(&self, page: &str, subscriber: &str) -> Option<(Subscriber, u64)> {
        let id = parse_id(subscriber)?;
        let inner = read(&self.inner);
        let p = inner.pages.get(page)?;
        let entry = p.entry(id)?;
        Some((p.record(page, entry), entry.revision))
    }

    /// One endpoint, as a sender needs it.
    pub fn endpoint(&self, page: &str, subscriber: u128, kind: ChannelKind) -> Option<Endpoint> {
        let inner = read(&self.inner);
        let entry = inner.pages.get(page)?.entry(subscriber)?;
        let i = entry.member.endpoints.iter().position(|e| e.kind == kind)?;
        Some(Endpoint {
            address: entry.addresses[i].to_string(),
            state: entry.member.endpoints[i].state,
            confirmation: entry.confirmations[i].clone(),
        })
    }

    /// Ids of the page's subscribers with this address.
    pub fn with_address(&self, page: &str, kind: ChannelKind, address: &str) -> Vec<String> {
        let inner = read(&self.inner);
        let Some(p) = inner.pages.get(page) else {
            return Vec::new();
        };
        let normal = normalize(kind, address);
        p.by_address
            .get(&address_hash(kind, address))
            .into_iter()
            .flatten()
            .filter_map(|slot| p.slots.get(*slot as usize)?.as_ref())
            .filter(|entry| {
                entry
                    .member
                    .endpoints
                    .iter()
                    .zip(entry.addresses.iter())
                    .any(|(e, a)| e.kind == kind && normalize(kind, a) == normal)
            })
            .map(|entry| format_id(entry.member.id))
            .collect()
    }

    /// `(page, subscriber)` of every page with this phone number.
    pub fn with_phone(&self, phone: &str) -> Vec<(String, String)> {
        let pages: Vec<String> = read(&self.inner).pages.keys().cloned().collect();
        pages
            .into_iter()
            .flat_map(|page| {
                self.with_address(&page, ChannelKind::Sms, phone)
                    .into_iter()
                    .map(move |id| (page.clone(), id))
            })
            .collect()
    }

    /// A slice of the page's subscribers in id order, after `after`.
    pub fn list(
        &self,
        page: &str,
        after: Option<u128>,
        limit: usize,
    ) -> (Vec<Subscriber>, u64, Option<String>) {
        let inner = read(&self.inner);
        let Some(p) = inner.pages.get(page) else {
            return (Vec::new(), 0, None);
        };
        let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let mut records = Vec::with_capacity(limit.min(p.by_id.len()));
        let mut next = None;
        for (id, slot) in p.by_id.range((start, std::ops::Bound::Unbounded)) {
            if records.len() == limit {
                next = records.last().map(|r: &Subscriber| r.subscriber.clone());
                break;
            }
            if let Some(entry) = p.slots.get(*slot as usize).and_then(Option::as_ref) {
                records.push(p.record(page, entry));
            } else {
                tracing::debug!(id, "Index slot empty.");
            }
        }
        (records, p.by_id.len() as u64, next)
    }

    /// Runs `f` over the page's members, with the page's numbers for
    /// `components` (components the page's subscribers never named get
    /// none), under a read lock.
    pub fn scan<R>(
        &self,
        page: &str,
        components: &[String],
        f: impl FnOnce(&mut dyn Iterator<Item = &Member>, &[u16]) -> R,
    ) -> R {
        let inner = read(&self.inner);
        match inner.pages.get(page) {
            Some(p) => {
                let numbers: Vec<u16> = components
                    .iter()
                    .filter_map(|c| p.components.known(c))
                    .collect();
                let mut members = p.slots.iter().flatten().map(|e| &e.member);
                f(&mut members, &numbers)
            }
            None => f(&mut std::iter::empty(), &[]),
        }
    }

    /// The page's numbers for several component lists at once (the
    /// thread's earlier sends), under the same lock as nothing else.
    pub fn numbers(&self, page: &str, components: &[String]) -> Vec<u16> {
        let inner = read(&self.inner);
        inner.pages.get(page).map_or_else(Vec::new, |p| {
            components
                .iter()
                .filter_map(|c| p.components.known(c))
                .collect()
        })
    }
}

/// Keyed hashes of suppressed addresses, per page.
#[derive(Debug, Clone, Default)]
pub struct Suppressions {
    inner: Arc<RwLock<HashSet<String>>>,
}

impl Suppressions {
    /// Whether `{page}.{hash}` is suppressed.
    pub fn contains(&self, key: &str) -> bool {
        read(&self.inner).contains(key)
    }

    /// Adds or removes `{page}.{hash}`.
    pub fn set(&self, key: &str, present: bool) {
        let mut set = write(&self.inner);
        if present {
            set.insert(key.to_owned());
        } else {
            set.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_contract::messages::DedupMode;

    fn subscriber(id: &str, address: &str) -> Subscriber {
        Subscriber {
            page: "demo".into(),
            subscriber: id.into(),
            endpoints: vec![SubscriberEndpoint {
                channel: SubscriberChannel::Email {
                    address: address.into(),
                },
                state: EndpointState::Active,
                since_ms: 1,
                confirmation: None,
            }],
            components: vec!["api".into()],
            instant: vec![],
            dedup: DedupMode::Every,
            digest: false,
            created_at_ms: 1,
        }
    }

    #[test]
    fn put_get_list_find_and_remove() {
        let index = Subscribers::default();
        let ids: Vec<String> = (0..5).map(|_| new_id()).collect();
        for (i, id) in ids.iter().enumerate() {
            index.put(&subscriber(id, &format!("p{i}@example.com")), i as u64 + 1);
        }
        assert_eq!(index.count(), 5);
        let (got, revision) = index.get("demo", &ids[2]).expect("found");
        assert_eq!((got, revision), (subscriber(&ids[2], "p2@example.com"), 3));
        assert_eq!(
            index.with_address("demo", ChannelKind::Email, "P2@Example.com"),
            [ids[2].clone()]
        );

        // Updating keeps the count and moves the address.
        index.put(&subscriber(&ids[2], "new@example.com"), 9);
        assert_eq!(index.count(), 5);
        assert!(index
            .with_address("demo", ChannelKind::Email, "p2@example.com")
            .is_empty());
        assert_eq!(
            index
                .with_address("demo", ChannelKind::Email, "new@example.com")
                .len(),
            1
        );

        // Listing pages through in id order.
        let mut sorted = ids.clone();
        sorted.sort();
        let (first, total, next) = index.list("demo", None, 2);
        assert_eq!(total, 5);
        assert_eq!(
            first
                .iter()
                .map(|s| s.subscriber.clone())
                .collect::<Vec<_>>(),
            sorted[..2]
        );
        let after = parse_id(&next.expect("more")).expect("id");
        let (rest, _, end) = index.list("demo", Some(after), 10);
        assert_eq!(rest.len(), 3);
        assert!(end.is_none());

        index.remove("demo", &ids[0]);
        assert_eq!(index.count(), 4);
        assert!(index.get("demo", &ids[0]).is_none());
        // The freed slot is reused.
        index.put(&subscriber(&new_id(), "x@example.com"), 10);
        assert_eq!(index.count(), 5);
        let members = index.scan("demo", &["api".into(), "web".into()], |members, numbers| {
            assert_eq!(numbers, [0]);
            members.count()
        });
        assert_eq!(members, 5);
    }
}
