//! Page configs: the decider owns KV `config`. It serves
//! `beacon.api.config.apply` / `.get` and keeps a local copy of every page's
//! config, fed by a KV watch so every decider instance sees every write.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv;
use async_nats::service::ServiceExt;
use beacon_core::api::{ApiReply, ApplyConfigRequest, ApplyConfigResult, GetConfigRequest};
use beacon_core::config::{validate, ConfigError, PageConfig};
use beacon_core::daemon::Daemon;
use beacon_core::event::Envelope;
use beacon_core::names::{api, check_token, KV_CONFIG};
use beacon_core::shutdown::Backoff;
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

/// Follows KV `config` until shutdown, re-watching after errors.
pub async fn watch(
    daemon: Daemon,
    store: kv::Store,
    configs: Configs,
    loaded: tokio::sync::watch::Sender<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    while !daemon.shutdown.is_cancelled() {
        let mut watch = match store.watch_with_history(">").await {
            Ok(watch) => watch,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot watch KV config, retrying.");
                daemon.shutdown.sleep(backoff.next_delay()).await;
                continue;
            }
        };
        // An empty bucket delivers nothing, so readiness cannot wait for the
        // first entry; the initial values come first, then we are current.
        let mut pending = store.status().await.map(|s| s.values()).unwrap_or(0);
        if pending == 0 {
            let _ = loaded.send(true);
        }
        loop {
            let entry = tokio::select! {
                _ = daemon.shutdown.cancelled() => return,
                entry = watch.next() => entry,
            };
            match entry {
                Some(Ok(entry)) => {
                    apply_entry(&configs, &entry);
                    pending = pending.saturating_sub(1);
                    if pending == 0 || entry.delta == 0 {
                        let _ = loaded.send(true);
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "KV config watch error, re-watching.");
                    break;
                }
                None => break,
            }
        }
        daemon.shutdown.sleep(backoff.next_delay()).await;
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

/// Serves the config endpoints until shutdown.
pub async fn serve(daemon: Daemon, store: kv::Store) -> Result<(), async_nats::Error> {
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
            _ = daemon.shutdown.cancelled() => break,
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

/// Opens the config bucket, retrying until shutdown.
pub async fn open_bucket(daemon: &Daemon, name: &str) -> Option<kv::Store> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        match daemon.js.get_key_value(name).await {
            Ok(store) => return Some(store),
            Err(e) => {
                tracing::warn!(bucket = name, error = %e, "Cannot open KV bucket, retrying.");
                if !daemon.shutdown.sleep(backoff.next_delay()).await {
                    return None;
                }
            }
        }
    }
}

/// Bucket name re-exported for the daemon wiring.
pub const BUCKET: &str = KV_CONFIG;
