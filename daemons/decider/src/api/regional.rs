//! Operator writes while the region is cut off from the others: the
//! decider's side of [`beacon_runtime::regional`] (why and how it works is
//! there), with its metric.

use beacon_contract::event::{Envelope, Message};
use beacon_contract::names::regional_subject;
use beacon_runtime::publish::{PublishError, Stored};

use super::Api;

/// Whether this decider has a region whose own domain it may write to.
pub fn available(api: &Api) -> bool {
    api.regional.is_some()
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
    let Some(writer) = &api.regional else {
        return Err(PublishError::NotStored {
            subject: regional_subject(&api.daemon.origin, kind, page, id),
            reason: "this decider runs in no region".into(),
            no_stream: true,
        });
    };
    let stored = writer.write(kind, page, id, envelope).await?;
    api.metrics.regional_writes.with_label_values(&[kind]).inc();
    Ok(stored)
}
