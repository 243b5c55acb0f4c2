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

use beacon_contract::event::{Envelope, Message};
use beacon_contract::names::regional_subject;
use beacon_runtime::publish::{publish, PublishError, Stored};

use super::Api;

/// The origin of a decider that runs in no particular region.
const NO_REGION: &str = "global";

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
    let stored = publish(&api.daemon.js, &subject, envelope).await?;
    api.metrics.regional_writes.with_label_values(&[kind]).inc();
    tracing::warn!(kind, page, id, region = %api.daemon.origin,
        "The cluster is out of reach; stored in the region's own stream, to be merged when it is back.");
    Ok(stored)
}
