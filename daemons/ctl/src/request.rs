//! One typed call to an owner's request/reply endpoint (`beacon.api.…`).
//!
//! Every endpoint answers with an [`ApiReply`]; this module turns the three
//! answers, and the ways of getting no answer at all, into a result or a
//! [`CtlError`] with the right exit code.

use std::time::Duration;

use async_nats::{Client, Request, RequestErrorKind};
use beacon_contract::api::{ApiReply, Endpoint};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::exit::CtlError;

/// Header a NATS micro service sets when its handler failed outright.
const SERVICE_ERROR_HEADER: &str = "Nats-Service-Error";

/// Sends `body` to `endpoint` and waits up to `timeout` for the reply.
pub async fn call<Req: Serialize, Res: DeserializeOwned>(
    client: &Client,
    endpoint: Endpoint<Req, Res>,
    body: &Req,
    timeout: Duration,
) -> Result<Res, CtlError> {
    let payload = serde_json::to_vec(body).map_err(|e| {
        CtlError::Internal(format!(
            "cannot encode the request to {}: {e}",
            endpoint.subject()
        ))
    })?;
    let request = Request::new()
        .payload(payload.into())
        .timeout(Some(timeout));
    let reply = client
        .send_request(endpoint.subject(), request)
        .await
        .map_err(|e| match e.kind() {
            RequestErrorKind::NoResponders | RequestErrorKind::TimedOut => CtlError::NoAnswer {
                service: endpoint.owner(),
                subject: endpoint.subject(),
                timeout: humantime::format_duration(timeout).to_string(),
            },
            _ => CtlError::Bus {
                what: format!("request to {}", endpoint.subject()),
                reason: e.to_string(),
            },
        })?;
    if let Some(message) = reply
        .headers
        .as_ref()
        .and_then(|headers| headers.get(SERVICE_ERROR_HEADER))
    {
        return Err(CtlError::ServerFailed {
            subject: endpoint.subject(),
            message: message.to_string(),
        });
    }
    decode_reply(endpoint.subject(), &reply.payload)
}

/// Reads an [`ApiReply`] and turns `invalid` and `failed` into errors.
pub fn decode_reply<Res: DeserializeOwned>(
    subject: &'static str,
    payload: &[u8],
) -> Result<Res, CtlError> {
    let bad = |e: serde_json::Error| CtlError::BadReply {
        subject,
        reason: e.to_string(),
    };
    // Read loosely first, so a conflict's current state is kept as it came.
    let reply: ApiReply<serde_json::Value> = serde_json::from_slice(payload).map_err(bad)?;
    match reply {
        ApiReply::Ok { result } => serde_json::from_value(result).map_err(bad),
        ApiReply::Invalid { errors } => Err(CtlError::Refused { subject, errors }),
        ApiReply::Failed { message } => Err(CtlError::ServerFailed { subject, message }),
        ApiReply::Conflict { message, current } => Err(CtlError::Conflict {
            subject,
            message,
            current,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_page::config::api::ApplyConfigResult;

    const SUBJECT: &str = beacon_contract::names::api::CONFIG_APPLY;

    #[test]
    fn ok_reply_gives_the_result() {
        let payload = br#"{"status":"ok","result":{"page":"demo","revision":3,"changed":true}}"#;
        let result: ApplyConfigResult = decode_reply(SUBJECT, payload).expect("ok");
        assert_eq!(
            result,
            ApplyConfigResult {
                page: "demo".into(),
                revision: 3,
                changed: true
            }
        );
    }

    #[test]
    fn invalid_and_failed_replies_are_errors_with_their_exit_codes() {
        let invalid = br#"{"status":"invalid","errors":[{"location":"page.id","message":"bad"}]}"#;
        let error = decode_reply::<ApplyConfigResult>(SUBJECT, invalid).expect_err("invalid");
        assert_eq!(error.exit_code(), 64);
        assert!(
            error.report().contains("\npage.id: bad\n"),
            "{}",
            error.report()
        );

        let failed = br#"{"status":"failed","message":"KV write timed out"}"#;
        let error = decode_reply::<ApplyConfigResult>(SUBJECT, failed).expect_err("failed");
        assert_eq!(error.exit_code(), 1);
        assert!(error.report().contains("KV write timed out"));

        let error = decode_reply::<ApplyConfigResult>(SUBJECT, b"<html>").expect_err("garbage");
        assert_eq!(error.exit_code(), 1);
        assert!(matches!(error, CtlError::BadReply { .. }));
    }
}
