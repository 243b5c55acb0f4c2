//! Webhooks: a POST of the notice in Statuspage's webhook shape, signed
//! per the Standard Webhooks specification.
//!
//! - `webhook-id`: `msg_` and the first 32 hex digits of the SHA-256 of the
//!   idempotency key, so a repeat carries the same id and a receiver can
//!   drop it.
//! - `webhook-timestamp`: Unix seconds.
//! - `webhook-signature`: `v1,` and the base64 HMAC-SHA256 of
//!   `{id}.{timestamp}.{body}` under the endpoint's own secret, derived
//!   from the channel's secret and the subscriber
//!   ([`crate::signing::webhook_secret`]); `subscriber.add` and `.show`
//!   give it to the subscriber.
//!
//! The URL goes through the SSRF guard twice: at sign-up, and at every
//! send, where the client's resolver is the guard (the address connected
//! to is the one checked) and redirects are never followed. A 410 disables
//! the endpoint.

use beacon_page::config::{Channel, ChannelProvider};

use super::{http_outcome, retry_after, transport_error, Accepted, Delivery, SendError};
use crate::context::env_secret;
use crate::render;
use crate::signing::{sha256_hex, standard_webhooks_signature, webhook_secret};

/// One webhook channel: its signing secret.
#[derive(Debug)]
pub struct Provider {
    secret: String,
}

/// The `webhook-id` of a delivery.
pub fn message_id(key: &str) -> String {
    format!("msg_{}", &sha256_hex(key)[..32])
}

impl Provider {
    /// The channel a config describes.
    pub fn build(channel: &Channel) -> Result<Self, SendError> {
        let ChannelProvider::Webhook { secret_env } = &channel.provider else {
            return Err(SendError::permanent("not a webhook channel"));
        };
        let secret = env_secret(secret_env).ok_or_else(|| {
            SendError::retry(format!(
                "webhook channel {}: environment variable {secret_env} is not set",
                channel.id
            ))
        })?;
        Ok(Self { secret })
    }

    /// Sends one delivery.
    pub async fn send(
        &self,
        client: &reqwest::Client,
        delivery: &Delivery<'_>,
    ) -> Result<Accepted, SendError> {
        let url = crate::addresses::parse_url(delivery.address)
            .map_err(|_| SendError::permanent("webhook: not a usable URL"))?;
        let body = match delivery.template.json(delivery.links, delivery.key) {
            Some(body) => body.into_bytes(),
            None => serde_json::to_vec(&render::webhook(
                delivery.notice,
                &delivery.page.id,
                delivery.links,
                delivery.key,
            ))
            .map_err(|_| SendError::permanent("webhook: cannot encode the payload"))?,
        };
        let id = message_id(delivery.key);
        let timestamp = chrono::Utc::now().timestamp();
        let secret = webhook_secret(
            self.secret.as_bytes(),
            &delivery.page.id,
            delivery.subscriber,
        );
        let signature = standard_webhooks_signature(&secret, &id, timestamp, &body)
            .ok_or_else(|| SendError::permanent("webhook: cannot sign"))?;
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error("webhook", &e))?;
        http_outcome(
            "webhook",
            response.status(),
            retry_after(response.headers()),
        )
    }
}
