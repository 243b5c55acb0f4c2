//! Limits of one provider account: a token bucket (`governor`, GCRA) of
//! `rate_per_second` with `burst`, a semaphore of `concurrency`
//! deliveries in flight, a per-destination token bucket of
//! `destination_rate_per_second` (a Slack webhook takes one message a
//! second), and a pause when the provider says `429 Retry-After`.
//!
//! The order is: concurrency permit, account pause, account rate,
//! destination pause and rate; the permit is held until the provider has
//! answered. The time spent waiting is reported per limit.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use beacon_page::config::Channel;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::{Accepted, SendError};

/// Time spent waiting for each limit, for the metrics.
#[derive(Debug, Default)]
pub struct Waits {
    /// Waiting for the account's rate (and its pause).
    pub account: Mutex<Duration>,
    /// Waiting for the destination's rate (and its pause).
    pub destination: Mutex<Duration>,
}

impl Waits {
    fn add(slot: &Mutex<Duration>, waited: Duration) {
        *slot.lock().unwrap_or_else(|p| p.into_inner()) += waited;
    }

    /// Takes what was recorded: (account, destination).
    pub fn take(&self) -> (Duration, Duration) {
        let take = |slot: &Mutex<Duration>| {
            std::mem::take(&mut *slot.lock().unwrap_or_else(|p| p.into_inner()))
        };
        (take(&self.account), take(&self.destination))
    }
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

/// The limits of one account.
#[derive(Debug)]
pub struct AccountLimits {
    rate: DefaultDirectRateLimiter,
    concurrency: Semaphore,
    destinations: DefaultKeyedRateLimiter<String>,
    paused_until: Mutex<Option<Instant>>,
    destination_pauses: Mutex<HashMap<String, Instant>>,
}

impl AccountLimits {
    /// The limits a channel config sets.
    pub fn new(channel: &Channel) -> Self {
        Self {
            rate: RateLimiter::direct(quota(channel.rate_per_second, channel.burst)),
            concurrency: Semaphore::new(channel.concurrency.max(1) as usize),
            destinations: RateLimiter::keyed(quota(channel.destination_rate_per_second, 1)),
            paused_until: Mutex::new(None),
            destination_pauses: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for every limit; the permit is held until the delivery ends.
    pub async fn acquire(
        &self,
        destination: Option<&str>,
        waits: &Waits,
    ) -> Option<SemaphorePermit<'_>> {
        let permit = self.concurrency.acquire().await.ok();
        let started = Instant::now();
        let paused = *self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = paused {
            tokio::time::sleep_until(until.into()).await;
        }
        self.rate.until_ready().await;
        Waits::add(&waits.account, started.elapsed());
        if let Some(destination) = destination {
            let started = Instant::now();
            let paused = self
                .destination_pauses
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(destination)
                .copied();
            if let Some(until) = paused {
                tokio::time::sleep_until(until.into()).await;
            }
            let key = destination.to_owned();
            self.destinations.until_key_ready(&key).await;
            Waits::add(&waits.destination, started.elapsed());
        }
        permit
    }

    /// After a throttled answer, holds the whole account back for the
    /// provider's `Retry-After`.
    pub fn pause_on(&self, result: &Result<Accepted, SendError>) {
        if let Err(SendError::Retryable {
            after: Some(after), ..
        }) = result
        {
            let until = Instant::now() + *after;
            let mut paused = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
            if paused.is_none_or(|p| p < until) {
                *paused = Some(until);
            }
        }
    }

    /// After a throttled answer from one destination, holds it back.
    pub fn pause_destination_on(&self, destination: &str, result: &Result<Accepted, SendError>) {
        if let Err(SendError::Retryable {
            after: Some(after), ..
        }) = result
        {
            let mut pauses = self
                .destination_pauses
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            pauses.retain(|_, until| *until > now);
            pauses.insert(destination.to_owned(), now + *after);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_page::config::ChannelProvider;

    fn channel(rate: u32, burst: u32, destination: u32) -> Channel {
        Channel {
            id: "c".into(),
            provider: ChannelProvider::Slack,
            rate_per_second: rate,
            burst,
            concurrency: 4,
            destination_rate_per_second: destination,
        }
    }

    /// On tokio's clock governor is not driven, so this runs in real time,
    /// briefly: 20/s with a burst of 5 lets 5 through at once, then one
    /// every 50 ms.
    #[tokio::test]
    async fn the_account_rate_and_burst_hold() {
        let limits = AccountLimits::new(&channel(20, 5, 1000));
        let waits = Waits::default();
        let started = Instant::now();
        for _ in 0..10 {
            let _permit = limits.acquire(None, &waits).await;
        }
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(230), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(1_000), "{elapsed:?}");
        assert!(waits.take().0 >= Duration::from_millis(230));
    }

    #[tokio::test]
    async fn one_destination_is_limited_and_others_are_not() {
        let limits = AccountLimits::new(&channel(1000, 1000, 10));
        let waits = Waits::default();
        let started = Instant::now();
        for i in 0..5 {
            let _permit = limits
                .acquire(Some(&format!("https://hooks.example/{i}")), &waits)
                .await;
        }
        assert!(started.elapsed() < Duration::from_millis(50));
        for _ in 0..3 {
            let _permit = limits
                .acquire(Some("https://hooks.example/same"), &waits)
                .await;
        }
        assert!(
            started.elapsed() >= Duration::from_millis(190),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_retry_after_pauses_the_account() {
        let limits = AccountLimits::new(&channel(1000, 1000, 1000));
        limits.pause_on(&Err(SendError::Retryable {
            detail: "429".into(),
            after: Some(Duration::from_millis(200)),
        }));
        let started = Instant::now();
        let _permit = limits.acquire(None, &Waits::default()).await;
        assert!(started.elapsed() >= Duration::from_millis(190));
    }
}
