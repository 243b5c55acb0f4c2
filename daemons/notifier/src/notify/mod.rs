//! Channel senders, one module each (Alertmanager's `notify/<provider>/`
//! habit), registered in one `match` ([`Senders::send`]).
//!
//! - [`email`]: SMTP with lettre, a connection pool per account.
//! - [`sms`]: the Twilio Messages REST API with a small reqwest client.
//! - [`webhook`]: Standard Webhooks-signed POSTs in Statuspage's shape.
//! - [`chat`]: Slack and Teams incoming webhooks.
//! - [`limits`]: per-account rate and concurrency limits, per-destination
//!   rates, pauses after a provider's 429.
//! - [`worker`]: the NOTIFY consumers: ledger, receipts, retries, dead letters.
//!
//! Each sender returns [`Accepted`] or a [`SendError`] that is retryable
//! (the provider is away, slow or throttling) or permanent (this delivery
//! will never work), possibly with what the answer means for the endpoint
//! (stopped, disabled). Details never carry an address or a provider's
//! free text, which may echo one.

pub mod chat;
pub mod email;
pub mod limits;
pub mod sms;
pub mod webhook;
pub mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beacon_contract::messages::{ChannelKind, EndpointState, Notice};
use beacon_page::config::{Channel, ChannelProvider, PageConfig};
use beacon_runtime::lease::fnv1a;
use beacon_runtime::retry::{Class, Classify};

use crate::render::Links;
use crate::ssrf::{Guard, GuardResolver};

/// One delivery, as a sender sees it.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The page.
    pub page: &'a PageConfig,
    /// What to tell.
    pub notice: &'a Notice,
    /// The subscriber id.
    pub subscriber: &'a str,
    /// The endpoint's address, phone number or URL.
    pub address: &'a str,
    /// The idempotency key: `{notice}:{subscriber}:{channel}`.
    pub key: &'a str,
    /// The recipient's signed links.
    pub links: &'a Links,
    /// The notice rendered once for the batch, with holes for the links.
    pub template: &'a crate::render::Template,
}

/// The provider took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Status and provider id, e.g. `250` or `201 SM…`.
    pub detail: String,
}

/// Why a delivery did not go out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later (after `after`, when the provider said).
    #[error("{detail}")]
    Retryable {
        /// Status or error code.
        detail: String,
        /// The provider's `Retry-After`.
        after: Option<Duration>,
    },
    /// It will never work.
    #[error("{detail}")]
    Permanent {
        /// Status or error code.
        detail: String,
        /// What the answer means for the endpoint (stopped, disabled).
        endpoint: Option<EndpointState>,
    },
}

impl SendError {
    /// A retryable error.
    pub fn retry(detail: impl Into<String>) -> Self {
        SendError::Retryable {
            detail: detail.into(),
            after: None,
        }
    }

    /// A permanent error.
    pub fn permanent(detail: impl Into<String>) -> Self {
        SendError::Permanent {
            detail: detail.into(),
            endpoint: None,
        }
    }
}

impl Classify for SendError {
    fn class(&self) -> Class {
        match self {
            SendError::Retryable { .. } => Class::Retryable,
            SendError::Permanent { .. } => Class::Permanent,
        }
    }
}

/// The status class of an HTTP answer, for webhooks, Slack and Teams:
/// 2xx accepted; 408, 429 and 5xx retryable (429 and 503 with
/// `Retry-After`); a redirect refused (never followed, so an endpoint
/// cannot bounce a request elsewhere); 410 disables the endpoint; other
/// 4xx permanent.
pub fn http_outcome(
    what: &str,
    status: reqwest::StatusCode,
    retry_after: Option<Duration>,
) -> Result<Accepted, SendError> {
    let code = status.as_u16();
    match code {
        200..=299 => Ok(Accepted {
            detail: code.to_string(),
        }),
        300..=399 => Err(SendError::permanent(format!(
            "{what} {code}: redirects are not followed"
        ))),
        410 => Err(SendError::Permanent {
            detail: format!("{what} 410: the endpoint is gone; disabled"),
            endpoint: Some(EndpointState::Disabled),
        }),
        408 | 425 | 429 | 500..=599 => Err(SendError::Retryable {
            detail: format!("{what} {code}"),
            after: retry_after,
        }),
        _ => Err(SendError::permanent(format!("{what} {code}"))),
    }
}

/// A `Retry-After` header in seconds (the HTTP-date form is rare from
/// these providers and taken as absent).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds.min(3600)))
}

/// A reqwest error as a delivery error: timeouts and connection failures
/// are retryable; the SSRF guard's refusal is permanent.
pub fn transport_error(what: &str, error: &reqwest::Error) -> SendError {
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<crate::ssrf::SsrfError>() {
            return if refused.is_retryable() {
                SendError::retry(format!("{what}: {refused}"))
            } else {
                SendError::permanent(format!("{what}: {refused}"))
            };
        }
        source = e.source();
    }
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    SendError::retry(format!("{what}: {kind}"))
}

/// One provider account, built once per distinct channel config.
#[derive(Debug)]
pub struct Account<P> {
    /// The provider's own part (transport, credentials).
    pub provider: P,
    /// Its limits.
    pub limits: limits::AccountLimits,
}

/// Accounts of one kind, by what configures them: two pages with the
/// same provider settings share one account, and so one limit.
#[derive(Debug)]
struct Accounts<P> {
    built: Mutex<HashMap<String, Arc<Account<P>>>>,
}

impl<P> Default for Accounts<P> {
    fn default() -> Self {
        Self {
            built: Mutex::default(),
        }
    }
}

impl<P> Accounts<P> {
    fn get(
        &self,
        channel: &Channel,
        build: impl FnOnce() -> Result<P, SendError>,
    ) -> Result<Arc<Account<P>>, SendError> {
        let key = serde_json::to_string(&(
            &channel.provider,
            channel.rate_per_second,
            channel.burst,
            channel.concurrency,
            channel.destination_rate_per_second,
        ))
        .unwrap_or_default();
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(account) = built.get(&key) {
            return Ok(account.clone());
        }
        let account = Arc::new(Account {
            provider: build()?,
            limits: limits::AccountLimits::new(channel),
        });
        built.insert(key, account.clone());
        Ok(account)
    }
}

/// The channels of `kind` a page configures, in file order.
pub fn channels_of(page: &PageConfig, kind: ChannelKind) -> Vec<&Channel> {
    page.channels
        .iter()
        .filter(|c| {
            matches!(
                (&c.provider, kind),
                (ChannelProvider::Email { .. }, ChannelKind::Email)
                    | (ChannelProvider::Sms { .. }, ChannelKind::Sms)
                    | (ChannelProvider::Webhook { .. }, ChannelKind::Webhook)
                    | (ChannelProvider::Slack, ChannelKind::Slack)
                    | (ChannelProvider::Teams, ChannelKind::Teams)
            )
        })
        .collect()
}

/// The channel (account) a subscriber's deliveries of `kind` go through:
/// always the same one for the same subscriber, so an SMS STOP reaches
/// the account that sent.
pub fn channel_for<'p>(
    page: &'p PageConfig,
    kind: ChannelKind,
    subscriber: &str,
) -> Option<&'p Channel> {
    let channels = channels_of(page, kind);
    if channels.is_empty() {
        return None;
    }
    let index = fnv1a(subscriber.as_bytes()) % channels.len() as u64;
    channels.get(index as usize).copied()
}

/// Every sender, and the accounts each has built.
#[derive(Debug)]
pub struct Senders {
    guard: Guard,
    guarded: reqwest::Client,
    provider: reqwest::Client,
    send_timeout: Duration,
    email: Accounts<email::Provider>,
    sms: Accounts<sms::Provider>,
    webhook: Accounts<webhook::Provider>,
    slack: Accounts<chat::Provider>,
    teams: Accounts<chat::Provider>,
}

impl Senders {
    /// Senders whose subscriber-supplied URLs go through `guard`.
    pub fn new(guard: Guard, send_timeout: Duration) -> Result<Self, reqwest::Error> {
        let base = || {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .timeout(send_timeout)
                .connect_timeout(send_timeout.min(Duration::from_secs(5)))
                // No cap on idle connections per host: Slack's and Teams'
                // webhooks share one host, and a connection closed after
                // each burst is a new TCP (and TLS) handshake for the next.
                .user_agent(concat!("Beacon-Notifier/", env!("CARGO_PKG_VERSION")))
        };
        Ok(Self {
            guarded: base()
                .dns_resolver(Arc::new(GuardResolver(guard.clone())))
                .build()?,
            guard,
            provider: base().build()?,
            send_timeout,
            email: Accounts::default(),
            sms: Accounts::default(),
            webhook: Accounts::default(),
            slack: Accounts::default(),
            teams: Accounts::default(),
        })
    }

    /// Sends one delivery on `kind`, through the subscriber's account,
    /// within that account's limits. Returns the result and the time spent
    /// waiting for limits.
    pub async fn send(
        &self,
        kind: ChannelKind,
        delivery: &Delivery<'_>,
        waits: &limits::Waits,
    ) -> Result<Accepted, SendError> {
        let channel = channel_for(delivery.page, kind, delivery.subscriber).ok_or_else(|| {
            SendError::permanent(format!(
                "page {} has no {} channel any more",
                delivery.page.id,
                kind.as_str()
            ))
        })?;
        if matches!(
            kind,
            ChannelKind::Webhook | ChannelKind::Slack | ChannelKind::Teams
        ) {
            // A name is checked by the client's resolver; an IP literal
            // never reaches it, so it is checked here.
            let url = crate::addresses::parse_url(delivery.address).map_err(|_| {
                SendError::permanent(format!("{}: not a usable URL", kind.as_str()))
            })?;
            self.guard
                .check_url_form(&url)
                .map_err(|e| SendError::permanent(format!("{}: {e}", kind.as_str())))?;
        }
        match kind {
            ChannelKind::Email => {
                let account = self.email.get(channel, || {
                    email::Provider::build(channel, self.send_timeout)
                })?;
                let _permit = account.limits.acquire(None, waits).await;
                account.provider.send(delivery).await
            }
            ChannelKind::Sms => {
                let account = self.sms.get(channel, || sms::Provider::build(channel))?;
                let _permit = account.limits.acquire(None, waits).await;
                let result = account.provider.send(&self.provider, delivery).await;
                account.limits.pause_on(&result);
                result
            }
            ChannelKind::Webhook => {
                let account = self
                    .webhook
                    .get(channel, || webhook::Provider::build(channel))?;
                let _permit = account.limits.acquire(Some(delivery.address), waits).await;
                account.provider.send(&self.guarded, delivery).await
            }
            ChannelKind::Slack | ChannelKind::Teams => {
                let (accounts, provider) = if kind == ChannelKind::Slack {
                    (&self.slack, chat::Provider::SLACK)
                } else {
                    (&self.teams, chat::Provider::TEAMS)
                };
                let account = accounts.get(channel, || Ok(provider))?;
                let _permit = account.limits.acquire(Some(delivery.address), waits).await;
                let result = account.provider.send(&self.guarded, delivery).await;
                account
                    .limits
                    .pause_destination_on(delivery.address, &result);
                result
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers_map_to_outcomes() {
        use reqwest::StatusCode as S;
        assert!(http_outcome("webhook", S::NO_CONTENT, None).is_ok());
        assert!(matches!(
            http_outcome("webhook", S::FOUND, None),
            Err(SendError::Permanent { endpoint: None, .. })
        ));
        assert!(matches!(
            http_outcome("webhook", S::GONE, None),
            Err(SendError::Permanent {
                endpoint: Some(EndpointState::Disabled),
                ..
            })
        ));
        assert!(matches!(
            http_outcome("slack", S::TOO_MANY_REQUESTS, Some(Duration::from_secs(3))),
            Err(SendError::Retryable { after: Some(d), .. }) if d == Duration::from_secs(3)
        ));
        assert!(http_outcome("teams", S::BAD_GATEWAY, None).is_err_and(|e| e.is_retryable()));
        assert!(http_outcome("teams", S::NOT_FOUND, None).is_err_and(|e| !e.is_retryable()));
    }

    #[test]
    fn a_subscriber_always_uses_the_same_account() {
        let page = beacon_page::config::load(
            r#"
[page]
id = "p"
name = "P"
[[components]]
id = "api"
name = "API"
[[channels]]
id = "a"
type = "slack"
[[channels]]
id = "b"
type = "slack"
"#,
        )
        .expect("a page");
        let first = channel_for(&page, ChannelKind::Slack, "sub-1")
            .expect("a channel")
            .id
            .clone();
        for _ in 0..10 {
            assert_eq!(
                channel_for(&page, ChannelKind::Slack, "sub-1")
                    .expect("a channel")
                    .id,
                first
            );
        }
        let used: std::collections::HashSet<String> = (0..50)
            .map(|i| {
                channel_for(&page, ChannelKind::Slack, &format!("sub-{i}"))
                    .expect("a channel")
                    .id
                    .clone()
            })
            .collect();
        assert_eq!(used.len(), 2, "both accounts carry traffic");
        assert!(channel_for(&page, ChannelKind::Email, "sub-1").is_none());
    }
}
