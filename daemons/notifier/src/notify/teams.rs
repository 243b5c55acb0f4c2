//! Microsoft Teams incoming webhooks: an Adaptive Card message POSTed to
//! the subscriber's webhook URL, through the SSRF guard, with the same
//! answers as Slack's (429 pauses the destination, 410 disables it).

use super::{http_outcome, retry_after, transport_error, Accepted, Delivery, SendError};
use crate::render;

/// Teams needs nothing per channel but its limits.
#[derive(Debug)]
pub struct Provider;

impl Provider {
    /// Sends one delivery.
    pub async fn send(&self, client: &reqwest::Client, delivery: &Delivery<'_>) -> Result<Accepted, SendError> {
        let url = crate::addresses::parse_url(delivery.address)
            .map_err(|_| SendError::permanent("teams: not a usable URL"))?;
        let body = match delivery.template.json(delivery.links, delivery.key) {
            Some(body) => body.into_bytes(),
            None => serde_json::to_vec(&render::teams(delivery.notice, delivery.links))
                .map_err(|_| SendError::permanent("teams: cannot encode the message"))?,
        };
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .header("Idempotency-Key", delivery.key)
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error("teams", &e))?;
        http_outcome("teams", response.status(), retry_after(response.headers()))
    }
}
