//! Operator writes while the region is cut off from the others.
//!
//! The cluster's streams need a quorum of two regions. A region cut off
//! from the other two cannot reach it: a read times out, a write is
//! refused or times out. A decider that runs in a region (`--region`,
//! anything but `global`) then stores the event in its region's own stream
//! (`REGIONAL_{region}`, in the region's JetStream domain on its leaf
//! server), which needs nobody else. The region's publisher follows that
//! stream too, so the region's page shows the write at once; the global
//! stream sources it when the partition heals, so every region gets it,
//! and the folds merge it with what the others wrote meanwhile (per field
//! by HLC, updates as a set). No revision can be checked across the cut:
//! this is the one write that does not wait for agreement.
//!
//! The cluster's sourcing retries a failed source with a growing backoff
//! (up to two minutes in nats-server), so after a long cut it may take
//! that long to fetch the region's writes. [`forward`] does not wait for
//! it: it publishes every event this decider wrote regionally to the
//! cluster's stream itself, as soon as the cluster takes writes again,
//! with the same message id (the stream drops the copy the source brings
//! within its dedup window; a later copy has the same event id, which
//! every fold takes once). Sourcing stays the guarantee: it also covers a
//! decider that restarted while cut off.

use std::time::Duration;

use beacon_contract::event::{Envelope, Message};
use beacon_contract::names::{regional_subject, SUBJECT_ROOT};
use beacon_runtime::publish::{publish_bytes, PublishError, Stored};
use beacon_runtime::shutdown::{Backoff, Shutdown};
use tokio::sync::mpsc;

use super::Api;

/// An event written regionally, to be published to the cluster's stream.
#[derive(Debug, Clone)]
pub struct Unforwarded {
    /// Its subject in the cluster's stream.
    subject: String,
    /// Its event id, the message id.
    id: String,
    /// The encoded envelope.
    payload: Vec<u8>,
}

/// Where [`write`] hands its events to [`forward`].
pub type Forwarding = mpsc::UnboundedSender<Unforwarded>;

/// Starts [`forward`] for `api`'s region; the sender to put in [`Api`].
pub fn start(js: async_nats::jetstream::Context, shutdown: &Shutdown) -> Forwarding {
    let (sender, receiver) = mpsc::unbounded_channel();
    let task_shutdown = shutdown.clone();
    shutdown.spawn(forward(js, receiver, task_shutdown));
    sender
}

/// Publishes each event of `queue`, in order, to the cluster's stream,
/// retrying each until it is stored or shutdown begins.
async fn forward(
    js: async_nats::jetstream::Context,
    mut queue: mpsc::UnboundedReceiver<Unforwarded>,
    shutdown: Shutdown,
) {
    const FIRST: Duration = Duration::from_millis(500);
    let mut backoff = Backoff::new(FIRST, Duration::from_secs(2));
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = queue.recv() => match event {
                Some(event) => event,
                None => return,
            },
        };
        loop {
            match publish_bytes(
                &js,
                &event.subject,
                &event.id,
                event.payload.clone().into(),
                None,
            )
            .await
            {
                Ok(_) => {
                    tracing::info!(subject = %event.subject, "A write made while cut off is in the cluster's stream.");
                    backoff.reset(FIRST);
                    break;
                }
                Err(e) => {
                    tracing::debug!(subject = %event.subject, error = %e, "The cluster does not take the regional write yet.");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        }
    }
}

/// The origin of a decider that runs in no particular region.
pub const NO_REGION: &str = "global";

/// Whether this decider has a region whose own domain it may write to.
pub fn available(api: &Api) -> bool {
    api.daemon.origin != NO_REGION
}

/// Stores `envelope` in the region's own stream, as `kind` (`incident`,
/// `maintenance`) of `page`'s `id`.
pub async fn write<T: Message>(
    api: &Api,
    kind: &'static str,
    page: &str,
    id: &str,
    envelope: &Envelope<T>,
) -> Result<Stored, PublishError> {
    let subject = regional_subject(&api.daemon.origin, kind, page, id);
    // Encoded once: the same bytes go to the region's stream and, later,
    // to the cluster's.
    let payload = envelope.encode().map_err(|e| PublishError::Encode {
        kind: T::KIND,
        reason: e.to_string(),
    })?;
    let event_id = envelope.id.to_string();
    let stored = publish_bytes(
        &api.daemon.js,
        &subject,
        &event_id,
        payload.clone().into(),
        None,
    )
    .await?;
    if let Some(forwarding) = &api.forwarding {
        let _ = forwarding.send(Unforwarded {
            subject: format!("{SUBJECT_ROOT}.{kind}.{page}.{id}"),
            id: event_id,
            payload,
        });
    }
    api.metrics.regional_writes.with_label_values(&[kind]).inc();
    tracing::warn!(kind, page, id, region = %api.daemon.origin,
        "The cluster is out of reach; stored in the region's own stream, to be merged when it is back.");
    Ok(stored)
}
