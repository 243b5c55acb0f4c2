//! SMS through the Twilio Messages REST API
//! (`POST {base}/2010-04-01/Accounts/{sid}/Messages.json`).
//!
//! A small reqwest client rather than the `twilio` crate: that crate
//! cannot target another base URL (a regional edge, a test server) and
//! pulls in an old hyper. Answers: 2xx accepted; error 21610 means the
//! recipient replied STOP, so the endpoint is stopped; 429 is retried after
//! its `Retry-After` and pauses the account meanwhile; 5xx and network
//! trouble are retried; 401/403 are retried too (an operator's
//! credentials to fix, not the message's fault); other 4xx are permanent.
//!
//! Twilio has no idempotency key for messages, which is why the ledger
//! exists; the key still goes out as `Idempotency-Key` for any proxy or
//! test receiver that can use it. A recipient always gets messages from
//! the same number of the account's pool, so its STOP reaches that number.

use beacon_contract::messages::EndpointState;
use beacon_page::config::{Channel, ChannelProvider};
use beacon_runtime::lease::fnv1a;
use serde::Deserialize;

use super::{retry_after, transport_error, Accepted, Delivery, SendError};
use crate::context::env_secret;
use crate::render;

/// One Twilio account.
#[derive(Debug)]
pub struct Provider {
    endpoint: String,
    account_sid: String,
    auth_token: String,
    numbers: Vec<String>,
}

/// Twilio's error body.
#[derive(Debug, Deserialize)]
struct TwilioError {
    code: Option<u32>,
}

/// Twilio's answer to a created message.
#[derive(Debug, Deserialize)]
struct Created {
    sid: Option<String>,
}

/// The recipient has replied STOP to this sender.
pub const UNSUBSCRIBED_RECIPIENT: u32 = 21610;

impl Provider {
    /// The account a channel config describes.
    pub fn build(channel: &Channel) -> Result<Self, SendError> {
        let ChannelProvider::Sms {
            from,
            api_base,
            secret_env,
            pool,
        } = &channel.provider
        else {
            return Err(SendError::permanent("not an sms channel"));
        };
        let secret = env_secret(secret_env).ok_or_else(|| {
            SendError::retry(format!(
                "sms channel {}: environment variable {secret_env} is not set",
                channel.id
            ))
        })?;
        let (sid, token) = secret.split_once(':').ok_or_else(|| {
            SendError::permanent(format!(
                "sms channel {}: its secret must be ACCOUNT_SID:AUTH_TOKEN",
                channel.id
            ))
        })?;
        let mut numbers = vec![from.clone()];
        numbers.extend(pool.iter().cloned());
        Ok(Self {
            endpoint: format!(
                "{}/2010-04-01/Accounts/{sid}/Messages.json",
                api_base.trim_end_matches('/')
            ),
            account_sid: sid.to_owned(),
            auth_token: token.to_owned(),
            numbers,
        })
    }

    /// The number of the pool that sends to `phone`.
    pub fn number_for(&self, phone: &str) -> &str {
        let index = fnv1a(phone.as_bytes()) % self.numbers.len().max(1) as u64;
        self.numbers.get(index as usize).map_or("", String::as_str)
    }

    /// Sends one delivery.
    pub async fn send(
        &self,
        client: &reqwest::Client,
        delivery: &Delivery<'_>,
    ) -> Result<Accepted, SendError> {
        let body = render::sms(delivery.notice, delivery.links);
        let form = [
            ("To", delivery.address),
            ("From", self.number_for(delivery.address)),
            ("Body", body.as_str()),
        ];
        let response = client
            .post(&self.endpoint)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .header("Idempotency-Key", delivery.key)
            .form(&form)
            .send()
            .await
            .map_err(|e| transport_error("twilio", &e))?;
        let status = response.status();
        let after = retry_after(response.headers());
        let bytes = response.bytes().await.unwrap_or_default();
        let code = status.as_u16();
        if status.is_success() {
            let sid = serde_json::from_slice::<Created>(&bytes)
                .ok()
                .and_then(|c| c.sid)
                .filter(|s| s.chars().all(|c| c.is_ascii_alphanumeric()))
                .unwrap_or_default();
            return Ok(Accepted {
                detail: format!("twilio {code} {sid}").trim_end().to_owned(),
            });
        }
        let twilio_code = serde_json::from_slice::<TwilioError>(&bytes)
            .ok()
            .and_then(|e| e.code);
        let detail = match twilio_code {
            Some(c) => format!("twilio {code} error {c}"),
            None => format!("twilio {code}"),
        };
        Err(match (code, twilio_code) {
            (_, Some(UNSUBSCRIBED_RECIPIENT)) => SendError::Permanent {
                detail,
                endpoint: Some(EndpointState::Stopped),
            },
            (429, _) | (500..=599, _) | (401 | 403, _) => SendError::Retryable { detail, after },
            _ => SendError::permanent(detail),
        })
    }
}
