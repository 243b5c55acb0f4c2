//! A daemon's part of the operator bus API, served as one NATS service
//! (`$SRV` discovery, the `beacon.api` group as a queue group, so every
//! instance shares the requests): its endpoints' requests are handled up to
//! a concurrency bound until shutdown, then the service stops.

use std::future::Future;

use async_nats::service::{Request, ServiceExt};
use futures::StreamExt;

use crate::shutdown::Shutdown;
use beacon_contract::names::api;

/// What a daemon's service is called and what it serves.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// The service name, e.g. `beacon-decider`.
    pub name: &'static str,
    /// What it does, for people listing services.
    pub description: &'static str,
    /// Its endpoints' full subjects (`beacon.api.…`).
    pub endpoints: &'static [&'static str],
    /// Requests handled at once.
    pub concurrency: usize,
}

/// Serves `service` until `shutdown`, handing each request with its
/// endpoint's full subject to `handle`. Once every endpoint is subscribed
/// and the server has the subscriptions, says so on `up`: a daemon that
/// reports itself ready only after that never has a request for its API go
/// unanswered. An error means the service could not be registered:
/// operators cannot reach this daemon.
pub async fn serve<F, Fut>(
    client: &async_nats::Client,
    shutdown: &Shutdown,
    service: Service,
    up: Option<tokio::sync::oneshot::Sender<()>>,
    handle: F,
) -> Result<(), async_nats::Error>
where
    F: Fn(&'static str, Request) -> Fut,
    Fut: Future<Output = ()>,
{
    let registered = client
        .service_builder()
        .description(service.description)
        .start(service.name, env!("CARGO_PKG_VERSION"))
        .await?;
    let group = registered.group(api::GROUP);
    let mut streams = Vec::with_capacity(service.endpoints.len());
    for subject in service.endpoints {
        let endpoint = group
            .endpoint(subject.trim_start_matches("beacon.api."))
            .await?;
        streams.push(endpoint.map(move |request| (*subject, request)).boxed());
    }
    if let Some(up) = up {
        client.flush().await?;
        let _ = up.send(());
    }
    let handled = futures::stream::select_all(streams)
        .for_each_concurrent(service.concurrency, |(subject, request)| {
            handle(subject, request)
        });
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = handled => {}
    }
    let _ = registered.stop().await;
    Ok(())
}
