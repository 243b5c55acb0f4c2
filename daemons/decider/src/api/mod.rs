//! The decider's operator API: NATS micro service endpoints under
//! `beacon.api.…`, served by every decider instance (one queue group), so
//! a standby answers as well as the leader.
//!
//! - [`config`]: `config.apply` (compare-and-set) and `config.get`.
//! - [`components`]: `component.set|clear|explain|list` (overrides in KV
//!   `overrides`, last writer wins by HLC).
//! - [`incidents`]: the incident endpoints, `incident.list|show|create|update|edit|resolve|confirm|dismiss|postmortem`.
//! - [`maintenance`]: the maintenance endpoints, `maintenance.schedule|start|verify|complete|cancel|list`.
//!
//! Writes to an incident or a window are conditional on its subject's
//! latest sequence (the revision the client saw, or the one just read), so
//! of two racing writers one wins and the other gets a conflict with the
//! current state. Every reply is an [`ApiReply`]; a bad request changes
//! nothing and says why.

pub mod components;
pub mod config;
pub mod incidents;
pub mod maintenance;
pub mod regional;

use async_nats::jetstream::kv;
use beacon_contract::api::{
    ApiReply, COMPONENT_CLEAR, COMPONENT_EXPLAIN, COMPONENT_LIST, COMPONENT_SET, INCIDENT_CONFIRM,
    INCIDENT_CREATE, INCIDENT_DISMISS, INCIDENT_EDIT, INCIDENT_LIST, INCIDENT_POSTMORTEM,
    INCIDENT_RESOLVE, INCIDENT_SHOW, INCIDENT_UPDATE, MAINTENANCE_CANCEL, MAINTENANCE_COMPLETE,
    MAINTENANCE_LIST, MAINTENANCE_SCHEDULE, MAINTENANCE_START, MAINTENANCE_VERIFY,
};
use beacon_page::config::api::{CONFIG_APPLY, CONFIG_GET};
use beacon_runtime::daemon::Daemon;
use beacon_runtime::service::{Router, Service};

use crate::books::Books;
use crate::configs::{Configs, Page};
use crate::metrics::Metrics;

/// What every handler may use.
#[derive(Clone)]
pub struct Api {
    /// The process: bus, clock, origin.
    pub daemon: Daemon,
    /// Page configs.
    pub configs: Configs,
    /// Incidents, maintenance, overrides.
    pub books: Books,
    /// KV `config`.
    pub config_store: kv::Store,
    /// KV `status`.
    pub status_store: kv::Store,
    /// KV `overrides`.
    pub overrides_store: kv::Store,
    /// Metrics.
    pub metrics: Metrics,
    /// Writes made while cut off from the cluster (a decider with a
    /// region).
    pub regional: Option<beacon_runtime::regional::RegionalWriter>,
}

/// Longest title accepted.
pub const MAX_TITLE: usize = 200;
/// Longest text (update, postmortem, reason) accepted.
pub const MAX_BODY: usize = 64 * 1024;

impl Api {
    /// The page's config, or an `Invalid` reply naming it.
    pub fn page<T>(&self, page: &str) -> Result<std::sync::Arc<Page>, ApiReply<T>> {
        if let Err(e) = beacon_contract::names::check_token(page) {
            return Err(ApiReply::invalid(
                "page",
                format!("invalid page id {page:?}: {e}"),
            ));
        }
        self.configs.get(page).ok_or_else(|| {
            ApiReply::invalid("page", format!("no page {page:?}; apply its config first"))
        })
    }
}

/// Checks a title and a body, adding every problem to `errors`.
pub fn check_text(
    errors: &mut Vec<beacon_page::config::ConfigError>,
    field: &str,
    text: &str,
    max: usize,
    required: bool,
) {
    let problem = if required && text.trim().is_empty() {
        Some("must not be empty".to_owned())
    } else if text.chars().count() > max {
        Some(format!("must be at most {max} characters"))
    } else {
        None
    };
    if let Some(message) = problem {
        errors.push(beacon_page::config::ConfigError {
            location: field.to_owned(),
            message,
        });
    }
}

/// The reply for a list of errors, or `None` when there are none.
pub fn refuse<T>(errors: Vec<beacon_page::config::ConfigError>) -> Option<ApiReply<T>> {
    (!errors.is_empty()).then_some(ApiReply::Invalid { errors })
}

/// Requests handled at once by one instance.
const CONCURRENCY: usize = 32;

/// Every endpoint the decider serves, each with its handler.
pub fn router(api: &Api) -> Router {
    use incidents::Change as I;
    use maintenance::Change as M;
    let service = Service {
        name: "beacon-decider",
        description: "Beacon decider: page config, status, incidents and maintenance",
        concurrency: CONCURRENCY,
    };
    Router::new(service, api.metrics.api_requests.clone())
        .route(CONFIG_APPLY, api, |api, r| async move {
            config::apply(&api, r).await
        })
        .route(CONFIG_GET, api, |api, r| async move {
            config::get(&api, r).await
        })
        .route(COMPONENT_SET, api, |api, r| async move {
            components::set(&api, r).await
        })
        .route(COMPONENT_CLEAR, api, |api, r| async move {
            components::clear(&api, r).await
        })
        .route(COMPONENT_EXPLAIN, api, |api, r| async move {
            components::explain(&api, r).await
        })
        .route(COMPONENT_LIST, api, |api, r| async move {
            components::list(&api, r).await
        })
        .route(INCIDENT_LIST, api, |api, r| async move {
            incidents::list(&api, r).await
        })
        .route(INCIDENT_SHOW, api, |api, r| async move {
            incidents::show(&api, r).await
        })
        .route(INCIDENT_CREATE, api, |api, r| async move {
            incidents::create(&api, r).await
        })
        .route(INCIDENT_UPDATE, api, |api, r| async move {
            incidents::change(&api, r, I::Update).await
        })
        .route(INCIDENT_EDIT, api, |api, r| async move {
            incidents::change(&api, r, I::Edit).await
        })
        .route(INCIDENT_RESOLVE, api, |api, r| async move {
            incidents::change(&api, r, I::Resolve).await
        })
        .route(INCIDENT_CONFIRM, api, |api, r| async move {
            incidents::change(&api, r, I::Confirm).await
        })
        .route(INCIDENT_DISMISS, api, |api, r| async move {
            incidents::change(&api, r, I::Dismiss).await
        })
        .route(INCIDENT_POSTMORTEM, api, |api, r| async move {
            incidents::change(&api, r, I::Postmortem).await
        })
        .route(MAINTENANCE_SCHEDULE, api, |api, r| async move {
            maintenance::schedule(&api, r).await
        })
        .route(MAINTENANCE_START, api, |api, r| async move {
            maintenance::change(&api, r, M::Start).await
        })
        .route(MAINTENANCE_VERIFY, api, |api, r| async move {
            maintenance::change(&api, r, M::Verify).await
        })
        .route(MAINTENANCE_COMPLETE, api, |api, r| async move {
            maintenance::change(&api, r, M::Complete).await
        })
        .route(MAINTENANCE_CANCEL, api, |api, r| async move {
            maintenance::change(&api, r, M::Cancel).await
        })
        .route(MAINTENANCE_LIST, api, |api, r| async move {
            maintenance::list(&api, r).await
        })
}

/// Serves every endpoint until shutdown. If the service cannot be
/// registered, operators cannot reach the decider: that is an error.
/// `up` hears once requests can reach it.
pub async fn serve(api: Api, up: tokio::sync::oneshot::Sender<()>) {
    if let Err(e) = serve_endpoints(api, up).await {
        tracing::error!(error = %e, "Decider API stopped; operators cannot apply configs or manage incidents.");
    }
}

async fn serve_endpoints(
    api: Api,
    up: tokio::sync::oneshot::Sender<()>,
) -> Result<(), async_nats::Error> {
    let (client, shutdown) = (
        api.daemon.client.clone(),
        api.daemon.process.shutdown.clone(),
    );
    router(&api).serve(&client, &shutdown, Some(up)).await
}
