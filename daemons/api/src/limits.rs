//! Rate limits: per API key (its own rate), per client address (public
//! sign-up) and per address being subscribed (so nobody can flood one
//! inbox with confirmations), on `governor`'s GCRA limiters. A request over
//! the limit is refused with how long to wait; nothing queues.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Addresses remembered before the oldest are forgotten.
const MAX_ADDRESSES: usize = 100_000;

fn limiter(per_minute: u32) -> Arc<DefaultDirectRateLimiter> {
    let rate = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
    // A burst of ten seconds' worth, at least one.
    let burst = NonZeroU32::new((per_minute / 6).max(1)).unwrap_or(NonZeroU32::MIN);
    Arc::new(RateLimiter::direct(
        Quota::per_minute(rate).allow_burst(burst),
    ))
}

/// A key's limiter and the rate it was made for.
type KeyLimiter = (u32, Arc<DefaultDirectRateLimiter>);

/// Every limiter of the process.
#[derive(Debug, Clone)]
pub struct Limits {
    keys: Arc<Mutex<HashMap<String, KeyLimiter>>>,
    addresses: Arc<Mutex<HashMap<IpAddr, Arc<DefaultDirectRateLimiter>>>>,
    per_address_per_minute: u32,
    recipients: Arc<Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>>,
}

/// Sign-ups of one email address or phone number (on one page) allowed per
/// hour, after a burst of [`RECIPIENT_BURST`].
pub const RECIPIENT_PER_HOUR: u32 = 4;

/// Sign-ups of one address allowed at once.
pub const RECIPIENT_BURST: u32 = 2;

impl Limits {
    /// Limits with `per_address_per_minute` for public requests.
    pub fn new(per_address_per_minute: u32) -> Self {
        Self {
            keys: Arc::default(),
            addresses: Arc::default(),
            per_address_per_minute,
            recipients: Arc::default(),
        }
    }

    fn check(limiter: &DefaultDirectRateLimiter) -> Result<(), u64> {
        limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// One request of key `id` (allowed `per_minute`); `Err(seconds)` to
    /// wait when over.
    pub fn key(&self, id: &str, per_minute: u32) -> Result<(), u64> {
        let limiter = {
            let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            match keys.get(id) {
                Some((rate, limiter)) if *rate == per_minute => limiter.clone(),
                _ => {
                    let fresh = limiter(per_minute);
                    keys.insert(id.to_owned(), (per_minute, fresh.clone()));
                    fresh
                }
            }
        };
        Self::check(&limiter)
    }

    /// One public request from `address`.
    pub fn address(&self, address: IpAddr) -> Result<(), u64> {
        let limiter = {
            let mut addresses = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
            if addresses.len() >= MAX_ADDRESSES && !addresses.contains_key(&address) {
                // Forgetting every address at once lets a burst through, but
                // keeps memory bounded under a flood of addresses.
                addresses.clear();
            }
            addresses
                .entry(address)
                .or_insert_with(|| limiter(self.per_address_per_minute))
                .clone()
        };
        Self::check(&limiter)
    }

    /// One sign-up of `recipient` (the page and the address being
    /// subscribed, normalized by the caller).
    pub fn recipient(&self, recipient: &str) -> Result<(), u64> {
        let limiter = {
            let mut recipients = self.recipients.lock().unwrap_or_else(|p| p.into_inner());
            if recipients.len() >= MAX_ADDRESSES && !recipients.contains_key(recipient) {
                recipients.clear();
            }
            recipients
                .entry(recipient.to_owned())
                .or_insert_with(|| {
                    let rate = NonZeroU32::new(RECIPIENT_PER_HOUR).unwrap_or(NonZeroU32::MIN);
                    let burst = NonZeroU32::new(RECIPIENT_BURST).unwrap_or(NonZeroU32::MIN);
                    Arc::new(RateLimiter::direct(
                        Quota::per_hour(rate).allow_burst(burst),
                    ))
                })
                .clone()
        };
        Self::check(&limiter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_waits() {
        let limits = Limits::new(60);
        // 60 a minute: a burst of 10.
        for n in 0..10 {
            assert!(limits.key("k", 60).is_ok(), "request {n}");
        }
        let wait = limits.key("k", 60).expect_err("over the limit");
        assert!((1..=6).contains(&wait), "{wait}");
        assert!(limits.key("other", 60).is_ok(), "keys are limited apart");
    }

    #[test]
    fn addresses_are_limited_apart() {
        let limits = Limits::new(6);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        assert!(limits.address(a).is_ok());
        assert!(limits.address(a).is_err());
        assert!(limits.address(b).is_ok());
    }

    #[test]
    fn one_recipient_gets_a_burst_then_waits() {
        let limits = Limits::new(6);
        for n in 0..RECIPIENT_BURST {
            assert!(limits.recipient("demo email a@example.com").is_ok(), "{n}");
        }
        let wait = limits
            .recipient("demo email a@example.com")
            .expect_err("over the limit");
        assert!(wait > 60, "{wait}");
        assert!(limits.recipient("demo email b@example.com").is_ok());
    }
}
