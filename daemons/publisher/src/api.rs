//! The changelog's bus API (`beacon.api.changelog.publish|edit|delete|list`),
//! a NATS micro service served by every publisher (one queue group). Each
//! request reads what it needs from the bus itself (the page config from KV
//! `config`, the entry from `CHANGELOG`), so instances share no state.
//! Writes are conditional on the entry's subject's latest sequence: of two
//! concurrent edits one wins and the other gets a conflict. Images are
//! stored in the `pages` object store before the event that names them.
//!
//! A publisher that runs in a region answers from what it followed when
//! the cluster is out of reach (the region is cut off from the other two),
//! and stores a publish, edit or withdrawal in the region's own stream
//! ([`beacon_runtime::regional`]); the entry's fold takes the latest event
//! by HLC, so it merges with what the others wrote when the cut heals.
//! Images need the cluster's object store and are refused while cut off.

use async_nats::jetstream::kv;
use async_nats::jetstream::object_store::ObjectStore;
use beacon_contract::api::{
    ApiReply, ChangelogList, ChangelogView, DeleteChangelogRequest, EditChangelogRequest,
    ListChangelogRequest, PublishChangelogRequest, CHANGELOG_DELETE, CHANGELOG_EDIT,
    CHANGELOG_LIST, CHANGELOG_PUBLISH,
};
use beacon_contract::event::{Envelope, EventId};
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::messages::ChangelogEntry;
use beacon_contract::names::{changelog_subject, check_token, STREAM_CHANGELOG};
use beacon_page::config::PageConfig;
use beacon_runtime::daemon::Daemon;
use beacon_runtime::history;
use beacon_runtime::publish::{publish_expecting, PublishFailure};
use beacon_runtime::regional::RegionalWriter;
use beacon_runtime::service::{Router, Service};
use prometheus::{IntCounter, IntCounterVec};

use crate::changelog::{decode_images, validate, Changelog};
use crate::followed::Followed;

/// What the handlers need.
#[derive(Clone)]
pub struct Api {
    /// Bus, clock, origin.
    pub daemon: Daemon,
    /// KV `config`.
    pub configs: kv::Store,
    /// The `pages` object store (images).
    pub objects: ObjectStore,
    /// Requests by endpoint and outcome.
    pub requests: IntCounterVec,
    /// Page configs and changelogs as followed.
    pub followed: Followed,
    /// Writes while cut off from the cluster (a publisher with a region).
    pub regional: Option<RegionalWriter>,
    /// Changelog events stored in the region's own stream.
    pub regional_writes: IntCounter,
}

/// Every endpoint the publisher serves, each with its handler.
pub fn router(api: &Api) -> Router {
    let service = Service {
        name: "beacon-publisher",
        description: "Beacon publisher: the changelog",
        concurrency: 16,
    };
    Router::new(service, api.requests.clone())
        .route(CHANGELOG_PUBLISH, api, |api, r| async move {
            publish(&api, r).await
        })
        .route(
            CHANGELOG_EDIT,
            api,
            |api, r| async move { edit(&api, r).await },
        )
        .route(CHANGELOG_DELETE, api, |api, r| async move {
            delete(&api, r).await
        })
        .route(
            CHANGELOG_LIST,
            api,
            |api, r| async move { list(&api, r).await },
        )
}

/// Serves the changelog endpoints until shutdown; `up` hears once requests
/// can reach them.
pub async fn serve(api: Api, up: tokio::sync::oneshot::Sender<()>) {
    let (client, shutdown) = (
        api.daemon.client.clone(),
        api.daemon.process.shutdown.clone(),
    );
    if let Err(e) = router(&api).serve(&client, &shutdown, Some(up)).await {
        tracing::error!(error = %e, "Changelog API stopped; operators cannot publish changelog entries.");
    }
}

async fn page_config<T>(api: &Api, page: &str) -> Result<PageConfig, ApiReply<T>> {
    if let Err(e) = check_token(page) {
        return Err(ApiReply::invalid(
            "page",
            format!("invalid page id {page:?}: {e}"),
        ));
    }
    match api.configs.get(page).await {
        Ok(Some(bytes)) => Envelope::<PageConfig>::decode(&bytes)
            .map(|e| e.data)
            .map_err(|e| ApiReply::failed(format!("the stored config is unreadable: {e}"))),
        Ok(None) => Err(ApiReply::invalid(
            "page",
            format!("no page {page:?}; apply its config first"),
        )),
        Err(e) => match api.regional.as_ref().and(api.followed.page(page)) {
            Some(config) => Ok(config),
            None => Err(ApiReply::failed(format!(
                "cannot read the page config: {e}"
            ))),
        },
    }
}

/// Folds one entry's events from the stream; from what was followed when
/// the stream cannot be read and the region may write on its own.
async fn read_entry(api: &Api, page: &str, entry: &str) -> Result<Option<ChangelogView>, String> {
    let subject = changelog_subject(page, entry);
    let stored = match history::read(&api.daemon.js, STREAM_CHANGELOG, &subject).await {
        Ok(stored) => stored,
        Err(_) if api.regional.is_some() => return Ok(api.followed.entry(page, entry)),
        Err(e) => return Err(e.to_string()),
    };
    let mut log = Changelog::default();
    for message in &stored {
        if let Ok(envelope) = Envelope::<ChangelogEntry>::decode(&message.payload) {
            log.apply(&envelope, message.sequence);
        }
    }
    Ok(log.get(entry).cloned())
}

/// Stores images before the event that names them, so a renderer never
/// meets a name without bytes for long.
async fn store_images<T>(
    api: &Api,
    page: &str,
    images: Vec<(String, Vec<u8>)>,
) -> Result<(), ApiReply<T>> {
    for (name, bytes) in images {
        let object = beacon_page::origin::asset_object(page, &name);
        if let Err(e) = api
            .objects
            .put(object.as_str(), &mut bytes.as_slice())
            .await
        {
            return Err(ApiReply::failed(format!("cannot store image {name}: {e}")));
        }
    }
    Ok(())
}

/// Appends `entry` on its subject if the subject is still at `expected`.
async fn write(api: &Api, entry: ChangelogEntry, expected: u64) -> ApiReply<ChangelogView> {
    let subject = changelog_subject(&entry.page, &entry.entry);
    let (page, id) = (entry.page.clone(), entry.entry.clone());
    let envelope = Envelope::new(&api.daemon.clock, &api.daemon.origin, entry);
    match publish_expecting(&api.daemon.js, &subject, &envelope, expected).await {
        Ok(_) => match read_entry(api, &page, &id).await {
            Ok(Some(view)) => {
                tracing::info!(%page, entry = %id, actor = %envelope.data.actor, withdrawn = envelope.data.withdrawn, "Changelog entry stored.");
                ApiReply::Ok { result: view }
            }
            _ => ApiReply::failed("the entry is stored but cannot be read back; list it again"),
        },
        Err(e) if e.kind() == PublishFailure::WrongLastSequence => ApiReply::Conflict {
            message: format!("entry {id} changed while this change was being made; read it again"),
            current: read_entry(api, &page, &id).await.ok().flatten(),
        },
        Err(e) => match &api.regional {
            // In a cut the cluster's stream does not answer: no ack, or
            // no responders (read as "no stream").
            Some(writer) if e.kind() != PublishFailure::Encode => {
                write_regionally(api, writer, &envelope, expected).await
            }
            _ => ApiReply::failed(format!("cannot store the entry: {e}")),
        },
    }
}

/// Stores `envelope` in the region's own stream (the cluster is out of
/// reach) and answers with the entry as followed plus this event. A publish
/// whose idempotency key names an entry already followed is answered with
/// it: the retry of a publish made before or during the cut.
async fn write_regionally(
    api: &Api,
    writer: &RegionalWriter,
    envelope: &Envelope<ChangelogEntry>,
    expected: u64,
) -> ApiReply<ChangelogView> {
    let (page, id) = (&envelope.data.page, &envelope.data.entry);
    if expected == 0 {
        if let Some(view) = api.followed.entry(page, id) {
            return ApiReply::Ok { result: view };
        }
    }
    match writer.write("changelog", page, id, envelope).await {
        Ok(_) => {
            api.regional_writes.inc();
            api.followed.apply_changelog(envelope, 0);
            match api.followed.entry(page, id) {
                Some(view) => ApiReply::Ok { result: view },
                None => ApiReply::failed("the entry is stored but cannot be read back; list it again"),
            }
        }
        Err(e) => ApiReply::failed(format!(
            "cannot store the entry: the cluster is out of reach, and so is the region's own stream: {e}"
        )),
    }
}

/// `beacon.api.changelog.publish`.
pub async fn publish(api: &Api, request: PublishChangelogRequest) -> ApiReply<ChangelogView> {
    let config = match page_config(api, &request.page).await {
        Ok(config) => config,
        Err(reply) => return reply,
    };
    let images = match decode_images(&request.images) {
        Ok(images) => images,
        Err(errors) => return ApiReply::Invalid { errors },
    };
    // The same idempotency key names the same entry, so a retried publish
    // finds the first one instead of making a second.
    let id = match &request.idempotency_key {
        Some(key) => format!(
            "k{}",
            &beacon_page::origin::sha256_hex(format!("{}\u{0}{key}", request.page).as_bytes())
                [..16]
        ),
        None => EventId::new().to_string().to_ascii_lowercase(),
    };
    let entry = ChangelogEntry {
        page: request.page.clone(),
        entry: id.clone(),
        title: request.title,
        body_markdown: request.body_markdown,
        category: request.category,
        components: request.components,
        withdrawn: false,
        published_at_ms: request.published_at_ms.unwrap_or_else(wall_clock_ms),
        images: images.iter().map(|(name, _)| name.clone()).collect(),
        actor: request.actor,
    };
    let errors = validate(&entry, Some(&config));
    if !errors.is_empty() {
        return ApiReply::Invalid { errors };
    }
    if let Err(reply) = store_images(api, &request.page, images).await {
        return reply;
    }
    match write(api, entry, 0).await {
        // The key was used before: answer with that entry.
        ApiReply::Conflict {
            current: Some(view),
            ..
        } if request.idempotency_key.is_some() => ApiReply::Ok { result: view },
        other => other,
    }
}

/// `beacon.api.changelog.edit`.
pub async fn edit(api: &Api, request: EditChangelogRequest) -> ApiReply<ChangelogView> {
    let config = match page_config(api, &request.page).await {
        Ok(config) => config,
        Err(reply) => return reply,
    };
    let current = match current_entry(
        api,
        &request.page,
        &request.entry,
        request.expected_revision,
    )
    .await
    {
        Ok(current) => current,
        Err(reply) => return reply,
    };
    let images = match decode_images(&request.images) {
        Ok(images) => images,
        Err(errors) => return ApiReply::Invalid { errors },
    };
    let mut entry = current.entry.clone();
    if let Some(title) = request.title {
        entry.title = title;
    }
    if let Some(body) = request.body_markdown {
        entry.body_markdown = body;
    }
    if let Some(category) = request.category {
        entry.category = category;
    }
    if let Some(components) = request.components {
        entry.components = components;
    }
    if let Some(at) = request.published_at_ms {
        entry.published_at_ms = at;
    }
    for (name, _) in &images {
        if !entry.images.contains(name) {
            entry.images.push(name.clone());
        }
    }
    entry.actor = request.actor;
    let errors = validate(&entry, Some(&config));
    if !errors.is_empty() {
        return ApiReply::Invalid { errors };
    }
    if let Err(reply) = store_images(api, &request.page, images).await {
        return reply;
    }
    write(api, entry, current.revision).await
}

/// `beacon.api.changelog.delete`: withdraws the entry (the record stays
/// on the stream).
pub async fn delete(api: &Api, request: DeleteChangelogRequest) -> ApiReply<ChangelogView> {
    if let Err(reply) = page_config::<ChangelogView>(api, &request.page).await {
        return reply;
    }
    let current = match current_entry(
        api,
        &request.page,
        &request.entry,
        request.expected_revision,
    )
    .await
    {
        Ok(current) => current,
        Err(reply) => return reply,
    };
    if current.entry.withdrawn {
        return ApiReply::Ok { result: current };
    }
    let mut entry = current.entry.clone();
    entry.withdrawn = true;
    entry.actor = request.actor;
    write(api, entry, current.revision).await
}

/// The entry as stored, checked against the revision the client saw.
async fn current_entry(
    api: &Api,
    page: &str,
    entry: &str,
    expected: Option<u64>,
) -> Result<ChangelogView, ApiReply<ChangelogView>> {
    if let Err(e) = check_token(entry) {
        return Err(ApiReply::invalid("entry", format!("invalid entry id: {e}")));
    }
    let current = match read_entry(api, page, entry).await {
        Ok(Some(view)) => view,
        Ok(None) => {
            return Err(ApiReply::invalid(
                "entry",
                format!("page {page} has no changelog entry {entry:?}"),
            ))
        }
        Err(e) => return Err(ApiReply::failed(e)),
    };
    if let Some(expected) = expected {
        if expected != current.revision {
            return Err(ApiReply::Conflict {
                message: format!(
                    "entry {entry} is at revision {}, not {expected}; read it again",
                    current.revision
                ),
                current: Some(current),
            });
        }
    }
    Ok(current)
}

/// `beacon.api.changelog.list`.
pub async fn list(api: &Api, request: ListChangelogRequest) -> ApiReply<ChangelogList> {
    if let Err(reply) = page_config::<ChangelogList>(api, &request.page).await {
        return reply;
    }
    let filter = beacon_contract::names::page_changelog_filter(&request.page);
    let stored = match history::read(&api.daemon.js, STREAM_CHANGELOG, &filter).await {
        Ok(stored) => stored,
        Err(_) if api.regional.is_some() => {
            return ApiReply::Ok {
                result: api.followed.list(&request.page, request.all),
            }
        }
        Err(e) => return ApiReply::failed(e),
    };
    let mut log = Changelog::default();
    for message in &stored {
        if let Ok(envelope) = Envelope::<ChangelogEntry>::decode(&message.payload) {
            log.apply(&envelope, message.sequence);
        }
    }
    ApiReply::Ok {
        result: log.list(request.all),
    }
}
