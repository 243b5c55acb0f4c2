//! Slack incoming webhooks: a JSON message (`text` and Block Kit blocks,
//! mrkdwn escaped) POSTed to the subscriber's webhook URL, through the
//! SSRF guard. Slack takes one message a second per webhook, which the
//! destination limit keeps; a 429 pauses that destination for its
//! `Retry-After`; a 404 or 410 (the webhook was revoked or the channel
//! archived) is permanent, and 410 disables the endpoint.

use super::{http_outcome, retry_after, transport_error, Accepted, Delivery, SendError};
use crate::render;

/// Slack needs nothing per channel but its limits.
#[derive(Debug)]
pub struct Provider;

impl Provider {
    /// Sends one delivery.
    pub async fn send(&self, client: &reqwest::Client, delivery: &Delivery<'_>) -> Result<Accepted, SendError> {
        let url = crate::addresses::parse_url(delivery.address)
            .map_err(|_| SendError::permanent("slack: not a usable URL"))?;
        let body = match delivery.template.json(delivery.links, delivery.key) {
            Some(body) => body.into_bytes(),
            None => serde_json::to_vec(&render::slack(delivery.notice, delivery.links))
                .map_err(|_| SendError::permanent("slack: cannot encode the message"))?,
        };
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .header("Idempotency-Key", delivery.key)
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error("slack", &e))?;
        http_outcome("slack", response.status(), retry_after(response.headers()))
    }
}
