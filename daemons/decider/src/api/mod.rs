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

use async_nats::jetstream::kv;
use async_nats::service::Request;
use beacon_contract::api::ApiReply;
use beacon_contract::names::api;
use beacon_runtime::daemon::Daemon;
use beacon_runtime::service::{self, Service};
use serde::de::DeserializeOwned;
use serde::Serialize;

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

/// Reads a request body, or an `Invalid` reply saying why it is not one.
pub fn parse<Req: DeserializeOwned, T>(payload: &[u8], what: &str) -> Result<Req, ApiReply<T>> {
    serde_json::from_slice(payload)
        .map_err(|e| ApiReply::invalid("request", format!("not a {what}: {e}")))
}

fn outcome_label<T>(reply: &ApiReply<T>) -> &'static str {
    match reply {
        ApiReply::Ok { .. } => "ok",
        ApiReply::Invalid { .. } => "invalid",
        ApiReply::Failed { .. } => "failed",
        ApiReply::Conflict { .. } => "conflict",
    }
}

async fn respond<T: Serialize>(api: &Api, endpoint: &str, request: &Request, reply: ApiReply<T>) {
    api.metrics
        .api_requests
        .with_label_values(&[endpoint, outcome_label(&reply)])
        .inc();
    let body = serde_json::to_vec(&reply).unwrap_or_default();
    if let Err(e) = request.respond(Ok(body.into())).await {
        tracing::warn!(endpoint, error = %e, "Cannot send API reply.");
    }
}

/// Every endpoint the decider serves, by subject.
const ENDPOINTS: &[&str] = &[
    api::CONFIG_APPLY,
    api::CONFIG_GET,
    api::COMPONENT_SET,
    api::COMPONENT_CLEAR,
    api::COMPONENT_EXPLAIN,
    api::COMPONENT_LIST,
    api::INCIDENT_LIST,
    api::INCIDENT_SHOW,
    api::INCIDENT_CREATE,
    api::INCIDENT_UPDATE,
    api::INCIDENT_EDIT,
    api::INCIDENT_RESOLVE,
    api::INCIDENT_CONFIRM,
    api::INCIDENT_DISMISS,
    api::INCIDENT_POSTMORTEM,
    api::MAINTENANCE_SCHEDULE,
    api::MAINTENANCE_START,
    api::MAINTENANCE_VERIFY,
    api::MAINTENANCE_COMPLETE,
    api::MAINTENANCE_CANCEL,
    api::MAINTENANCE_LIST,
];

/// Requests handled at once by one instance.
const CONCURRENCY: usize = 32;

async fn dispatch(api: &Api, subject: &'static str, request: Request) {
    let payload = request.message.payload.clone();
    let name = subject.trim_start_matches("beacon.api.");
    macro_rules! answer {
        ($reply:expr) => {
            respond(api, name, &request, $reply.await).await
        };
    }
    match subject {
        api::CONFIG_APPLY => answer!(config::apply(api, &payload)),
        api::CONFIG_GET => answer!(config::get(api, &payload)),
        api::COMPONENT_SET => answer!(components::set(api, &payload)),
        api::COMPONENT_CLEAR => answer!(components::clear(api, &payload)),
        api::COMPONENT_EXPLAIN => answer!(components::explain(api, &payload)),
        api::COMPONENT_LIST => answer!(components::list(api, &payload)),
        api::INCIDENT_LIST => answer!(incidents::list(api, &payload)),
        api::INCIDENT_SHOW => answer!(incidents::show(api, &payload)),
        api::INCIDENT_CREATE => answer!(incidents::create(api, &payload)),
        api::INCIDENT_UPDATE => {
            answer!(incidents::change(api, &payload, incidents::Change::Update))
        }
        api::INCIDENT_EDIT => {
            answer!(incidents::change(api, &payload, incidents::Change::Edit))
        }
        api::INCIDENT_RESOLVE => {
            answer!(incidents::change(api, &payload, incidents::Change::Resolve))
        }
        api::INCIDENT_CONFIRM => {
            answer!(incidents::change(api, &payload, incidents::Change::Confirm))
        }
        api::INCIDENT_DISMISS => {
            answer!(incidents::change(api, &payload, incidents::Change::Dismiss))
        }
        api::INCIDENT_POSTMORTEM => {
            answer!(incidents::change(
                api,
                &payload,
                incidents::Change::Postmortem
            ))
        }
        api::MAINTENANCE_SCHEDULE => answer!(maintenance::schedule(api, &payload)),
        api::MAINTENANCE_START => answer!(maintenance::change(
            api,
            &payload,
            maintenance::Change::Start
        )),
        api::MAINTENANCE_VERIFY => answer!(maintenance::change(
            api,
            &payload,
            maintenance::Change::Verify
        )),
        api::MAINTENANCE_COMPLETE => {
            answer!(maintenance::change(
                api,
                &payload,
                maintenance::Change::Complete
            ))
        }
        api::MAINTENANCE_CANCEL => answer!(maintenance::change(
            api,
            &payload,
            maintenance::Change::Cancel
        )),
        api::MAINTENANCE_LIST => answer!(maintenance::list(api, &payload)),
        other => {
            // A registered endpoint without a handler is a bug; the caller
            // still gets an answer instead of a timeout.
            tracing::error!(
                subject = other,
                "No handler for an endpoint that is registered."
            );
            let reply = ApiReply::<()>::failed(format!("{other} has no handler in this decider"));
            respond(api, name, &request, reply).await
        }
    }
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
    let service = Service {
        name: "beacon-decider",
        description: "Beacon decider: page config, status, incidents and maintenance",
        endpoints: ENDPOINTS,
        concurrency: CONCURRENCY,
    };
    let (client, shutdown) = (
        api.daemon.client.clone(),
        api.daemon.process.shutdown.clone(),
    );
    service::serve(&client, &shutdown, service, Some(up), |subject, request| {
        let api = api.clone();
        async move { dispatch(&api, subject, request).await }
    })
    .await
}
