//! The api daemon owns its keys: KV `apikeys`, followed into memory, and
//! the bus endpoints `beacon.api.apikey.create|list|revoke` that
//! `beaconctl apikey` calls.

use async_nats::jetstream::kv;
use async_nats::service::{Request, ServiceExt};
use beacon_contract::api::{
    ApiKeyView, ApiReply, CreateApiKeyRequest, CreatedApiKey, ListApiKeysRequest,
    RevokeApiKeyRequest,
};
use beacon_contract::event::Envelope;
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::messages::ApiKeyRecord;
use beacon_contract::names::{api, check_token};
use beacon_runtime::buckets::{self, Change};
use beacon_runtime::daemon::Daemon;
use futures::StreamExt;
use serde::Serialize;

use crate::keys::{self, Keys, DEFAULT_RATE_PER_MINUTE, MAX_RATE_PER_MINUTE};

/// Keeps `keys` equal to the bucket until shutdown; reports on `loaded`
/// once the stored keys are in.
pub async fn follow(
    daemon: Daemon,
    store: kv::Store,
    keys: Keys,
    loaded: tokio::sync::watch::Sender<bool>,
) {
    let mut changes = buckets::follow(store, &daemon.process.shutdown);
    while let Some(change) = changes.recv().await {
        match change {
            Change::Entry(entry) => match entry.operation {
                kv::Operation::Put => match Envelope::<ApiKeyRecord>::decode(&entry.value) {
                    Ok(envelope) => keys.set(&entry.key, entry.revision, Some(envelope.data)),
                    Err(e) => {
                        tracing::warn!(key = %entry.key, error = %e, "Unreadable API key record skipped.")
                    }
                },
                kv::Operation::Delete | kv::Operation::Purge => {
                    keys.set(&entry.key, entry.revision, None)
                }
            },
            Change::CaughtUp => {
                let _ = loaded.send(true);
            }
        }
    }
}

/// Reads the bucket's entry for `id` into `keys`: what a request does when
/// it names a key the follower has not delivered yet, so a key is usable
/// the moment its creation was acknowledged. An id the bucket does not hold
/// is not remembered, so a key created a moment later is still found.
pub async fn read_through(store: &kv::Store, keys: &Keys, id: &str) -> Result<(), kv::EntryError> {
    let Some(entry) = store.entry(id).await? else {
        return Ok(());
    };
    match entry.operation {
        kv::Operation::Put => match Envelope::<ApiKeyRecord>::decode(&entry.value) {
            Ok(envelope) => keys.set(id, entry.revision, Some(envelope.data)),
            Err(e) => {
                tracing::warn!(key = %id, error = %e, "Unreadable API key record skipped.")
            }
        },
        kv::Operation::Delete | kv::Operation::Purge => keys.set(id, entry.revision, None),
    }
    Ok(())
}

fn invalid<T>(location: &str, message: impl Into<String>) -> ApiReply<T> {
    ApiReply::invalid(location, message)
}

async fn create(
    daemon: &Daemon,
    store: &kv::Store,
    keys: &Keys,
    payload: &[u8],
) -> ApiReply<CreatedApiKey> {
    let request: CreateApiKeyRequest = match serde_json::from_slice(payload) {
        Ok(request) => request,
        Err(e) => return invalid("request", format!("not a CreateApiKeyRequest: {e}")),
    };
    let mut errors = Vec::new();
    if let Err(e) = check_token(&request.page) {
        errors.push(("page", format!("invalid page id: {e}")));
    }
    if request.name.trim().is_empty()
        || request.name.chars().count() > 200
        || request.name.chars().any(char::is_control)
    {
        errors.push(("name", "must be 1 to 200 printable characters".to_owned()));
    }
    if request.scopes.is_empty() {
        errors.push(("scopes", "give at least one scope".to_owned()));
    }
    let rate = request.rate_per_minute.unwrap_or(DEFAULT_RATE_PER_MINUTE);
    if !(1..=MAX_RATE_PER_MINUTE).contains(&rate) {
        errors.push((
            "rate_per_minute",
            format!("must be between 1 and {MAX_RATE_PER_MINUTE}"),
        ));
    }
    if !errors.is_empty() {
        return ApiReply::Invalid {
            errors: errors
                .into_iter()
                .map(|(location, message)| beacon_page::config::ConfigError {
                    location: location.to_owned(),
                    message,
                })
                .collect(),
        };
    }
    let new = keys::generate();
    let mut scopes = request.scopes.clone();
    scopes.sort();
    scopes.dedup();
    let record = ApiKeyRecord {
        id: new.id.clone(),
        page: request.page,
        name: request.name,
        scopes,
        secret_sha256: new.secret_sha256,
        rate_per_minute: rate,
        created_at_ms: wall_clock_ms(),
        created_by: request.actor,
        revoked_at_ms: None,
    };
    let bytes = match Envelope::new(&daemon.clock, &daemon.origin, record.clone()).encode() {
        Ok(bytes) => bytes,
        Err(e) => return ApiReply::failed(format!("cannot encode the key: {e}")),
    };
    match store.create(&record.id, bytes.into()).await {
        Ok(revision) => {
            keys.set(&record.id, revision, Some(record.clone()));
            tracing::info!(target: "audit", key = %record.id, page = %record.page, by = %record.created_by, "API key created.");
            ApiReply::Ok {
                result: CreatedApiKey {
                    key: new.text,
                    view: keys::view(&record),
                },
            }
        }
        Err(e) => ApiReply::failed(format!("cannot store the key: {e}")),
    }
}

async fn list(keys: &Keys, payload: &[u8]) -> ApiReply<Vec<ApiKeyView>> {
    let request: ListApiKeysRequest = match serde_json::from_slice(payload) {
        Ok(request) => request,
        Err(e) => return invalid("request", format!("not a ListApiKeysRequest: {e}")),
    };
    ApiReply::Ok {
        result: keys
            .all()
            .iter()
            .filter(|r| request.page.as_ref().is_none_or(|p| &r.page == p))
            .map(keys::view)
            .collect(),
    }
}

async fn revoke(
    daemon: &Daemon,
    store: &kv::Store,
    keys: &Keys,
    payload: &[u8],
) -> ApiReply<ApiKeyView> {
    let request: RevokeApiKeyRequest = match serde_json::from_slice(payload) {
        Ok(request) => request,
        Err(e) => return invalid("request", format!("not a RevokeApiKeyRequest: {e}")),
    };
    if check_token(&request.id).is_err() {
        return invalid("id", "not a key id");
    }
    for _ in 0..5 {
        let entry = match store.entry(&request.id).await {
            Ok(Some(entry)) if entry.operation == kv::Operation::Put => entry,
            Ok(_) => return invalid("id", format!("no API key {:?}", request.id)),
            Err(e) => return ApiReply::failed(format!("cannot read the key: {e}")),
        };
        let mut record = match Envelope::<ApiKeyRecord>::decode(&entry.value) {
            Ok(envelope) => envelope.data,
            Err(e) => return ApiReply::failed(format!("the stored key is unreadable: {e}")),
        };
        if record.revoked_at_ms.is_some() {
            return ApiReply::Ok {
                result: keys::view(&record),
            };
        }
        record.revoked_at_ms = Some(wall_clock_ms());
        let bytes = match Envelope::new(&daemon.clock, &daemon.origin, record.clone()).encode() {
            Ok(bytes) => bytes,
            Err(e) => return ApiReply::failed(format!("cannot encode the key: {e}")),
        };
        match store
            .update(&request.id, bytes.into(), entry.revision)
            .await
        {
            Ok(revision) => {
                // Refused here from this moment; other instances learn it
                // from their followers.
                keys.set(&record.id, revision, Some(record.clone()));
                tracing::info!(target: "audit", key = %record.id, page = %record.page, by = %request.actor, "API key revoked.");
                return ApiReply::Ok {
                    result: keys::view(&record),
                };
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
            Err(e) => return ApiReply::failed(format!("cannot store the revocation: {e}")),
        }
    }
    ApiReply::failed("the key kept changing underneath; try again")
}

async fn respond<T: Serialize>(request: &Request, reply: ApiReply<T>) {
    let body = serde_json::to_vec(&reply).unwrap_or_default();
    if let Err(e) = request.respond(Ok(body.into())).await {
        tracing::warn!(error = %e, "Cannot send API reply.");
    }
}

/// Serves the key endpoints until shutdown.
pub async fn serve(daemon: Daemon, store: kv::Store, keys: Keys) {
    let served = async {
        let service = daemon
            .client
            .service_builder()
            .description("Beacon api: HTTP API keys")
            .start("beacon-api", env!("CARGO_PKG_VERSION"))
            .await?;
        let group = service.group(api::GROUP);
        let mut create_requests = group.endpoint("apikey.create").await?;
        let mut list_requests = group.endpoint("apikey.list").await?;
        let mut revoke_requests = group.endpoint("apikey.revoke").await?;
        loop {
            tokio::select! {
                _ = daemon.process.shutdown.cancelled() => break,
                Some(request) = create_requests.next() => {
                    let reply = create(&daemon, &store, &keys, &request.message.payload).await;
                    respond(&request, reply).await;
                }
                Some(request) = list_requests.next() => {
                    let reply = list(&keys, &request.message.payload).await;
                    respond(&request, reply).await;
                }
                Some(request) = revoke_requests.next() => {
                    let reply = revoke(&daemon, &store, &keys, &request.message.payload).await;
                    respond(&request, reply).await;
                }
                else => break,
            }
        }
        let _ = service.stop().await;
        Ok::<(), async_nats::Error>(())
    };
    if let Err(e) = served.await {
        tracing::error!(error = %e, "API key endpoints stopped; keys cannot be created or revoked.");
    }
}
