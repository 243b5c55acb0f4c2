//! One shutdown path for every daemon.
//!
//! A signal (SIGINT, SIGTERM) or a caller cancels the token; loops stop
//! pulling new work, finish what they hold, ack it, and return; the daemon
//! then waits for its tracked tasks, bounded by a grace period.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The backoff lives with the retry policy; re-exported for the loops here.
pub use crate::retry::Backoff;

/// Cancellation plus task bookkeeping, cloned into every task of a daemon.
#[derive(Debug, Clone)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
    grace: Duration,
}

impl Shutdown {
    /// A shutdown that waits at most `grace` for tasks to finish.
    pub fn new(grace: Duration) -> Self {
        Self {
            token: CancellationToken::new(),
            tracker: TaskTracker::new(),
            grace,
        }
    }

    /// A shutdown for part of the daemon's work: cancelled with the
    /// daemon's, or on its own (e.g. when a lease is lost); its tasks are
    /// waited for by the daemon's shutdown too.
    pub fn child(&self) -> Shutdown {
        Shutdown {
            token: self.token.child_token(),
            tracker: self.tracker.clone(),
            grace: self.grace,
        }
    }

    /// The token tasks watch to know when to stop.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// True once shutdown has begun.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when shutdown begins.
    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }

    /// Begins shutdown.
    pub fn cancel(&self) {
        self.token.cancel()
    }

    /// Spawns a task that shutdown waits for.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Cancels on SIGINT or SIGTERM.
    pub fn cancel_on_signals(&self) {
        let token = self.token.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("Shutdown signal received, stopping.");
            token.cancel();
        });
    }

    /// Waits for tracked tasks after cancellation; false if the grace period ran out.
    pub async fn wait_for_tasks(&self) -> bool {
        self.tracker.close();
        tokio::time::timeout(self.grace, self.tracker.wait())
            .await
            .is_ok()
    }

    /// Sleeps for `duration` unless shutdown begins first; true if it slept the whole time.
    pub async fn sleep(&self, duration: Duration) -> bool {
        tokio::select! {
            _ = self.token.cancelled() => false,
            _ = tokio::time::sleep(duration) => true,
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut interrupt), Ok(mut terminate)) => {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        _ => {
            // Without signal handlers only Ctrl-C can stop us; that still beats not starting.
            tracing::warn!("Cannot install SIGTERM handler, only SIGINT will stop the daemon.");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_finish_within_grace() {
        let shutdown = Shutdown::new(Duration::from_secs(5));
        let inner = shutdown.clone();
        shutdown.spawn(async move { inner.cancelled().await });
        shutdown.cancel();
        assert!(shutdown.wait_for_tasks().await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_task_runs_out_the_grace_period() {
        let shutdown = Shutdown::new(Duration::from_secs(5));
        shutdown.spawn(std::future::pending::<()>());
        shutdown.cancel();
        assert!(!shutdown.wait_for_tasks().await);
    }
}
