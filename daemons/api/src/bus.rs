//! Requests to the owners' bus APIs (`beacon.api.…`): every write goes to
//! the daemon that owns the entity, which validates it, assigns ids and
//! appends the event. Their replies become HTTP errors here, one way.

use std::time::Duration;

use async_nats::{Client, RequestErrorKind};
use beacon_contract::api::{ApiReply, Endpoint};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ApiError;

/// Sends `body` to `endpoint` and reads the owner's reply.
pub async fn call<Req: Serialize, Res: DeserializeOwned>(
    client: &Client,
    endpoint: Endpoint<Req, Res>,
    body: &Req,
    timeout: Duration,
) -> Result<Res, ApiError> {
    let subject = endpoint.subject();
    let payload = serde_json::to_vec(body)
        .map_err(|e| ApiError::owner_failed(format!("cannot encode the request: {e}")))?;
    let request = async_nats::Request::new()
        .payload(payload.into())
        .timeout(Some(timeout));
    let reply = client
        .send_request(subject, request)
        .await
        .map_err(|e| match e.kind() {
            RequestErrorKind::NoResponders | RequestErrorKind::TimedOut => ApiError::unavailable(
                "the service that owns this is not answering; try again later",
            ),
            _ => ApiError::unavailable(format!("the bus is not reachable: {e}")),
        })?;
    let reply: ApiReply<serde_json::Value> = serde_json::from_slice(&reply.payload)
        .map_err(|e| ApiError::owner_failed(format!("unreadable reply from {subject}: {e}")))?;
    match reply {
        ApiReply::Ok { result } => serde_json::from_value(result)
            .map_err(|e| ApiError::owner_failed(format!("unexpected reply from {subject}: {e}"))),
        ApiReply::Invalid { errors } => Err(ApiError::invalid_all(errors)),
        ApiReply::Failed { message } => Err(ApiError::owner_failed(message)),
        ApiReply::Conflict { message, current } => Err(ApiError::conflict(message, current)),
    }
}
