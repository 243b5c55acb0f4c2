//! One place that decides whether to try again, and how long to wait.
//!
//! - [`Class`] and [`Classify`]: every error type in core says whether it
//!   is worth retrying ([`Class::Retryable`]: a dependency is away or slow)
//!   or not ([`Class::Permanent`]: the input or the setup is wrong). Callers
//!   never guess from message text.
//! - [`RetryPolicy`]: the delays of one retrying loop, exponential from
//!   `first` to `max`. Its [`RetryPolicy::delay`] is deterministic (the nak
//!   delay of a message's n-th attempt); [`RetryPolicy::backoff`] gives the
//!   jittered sequence a reconnect loop sleeps through.
//! - [`Backoff`]: that jittered sequence, built on `backon`'s exponential
//!   backoff rather than hand-written arithmetic.
//! - [`until_ok`]: runs an operation until it succeeds, fails permanently,
//!   or shutdown begins.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use crate::shutdown::Shutdown;

/// Whether an error is worth another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// A dependency is away, slow or busy: the same call may work later.
    Retryable,
    /// The call itself is wrong (bad input, missing rights, a bug): the
    /// same call will fail again.
    Permanent,
}

impl Class {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Retryable => "retryable",
            Class::Permanent => "permanent",
        }
    }
}

/// An error that knows whether retrying can help.
pub trait Classify {
    /// Retryable or permanent.
    fn class(&self) -> Class;

    /// Shorthand for `class() == Class::Retryable`.
    fn is_retryable(&self) -> bool {
        self.class() == Class::Retryable
    }
}

/// Delays between attempts: exponential, doubling from `first` to `max`,
/// and whether a message is ever given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failed attempt; it doubles with each attempt.
    pub first: Duration,
    /// Longest delay, so a long outage costs one attempt per `max`.
    pub max: Duration,
    /// For messages: dead-letter after this many attempts; `None` retries
    /// until it works.
    pub give_up_after: Option<i64>,
}

impl Default for RetryPolicy {
    /// One second doubling to thirty, never giving up: a retryable failure
    /// is a dependency's fault, not the message's.
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            max: Duration::from_secs(30),
            give_up_after: None,
        }
    }
}

impl RetryPolicy {
    /// A policy from `first` to `max` that never gives up.
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            give_up_after: None,
        }
    }

    fn builder(&self) -> ExponentialBuilder {
        let first = if self.first.is_zero() {
            Duration::from_millis(1)
        } else {
            self.first
        };
        ExponentialBuilder::new()
            .with_min_delay(first)
            .with_max_delay(self.max.max(first))
            .with_factor(2.0)
            .without_max_times()
    }

    /// The delay after failed attempt `attempt` (1 for the first), without
    /// jitter: what a message is nak'ed with. Pure.
    pub fn delay(&self, attempt: i64) -> Duration {
        // The sequence reaches `max` within 64 doublings from 1 ms, so the
        // walk is short even for huge attempt counts.
        let steps = attempt.clamp(1, 64) as usize;
        self.builder()
            .build()
            .nth(steps - 1)
            .unwrap_or(self.max)
            .min(self.max.max(self.first))
    }

    /// Whether failed attempt `attempt` is the last one allowed.
    pub fn gives_up_at(&self, attempt: i64) -> bool {
        self.give_up_after.is_some_and(|limit| attempt >= limit)
    }

    /// The jittered delays a retrying loop sleeps through.
    pub fn backoff(&self) -> Backoff {
        Backoff::from_policy(*self)
    }
}

/// Exponential backoff with jitter, for reconnects and retries: each delay
/// is the policy's delay plus up to as much again at random, so many
/// clients that failed together do not come back together.
#[derive(Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    delays: ExponentialBackoff,
}

impl Backoff {
    /// Starts at `initial` and doubles up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self::from_policy(RetryPolicy::new(initial, max))
    }

    fn from_policy(policy: RetryPolicy) -> Self {
        // Jitter adds up to the delay again; halve the bounds so the
        // sleeps stay within [first/2, max].
        let halved = RetryPolicy::new(policy.first / 2, policy.max / 2);
        Self {
            policy,
            delays: halved.builder().with_jitter().build(),
        }
    }

    /// The next delay; grows with every call until [`Backoff::reset`].
    pub fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.policy.max)
    }

    /// Starts over after a success, from `initial`.
    pub fn reset(&mut self, initial: Duration) {
        *self = Self::new(initial, self.policy.max);
    }
}

/// Why [`until_ok`] stopped without a value.
#[derive(Debug, thiserror::Error)]
pub enum GaveUp<E> {
    /// The operation failed in a way retrying cannot mend.
    #[error(transparent)]
    Permanent(E),
    /// Shutdown began while waiting to retry.
    #[error("shutdown began while retrying")]
    Shutdown,
}

/// Runs `operation` until it succeeds, retrying retryable errors with
/// `policy`'s jittered backoff and logging each failure as `what`. Returns
/// the first permanent error, or [`GaveUp::Shutdown`] once shutdown begins.
pub async fn until_ok<T, E, F, Fut>(
    shutdown: &Shutdown,
    policy: RetryPolicy,
    what: &str,
    mut operation: F,
) -> Result<T, GaveUp<E>>
where
    E: Classify + Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = policy.backoff();
    let mut attempt = 1u32;
    loop {
        if shutdown.is_cancelled() {
            return Err(GaveUp::Shutdown);
        }
        match operation().await {
            Ok(value) => return Ok(value),
            Err(e) if e.is_retryable() => {
                let delay = backoff.next_delay();
                tracing::warn!(attempt, retry_in = ?delay, error = %e, "Cannot {what}, retrying.");
                attempt += 1;
                if !shutdown.sleep(delay).await {
                    return Err(GaveUp::Shutdown);
                }
            }
            Err(e) => return Err(GaveUp::Permanent(e)),
        }
    }
}

impl Classify for beacon_contract::topology::EnsureError {
    /// The server may be away, or an operator has yet to grant rights or
    /// run `beaconctl bus ensure`: worth trying again.
    fn class(&self) -> Class {
        Class::Retryable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_from_the_first_to_the_cap() {
        let policy = RetryPolicy::new(Duration::from_secs(2), Duration::from_secs(30));
        let table = [
            (-5, 2),
            (0, 2),
            (1, 2),
            (2, 4),
            (3, 8),
            (4, 16),
            (5, 30),
            (6, 30),
            (i64::MAX, 30),
        ];
        for (attempt, seconds) in table {
            assert_eq!(
                policy.delay(attempt),
                Duration::from_secs(seconds),
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn by_default_a_retryable_failure_is_never_given_up() {
        let policy = RetryPolicy::default();
        assert!(!policy.gives_up_at(1));
        assert!(!policy.gives_up_at(i64::MAX));
        let limited = RetryPolicy {
            give_up_after: Some(3),
            ..policy
        };
        assert_eq!(
            (1..=4).map(|a| limited.gives_up_at(a)).collect::<Vec<_>>(),
            [false, false, true, true]
        );
    }

    #[test]
    fn backoff_grows_to_the_cap_and_stays_jittered() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        assert!(
            delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100),
            "{delays:?}"
        );
        assert!(
            delays[7] >= Duration::from_millis(500) && delays[7] <= Duration::from_secs(1),
            "{delays:?}"
        );
        backoff.reset(Duration::from_millis(100));
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{0:?}")]
    struct Fails(Class);

    impl Classify for Fails {
        fn class(&self) -> Class {
            self.0
        }
    }

    #[tokio::test(start_paused = true)]
    async fn until_ok_retries_retryable_errors_and_stops_at_a_permanent_one() {
        let shutdown = Shutdown::new(Duration::from_secs(1));
        let policy = RetryPolicy::new(Duration::from_millis(10), Duration::from_millis(50));
        let mut calls = 0;
        let value = until_ok(&shutdown, policy, "test", || {
            calls += 1;
            let result = if calls < 4 {
                Err(Fails(Class::Retryable))
            } else {
                Ok(calls)
            };
            async move { result }
        })
        .await;
        assert_eq!(value.ok(), Some(4));

        let permanent = until_ok(&shutdown, policy, "test", || async {
            Err::<(), _>(Fails(Class::Permanent))
        })
        .await;
        assert!(matches!(permanent, Err(GaveUp::Permanent(_))));

        shutdown.cancel();
        let stopped = until_ok(&shutdown, policy, "test", || async {
            Err::<(), _>(Fails(Class::Retryable))
        })
        .await;
        assert!(matches!(stopped, Err(GaveUp::Shutdown)));
    }
}
