//! Operator writes while the region is cut off from the others.
//!
//! The cluster's streams need a quorum of two regions. A region cut off
//! from the other two cannot reach it: a read times out, a write is
//! refused or times out. A daemon that runs in a region (anything but
//! [`NO_REGION`]) and owns operator writes (the decider's incidents and
//! maintenance, the publisher's changelog) then stores the event in its
//! region's own stream (`REGIONAL_{region}`, in the region's JetStream
//! domain on its leaf server), which needs nobody else. The region's
//! publisher follows that stream too, so the region's page shows the write
//! at once; the cluster's stream sources it when the partition heals, so
//! every region gets it, and the folds merge it with what the others wrote
//! meanwhile (by HLC). No revision can be checked across the cut: this is
//! the one write that does not wait for agreement.
//!
//! The cluster's sourcing retries a failed source with a growing backoff
//! (up to two minutes in nats-server), so after a long cut it may take
//! that long to fetch the region's writes. The writer does not wait for
//! it: a task publishes every event written regionally to the cluster's
//! stream itself, as soon as the cluster takes writes again, with the
//! same message id (the stream drops the copy the source brings within its
//! dedup window; a later copy has the same event id, which every fold
//! takes once). Sourcing stays the guarantee: it also covers a daemon
//! that restarted while cut off, whose queue was only in memory.

use std::time::Duration;

use async_nats::jetstream;
use beacon_contract::event::{Envelope, Message};
use beacon_contract::names::{regional_subject, SUBJECT_ROOT};
use tokio::sync::mpsc;

use crate::publish::{publish_bytes, PublishError, Stored};
use crate::shutdown::{Backoff, Shutdown};

/// The origin of a daemon that runs in no particular region: it has no
/// domain of its own to write to.
pub const NO_REGION: &str = "global";

/// An event written regionally, to be published to the cluster's stream.
#[derive(Debug, Clone)]
struct Unforwarded {
    /// Its subject in the cluster's stream.
    subject: String,
    /// Its event id, the message id.
    id: String,
    /// The encoded envelope.
    payload: Vec<u8>,
}

/// Writes to a region's own stream; cheap to clone.
#[derive(Debug, Clone)]
pub struct RegionalWriter {
    js: jetstream::Context,
    region: String,
    forwarding: mpsc::UnboundedSender<Unforwarded>,
}

impl RegionalWriter {
    /// A writer for `region`, or `None` for [`NO_REGION`]; starts the task
    /// that forwards its writes to the cluster's streams.
    pub fn start(js: jetstream::Context, region: &str, shutdown: &Shutdown) -> Option<Self> {
        if region == NO_REGION {
            return None;
        }
        let (forwarding, queue) = mpsc::unbounded_channel();
        shutdown.spawn(forward(js.clone(), queue, shutdown.clone()));
        Some(Self {
            js,
            region: region.to_owned(),
            forwarding,
        })
    }

    /// The region written to.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Stores `envelope` in the region's own stream, as `kind` (`incident`,
    /// `maintenance`, `changelog`) of `page`'s `id`, and queues it for the
    /// cluster's stream.
    pub async fn write<T: Message>(
        &self,
        kind: &'static str,
        page: &str,
        id: &str,
        envelope: &Envelope<T>,
    ) -> Result<Stored, PublishError> {
        let subject = regional_subject(&self.region, kind, page, id);
        // Encoded once: the same bytes go to the region's stream and, later,
        // to the cluster's.
        let payload = envelope.encode().map_err(|e| PublishError::Encode {
            kind: T::KIND,
            reason: e.to_string(),
        })?;
        let event_id = envelope.id.to_string();
        let stored =
            publish_bytes(&self.js, &subject, &event_id, payload.clone().into(), None).await?;
        let _ = self.forwarding.send(Unforwarded {
            subject: format!("{SUBJECT_ROOT}.{kind}.{page}.{id}"),
            id: event_id,
            payload,
        });
        tracing::warn!(kind, page, id, region = %self.region,
            "The cluster is out of reach; stored in the region's own stream, to be merged when it is back.");
        Ok(stored)
    }
}

/// Publishes each event of `queue`, in order, to the cluster's stream,
/// retrying each until it is stored or shutdown begins.
async fn forward(
    js: jetstream::Context,
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
            let payload = event.payload.clone().into();
            match publish_bytes(&js, &event.subject, &event.id, payload, None).await {
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
