//! The api daemon owns its keys: KV `apikeys`, followed into memory, and
//! the bus endpoints `beacon.api.apikey.create|list|revoke` that
//! `beaconctl apikey` calls.

use crate::keys::ApiKeyRecord;
use async_nats::jetstream::kv;
use beacon_contract::api::{
    ApiKeyView, ApiReply, CreateApiKeyRequest, CreatedApiKey, ListApiKeysRequest,
    RevokeApiKeyRequest, APIKEY_CREATE, APIKEY_LIST, APIKEY_REVOKE,
};
use beacon_contract::event::Envelope;
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::names::check_token;
use beacon_runtime::buckets::{self, Change};
use beacon_runtime::daemon::Daemon;
use beacon_runtime::service::{Router, Service};
use prometheus::IntCounterVec;

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

async fn create(admin: &Admin, request: CreateApiKeyRequest) -> ApiReply<CreatedApiKey> {
    let Admin {
        daemon,
        store,
        keys,
        ..
    } = admin;
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

async fn list(admin: &Admin, request: ListApiKeysRequest) -> ApiReply<Vec<ApiKeyView>> {
    ApiReply::Ok {
        result: admin
            .keys
            .all()
            .iter()
            .filter(|r| request.page.as_ref().is_none_or(|p| &r.page == p))
            .map(keys::view)
            .collect(),
    }
}

async fn revoke(admin: &Admin, request: RevokeApiKeyRequest) -> ApiReply<ApiKeyView> {
    let Admin {
        daemon,
        store,
        keys,
        ..
    } = admin;
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

/// What the key endpoints need.
#[derive(Clone)]
pub struct Admin {
    /// The process: bus, clock, origin.
    pub daemon: Daemon,
    /// KV `apikeys`.
    pub store: kv::Store,
    /// Every key, as the HTTP side checks them.
    pub keys: Keys,
    /// Requests by endpoint and outcome.
    pub requests: IntCounterVec,
}

/// The key endpoints, each with its handler.
pub fn router(admin: &Admin) -> Router {
    let service = Service {
        name: "beacon-api",
        description: "Beacon api: HTTP API keys",
        concurrency: 8,
    };
    Router::new(service, admin.requests.clone())
        .route(APIKEY_CREATE, admin, |admin, r| async move {
            create(&admin, r).await
        })
        .route(APIKEY_LIST, admin, |admin, r| async move {
            list(&admin, r).await
        })
        .route(APIKEY_REVOKE, admin, |admin, r| async move {
            revoke(&admin, r).await
        })
}

/// Serves the key endpoints until shutdown; `up` hears once requests can
/// reach them.
pub async fn serve(admin: Admin, up: tokio::sync::oneshot::Sender<()>) {
    let (client, shutdown) = (
        admin.daemon.client.clone(),
        admin.daemon.process.shutdown.clone(),
    );
    if let Err(e) = router(&admin).serve(&client, &shutdown, Some(up)).await {
        tracing::error!(error = %e, "API key endpoints stopped; keys cannot be created or revoked.");
    }
}
