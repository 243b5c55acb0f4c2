//! The recorder's request/reply endpoint, `beacon.api.sla.report`, as a
//! NATS micro service (queue group shared by every recorder), so operators
//! get reports over the bus without ClickHouse access.

use std::sync::Arc;

use async_nats::service::ServiceExt;
use beacon_contract::api::{ApiReply, SlaReport, SlaReportRequest};
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::names::api;
use beacon_runtime::daemon::Daemon;
use futures::StreamExt;

use crate::pages::Pages;
use crate::report;
use crate::service::ClickHouse;

/// Serves the endpoint until shutdown. If the service cannot be registered
/// operators get no reports: that is logged as an error.
pub async fn serve(daemon: Daemon, store: Arc<ClickHouse>, pages: Pages) {
    if let Err(e) = serve_endpoint(&daemon, &store, &pages).await {
        tracing::error!(error = %e, "SLA report API stopped; operators cannot get reports.");
    }
}

async fn serve_endpoint(
    daemon: &Daemon,
    store: &ClickHouse,
    pages: &Pages,
) -> Result<(), async_nats::Error> {
    let service = daemon
        .client
        .service_builder()
        .description("Beacon recorder: SLA reports")
        .start("beacon-recorder", env!("CARGO_PKG_VERSION"))
        .await?;
    let group = service.group(api::GROUP);
    let mut reports = group
        .endpoint(api::SLA_REPORT.trim_start_matches("beacon.api."))
        .await?;
    // Requests are handled one at a time, so the snapshots need no lock.
    let mut snapshots = report::Snapshots::default();
    loop {
        tokio::select! {
            _ = daemon.process.shutdown.cancelled() => break,
            Some(request) = reports.next() => {
                let reply = match serde_json::from_slice::<SlaReportRequest>(&request.message.payload) {
                    Ok(parsed) => report::handle(store, pages, &mut snapshots, &parsed, wall_clock_ms()).await,
                    Err(e) => ApiReply::<SlaReport>::invalid("request", format!("not an SlaReportRequest: {e}")),
                };
                let body = serde_json::to_vec(&reply).unwrap_or_default();
                if let Err(e) = request.respond(Ok(body.into())).await {
                    tracing::warn!(error = %e, "Cannot send an SLA report reply.");
                }
            }
            else => break,
        }
    }
    let _ = service.stop().await;
    Ok(())
}
