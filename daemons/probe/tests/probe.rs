//! The probe as a real process against a real `nats-server`: it runs only
//! its region's checks, reloads a changed page without a restart, keeps
//! its schedule while hostile targets time out, serves push checks over
//! real HTTP (answering only once the result is durable, 503 while the bus
//! is away, refusing bad requests without publishing anything), and sends
//! heartbeats with its canary's result.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use axum::routing::get;
use axum::Router;
use beacon_contract::event::Envelope;
use beacon_contract::hlc::HlcClock;
use beacon_contract::messages::{CheckKind, ErrorKind, HealthResult, Outcome, ProbeHeartbeat};
use beacon_contract::names::KV_CONFIG;
use beacon_contract::topology::{ensure, Topology};
use beacon_testkit::{free_port, wait_until, DaemonProcess, NatsServer};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use beacon_testkit::wait::{READY, SOON};
/// `printf %s secret | sha256sum`
const SECRET_SHA256: &str = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";

/// Every HEALTH result published, as it arrives.
#[derive(Clone, Default)]
struct Results(Arc<Mutex<Vec<HealthResult>>>);

impl Results {
    async fn collect(client: &async_nats::Client) -> Results {
        let results = Results::default();
        let mut subscription = client
            .subscribe(beacon_contract::names::ALL_HEALTH)
            .await
            .expect("subscribe");
        let sink = results.clone();
        tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                if let Ok(envelope) = Envelope::<HealthResult>::decode(&message.payload) {
                    sink.0.lock().expect("lock").push(envelope.data);
                }
            }
        });
        results
    }

    fn of(&self, component: &str) -> Vec<HealthResult> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| r.component == component)
            .cloned()
            .collect()
    }

    async fn wait_for(
        &self,
        what: &str,
        component: &str,
        matches: impl Fn(&HealthResult) -> bool,
    ) -> HealthResult {
        wait_until(what, SOON, || {
            let found = self.of(component).into_iter().rev().find(|r| matches(r));
            async move { found }
        })
        .await
    }
}

async fn bus(nats: &NatsServer) -> (async_nats::Client, jetstream::Context) {
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = jetstream::new(client.clone());
    ensure(&js, &Topology::default()).await.expect("topology");
    (client, js)
}

/// Validates `toml` and stores it in KV `config`, as the decider would.
async fn put_config(js: &jetstream::Context, toml: &str) {
    let config = beacon_page::config::load(toml).unwrap_or_else(|e| panic!("test config: {e}"));
    let kv = js.get_key_value(KV_CONFIG).await.expect("KV config");
    let envelope = Envelope::new(&HlcClock::new(), "global", config.clone());
    kv.put(&config.id, envelope.encode().expect("encode").into())
        .await
        .expect("put config");
}

fn probe(nats: &NatsServer, extra: &[&str]) -> DaemonProcess {
    let mut args = vec![
        "--nats-url".to_owned(),
        nats.url(),
        "--region".to_owned(),
        "eu".to_owned(),
        "--heartbeat-interval".to_owned(),
        "1s".to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    DaemonProcess::spawn_with_admin("beacon-probe", args)
}

async fn web() -> SocketAddr {
    let app = Router::new().route("/ok", get(|| async { "ok" })).route(
        "/loop",
        get(|| async { axum::response::Redirect::temporary("/loop") }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// Writes `reply` to each connection, one byte per `gap`.
async fn raw(reply: &'static [u8], gap: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                for chunk in reply.chunks(if gap.is_zero() { reply.len() } else { 1 }) {
                    if socket.write_all(chunk).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(gap).await;
                }
            });
        }
    });
    addr
}

fn http_component(id: &str, url: &str, regions: &str) -> String {
    format!(
        r#"
[[components]]
id = "{id}"
name = "{id}"
  [[components.checks]]
  type = "http"
  url = "{url}"
  regions = {regions}
  interval = "1s"
  timeout = "900ms"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_its_region_reloads_live_and_hostile_targets_never_stall_it() {
    let nats = NatsServer::start();
    let (client, js) = bus(&nats).await;
    let results = Results::collect(&client).await;
    let web = web().await;
    let drip = raw(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        Duration::from_secs(1),
    )
    .await;
    let garbage = raw(b"\x00\xffnot http at all\r\n\r\n", Duration::ZERO).await;
    let page = |components: String| format!("[page]\nid = \"p1\"\nname = \"P1\"\n{components}");
    let first = [
        http_component("good", &format!("http://{web}/ok"), "[\"eu\"]"),
        http_component("elsewhere", &format!("http://{web}/ok"), "[\"us\"]"),
        http_component("drip", &format!("http://{drip}/"), "[\"eu\", \"us\"]"),
        http_component("looping", &format!("http://{web}/loop"), "[\"eu\"]"),
        http_component("garbage", &format!("http://{garbage}/"), "[\"eu\"]"),
    ]
    .concat();
    put_config(&js, &page(first)).await;
    let probe = probe(&nats, &[]);
    probe.wait_ready(READY).await;

    // Hostile targets fail with their kinds…
    for (component, kind) in [
        ("drip", ErrorKind::Timeout),
        ("looping", ErrorKind::Redirect),
        ("garbage", ErrorKind::Protocol),
    ] {
        let result = results
            .wait_for(
                &format!("a {kind:?} failure of {component}"),
                component,
                |r| r.outcome == Outcome::Down,
            )
            .await;
        assert_eq!(result.error_kind, Some(kind), "{result:#?}");
    }
    // …while the good check keeps its one-second rhythm.
    let good = wait_until("five results of the good check", SOON, || {
        let good = results.of("good");
        async move { (good.len() >= 5).then_some(good) }
    })
    .await;
    assert!(good
        .iter()
        .all(|r| r.outcome == Outcome::Up && r.kind == CheckKind::Http));
    for pair in good.windows(2) {
        let gap = pair[1].started_at_ms - pair[0].started_at_ms;
        assert!(
            (700..=1300).contains(&gap),
            "runs of the good check {gap} ms apart"
        );
    }
    // Only this region's checks run here.
    assert!(
        results.of("elsewhere").is_empty(),
        "a us-only check ran in eu"
    );

    // Hot reload: `good` goes, `fresh` comes, without a restart.
    let second = [
        http_component("fresh", &format!("http://{web}/ok"), "[\"eu\"]"),
        http_component("elsewhere", &format!("http://{web}/ok"), "[\"us\", \"eu\"]"),
    ]
    .concat();
    put_config(&js, &page(second)).await;
    results
        .wait_for("the new check to run", "fresh", |r| {
            r.outcome == Outcome::Up
        })
        .await;
    results
        .wait_for("the check now also in eu to run", "elsewhere", |r| {
            r.region == "eu"
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopped_at = results.of("good").len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        results.of("good").len(),
        stopped_at,
        "a removed check kept running"
    );
    assert!(probe.logs().contains("Checks scheduled."));
}

async fn push(
    port: u16,
    path: &str,
    token: Option<&str>,
    method: reqwest::Method,
    body: Vec<u8>,
) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method, format!("http://127.0.0.1:{port}/push/p2/{path}"))
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("push request");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

fn alertmanager(status: &str, fingerprint: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"QueueStuck\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "beacon",
        "groupLabels": {"alertname": "QueueStuck"},
        "commonLabels": {"alertname": "QueueStuck"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local",
        "alerts": [{
            "status": status,
            "labels": {"alertname": "QueueStuck", "severity": "critical"},
            "annotations": {"summary": "jobs are not moving"},
            "startsAt": "2026-11-27T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.local/graph",
            "fingerprint": fingerprint,
        }],
    }))
    .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_checks_over_real_http() {
    let nats = NatsServer::start();
    let (client, js) = bus(&nats).await;
    let results = Results::collect(&client).await;
    put_config(
        &js,
        &format!(
            r#"
[page]
id = "p2"
name = "Push"

[defaults]
regions = ["eu"]
interval = "60s"

[[components]]
id = "cron"
name = "Cron"
  [[components.checks]]
  type = "push"
  format = "heartbeat"
  interval = "2s"
  grace = "500ms"
  timeout = "1s"
  token_sha256 = "{SECRET_SHA256}"

[[components]]
id = "alerts"
name = "Alerts"
  [[components.checks]]
  type = "push"
  format = "alertmanager"
  token_sha256 = "{SECRET_SHA256}"

[[components]]
id = "signal"
name = "Signal"
  [[components.checks]]
  type = "push"
  format = "json"
  token_sha256 = "{SECRET_SHA256}"
"#
        ),
    )
    .await;
    let port = free_port();
    let probe = probe(&nats, &["--push-listen", &format!("127.0.0.1:{port}")]);
    probe.wait_ready(READY).await;
    use reqwest::Method;

    // A heartbeat: 200 once stored, and the result is on the bus.
    let (status, body) = push(port, "cron/push", Some("secret"), Method::POST, vec![]).await;
    assert_eq!(status, 200, "{body}");
    let ping = results
        .wait_for("the ping's result", "cron", |r| r.outcome == Outcome::Up)
        .await;
    assert_eq!(ping.kind, CheckKind::Push);
    // No ping for 2.5 s: late, which is a failure.
    let late = results
        .wait_for("the heartbeat to be late", "cron", |r| {
            r.outcome == Outcome::Down
        })
        .await;
    assert_eq!(late.error_kind, Some(ErrorKind::Late), "{late:#?}");
    // GET works for heartbeats too (cron jobs ping with curl).
    let (status, _) = push(port, "cron/push", Some("secret"), Method::GET, vec![]).await;
    assert_eq!(status, 200);

    // Alertmanager: firing is down, resolved is up again.
    let (status, body) = push(
        port,
        "alerts/push",
        Some("secret"),
        Method::POST,
        alertmanager("firing", "f1"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let firing = results
        .wait_for("a firing alert", "alerts", |r| r.outcome == Outcome::Down)
        .await;
    assert_eq!(firing.error_kind, Some(ErrorKind::Alert));
    assert!(
        firing
            .error
            .as_deref()
            .is_some_and(|e| e.contains("QueueStuck")),
        "{firing:#?}"
    );
    let (status, _) = push(
        port,
        "alerts/push",
        Some("secret"),
        Method::POST,
        alertmanager("resolved", "f1"),
    )
    .await;
    assert_eq!(status, 200);
    results
        .wait_for("the alert to resolve", "alerts", |r| {
            r.outcome == Outcome::Up
        })
        .await;

    // A JSON signal.
    let (status, _) = push(
        port,
        "signal/push",
        Some("secret"),
        Method::POST,
        br#"{"status":"degraded","message":"replica lag 40s"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    let degraded = results
        .wait_for("the degraded signal", "signal", |r| {
            r.outcome == Outcome::Degraded
        })
        .await;
    assert_eq!(degraded.error.as_deref(), Some("replica lag 40s"));

    // Bad requests: refused with a clear status, and nothing published.
    let before = (results.of("alerts").len(), results.of("signal").len());
    // (path, token, method, body, expected status)
    type Case<'a> = (&'a str, Option<&'a str>, Method, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        (
            "signal/push",
            None,
            Method::POST,
            br#"{"status":"down"}"#.to_vec(),
            401,
        ),
        (
            "signal/push",
            Some("wrong"),
            Method::POST,
            br#"{"status":"down"}"#.to_vec(),
            401,
        ),
        (
            "nope/push",
            Some("secret"),
            Method::POST,
            br#"{"status":"down"}"#.to_vec(),
            404,
        ),
        (
            "signal/push",
            Some("secret"),
            Method::POST,
            b"{not json".to_vec(),
            400,
        ),
        (
            "signal/push",
            Some("secret"),
            Method::POST,
            br#"{"status":"sideways"}"#.to_vec(),
            400,
        ),
        (
            "alerts/push",
            Some("secret"),
            Method::POST,
            br#"{"version":"3","status":"firing","alerts":[]}"#.to_vec(),
            400,
        ),
        ("alerts/push", Some("secret"), Method::GET, vec![], 405),
        (
            "signal/push",
            Some("secret"),
            Method::POST,
            vec![b' '; 70 * 1024],
            413,
        ),
    ];
    for (path, token, method, body, want) in cases {
        let (status, text) = push(port, path, token, method.clone(), body).await;
        assert_eq!(status, want, "{method} {path} with {token:?}: {text}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        (results.of("alerts").len(), results.of("signal").len()),
        before,
        "a refused push published something"
    );
    let metrics = reqwest::get(format!("{}/metrics", probe.admin_url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("beacon_probe_push_requests_total{format=\"json\",status=\"401\"} 2"),
        "{metrics}"
    );

    // No 2xx before the result is durable: with the bus away the answer
    // is 503, and once it is back the same push is stored.
    let mut nats = nats;
    tokio::task::block_in_place(|| nats.stop());
    let down = br#"{"status":"down","message":"disk full"}"#.to_vec();
    let (status, body) = push(
        port,
        "signal/push",
        Some("secret"),
        Method::POST,
        down.clone(),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    tokio::task::block_in_place(|| nats.start_again());
    wait_until("a push to be stored once the bus is back", SOON, || {
        let down = down.clone();
        async move {
            let (status, _) = push(port, "signal/push", Some("secret"), Method::POST, down).await;
            (status == 200).then_some(())
        }
    })
    .await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("reconnect"));
    let stream = js.get_stream("HEALTH").await.expect("HEALTH");
    let last = stream
        .get_last_raw_message_by_subject(&beacon_contract::names::health_subject(
            "p2", "signal", "eu",
        ))
        .await
        .expect("the stored signal");
    let last = Envelope::<HealthResult>::decode(&last.payload).expect("a result");
    assert_eq!(last.data.error.as_deref(), Some("disk full"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_carry_the_canary() {
    let nats = NatsServer::start();
    let (client, js) = bus(&nats).await;
    put_config(
        &js,
        &format!(
            "[page]\nid = \"p3\"\nname = \"P3\"\n{}",
            http_component("a", "http://127.0.0.1:9/", "[\"eu\"]")
        ),
    )
    .await;
    let canary = web().await;
    let heartbeats: Arc<Mutex<Vec<ProbeHeartbeat>>> = Arc::default();
    let mut subscription = client
        .subscribe(beacon_contract::names::probe_heartbeat_subject("eu"))
        .await
        .expect("subscribe");
    let sink = heartbeats.clone();
    tokio::spawn(async move {
        while let Some(message) = subscription.next().await {
            if let Ok(envelope) = Envelope::<ProbeHeartbeat>::decode(&message.payload) {
                sink.lock().expect("lock").push(envelope.data);
            }
        }
    });
    let canary_url = format!("http://{canary}/ok");
    let probe = probe(
        &nats,
        &["--canary-url", &canary_url, "--probe-id", "eu-test"],
    );
    probe.wait_ready(READY).await;
    let beat = wait_until("a heartbeat with a passing canary", SOON, || {
        let found = heartbeats.lock().expect("lock").last().cloned();
        async move { found.filter(|h| h.canary.as_ref().is_some_and(|c| c.outcome == Outcome::Up)) }
    })
    .await;
    assert_eq!(
        (beat.region.as_str(), beat.probe.as_str(), beat.checks),
        ("eu", "eu-test", 1)
    );
    assert_eq!(beat.interval_ms, 1000);
    // The heartbeat is durable: it is in the PROBES stream.
    let mut stream = js.get_stream("PROBES").await.expect("PROBES");
    assert!(stream.info().await.expect("info").state.messages >= 1);

    // A probe whose canary fails says so in its heartbeats.
    let bad = probe_with_dead_canary(&nats).await;
    let mut seen: HashMap<String, Outcome> = HashMap::new();
    wait_until("a heartbeat with a failing canary", SOON, || {
        for h in heartbeats.lock().expect("lock").iter() {
            if let Some(c) = &h.canary {
                seen.insert(h.probe.clone(), c.outcome);
            }
        }
        let down = seen.get("eu-broken") == Some(&Outcome::Down);
        async move { down.then_some(()) }
    })
    .await;
    drop(bad);
}

async fn probe_with_dead_canary(nats: &NatsServer) -> DaemonProcess {
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/", closed.local_addr().expect("addr"));
    drop(closed);
    let probe = probe(nats, &["--canary-url", &url, "--probe-id", "eu-broken"]);
    probe.wait_ready(READY).await;
    probe
}
