//! Bounded async waiting: poll a probe until it yields a value.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a daemon or server may take to report itself ready.
pub const READY: Duration = Duration::from_secs(30);
/// How long something the test caused may take to land where it is
/// checked (a row in ClickHouse, a key in KV, a message on a stream).
pub const LAND: Duration = Duration::from_secs(30);
/// How long the decider may take to act on evidence.
pub const DECIDE: Duration = Duration::from_secs(30);
/// How long a short, local reaction may take (a probe noticing a change, a
/// consumer picking up a message).
pub const SOON: Duration = Duration::from_secs(15);
/// How long a prompt answer of the bus may take, a restart included.
pub const PROMPT: Duration = Duration::from_secs(20);

/// How often [`wait_until`] calls its probe.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Calls `probe` every 100 ms until it returns `Some`, and returns that value.
///
/// The probe is always called at least once, and once more after the
/// deadline, so a slow probe cannot lose its last chance.
///
/// # Panics
///
/// Panics with `timed out after {timeout:?} waiting for {what}` when the
/// probe has not returned `Some` within `timeout`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let past_deadline = Instant::now() >= deadline;
        if let Some(value) = probe().await {
            return value;
        }
        if past_deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::wait_until;
    use std::time::Duration;

    #[tokio::test]
    async fn returns_the_first_some() {
        let mut calls = 0;
        let value = wait_until("the third call", Duration::from_secs(5), || {
            calls += 1;
            let current = calls;
            async move { (current == 3).then_some(current) }
        })
        .await;
        assert_eq!(value, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 300ms waiting for nothing at all")]
    async fn panics_with_what_on_timeout() {
        wait_until("nothing at all", Duration::from_millis(300), || async {
            None::<()>
        })
        .await;
    }
}
