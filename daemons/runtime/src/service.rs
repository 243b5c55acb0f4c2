//! A daemon's part of the operator bus API, served as one NATS service
//! (`$SRV` discovery, the `beacon.api` group as a queue group, so every
//! instance shares the requests).
//!
//! This is the one serving path of every daemon with a bus API. A daemon
//! builds a [`Router`] of typed handlers, one per
//! [`Endpoint`](beacon_contract::api::Endpoint) it owns, and the router
//! owns everything around them:
//!
//! - parsing the request body as the endpoint's request type (a body that
//!   is not one gets an `invalid` reply naming the type, and the handler
//!   never runs);
//! - the [`ApiReply`] envelope of the answer;
//! - counting every answer by endpoint and outcome (`ok`, `invalid`,
//!   `failed`, `conflict`) in the daemon's `…_api_requests_total`;
//! - readiness: [`Router::serve`] says so on `up` only once every endpoint
//!   is subscribed and the server has the subscriptions, so a daemon that
//!   reports itself ready after that never has a request go unanswered;
//! - concurrency up to a bound, and stopping the service at shutdown.

use std::future::Future;
use std::sync::Arc;

use async_nats::service::ServiceExt;
use beacon_contract::api::{ApiReply, Endpoint};
use beacon_contract::names::api::GROUP;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use prometheus::IntCounterVec;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::shutdown::Shutdown;

/// What a daemon's service is called.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// The service name, e.g. `beacon-decider`.
    pub name: &'static str,
    /// What it does, for people listing services.
    pub description: &'static str,
    /// Requests handled at once.
    pub concurrency: usize,
}

/// One encoded answer and its outcome label.
struct Answer {
    body: Vec<u8>,
    outcome: &'static str,
}

type Handler = Arc<dyn Fn(Bytes) -> BoxFuture<'static, Answer> + Send + Sync>;

/// A daemon's endpoints with their handlers; see the module doc.
pub struct Router {
    service: Service,
    outcomes: IntCounterVec,
    routes: Vec<(&'static str, Handler)>,
}

/// The outcome label of a reply.
pub fn outcome<T>(reply: &ApiReply<T>) -> &'static str {
    match reply {
        ApiReply::Ok { .. } => "ok",
        ApiReply::Invalid { .. } => "invalid",
        ApiReply::Failed { .. } => "failed",
        ApiReply::Conflict { .. } => "conflict",
    }
}

/// The last path segment of a type's name, e.g. `SetComponentRequest`.
fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

/// The reply to a body that is not a `Req`.
pub fn not_a<Req, Res>(error: &serde_json::Error) -> ApiReply<Res> {
    let name = short_type_name::<Req>();
    let article = match name.chars().next() {
        Some('A' | 'E' | 'I' | 'O' | 'U') => "an",
        _ => "a",
    };
    ApiReply::invalid("request", format!("not {article} {name}: {error}"))
}

impl Router {
    /// A router for `service`, counting answers in `outcomes`, a counter
    /// with the labels `endpoint` and `outcome`.
    pub fn new(service: Service, outcomes: IntCounterVec) -> Self {
        Self {
            service,
            outcomes,
            routes: Vec::new(),
        }
    }

    /// Answers `endpoint` with `handle`, given its own clone of `context`
    /// and the parsed request for every request.
    pub fn route<C, Req, Res, F, Fut>(
        mut self,
        endpoint: Endpoint<Req, Res>,
        context: &C,
        handle: F,
    ) -> Self
    where
        C: Clone + Send + Sync + 'static,
        Req: DeserializeOwned + Send + 'static,
        Res: Serialize + 'static,
        F: Fn(C, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ApiReply<Res>> + Send + 'static,
    {
        let context = context.clone();
        let handler: Handler = Arc::new(move |payload: Bytes| {
            let handled = serde_json::from_slice::<Req>(&payload)
                .map(|request| handle(context.clone(), request));
            Box::pin(async move {
                let reply = match handled {
                    Ok(reply) => reply.await,
                    Err(e) => not_a::<Req, Res>(&e),
                };
                Answer {
                    outcome: outcome(&reply),
                    body: serde_json::to_vec(&reply).unwrap_or_default(),
                }
            })
        });
        self.routes.push((endpoint.subject(), handler));
        self
    }

    /// The subjects routed so far, in order.
    pub fn subjects(&self) -> Vec<&'static str> {
        self.routes.iter().map(|(subject, _)| *subject).collect()
    }

    /// Serves every route until `shutdown`. Once every endpoint is
    /// subscribed and the server has the subscriptions, says so on `up`.
    /// An error means the service could not be registered: operators
    /// cannot reach this daemon.
    pub async fn serve(
        self,
        client: &async_nats::Client,
        shutdown: &Shutdown,
        up: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Result<(), async_nats::Error> {
        let registered = client
            .service_builder()
            .description(self.service.description)
            .start(self.service.name, env!("CARGO_PKG_VERSION"))
            .await?;
        let group = registered.group(GROUP);
        let mut streams = Vec::with_capacity(self.routes.len());
        for (subject, handler) in self.routes {
            let name = subject
                .strip_prefix(GROUP)
                .and_then(|rest| rest.strip_prefix('.'))
                .unwrap_or(subject);
            let endpoint = group.endpoint(name).await?;
            streams.push(
                endpoint
                    .map(move |request| (name, handler.clone(), request))
                    .boxed(),
            );
        }
        if let Some(up) = up {
            client.flush().await?;
            let _ = up.send(());
        }
        let outcomes = self.outcomes;
        let handled = futures::stream::select_all(streams).for_each_concurrent(
            self.service.concurrency,
            |(name, handler, request)| {
                let outcomes = outcomes.clone();
                async move {
                    let answer = handler(request.message.payload.clone()).await;
                    outcomes.with_label_values(&[name, answer.outcome]).inc();
                    if let Err(e) = request.respond(Ok(answer.body.into())).await {
                        tracing::warn!(endpoint = name, error = %e, "Cannot send API reply.");
                    }
                }
            },
        );
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = handled => {}
        }
        let _ = registered.stop().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct SetComponentRequest {
        _page: String,
    }

    #[derive(Debug, serde::Deserialize)]
    struct SlaReportRequest {
        _page: String,
    }

    #[test]
    fn a_body_that_is_not_the_request_names_the_type() {
        let error = serde_json::from_slice::<SetComponentRequest>(b"{}").expect_err("bad");
        let reply = not_a::<SetComponentRequest, ()>(&error);
        let ApiReply::Invalid { errors } = reply else {
            panic!("invalid");
        };
        assert_eq!(errors[0].location, "request");
        assert!(
            errors[0].message.starts_with("not a SetComponentRequest: "),
            "{}",
            errors[0].message
        );
        let error = serde_json::from_slice::<SlaReportRequest>(b"[]").expect_err("bad");
        let ApiReply::Invalid { errors } = not_a::<SlaReportRequest, ()>(&error) else {
            panic!("invalid");
        };
        assert!(errors[0].message.starts_with("not a SlaReportRequest: "));
    }

    #[test]
    fn outcomes_are_the_reply_kinds() {
        assert_eq!(outcome(&ApiReply::Ok { result: () }), "ok");
        assert_eq!(outcome(&ApiReply::<()>::invalid("x", "y")), "invalid");
        assert_eq!(outcome(&ApiReply::<()>::failed("x")), "failed");
        assert_eq!(
            outcome(&ApiReply::<()>::Conflict {
                message: "x".into(),
                current: None
            }),
            "conflict"
        );
    }
}
