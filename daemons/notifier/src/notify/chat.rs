//! Slack and Microsoft Teams incoming webhooks: one JSON message (Slack's
//! `text` with Block Kit blocks, mrkdwn escaped; Teams' Adaptive Card)
//! POSTed to the subscriber's webhook URL through the SSRF guard. Both
//! answer alike: Slack takes one message a second per webhook, which the
//! destination limit keeps; a 429 pauses that destination for its
//! `Retry-After`; a 404 or 410 (the webhook was revoked or the channel
//! archived) is permanent, and 410 disables the endpoint.

use beacon_contract::messages::Notice;
use serde_json::Value;

use super::{http_outcome, retry_after, transport_error, Accepted, Delivery, SendError};
use crate::render::{self, Links};

/// A chat service: its name in errors and how it renders a notice. It
/// needs nothing per channel but its limits.
#[derive(Debug, Clone, Copy)]
pub struct Provider {
    name: &'static str,
    render: fn(&Notice, &Links) -> Value,
}

impl Provider {
    /// Slack's incoming webhooks.
    pub const SLACK: Provider = Provider {
        name: "slack",
        render: render::slack,
    };

    /// Teams' incoming webhooks.
    pub const TEAMS: Provider = Provider {
        name: "teams",
        render: render::teams,
    };

    /// Sends one delivery.
    pub async fn send(
        &self,
        client: &reqwest::Client,
        delivery: &Delivery<'_>,
    ) -> Result<Accepted, SendError> {
        let name = self.name;
        let url = crate::addresses::parse_url(delivery.address)
            .map_err(|_| SendError::permanent(format!("{name}: not a usable URL")))?;
        let body = match delivery.template.json(delivery.links, delivery.key) {
            Some(body) => body.into_bytes(),
            None => serde_json::to_vec(&(self.render)(delivery.notice, delivery.links))
                .map_err(|_| SendError::permanent(format!("{name}: cannot encode the message")))?,
        };
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .header("Idempotency-Key", delivery.key)
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(name, &e))?;
        http_outcome(name, response.status(), retry_after(response.headers()))
    }
}
