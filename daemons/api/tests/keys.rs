//! A key is accepted as soon as its creation was acknowledged, even by an
//! instance whose follower of KV `apikeys` has not delivered it yet: the
//! HTTP side reads the bucket before it refuses an id it has never seen.
//!
//! The router here has no follower at all, which is the limit of a follower
//! that lags: every answer below comes from reading through to the bucket,
//! against a real `nats-server`.

use std::net::SocketAddr;
use std::time::Duration;

use async_nats::jetstream;
use beacon_api::http::{router, AppState};
use beacon_api::keys::ApiKeyRecord;
use beacon_api::keys::{self, Keys};
use beacon_api::limits::Limits;
use beacon_api::metrics::Metrics;
use beacon_contract::api::ApiScope;
use beacon_contract::event::Envelope;
use beacon_contract::hlc::HlcClock;
use beacon_contract::names::KV_APIKEYS;
use beacon_contract::topology::{ensure, Topology};
use beacon_runtime::telemetry::Metrics as Registry;
use beacon_testkit::nats::NatsServer;

struct Gateway {
    url: String,
    store: jetstream::kv::Store,
    clock: HlcClock,
    http: reqwest::Client,
}

impl Gateway {
    /// The HTTP API over `server`, with an empty key cache and no follower.
    async fn start(server: &NatsServer) -> Gateway {
        let client = async_nats::connect(server.url()).await.expect("connect");
        let js = jetstream::new(client.clone());
        ensure(&js, &Topology::default()).await.expect("topology");
        let store = js.get_key_value(KV_APIKEYS).await.expect("KV apikeys");
        let state = AppState {
            client,
            keys: Keys::default(),
            key_store: store.clone(),
            limits: Limits::new(600),
            metrics: Metrics::register(&Registry::new("api_keys_test")).expect("metrics"),
            timeout: Duration::from_secs(2),
            trusted_proxies: Vec::new(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Gateway {
            url: format!("http://{address}"),
            store,
            clock: HlcClock::new(),
            http: reqwest::Client::new(),
        }
    }

    /// Stores `new` for page `demo` the way `apikey create` does, and
    /// returns its text.
    async fn store_key(&self, new: keys::NewKey, scopes: Vec<ApiScope>, revoked: bool) -> String {
        let record = ApiKeyRecord {
            id: new.id.clone(),
            page: "demo".into(),
            name: "fresh".into(),
            scopes,
            secret_sha256: new.secret_sha256,
            rate_per_minute: 600,
            created_at_ms: 1,
            created_by: "test".into(),
            revoked_at_ms: revoked.then_some(2),
        };
        let bytes = Envelope::new(&self.clock, "test", record)
            .encode()
            .expect("encode");
        self.store
            .create(&new.id, bytes.into())
            .await
            .expect("store the key");
        new.text
    }

    /// Status and error message of `GET /api/v1/components` with `key`.
    async fn components(&self, key: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}/api/v1/components", self.url))
            .bearer_auth(key)
            .send()
            .await
            .expect("the API answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        let body: serde_json::Value = serde_json::from_str(&text).expect("a JSON error");
        let message = body["error"]["message"].as_str().unwrap_or("").to_owned();
        (status, message)
    }
}

#[tokio::test]
async fn a_key_is_accepted_before_the_follower_delivers_it() {
    let server = NatsServer::start();
    let gateway = Gateway::start(&server).await;

    // Authenticated from the bucket: the route then refuses for the scope
    // (403), which it only checks once the key itself is accepted.
    let fresh = gateway
        .store_key(keys::generate(), vec![ApiScope::IncidentsRead], false)
        .await;
    let (status, message) = gateway.components(&fresh).await;
    assert_eq!(
        (status, message.as_str()),
        (403, "the API key lacks the scope this needs"),
        "a key stored a moment ago must be authenticated"
    );

    // A key revoked before this instance ever saw it is refused as revoked.
    let revoked = gateway
        .store_key(keys::generate(), vec![ApiScope::ComponentsRead], true)
        .await;
    let (status, message) = gateway.components(&revoked).await;
    assert_eq!((status, message.as_str()), (401, "the API key was revoked"));

    // A key the bucket does not hold is refused, and a key of that id
    // created afterwards is still accepted: misses are not remembered.
    let later = keys::generate();
    let (status, message) = gateway.components(&later.text).await;
    assert_eq!(
        (status, message.as_str()),
        (401, "the API key is not valid")
    );
    let later = gateway
        .store_key(later, vec![ApiScope::IncidentsRead], false)
        .await;
    let (status, _) = gateway.components(&later).await;
    assert_eq!(status, 403, "a key created after a miss is accepted");
}
