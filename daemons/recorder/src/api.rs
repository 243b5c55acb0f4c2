//! The recorder's request/reply endpoint, `beacon.api.sla.report`, as a
//! NATS micro service (queue group shared by every recorder), so operators
//! get reports over the bus without ClickHouse access.

use std::sync::Arc;

use beacon_contract::api::{ApiReply, SlaReport, SlaReportRequest, SLA_REPORT};
use beacon_contract::hlc::wall_clock_ms;
use beacon_runtime::daemon::Daemon;
use beacon_runtime::service::{Router, Service};
use prometheus::IntCounterVec;
use tokio::sync::Mutex;

use crate::pages::Pages;
use crate::report;
use crate::service::ClickHouse;

/// What the endpoint needs.
#[derive(Clone)]
pub struct Api {
    /// ClickHouse.
    pub store: Arc<ClickHouse>,
    /// Page configs.
    pub pages: Pages,
    /// Reports' snapshots of the current day, shared by every request.
    pub snapshots: Arc<Mutex<report::Snapshots>>,
    /// Requests by endpoint and outcome.
    pub requests: IntCounterVec,
}

async fn sla_report(api: &Api, request: SlaReportRequest) -> ApiReply<SlaReport> {
    let mut snapshots = api.snapshots.lock().await;
    report::handle(
        &api.store,
        &api.pages,
        &mut snapshots,
        &request,
        wall_clock_ms(),
    )
    .await
}

/// The endpoint the recorder serves, with its handler.
pub fn router(api: &Api) -> Router {
    let service = Service {
        name: "beacon-recorder",
        description: "Beacon recorder: SLA reports",
        // A report is a few ClickHouse queries; one at a time per instance
        // keeps a burst of reports from crowding out the inserts.
        concurrency: 1,
    };
    Router::new(service, api.requests.clone()).route(SLA_REPORT, api, |api, r| async move {
        sla_report(&api, r).await
    })
}

/// Serves the endpoint until shutdown; `up` hears once requests can reach
/// it. If the service cannot be registered operators get no reports: that
/// is logged as an error.
pub async fn serve(daemon: Daemon, api: Api, up: tokio::sync::oneshot::Sender<()>) {
    let shutdown = daemon.process.shutdown.clone();
    if let Err(e) = router(&api)
        .serve(&daemon.client, &shutdown, Some(up))
        .await
    {
        tracing::error!(error = %e, "SLA report API stopped; operators cannot get reports.");
    }
}
