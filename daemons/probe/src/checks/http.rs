//! HTTP(S) checks: status code and body conditions.

use std::time::Instant;

use beacon_core::config::HttpMethod;
use beacon_core::messages::Outcome;

use super::CheckOutput;

/// Largest body read for `body_contains`; a status page is not a crawler.
const MAX_BODY: usize = 1024 * 1024;

/// The HTTP client used by every HTTP check.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("Beacon-Probe/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::limited(5))
        // A pooled connection would hide connect failures and connect latency.
        .pool_max_idle_per_host(0)
        .build()
}

/// Runs one HTTP check.
pub async fn check(
    client: &reqwest::Client,
    url: &str,
    method: HttpMethod,
    expect_status: &[u16],
    body_contains: Option<&str>,
    started: Instant,
) -> CheckOutput {
    let request = match method {
        HttpMethod::Get => client.get(url),
        HttpMethod::Head => client.head(url),
        HttpMethod::Post => client.post(url),
    };
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return CheckOutput::down(started, describe(&e)),
    };
    let status = response.status().as_u16();
    let status_ok = if expect_status.is_empty() {
        (200..300).contains(&status)
    } else {
        expect_status.contains(&status)
    };
    let mut output = if status_ok {
        CheckOutput::up(started)
    } else {
        CheckOutput::down(started, format!("unexpected HTTP status {status}"))
    };
    output.http_status = Some(status);
    if status_ok {
        if let Some(needle) = body_contains {
            match read_body(response).await {
                Ok(body) if body.contains(needle) => {}
                Ok(_) => {
                    output.outcome = Outcome::Down;
                    output.error = Some(format!("body does not contain {needle:?}"));
                }
                Err(e) => {
                    output.outcome = Outcome::Down;
                    output.error = Some(format!("cannot read body: {}", describe(&e)));
                }
            }
        }
    }
    output.latency = started.elapsed();
    output
}

async fn read_body(mut response: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// A short reason without the URL (results already name the check).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_redirect() {
        "too many redirects"
    } else if e.is_body() || e.is_decode() {
        "bad response body"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}
