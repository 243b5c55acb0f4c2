//! The subscriber API, `beacon.api.subscriber.…`: a NATS micro service
//! every notifier instance serves (one queue group). `beaconctl` and the
//! HTTP API daemon (public sign-up) call it; every reply is an
//! [`ApiReply`], and a refused request changes nothing and says why, at
//! the field it is about.
//!
//! - `add`, `import`: validate every address (email, E.164, http(s) URL
//!   checked by the SSRF guard), the components and the channels the page
//!   offers; email endpoints wait for their double opt-in unless an
//!   operator says the people agreed elsewhere (`confirmed`), and an
//!   erased address may only come back through its owner's own sign-up.
//! - `list`, `show`, `remove`.
//! - `confirm`, `unsubscribe`: signed links; a forged or altered token is
//!   refused and changes nothing.
//! - `erase`: GDPR erasure, leaving only a keyed hash.
//!
//! Beside the endpoints, [`sms_inbound`] handles STOP and START from the SMS
//! provider, with its request signature checked; the inbound webhook
//! ([`crate::inbound`]) calls it directly.

use std::collections::{BTreeMap, HashSet};

use beacon_contract::api::*;
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::messages::{
    ChannelKind, EndpointState, PendingConfirmation, Subscriber, SubscriberChannel,
    SubscriberEndpoint,
};
use beacon_contract::names::check_token;
use beacon_page::config::{ChannelProvider, ConfigError, PageConfig};
use beacon_runtime::service::{Router, Service};
use rand::RngCore;

use crate::addresses;
use crate::context::{env_secret, Context};
use crate::index::{new_id, parse_id};
use crate::records::{
    SmsAction, SmsInboundRequest, SmsInboundResult, Suppression, SuppressionReason,
};
use crate::signing::{constant_time_eq, twilio_signature, Purpose};
use crate::store::Change;

/// Requests handled at once by one instance.
const CONCURRENCY: usize = 32;

/// Most endpoints a subscriber may have (one per kind).
const MAX_ENDPOINTS: usize = 5;

/// Every endpoint the notifier serves, each with its handler.
pub fn router(ctx: &Context) -> Router {
    let service = Service {
        name: "beacon-notifier",
        description: "Beacon notifier: subscribers",
        concurrency: CONCURRENCY,
    };
    Router::new(service, ctx.metrics.api_requests.clone())
        .route(
            SUBSCRIBER_ADD,
            ctx,
            |ctx, r| async move { add(&ctx, r).await },
        )
        .route(SUBSCRIBER_IMPORT, ctx, |ctx, r| async move {
            import(&ctx, r).await
        })
        .route(SUBSCRIBER_LIST, ctx, |ctx, r| async move { list(&ctx, r) })
        .route(SUBSCRIBER_SHOW, ctx, |ctx, r| async move { show(&ctx, r) })
        .route(SUBSCRIBER_REMOVE, ctx, |ctx, r| async move {
            remove(&ctx, r).await
        })
        .route(SUBSCRIBER_CONFIRM, ctx, |ctx, r| async move {
            confirm(&ctx, r).await
        })
        .route(SUBSCRIBER_UNSUBSCRIBE, ctx, |ctx, r| async move {
            unsubscribe(&ctx, r).await
        })
        .route(SUBSCRIBER_ERASE, ctx, |ctx, r| async move {
            erase(&ctx, r).await
        })
}

/// Serves until shutdown; `up` hears once requests can reach it.
pub async fn serve(ctx: Context, up: tokio::sync::oneshot::Sender<()>) {
    let (client, shutdown) = (
        ctx.daemon.client.clone(),
        ctx.daemon.process.shutdown.clone(),
    );
    if let Err(e) = router(&ctx).serve(&client, &shutdown, Some(up)).await {
        tracing::error!(error = %e, "Subscriber API stopped; nobody can subscribe or unsubscribe.");
    }
}

macro_rules! try_reply {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(reply) => return reply,
        }
    };
}

fn page<T>(ctx: &Context, page: &str) -> Result<std::sync::Arc<PageConfig>, ApiReply<T>> {
    if let Err(e) = check_token(page) {
        return Err(ApiReply::invalid(
            "page",
            format!("invalid page id {page:?}: {e}"),
        ));
    }
    ctx.pages.get(page).ok_or_else(|| {
        ApiReply::invalid("page", format!("no page {page:?}; apply its config first"))
    })
}

fn error(location: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        location: location.into(),
        message: message.into(),
    }
}

/// Whether the page offers channel `kind`.
fn offers(page: &PageConfig, kind: ChannelKind) -> bool {
    page.channels.iter().any(|c| {
        matches!(
            (&c.provider, kind),
            (ChannelProvider::Email { .. }, ChannelKind::Email)
                | (ChannelProvider::Sms { .. }, ChannelKind::Sms)
                | (ChannelProvider::Webhook { .. }, ChannelKind::Webhook)
                | (ChannelProvider::Slack, ChannelKind::Slack)
                | (ChannelProvider::Teams, ChannelKind::Teams)
        )
    })
}

/// Every problem with a new subscriber, at `at`: addresses, channels the
/// page offers, components, and (for URLs) the SSRF guard.
async fn check_new(
    ctx: &Context,
    page: &PageConfig,
    new: &NewSubscriber,
    at: &str,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if new.endpoints.is_empty() {
        errors.push(error(
            format!("{at}.endpoints"),
            "give at least one endpoint",
        ));
    }
    if new.endpoints.len() > MAX_ENDPOINTS {
        errors.push(error(
            format!("{at}.endpoints"),
            format!("at most {MAX_ENDPOINTS} endpoints, one per kind"),
        ));
    }
    let mut kinds = HashSet::new();
    for (i, channel) in new.endpoints.iter().enumerate() {
        let field = match channel {
            SubscriberChannel::Email { .. } => "address",
            SubscriberChannel::Sms { .. } => "phone",
            _ => "url",
        };
        let location = format!("{at}.endpoints[{i}].{field}");
        let kind = channel.kind();
        if !kinds.insert(kind) {
            errors.push(error(
                &location,
                format!("a second {} endpoint; one per kind", kind.as_str()),
            ));
        }
        if !offers(page, kind) {
            errors.push(error(
                &location,
                format!("page {} offers no {} channel", page.id, kind.as_str()),
            ));
            continue;
        }
        if let Err(message) = addresses::check(channel) {
            errors.push(error(&location, message));
            continue;
        }
        if matches!(
            kind,
            ChannelKind::Webhook | ChannelKind::Slack | ChannelKind::Teams
        ) {
            let checked = match addresses::parse_url(channel.address()) {
                Ok(url) => ctx.guard.check_url(&url).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            if let Err(message) = checked {
                errors.push(error(&location, format!("refused: {message}")));
            }
        }
    }
    for (field, list) in [("components", &new.components), ("instant", &new.instant)] {
        for (i, component) in list.iter().enumerate() {
            if page.component(component).is_none() {
                errors.push(error(
                    format!("{at}.{field}[{i}]"),
                    format!("page {} has no component {component:?}", page.id),
                ));
            }
        }
    }
    if new.digest && !kinds.contains(&ChannelKind::Email) {
        errors.push(error(
            format!("{at}.digest"),
            "the digest goes by email: add an email endpoint",
        ));
    }
    errors
}

fn nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    crate::signing::hex(&bytes)
}

/// Builds the record of a new subscriber.
fn build(
    ctx: &Context,
    page: &PageConfig,
    new: &NewSubscriber,
    confirmed: bool,
    now_ms: u64,
) -> Subscriber {
    let expires_at_ms = now_ms + ctx.settings.confirm_ttl.as_millis() as u64;
    Subscriber {
        page: page.id.clone(),
        subscriber: new_id(),
        endpoints: new
            .endpoints
            .iter()
            .map(|channel| {
                let pending = channel.kind() == ChannelKind::Email && !confirmed;
                SubscriberEndpoint {
                    channel: channel.clone(),
                    state: if pending {
                        EndpointState::Pending
                    } else {
                        EndpointState::Active
                    },
                    since_ms: now_ms,
                    confirmation: pending.then(|| PendingConfirmation {
                        nonce: nonce(),
                        expires_at_ms,
                    }),
                }
            })
            .collect(),
        components: new.components.clone(),
        instant: new.instant.clone(),
        dedup: new.dedup,
        digest: new.digest,
        created_at_ms: now_ms,
    }
}

/// The record without its confirmation nonces, and its webhook secret.
fn view(ctx: &Context, page: &PageConfig, mut subscriber: Subscriber) -> SubscriberView {
    for endpoint in &mut subscriber.endpoints {
        endpoint.confirmation = None;
    }
    let webhook_secret = subscriber
        .endpoint(ChannelKind::Webhook)
        .and_then(|_| ctx.webhook_secret(page, &subscriber.subscriber));
    SubscriberView {
        subscriber,
        webhook_secret,
    }
}

fn strip(mut subscriber: Subscriber) -> Subscriber {
    for endpoint in &mut subscriber.endpoints {
        endpoint.confirmation = None;
    }
    subscriber
}

/// The first subscriber of the page with any of these addresses.
fn existing(ctx: &Context, page: &str, new: &NewSubscriber) -> Option<String> {
    new.endpoints.iter().find_map(|channel| {
        ctx.subscribers
            .with_address(page, channel.kind(), channel.address())
            .into_iter()
            .next()
    })
}

/// Suppressed addresses among the new endpoints, as errors for an
/// operator's add or import (an owner's own sign-up lifts them).
fn suppressed(ctx: &Context, page: &str, new: &NewSubscriber, at: &str) -> Vec<ConfigError> {
    new.endpoints
        .iter()
        .enumerate()
        .filter(|(_, c)| ctx.suppressions.contains(&ctx.suppression_key(page, c.kind(), c.address())))
        .map(|(i, _)| {
            error(
                format!("{at}.endpoints[{i}]"),
                "this address was erased at its owner's request; only its owner may subscribe it again (sign-up with confirmation)",
            )
        })
        .collect()
}

async fn add(ctx: &Context, request: AddSubscriberRequest) -> ApiReply<SubscriberView> {
    let page = try_reply!(page(ctx, &request.page));
    let mut errors = check_new(ctx, &page, &request.subscriber, "subscriber").await;
    if request.confirmed {
        errors.extend(suppressed(ctx, &page.id, &request.subscriber, "subscriber"));
    }
    if !errors.is_empty() {
        return ApiReply::Invalid { errors };
    }
    if let Some(id) = existing(ctx, &page.id, &request.subscriber) {
        let current = ctx
            .subscribers
            .get(&page.id, &id)
            .map(|(s, _)| view(ctx, &page, s));
        return ApiReply::Conflict {
            message: format!(
                "page {} already has a subscriber with this address ({id})",
                page.id
            ),
            current,
        };
    }
    let now_ms = wall_clock_ms();
    let subscriber = build(ctx, &page, &request.subscriber, request.confirmed, now_ms);
    let revision = match ctx.store.create_subscriber(&subscriber).await {
        Ok(revision) => revision,
        Err(e) => return ApiReply::failed(e),
    };
    ctx.subscribers.put(&subscriber, revision);
    if !request.confirmed {
        // The owner asked: lift suppressions of what goes live now; an
        // email's is lifted when it is confirmed.
        lift_suppressions(ctx, &subscriber, |kind| kind != ChannelKind::Email).await;
    }
    if let Err(e) = confirmations(ctx, &page, std::slice::from_ref(&subscriber)).await {
        return ApiReply::failed(format!(
            "subscribed, but the confirmation email could not be queued: {e}"
        ));
    }
    tracing::info!(page = %page.id, subscriber = %subscriber.subscriber, actor = %request.actor, "Subscriber added.");
    ApiReply::Ok {
        result: view(ctx, &page, subscriber),
    }
}

async fn lift_suppressions(
    ctx: &Context,
    subscriber: &Subscriber,
    which: impl Fn(ChannelKind) -> bool,
) {
    for endpoint in &subscriber.endpoints {
        let kind = endpoint.channel.kind();
        if !which(kind) {
            continue;
        }
        let key = ctx.suppression_key(&subscriber.page, kind, endpoint.channel.address());
        if ctx.suppressions.contains(&key) {
            if let Err(e) = ctx.store.unsuppress(&key).await {
                tracing::warn!(error = %e, "Cannot lift a suppression.");
            }
        }
    }
}

/// Queues the confirmation email of every pending email endpoint.
async fn confirmations(
    ctx: &Context,
    page: &PageConfig,
    subscribers: &[Subscriber],
) -> Result<(), String> {
    for subscriber in subscribers {
        for endpoint in &subscriber.endpoints {
            if let (EndpointState::Pending, Some(confirmation)) =
                (endpoint.state, &endpoint.confirmation)
            {
                ctx.publish_confirmation(
                    page,
                    &subscriber.subscriber,
                    &confirmation.nonce,
                    subscriber.created_at_ms,
                )
                .await
                .map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

async fn import(ctx: &Context, request: ImportSubscribersRequest) -> ApiReply<ImportResult> {
    let page = try_reply!(page(ctx, &request.page));
    if request.rows.len() > SUBSCRIBER_IMPORT_MAX_ROWS {
        return ApiReply::invalid(
            "rows",
            format!(
                "at most {SUBSCRIBER_IMPORT_MAX_ROWS} rows per request, got {}",
                request.rows.len()
            ),
        );
    }
    let now_ms = wall_clock_ms();
    let mut refused = Vec::new();
    let mut existing_rows = 0;
    let mut seen = HashSet::new();
    let mut fresh = Vec::new();
    for (i, row) in request.rows.iter().enumerate() {
        let at = format!("rows[{i}]");
        let mut errors = check_new(ctx, &page, row, &at).await;
        if request.confirmed {
            errors.extend(suppressed(ctx, &page.id, row, &at));
        }
        if !errors.is_empty() {
            refused.extend(errors);
            continue;
        }
        let first = row
            .endpoints
            .first()
            .map(|c| (c.kind(), addresses::normalize(c.kind(), c.address())));
        if existing(ctx, &page.id, row).is_some() || first.is_some_and(|key| !seen.insert(key)) {
            existing_rows += 1;
            continue;
        }
        fresh.push(build(ctx, &page, row, request.confirmed, now_ms));
    }
    let results = ctx.store.create_many(&fresh).await;
    let mut created = Vec::with_capacity(fresh.len());
    for (subscriber, result) in fresh.into_iter().zip(results) {
        match result {
            Ok(revision) => {
                ctx.subscribers.put(&subscriber, revision);
                created.push(subscriber);
            }
            Err(e) => return ApiReply::failed(format!("{} stored before: {e}", created.len())),
        }
    }
    if let Err(e) = confirmations(ctx, &page, &created).await {
        return ApiReply::failed(format!(
            "imported, but confirmation emails could not be queued: {e}"
        ));
    }
    tracing::info!(page = %page.id, created = created.len(), existing = existing_rows, refused = refused.len(), actor = %request.actor, "Subscribers imported.");
    ApiReply::Ok {
        result: ImportResult {
            created: created.len() as u32,
            existing: existing_rows,
            refused,
        },
    }
}

fn list(ctx: &Context, request: ListSubscribersRequest) -> ApiReply<SubscriberList> {
    let page = try_reply!(page(ctx, &request.page));
    let after = match request.after.as_deref() {
        None => None,
        Some(after) => match parse_id(after) {
            Some(id) => Some(id),
            None => return ApiReply::invalid("after", format!("{after:?} is not a subscriber id")),
        },
    };
    let limit = request
        .limit
        .unwrap_or(SUBSCRIBER_LIST_MAX)
        .clamp(1, SUBSCRIBER_LIST_MAX);
    let (subscribers, total, next) = ctx.subscribers.list(&page.id, after, limit as usize);
    ApiReply::Ok {
        result: SubscriberList {
            subscribers: subscribers.into_iter().map(strip).collect(),
            total,
            next,
        },
    }
}

fn show(ctx: &Context, request: SubscriberRequest) -> ApiReply<SubscriberView> {
    let page = try_reply!(page(ctx, &request.page));
    match ctx.subscribers.get(&page.id, &request.subscriber) {
        Some((subscriber, _)) => ApiReply::Ok {
            result: view(ctx, &page, subscriber),
        },
        None => ApiReply::invalid(
            "subscriber",
            format!(
                "page {} has no subscriber {:?}",
                page.id, request.subscriber
            ),
        ),
    }
}

async fn remove(ctx: &Context, request: SubscriberRequest) -> ApiReply<RemovedSubscriber> {
    let page = try_reply!(page(ctx, &request.page));
    if parse_id(&request.subscriber).is_none() {
        return ApiReply::invalid(
            "subscriber",
            format!("{:?} is not a subscriber id", request.subscriber),
        );
    }
    if ctx.subscribers.get(&page.id, &request.subscriber).is_none() {
        return ApiReply::invalid(
            "subscriber",
            format!(
                "page {} has no subscriber {:?}",
                page.id, request.subscriber
            ),
        );
    }
    if let Err(e) = ctx
        .store
        .erase_subscriber(&page.id, &request.subscriber)
        .await
    {
        return ApiReply::failed(e);
    }
    ctx.subscribers.remove(&page.id, &request.subscriber);
    tracing::info!(page = %page.id, subscriber = %request.subscriber, actor = %request.actor, "Subscriber removed.");
    ApiReply::Ok {
        result: RemovedSubscriber {
            page: page.id.to_string(),
            subscriber: request.subscriber,
        },
    }
}

/// `beacon.api.subscriber.confirm`: follows a double opt-in link.
pub async fn confirm(ctx: &Context, request: LinkRequest) -> ApiReply<SubscriberView> {
    let link = match ctx.keys.verify(&request.token) {
        Ok(link) if link.purpose == Purpose::Confirm => link,
        _ => return ApiReply::invalid("token", "the link is not valid"),
    };
    let page = try_reply!(page(ctx, &link.page));
    let now_ms = wall_clock_ms();
    if link.expires_at_ms.is_some_and(|at| now_ms >= at) {
        return ApiReply::invalid(
            "token",
            "the link has expired; subscribe again for a new one",
        );
    }
    let changed = ctx
        .store
        .modify(&link.page, &link.subscriber, |record| {
            let Some(record) = record else {
                return Change::Keep(Err("the subscription no longer exists"));
            };
            let Some(endpoint) = record
                .endpoints
                .iter_mut()
                .find(|e| e.channel.kind() == link.channel)
            else {
                return Change::Keep(Err("the subscription no longer exists"));
            };
            match (&endpoint.state, &endpoint.confirmation) {
                (EndpointState::Pending, Some(c)) if Some(&c.nonce) == link.nonce.as_ref() => {
                    endpoint.state = EndpointState::Active;
                    endpoint.confirmation = None;
                    endpoint.since_ms = now_ms;
                    Change::Write(Ok(()))
                }
                _ => Change::Keep(Err("the link was used already")),
            }
        })
        .await;
    match changed {
        Ok((Ok(()), Some((record, revision)))) => {
            ctx.subscribers.put(&record, revision);
            lift_suppressions(ctx, &record, |kind| kind == ChannelKind::Email).await;
            tracing::info!(page = %record.page, subscriber = %record.subscriber, "Email endpoint confirmed.");
            ApiReply::Ok {
                result: view(ctx, &page, record),
            }
        }
        Ok((Ok(()), None)) => ApiReply::invalid("token", "the subscription no longer exists"),
        Ok((Err(why), _)) => ApiReply::invalid("token", why),
        Err(e) => ApiReply::failed(e),
    }
}

/// `beacon.api.subscriber.unsubscribe`: follows a signed unsubscribe link.
/// Following it twice is fine: the second time there is nothing to remove.
pub async fn unsubscribe(ctx: &Context, request: LinkRequest) -> ApiReply<Unsubscribed> {
    let link = match ctx.keys.verify(&request.token) {
        Ok(link) if link.purpose == Purpose::Unsubscribe => link,
        _ => return ApiReply::invalid("token", "the link is not valid"),
    };
    let changed = ctx
        .store
        .modify(&link.page, &link.subscriber, |record| {
            let Some(record) = record else {
                return Change::Keep(true);
            };
            let before = record.endpoints.len();
            record
                .endpoints
                .retain(|e| e.channel.kind() != link.channel);
            if record.endpoints.is_empty() {
                Change::Erase(true)
            } else if record.endpoints.len() < before {
                Change::Write(false)
            } else {
                Change::Keep(false)
            }
        })
        .await;
    match changed {
        Ok((removed_subscriber, record)) => {
            match &record {
                Some((record, revision)) => ctx.subscribers.put(record, *revision),
                None => ctx.subscribers.remove(&link.page, &link.subscriber),
            }
            tracing::info!(page = %link.page, subscriber = %link.subscriber, channel = link.channel.as_str(), "Unsubscribed by link.");
            ApiReply::Ok {
                result: Unsubscribed {
                    page: link.page,
                    subscriber: link.subscriber,
                    channel: link.channel,
                    removed_subscriber,
                },
            }
        }
        Err(e) => ApiReply::failed(e),
    }
}

async fn erase(ctx: &Context, request: EraseRequest) -> ApiReply<Erased> {
    let page = try_reply!(page(ctx, &request.page));
    // Every (kind, address) to suppress and every subscriber to erase.
    let mut addresses: Vec<(ChannelKind, String)> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    match (&request.address, &request.subscriber) {
        (Some(address), None) => {
            let kinds: &[ChannelKind] = match addresses::kind_of(address) {
                ChannelKind::Email => &[ChannelKind::Email],
                ChannelKind::Sms => &[ChannelKind::Sms],
                _ => &[ChannelKind::Webhook, ChannelKind::Slack, ChannelKind::Teams],
            };
            for kind in kinds {
                addresses.push((*kind, address.clone()));
                ids.extend(ctx.subscribers.with_address(&page.id, *kind, address));
            }
        }
        (None, Some(subscriber)) => {
            if parse_id(subscriber).is_none() {
                return ApiReply::invalid(
                    "subscriber",
                    format!("{subscriber:?} is not a subscriber id"),
                );
            }
            ids.push(subscriber.clone());
        }
        _ => return ApiReply::invalid("request", "give either address or subscriber"),
    }
    ids.sort();
    ids.dedup();
    for id in &ids {
        let record = match ctx.store.read_subscriber(&page.id, id).await {
            Ok(record) => record,
            Err(e) => return ApiReply::failed(e),
        };
        if let Some((record, _)) = record {
            for endpoint in &record.endpoints {
                addresses.push((
                    endpoint.channel.kind(),
                    endpoint.channel.address().to_owned(),
                ));
            }
        }
    }
    let now_ms = wall_clock_ms();
    let mut keys: Vec<String> = addresses
        .iter()
        .map(|(kind, address)| ctx.suppression_key(&page.id, *kind, address))
        .collect();
    keys.sort();
    keys.dedup();
    for key in &keys {
        let suppression = Suppression {
            page: page.id.clone(),
            reason: SuppressionReason::Erased,
            at_ms: now_ms,
        };
        if let Err(e) = ctx.store.suppress(key, suppression).await {
            return ApiReply::failed(e);
        }
        ctx.suppressions.set(key, true);
    }
    for id in &ids {
        if let Err(e) = ctx.store.erase_subscriber(&page.id, id).await {
            return ApiReply::failed(e);
        }
        ctx.subscribers.remove(&page.id, id);
    }
    tracing::info!(page = %page.id, subscribers = ids.len(), actor = %request.actor, "Erased at the owner's request.");
    ApiReply::Ok {
        result: Erased {
            subscribers: ids,
            suppressed: keys.len() as u32,
        },
    }
}

/// Words that stop and restart SMS, as carriers and Twilio treat them.
const STOP_WORDS: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
];
const START_WORDS: &[&str] = &["START", "YES", "UNSTOP"];

/// The auth token of the SMS account `account_sid`, and the pages whose SMS
/// channel uses it.
fn sms_account(ctx: &Context, account_sid: &str) -> Option<(String, Vec<String>)> {
    let mut token = None;
    let mut pages = Vec::new();
    for page in ctx.pages.all() {
        for channel in &page.channels {
            if let ChannelProvider::Sms { secret_env, .. } = &channel.provider {
                let Some(secret) = env_secret(secret_env) else {
                    continue;
                };
                let Some((sid, auth)) = secret.split_once(':') else {
                    continue;
                };
                if constant_time_eq(sid.as_bytes(), account_sid.as_bytes()) {
                    token = Some(auth.to_owned());
                    pages.push(page.id.clone());
                }
            }
        }
    }
    token.map(|t| (t, pages))
}

/// STOP or START from a phone, as the provider's inbound webhook posted it.
pub async fn sms_inbound(ctx: &Context, request: SmsInboundRequest) -> ApiReply<SmsInboundResult> {
    let forged = || {
        ctx.metrics
            .inbound
            .with_label_values(&["sms", "forged"])
            .inc();
        ApiReply::invalid("signature", "the request signature does not match")
    };
    let account_sid = request
        .params
        .get("AccountSid")
        .cloned()
        .unwrap_or_default();
    let Some((auth_token, pages)) = sms_account(ctx, &account_sid) else {
        return forged();
    };
    let want = twilio_signature(&auth_token, &request.url, &request.params);
    if !constant_time_eq(want.as_bytes(), request.signature.trim().as_bytes()) {
        return forged();
    }
    let word = request
        .params
        .get("Body")
        .and_then(|b| b.split_whitespace().next())
        .unwrap_or("")
        .to_ascii_uppercase();
    let action = if STOP_WORDS.contains(&word.as_str()) {
        SmsAction::Stop
    } else if START_WORDS.contains(&word.as_str()) {
        SmsAction::Start
    } else {
        SmsAction::Ignored
    };
    let (from_state, to_state) = match action {
        SmsAction::Stop => (EndpointState::Active, EndpointState::Stopped),
        SmsAction::Start => (EndpointState::Stopped, EndpointState::Active),
        SmsAction::Ignored => {
            ctx.metrics
                .inbound
                .with_label_values(&["sms", "ignored"])
                .inc();
            return ApiReply::Ok {
                result: SmsInboundResult { action, changed: 0 },
            };
        }
    };
    let from = request.params.get("From").cloned().unwrap_or_default();
    let mut changed = 0;
    for (page, id) in ctx.subscribers.with_phone(&from) {
        if !pages.contains(&page) {
            continue;
        }
        match set_state(
            ctx,
            &page,
            &id,
            ChannelKind::Sms,
            &[from_state, EndpointState::Pending],
            to_state,
        )
        .await
        {
            Ok(true) => changed += 1,
            Ok(false) => {}
            Err(e) => return ApiReply::failed(e),
        }
    }
    ctx.metrics
        .inbound
        .with_label_values(&[
            "sms",
            if action == SmsAction::Stop {
                "stop"
            } else {
                "start"
            },
        ])
        .inc();
    tracing::info!(changed, action = ?action, "SMS reply applied.");
    ApiReply::Ok {
        result: SmsInboundResult { action, changed },
    }
}

/// Moves an endpoint from one of `from` to `to`; whether it changed.
pub async fn set_state(
    ctx: &Context,
    page: &str,
    subscriber: &str,
    kind: ChannelKind,
    from: &[EndpointState],
    to: EndpointState,
) -> Result<bool, crate::store::StoreError> {
    let now_ms = wall_clock_ms();
    let (changed, record) = ctx
        .store
        .modify(page, subscriber, |record| {
            let Some(endpoint) =
                record.and_then(|r| r.endpoints.iter_mut().find(|e| e.channel.kind() == kind))
            else {
                return Change::Keep(false);
            };
            if !from.contains(&endpoint.state) {
                return Change::Keep(false);
            }
            endpoint.state = to;
            endpoint.since_ms = now_ms;
            Change::Write(true)
        })
        .await?;
    if let Some((record, revision)) = record {
        ctx.subscribers.put(&record, revision);
    }
    Ok(changed)
}

/// Parameters of an inbound SMS as a sorted map (what Twilio signs).
pub fn form_params(body: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}
