//! `component.set|clear|explain|list`. An override is a value in KV
//! `overrides` whose envelope HLC orders it: a write replaces the stored
//! one only if it is later, by compare-and-set, so whichever of two
//! operators wrote last wins on every instance. The leading decider follows
//! the bucket and applies it; the reply already shows the override.

use async_nats::jetstream::kv;
use beacon_contract::api::{
    ApiReply, ClearComponentRequest, ComponentRequest, ComponentView, SetComponentRequest,
};
use beacon_contract::event::Envelope;
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::messages::{ComponentOverride, ComponentStatus, StatusRecord};
use beacon_contract::names::status_key;
use beacon_page::config::Component;

use super::{check_text, refuse, Api, MAX_BODY};

/// Longest override accepted.
pub const MAX_OVERRIDE_MS: u64 = 30 * 24 * 3600 * 1000;

/// `beacon.api.component.set`.
pub async fn set(api: &Api, request: SetComponentRequest) -> ApiReply<ComponentView> {
    let page = match api.page(&request.page) {
        Ok(page) => page,
        Err(reply) => return reply,
    };
    let mut errors = Vec::new();
    if page.component(&request.component).is_none() {
        errors.push(beacon_page::config::ConfigError {
            location: "component".into(),
            message: format!(
                "page {} has no component {:?}",
                request.page, request.component
            ),
        });
    }
    if let Some(ms) = request.expires_in_ms {
        if ms == 0 || ms > MAX_OVERRIDE_MS {
            errors.push(beacon_page::config::ConfigError {
                location: "expires_in".into(),
                message: "must be above zero and at most 30 days".into(),
            });
        }
    }
    check_text(&mut errors, "reason", &request.reason, MAX_BODY, false);
    check_text(&mut errors, "actor", &request.actor, 200, true);
    if let Some(reply) = refuse(errors) {
        return reply;
    }
    let now = wall_clock_ms();
    let value = ComponentOverride {
        page: request.page.clone(),
        component: request.component.clone(),
        status: Some(request.status),
        reason: request.reason,
        actor: request.actor,
        expires_at_ms: request.expires_in_ms.map(|ms| now + ms),
    };
    write(api, value).await
}

/// `beacon.api.component.clear`.
pub async fn clear(api: &Api, request: ClearComponentRequest) -> ApiReply<ComponentView> {
    let page = match api.page(&request.page) {
        Ok(page) => page,
        Err(reply) => return reply,
    };
    if page.component(&request.component).is_none() {
        return ApiReply::invalid(
            "component",
            format!(
                "page {} has no component {:?}",
                request.page, request.component
            ),
        );
    }
    let value = ComponentOverride {
        page: request.page.clone(),
        component: request.component.clone(),
        status: None,
        reason: String::new(),
        actor: request.actor,
        expires_at_ms: None,
    };
    write(api, value).await
}

/// Writes `value` unless a later write is stored; last writer wins by HLC.
async fn write(api: &Api, value: ComponentOverride) -> ApiReply<ComponentView> {
    let key = status_key(&value.page, &value.component);
    let envelope = Envelope::new(&api.daemon.clock, &api.daemon.origin, value);
    let bytes = match envelope.encode() {
        Ok(bytes) => bytes,
        Err(e) => return ApiReply::failed(format!("cannot encode the override: {e}")),
    };
    for _ in 0..8 {
        let current = match api.overrides_store.entry(&key).await {
            Ok(entry) => entry.filter(|e| e.operation == kv::Operation::Put),
            Err(e) => return ApiReply::failed(format!("cannot read KV overrides: {e}")),
        };
        if let Some(entry) = &current {
            if let Ok(stored) = Envelope::<ComponentOverride>::decode(&entry.value) {
                if stored.hlc > envelope.hlc {
                    // A later write is already there: ours lost.
                    api.books.apply_override(&stored);
                    return view(api, &envelope.data.page, &envelope.data.component).await;
                }
            }
        }
        let written = match &current {
            Some(entry) => api
                .overrides_store
                .update(&key, bytes.clone().into(), entry.revision)
                .await
                .map_err(|e| e.kind() == kv::UpdateErrorKind::WrongLastRevision),
            None => api
                .overrides_store
                .create(&key, bytes.clone().into())
                .await
                .map_err(|e| e.kind() == kv::CreateErrorKind::AlreadyExists),
        };
        match written {
            Ok(_) => {
                api.books.apply_override(&envelope);
                tracing::info!(page = %envelope.data.page, component = %envelope.data.component,
                    status = envelope.data.status.map_or("cleared", ComponentStatus::as_str),
                    actor = %envelope.data.actor, "Component override written.");
                return view(api, &envelope.data.page, &envelope.data.component).await;
            }
            // Someone wrote between the read and the write: compare again.
            Err(true) => continue,
            Err(false) => return ApiReply::failed("cannot write KV overrides"),
        }
    }
    ApiReply::failed("the override kept changing underneath; try again")
}

/// `beacon.api.component.explain`.
pub async fn explain(api: &Api, request: ComponentRequest) -> ApiReply<ComponentView> {
    let Some(component) = request.component else {
        return ApiReply::invalid("component", "name the component to explain");
    };
    view(api, &request.page, &component).await
}

/// `beacon.api.component.list`.
pub async fn list(api: &Api, request: ComponentRequest) -> ApiReply<Vec<ComponentView>> {
    let page = match api.page(&request.page) {
        Ok(page) => page,
        Err(reply) => return reply,
    };
    let mut views = Vec::new();
    for component in &page.config.components {
        match build(api, &request.page, component).await {
            Ok(view) => views.push(view),
            Err(reply) => return reply,
        }
    }
    ApiReply::Ok { result: views }
}

async fn view(api: &Api, page_id: &str, component_id: &str) -> ApiReply<ComponentView> {
    let page = match api.page(page_id) {
        Ok(page) => page,
        Err(reply) => return reply,
    };
    let Some(component) = page.component(component_id) else {
        return ApiReply::invalid(
            "component",
            format!("page {page_id} has no component {component_id:?}"),
        );
    };
    match build(api, page_id, component).await {
        Ok(view) => ApiReply::Ok { result: view },
        Err(reply) => reply,
    }
}

async fn build<T>(
    api: &Api,
    page: &str,
    component: &Component,
) -> Result<ComponentView, ApiReply<T>> {
    let record = match api.status_store.get(status_key(page, &component.id)).await {
        Ok(Some(bytes)) => Envelope::<StatusRecord>::decode(&bytes)
            .ok()
            .map(|e| e.data),
        Ok(None) => None,
        Err(e) => return Err(ApiReply::failed(format!("cannot read KV status: {e}"))),
    };
    let manual = api.books.override_of(page, &component.id);
    let maintenance = api
        .books
        .windows(page)
        .into_iter()
        .filter(|w| w.covers(&component.id))
        .map(|w| w.state.maintenance)
        .collect();
    let incidents = api
        .books
        .incidents(page)
        .into_iter()
        .filter(|i| {
            i.is_pending_or_active() && i.components.iter().any(|c| c.component == component.id)
        })
        .map(|i| i.id)
        .collect();
    let now = wall_clock_ms();
    Ok(ComponentView {
        page: page.to_owned(),
        component: component.id.clone(),
        name: component.name.clone(),
        automated: !component.checks.is_empty(),
        record,
        manual_override: manual.filter(|m| m.status.is_some() && m.active_at(now)),
        maintenance,
        incidents,
        depends_on: component.depends_on.clone(),
    })
}
