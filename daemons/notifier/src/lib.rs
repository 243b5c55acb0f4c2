//! The notifier: will turn incident, maintenance and status events into
//! deliveries to subscribers (email, SMS, webhooks, Slack, Teams) with
//! per-provider rate limits, retries and dead letters.
//!
//! # Layout
//!
//! Today the notifier runs the shared daemon lifecycle only: it connects,
//! ensures the bus topology (including the `NOTIFY` work queue, the
//! `DELIVERIES` stream and the `subscribers` bucket it owns), serves its
//! admin port and shuts down cleanly. Channel senders arrive one module per
//! channel kind, dispatched by one `match` on
//! [`beacon_core::messages::ChannelKind`].

use beacon_core::daemon::Daemon;

/// Runs the notifier until shutdown. It cannot fail yet.
pub async fn run(daemon: Daemon) -> Result<(), std::convert::Infallible> {
    daemon.process.readiness.set(true);
    tracing::info!("Notifier ready (no channel senders configured in this version).");
    daemon.process.shutdown.cancelled().await;
    Ok(())
}
