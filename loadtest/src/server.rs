//! Where the bus under test comes from.

use async_nats::Client;
use beacon_runtime::connect::{connect_once, NatsArgs};
use beacon_testkit::NatsServer;

use crate::error::LoadError;
use crate::progress;

/// Client name the load test shows up as on the server.
const CLIENT_NAME: &str = "beacon-loadtest";

/// A connection to the bus under test, and the private server behind it if
/// one was started. Dropping it stops that server.
pub struct Bus {
    /// Connected client.
    pub client: Client,
    /// `private` or `external`, for the report.
    pub kind: &'static str,
    /// The URL it was reached at.
    pub url: String,
    // Kept only so it lives as long as the client.
    _server: Option<NatsServer>,
}

/// Connects to `url`, or starts a private nats-server and connects to it.
pub async fn open(url: Option<&str>) -> Result<Bus, LoadError> {
    let (url, server, kind) = match url {
        Some(url) => (url.to_owned(), None, "external"),
        None => {
            progress("Starting a private nats-server.");
            // The test kit blocks while it waits for readiness and panics if
            // the server cannot start; a blocking task contains both.
            let server = tokio::task::spawn_blocking(NatsServer::start)
                .await
                .map_err(|e| LoadError::StartServer(panic_text(e)))?;
            (server.url(), Some(server), "private")
        }
    };
    let args = NatsArgs {
        url,
        creds: None,
        user: None,
        password: None,
    };
    let client = connect_once(&args, CLIENT_NAME).await?;
    Ok(Bus {
        client,
        kind,
        url: args.url,
        _server: server,
    })
}

fn panic_text(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return error.to_string();
    }
    let payload = error.into_panic();
    if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else {
        "it panicked".to_owned()
    }
}
