//! Reading KV buckets the way every daemon does: open with retries, and
//! follow a bucket's current values and every later change.
//!
//! [`follow`] survives errors: it re-watches with backoff, and since a new
//! watch replays the latest value of every key, readers must treat entries
//! as "this key is now X" (set, not append) — which is what a projection is.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::shutdown::{Backoff, Shutdown};

/// One thing [`follow`] reports.
#[derive(Debug)]
pub enum Change {
    /// A key was put, deleted or purged.
    Entry(kv::Entry),
    /// Every value that existed when the watch began has been delivered.
    /// Sent once per (re-)watch, so readers can gate readiness on it.
    CaughtUp,
}

/// Opens `bucket`, retrying with backoff until it works or shutdown begins.
pub async fn open(js: &jetstream::Context, bucket: &str, shutdown: &Shutdown) -> Option<kv::Store> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        match js.get_key_value(bucket).await {
            Ok(store) => return Some(store),
            Err(e) => {
                tracing::warn!(bucket, error = %e, "Cannot open KV bucket, retrying.");
                if !shutdown.sleep(backoff.next_delay()).await {
                    return None;
                }
            }
        }
    }
}

/// Follows every key of `store` until shutdown, in a tracked task. The
/// receiver ends when shutdown begins.
pub fn follow(store: kv::Store, shutdown: &Shutdown) -> mpsc::Receiver<Change> {
    let (sender, receiver) = mpsc::channel(256);
    let shutdown_for_task = shutdown.clone();
    shutdown.spawn(async move { run(store, shutdown_for_task, sender).await });
    receiver
}

async fn run(store: kv::Store, shutdown: Shutdown, sender: mpsc::Sender<Change>) {
    let bucket = store.name.clone();
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    while !shutdown.is_cancelled() {
        let mut watch = match store.watch_with_history(">").await {
            Ok(watch) => watch,
            Err(e) => {
                tracing::warn!(%bucket, error = %e, "Cannot watch KV bucket, retrying.");
                shutdown.sleep(backoff.next_delay()).await;
                continue;
            }
        };
        // An empty bucket delivers nothing, so "caught up" cannot wait for
        // the last initial entry (the one with `delta == 0`).
        let mut caught_up = store.status().await.is_ok_and(|s| s.values() == 0);
        if caught_up && sender.send(Change::CaughtUp).await.is_err() {
            return;
        }
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                next = watch.next() => next,
            };
            match next {
                Some(Ok(entry)) => {
                    let initial_done = !caught_up && entry.delta == 0;
                    if sender.send(Change::Entry(entry)).await.is_err() {
                        return;
                    }
                    if initial_done {
                        caught_up = true;
                        if sender.send(Change::CaughtUp).await.is_err() {
                            return;
                        }
                    }
                    backoff.reset(Duration::from_millis(200));
                }
                Some(Err(e)) => {
                    tracing::warn!(%bucket, error = %e, "KV watch error, re-watching.");
                    break;
                }
                None => break,
            }
        }
        shutdown.sleep(backoff.next_delay()).await;
    }
}
