//! The one serving path against a real `nats-server`: a request sent the
//! moment `up` fires is answered, the handler gets the parsed request, a
//! body that is not the request is refused naming its type without running
//! the handler, and every answer is counted by endpoint and outcome.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use beacon_contract::api::{ApiReply, ComponentRequest, ComponentView, COMPONENT_EXPLAIN};
use beacon_runtime::service::{Router, Service};
use beacon_runtime::shutdown::Shutdown;
use beacon_runtime::telemetry::Metrics;
use beacon_testkit::NatsServer;

#[tokio::test]
async fn a_router_answers_typed_requests_from_the_moment_it_is_up() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let metrics = Metrics::new("service_test");
    let outcomes = metrics
        .counter("api_requests_total", "test", &["endpoint", "outcome"])
        .expect("counter");
    let calls = Arc::new(AtomicUsize::new(0));
    let router = Router::new(
        Service {
            name: "beacon-test",
            description: "test",
            concurrency: 4,
        },
        outcomes,
    )
    .route(
        COMPONENT_EXPLAIN,
        &calls,
        |calls, request: ComponentRequest| async move {
            calls.fetch_add(1, Ordering::SeqCst);
            ApiReply::Ok {
                result: ComponentView {
                    page: request.page,
                    component: request.component.unwrap_or_default(),
                    name: "API".into(),
                    automated: true,
                    record: None,
                    manual_override: None,
                    maintenance: Vec::new(),
                    incidents: Vec::new(),
                    depends_on: Vec::new(),
                },
            }
        },
    );
    assert_eq!(router.subjects(), vec![COMPONENT_EXPLAIN.subject()]);
    let shutdown = Shutdown::new(Duration::from_secs(1));
    let (up_tx, up) = tokio::sync::oneshot::channel();
    let serving = {
        let (client, shutdown) = (client.clone(), shutdown.clone());
        tokio::spawn(async move { router.serve(&client, &shutdown, Some(up_tx)).await })
    };
    up.await.expect("the router comes up");

    let ask = |body: Vec<u8>| {
        let client = client.clone();
        async move {
            let reply = client
                .request(COMPONENT_EXPLAIN.subject(), body.into())
                .await
                .expect("answered as soon as it is up");
            serde_json::from_slice::<serde_json::Value>(&reply.payload).expect("an ApiReply")
        }
    };
    let ok = ask(br#"{"page":"demo","component":"api"}"#.to_vec()).await;
    assert_eq!(ok["status"], "ok", "{ok}");
    assert_eq!(ok["result"]["component"], "api", "{ok}");
    let refused = ask(br#"{"page":"demo","nonsense":true}"#.to_vec()).await;
    assert_eq!(refused["status"], "invalid", "{refused}");
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("not a ComponentRequest: ")),
        "{refused}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a refused body never reaches the handler"
    );
    let text = metrics.render();
    for outcome in ["ok", "invalid"] {
        let line = format!(
            "beacon_service_test_api_requests_total{{endpoint=\"component.explain\",outcome=\"{outcome}\"}} 1"
        );
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }

    shutdown.cancel();
    serving.await.expect("no panic").expect("served");
}
