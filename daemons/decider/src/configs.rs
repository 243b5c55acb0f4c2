//! Page configs: the decider owns KV `config`. It serves
//! `beacon.api.config.apply` / `.get` and keeps a local copy of every page's
//! config, fed by a KV watch so every decider instance sees every write.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_nats::jetstream::kv;
use async_nats::service::ServiceExt;
use beacon_core::api::{ApiReply, ApplyConfigRequest, ApplyConfigResult, GetConfigRequest};
use beacon_core::buckets::{self, Change};
use beacon_core::config::{validate, ConfigError, PageConfig};
use beacon_core::daemon::Daemon;
use beacon_core::event::Envelope;
use beacon_core::names::{api, check_token};
use futures::StreamExt;
use serde::Serialize;

/// Every page's config, shared read-mostly between the API, the watch and
/// the health handler.
#[derive(Debug, Clone, Default)]
pub struct Configs(Arc<RwLock<HashMap<String, Arc<PageConfig>>>>);

impl Configs {
    /// The config of `page`, if any.
    pub fn get(&self, page: &str) -> Option<Arc<PageConfig>> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(page)
            .cloned()
    }

    fn set(&self, page: &str, config: Option<PageConfig>) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        match config {
            Some(config) => map.insert(page.to_owned(), Arc::new(config)),
            None => map.remove(page),
        };
    }
}

/// Keeps `configs` equal to KV `config` until shutdown; reports on
/// `loaded` once the stored configs are all in.
pub async fn watch(
    daemon: Daemon,
    store: kv::Store,
    configs: Configs,
    loaded: tokio::sync::watch::Sender<bool>,
) {
    let mut changes = buckets::follow(store, &daemon.process.shutdown);
    while let Some(change) = changes.recv().await {
        match change {
            Change::Entry(entry) => apply_entry(&configs, &entry),
            Change::CaughtUp => {
                let _ = loaded.send(true);
            }
        }
    }
}

fn apply_entry(configs: &Configs, entry: &kv::Entry) {
    match entry.operation {
        kv::Operation::Put => match Envelope::<PageConfig>::decode(&entry.value) {
            Ok(envelope) => {
                tracing::info!(page = %entry.key, revision = entry.revision, "Page config loaded.");
                configs.set(&entry.key, Some(envelope.data));
            }
            Err(e) => {
                tracing::error!(page = %entry.key, error = %e, "Stored page config is unreadable; keeping the previous one.")
            }
        },
        kv::Operation::Delete | kv::Operation::Purge => {
            tracing::info!(page = %entry.key, "Page config removed.");
            configs.set(&entry.key, None);
        }
    }
}

/// Serves the config endpoints until shutdown. If the service cannot be
/// registered, operators cannot apply configs: that is logged as an error.
pub async fn serve(daemon: Daemon, store: kv::Store) {
    if let Err(e) = serve_endpoints(daemon, store).await {
        tracing::error!(error = %e, "Config API stopped; operators cannot apply configs.");
    }
}

async fn serve_endpoints(daemon: Daemon, store: kv::Store) -> Result<(), async_nats::Error> {
    let service = daemon
        .client
        .service_builder()
        .description("Beacon decider: page config, status, incidents and maintenance")
        .start("beacon-decider", env!("CARGO_PKG_VERSION"))
        .await?;
    let group = service.group(api::GROUP);
    let mut apply = group
        .endpoint(api::CONFIG_APPLY.trim_start_matches("beacon.api."))
        .await?;
    let mut get = group
        .endpoint(api::CONFIG_GET.trim_start_matches("beacon.api."))
        .await?;
    loop {
        tokio::select! {
            _ = daemon.process.shutdown.cancelled() => break,
            Some(request) = apply.next() => {
                let reply = handle_apply(&daemon, &store, &request.message.payload).await;
                respond(&request, &reply).await;
            }
            Some(request) = get.next() => {
                let reply = handle_get(&store, &request.message.payload).await;
                respond(&request, &reply).await;
            }
            else => break,
        }
    }
    let _ = service.stop().await;
    Ok(())
}

async fn respond<T: Serialize>(request: &async_nats::service::Request, reply: &ApiReply<T>) {
    let body = serde_json::to_vec(reply).unwrap_or_default();
    if let Err(e) = request.respond(Ok(body.into())).await {
        tracing::warn!(error = %e, "Cannot send API reply.");
    }
}

fn invalid<T>(location: &str, message: String) -> ApiReply<T> {
    ApiReply::Invalid {
        errors: vec![ConfigError {
            location: location.to_owned(),
            message,
        }],
    }
}

async fn handle_apply(
    daemon: &Daemon,
    store: &kv::Store,
    payload: &[u8],
) -> ApiReply<ApplyConfigResult> {
    let request: ApplyConfigRequest = match serde_json::from_slice(payload) {
        Ok(request) => request,
        Err(e) => return invalid("request", format!("not an ApplyConfigRequest: {e}")),
    };
    // The owner validates again: clients may be old, buggy or hostile.
    let config = match validate(&request.config) {
        Ok(config) => config,
        Err(errors) => return ApiReply::Invalid { errors: errors.0 },
    };
    let page = config.id.clone();
    match store.entry(page.as_str()).await {
        Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
            if let Ok(existing) = Envelope::<PageConfig>::decode(&entry.value) {
                if existing.data == config {
                    return ApiReply::Ok {
                        result: ApplyConfigResult {
                            page,
                            revision: entry.revision,
                            changed: false,
                        },
                    };
                }
            }
        }
        Ok(_) => {}
        Err(e) => {
            return ApiReply::Failed {
                message: format!("cannot read KV config: {e}"),
            }
        }
    }
    let envelope = Envelope::new(&daemon.clock, &daemon.origin, config);
    let bytes = match envelope.encode() {
        Ok(bytes) => bytes,
        Err(e) => {
            return ApiReply::Failed {
                message: format!("cannot encode config: {e}"),
            }
        }
    };
    match store.put(page.as_str(), bytes.into()).await {
        Ok(revision) => {
            tracing::info!(%page, revision, "Page config applied.");
            ApiReply::Ok {
                result: ApplyConfigResult {
                    page,
                    revision,
                    changed: true,
                },
            }
        }
        Err(e) => ApiReply::Failed {
            message: format!("cannot write KV config: {e}"),
        },
    }
}

async fn handle_get(store: &kv::Store, payload: &[u8]) -> ApiReply<PageConfig> {
    let request: GetConfigRequest = match serde_json::from_slice(payload) {
        Ok(request) => request,
        Err(e) => return invalid("request", format!("not a GetConfigRequest: {e}")),
    };
    if let Err(e) = check_token(&request.page) {
        return invalid("page", format!("invalid page id: {e}"));
    }
    match store.get(request.page.as_str()).await {
        Ok(Some(bytes)) => match Envelope::<PageConfig>::decode(&bytes) {
            Ok(envelope) => ApiReply::Ok {
                result: envelope.data,
            },
            Err(e) => ApiReply::Failed {
                message: format!("stored config is unreadable: {e}"),
            },
        },
        Ok(None) => invalid("page", format!("no page {:?}", request.page)),
        Err(e) => ApiReply::Failed {
            message: format!("cannot read KV config: {e}"),
        },
    }
}
