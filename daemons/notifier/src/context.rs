//! What the API, the inbound endpoints, the planner and the senders share.

use std::sync::Arc;

use beacon_contract::event::{Envelope, EventId};
use beacon_contract::messages::{
    ChannelKind, Lane, Notice, NoticeKind, NoticeSubject, NotifyBatch,
};
use beacon_contract::names::notify_subject;
use beacon_page::config::{ChannelProvider, PageConfig};
use beacon_runtime::daemon::Daemon;
use beacon_runtime::publish::PublishError;

use crate::addresses::normalize;
use crate::index::{Pages, Subscribers, Suppressions};
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::signing::{webhook_secret, Keys, Link, Purpose};
use crate::ssrf::Guard;
use crate::store::Store;

/// Shared state of one notifier process.
#[derive(Clone)]
pub struct Context {
    /// The process and its bus.
    pub daemon: Daemon,
    /// Validated flags.
    pub settings: Arc<Settings>,
    /// Signing keys.
    pub keys: Keys,
    /// The SSRF guard for subscriber URLs.
    pub guard: Guard,
    /// Page configs.
    pub pages: Pages,
    /// Subscribers.
    pub subscribers: Subscribers,
    /// Suppressed address hashes.
    pub suppressions: Suppressions,
    /// KV writes.
    pub store: Store,
    /// Metrics.
    pub metrics: Metrics,
}

/// The value of environment variable `name`, where channel secrets live.
pub fn env_secret(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Context {
    /// The signed one-click unsubscribe link of one endpoint.
    pub fn unsubscribe_link(&self, page: &str, subscriber: &str, channel: ChannelKind) -> String {
        let token = self.keys.link(&Link {
            purpose: Purpose::Unsubscribe,
            page: page.to_owned(),
            subscriber: subscriber.to_owned(),
            channel,
            nonce: None,
            expires_at_ms: None,
        });
        format!("{}/unsubscribe?token={token}", self.settings.public_url)
    }

    /// The signed double opt-in link of a pending email endpoint.
    pub fn confirm_link(
        &self,
        page: &str,
        subscriber: &str,
        nonce: &str,
        expires_at_ms: u64,
    ) -> String {
        let token = self.keys.link(&Link {
            purpose: Purpose::Confirm,
            page: page.to_owned(),
            subscriber: subscriber.to_owned(),
            channel: ChannelKind::Email,
            nonce: Some(nonce.to_owned()),
            expires_at_ms: Some(expires_at_ms),
        });
        format!("{}/confirm?token={token}", self.settings.public_url)
    }

    /// `{page}.{keyed hash}`: where an erased address is suppressed.
    pub fn suppression_key(&self, page: &str, kind: ChannelKind, address: &str) -> String {
        let normal = format!("{}:{}", kind.as_str(), normalize(kind, address));
        format!("{page}.{}", self.keys.suppression_hash(page, &normal))
    }

    /// The Standard Webhooks secret of a subscriber's webhook endpoint,
    /// when the page has a webhook channel whose secret is set.
    pub fn webhook_secret(&self, page: &PageConfig, subscriber: &str) -> Option<String> {
        page.channels
            .iter()
            .find_map(|channel| match &channel.provider {
                ChannelProvider::Webhook { secret_env } => env_secret(secret_env)
                    .map(|secret| webhook_secret(secret.as_bytes(), &page.id, subscriber)),
                _ => None,
            })
    }

    /// Queues the double opt-in email of one subscriber.
    pub async fn publish_confirmation(
        &self,
        page: &PageConfig,
        subscriber: &str,
        nonce: &str,
        at_ms: u64,
    ) -> Result<(), PublishError> {
        let notice = Notice {
            id: format!("confirm.{subscriber}.{nonce}"),
            kind: NoticeKind::Confirmation,
            page_name: page.name.clone(),
            page_url: page.url.clone(),
            subject: NoticeSubject::Confirmation,
            at_ms,
            updates: 1,
        };
        let id = batch_id(&notice, ChannelKind::Email, Lane::Urgent, 0);
        let batch = NotifyBatch {
            channel: ChannelKind::Email,
            page: page.id.clone(),
            lane: Lane::Urgent,
            notice,
            subscribers: vec![subscriber.to_owned()],
        };
        let envelope = Envelope::with_id(id, self.daemon.clock.now(), &self.daemon.origin, batch);
        let subject = notify_subject(ChannelKind::Email.as_str(), Lane::Urgent.as_str());
        let results = self
            .store
            .publisher()
            .publish_all([(subject.as_str(), &envelope)])
            .await;
        results
            .into_iter()
            .try_for_each(|result| result.map(|_| ()))
    }
}

/// The event id of batch `chunk` of a notice on a channel and lane: the same
/// on every replay, so the stream drops a batch published twice.
pub fn batch_id(notice: &Notice, channel: ChannelKind, lane: Lane, chunk: u32) -> EventId {
    let seed = format!(
        "{}|{}|{}|{chunk}",
        notice.id,
        channel.as_str(),
        lane.as_str()
    );
    let high = beacon_runtime::lease::fnv1a(seed.as_bytes());
    let low = beacon_runtime::lease::fnv1a(format!("{seed}|low").as_bytes());
    let random = (u128::from(high) << 64 | u128::from(low)) & ((1u128 << 80) - 1);
    EventId(ulid::Ulid::from_parts(notice.at_ms, random))
}
