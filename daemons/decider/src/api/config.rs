//! `config.apply` and `config.get`. The decider owns KV `config`; an apply
//! is validated again (clients may be old, buggy or hostile) and written by
//! compare-and-set, so of two concurrent applies one wins and the other is
//! told it conflicted.

use async_nats::jetstream::kv;
use beacon_contract::api::ApiReply;
use beacon_contract::event::Envelope;
use beacon_contract::names::check_token;
use beacon_page::config::api::{ApplyConfigRequest, ApplyConfigResult, GetConfigRequest};
use beacon_page::config::{validate, PageConfig};

use super::Api;

/// `beacon.api.config.apply`.
pub async fn apply(api: &Api, request: ApplyConfigRequest) -> ApiReply<ApplyConfigResult> {
    let config = match validate(&request.config) {
        Ok(config) => config,
        Err(errors) => return ApiReply::Invalid { errors: errors.0 },
    };
    let page = config.id.clone();
    let store = &api.config_store;
    let current = match store.entry(page.as_str()).await {
        Ok(entry) => entry.filter(|e| e.operation == kv::Operation::Put),
        Err(e) => return ApiReply::failed(format!("cannot read KV config: {e}")),
    };
    let current_revision = current.as_ref().map_or(0, |e| e.revision);
    if let Some(expected) = request.expected_revision {
        if expected != current_revision {
            return conflict(
                &page,
                current_revision,
                format!("the stored config is at revision {current_revision}, not {expected}"),
            );
        }
    }
    if let Some(entry) = &current {
        if Envelope::<PageConfig>::decode(&entry.value).is_ok_and(|stored| stored.data == config) {
            return ApiReply::Ok {
                result: ApplyConfigResult {
                    page,
                    revision: entry.revision,
                    changed: false,
                },
            };
        }
    }
    let envelope = Envelope::new(&api.daemon.clock, &api.daemon.origin, config);
    let bytes = match envelope.encode() {
        Ok(bytes) => bytes,
        Err(e) => return ApiReply::failed(format!("cannot encode config: {e}")),
    };
    let written = match &current {
        Some(entry) => store
            .update(page.as_str(), bytes.into(), entry.revision)
            .await
            .map_err(|e| {
                (
                    e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                    e.to_string(),
                )
            }),
        None => store
            .create(page.as_str(), bytes.into())
            .await
            .map_err(|e| {
                (
                    e.kind() == kv::CreateErrorKind::AlreadyExists,
                    e.to_string(),
                )
            }),
    };
    match written {
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
        Err((true, _)) => {
            let now = store
                .entry(page.as_str())
                .await
                .ok()
                .flatten()
                .map_or(0, |e| e.revision);
            conflict(
                &page,
                now,
                "another apply changed the config first".to_owned(),
            )
        }
        Err((false, e)) => ApiReply::failed(format!("cannot write KV config: {e}")),
    }
}

fn conflict(page: &str, revision: u64, message: String) -> ApiReply<ApplyConfigResult> {
    ApiReply::Conflict {
        message: format!("page {page}: {message}; read it again and re-apply"),
        current: Some(ApplyConfigResult {
            page: page.to_owned(),
            revision,
            changed: false,
        }),
    }
}

/// `beacon.api.config.get`.
pub async fn get(api: &Api, request: GetConfigRequest) -> ApiReply<PageConfig> {
    if let Err(e) = check_token(&request.page) {
        return ApiReply::invalid("page", format!("invalid page id: {e}"));
    }
    match api.config_store.get(request.page.as_str()).await {
        Ok(Some(bytes)) => match Envelope::<PageConfig>::decode(&bytes) {
            Ok(envelope) => ApiReply::Ok {
                result: envelope.data,
            },
            Err(e) => ApiReply::failed(format!("stored config is unreadable: {e}")),
        },
        Ok(None) => ApiReply::invalid("page", format!("no page {:?}", request.page)),
        Err(e) => ApiReply::failed(format!("cannot read KV config: {e}")),
    }
}
