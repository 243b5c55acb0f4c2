//! The edge as a process, against versions written the way the publisher
//! writes them: routing by host and path, compression, validators, cache
//! and security headers, 404s, path traversal, oversized and malformed
//! requests (refused without affecting other clients), live updates over
//! SSE, the emergency notice, mirroring the `pages` object store from a
//! real nats-server, then serving on with NATS gone, and handing sign-up
//! (and nothing else) to the HTTP API, with a clear 503 when it fails.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use beacon_page::origin;
use beacon_publisher::site::{publish_local, Built, Compressor};
use beacon_testkit::{free_port, wait_until, DaemonProcess, NatsServer};

use beacon_testkit::wait::READY;

fn build(page: &str, version: &str, hosts: &[&str], index: &str, live: &str) -> Built {
    let style = beacon_publisher::render::html::STYLE;
    let html = format!(
        "<!doctype html><html><head><style>{style}</style><script src=\"live.js\" defer></script></head><body>{}</body></html>",
        index.repeat(20)
    );
    Compressor::default().build(
        page,
        version,
        beacon_contract::hlc::wall_clock_ms(),
        hosts.iter().map(|h| h.to_string()).collect(),
        vec![
            ("index.html".into(), html.into_bytes()),
            (
                "api/v2/summary.json".into(),
                format!("{{\"page\":\"{page}\",\"v\":\"{version}\"}}").into_bytes(),
            ),
            ("live.json".into(), live.as_bytes().to_vec()),
            (
                "live.js".into(),
                beacon_publisher::render::assets::LIVE_JS
                    .as_bytes()
                    .to_vec(),
            ),
        ],
    )
}

fn publish(origin_dir: &Path, built: &Built) {
    publish_local(origin_dir, built).expect("publish");
}

/// One raw HTTP/1.1 exchange; returns (status, lower-case headers, body).
fn http(addr: &str, request: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request).expect("send");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse(&raw)
}

fn parse(raw: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, raw[split + 4..].to_vec())
}

fn get(addr: &str, path: &str, extra: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n")
            .as_bytes(),
    )
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

struct Edge {
    addr: String,
    process: DaemonProcess,
}

/// An edge serving page `demo` from an origin directory of its own that
/// holds `built`; the directory is returned for later versions.
async fn demo_edge(built: &Built) -> (tempfile::TempDir, Edge) {
    let origin_dir = tempfile::tempdir().expect("origin");
    publish(origin_dir.path(), built);
    let edge = start_edge(origin_dir.path(), &["--page", "demo"]);
    edge.process.wait_ready(READY).await;
    (origin_dir, edge)
}

/// Waits until `/` on the edge at `addr` has `needle` in its body.
async fn wait_for_page(addr: &str, what: &str, within: Duration, needle: &str) {
    wait_until(what, within, || {
        let addr = addr.to_owned();
        async move {
            let (_, _, body) = get(&addr, "/", "");
            String::from_utf8_lossy(&body)
                .contains(needle)
                .then_some(())
        }
    })
    .await;
}

fn start_edge(origin_dir: &Path, extra: &[&str]) -> Edge {
    let port = free_port();
    let mut args = vec![
        "--origin".to_owned(),
        origin_dir.display().to_string(),
        "--listen".to_owned(),
        format!("127.0.0.1:{port}"),
        "--scan-interval".to_owned(),
        "20ms".to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Edge {
        addr: format!("127.0.0.1:{port}"),
        process: DaemonProcess::spawn_with_admin("beacon-edge", args),
    }
}

#[tokio::test]
async fn pages_are_served_from_memory_with_the_right_headers() {
    let origin_dir = tempfile::tempdir().expect("origin");
    let demo = build(
        "demo",
        "01J0000000000000000000000A",
        &["status.example.com"],
        "demo page",
        "{\"v\":1}",
    );
    publish(origin_dir.path(), &demo);
    publish(
        origin_dir.path(),
        &build(
            "other",
            "01J0000000000000000000000B",
            &[],
            "other page",
            "{}",
        ),
    );
    let edge = start_edge(
        origin_dir.path(),
        &["--page", "demo", "--host", "custom.test=other"],
    );
    edge.process.wait_ready(READY).await;
    let addr = edge.addr.clone();

    // Default page, by path, by host (flag and manifest).
    let (status, headers, body) = get(&addr, "/", "");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("demo page"));
    let csp = header(&headers, "content-security-policy").expect("csp");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert!(
        csp.contains(&format!("'{}'", demo.manifest.style_hashes[0])),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("http"),
        "{csp}"
    );
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&headers, "x-frame-options"), Some("DENY"));
    let cache = header(&headers, "cache-control").expect("cache-control");
    assert!(
        cache.contains("max-age=5")
            && cache.contains("stale-while-revalidate")
            && cache.contains("stale-if-error")
    );
    let etag = header(&headers, "etag").expect("etag").to_owned();
    assert_eq!(get(&addr, "/other/", "").0, 200);
    assert!(String::from_utf8_lossy(&get(&addr, "/other/", "").2).contains("other page"));
    let (status, headers, _) = get(&addr, "/other", "");
    assert_eq!(status, 301);
    assert_eq!(header(&headers, "location"), Some("/other/"));
    let by_host = http(
        &addr,
        b"GET / HTTP/1.1\r\nHost: custom.test:8080\r\nConnection: close\r\n\r\n",
    );
    assert!(String::from_utf8_lossy(&by_host.2).contains("other page"));
    let by_manifest = http(&addr, b"GET /api/v2/summary.json HTTP/1.1\r\nHost: STATUS.example.com\r\nConnection: close\r\n\r\n");
    assert!(String::from_utf8_lossy(&by_manifest.2).contains("\"page\":\"demo\""));
    let (_, json_headers, _) = get(&addr, "/api/v2/summary.json", "");
    assert_eq!(
        header(&json_headers, "access-control-allow-origin"),
        Some("*")
    );
    assert_eq!(
        header(&json_headers, "content-type"),
        Some("application/json")
    );

    // Validators.
    let (status, _, body) = get(&addr, "/", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!((status, body.len()), (304, 0));
    // Precompressed variants, each with its own ETag.
    let (status, headers, body) = get(&addr, "/", "Accept-Encoding: gzip, br\r\n");
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-encoding"), Some("br"));
    assert_eq!(header(&headers, "vary"), Some("Accept-Encoding"));
    assert_ne!(header(&headers, "etag"), Some(etag.as_str()));
    let mut decoded = Vec::new();
    brotli::BrotliDecompress(&mut std::io::Cursor::new(body), &mut decoded).expect("brotli");
    assert!(String::from_utf8_lossy(&decoded).contains("demo page"));
    let (_, headers, body) = get(&addr, "/", "Accept-Encoding: gzip\r\n");
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    let mut decoded = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut decoded)
        .expect("gzip");
    assert!(decoded.contains("demo page"));

    // Unknown pages and paths, traversal, methods.
    for path in [
        "/nope.html",
        "/nopage/index.html",
        "/demo/../../etc/passwd",
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fetc%2fpasswd",
        "/.manifest.json",
        "/index.html.gz",
        "/demo//index.html",
    ] {
        let (status, _, body) = get(&addr, path, "");
        assert_eq!(status, 404, "{path}");
        assert!(!String::from_utf8_lossy(&body).contains("root:"), "{path}");
    }
    let (status, _, _) = http(
        &addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    );
    assert_eq!(status, 405);
    let (status, headers, body) = http(
        &addr,
        b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(body.is_empty());
    assert!(header(&headers, "content-length").is_some_and(|l| l != "0"));
}

#[tokio::test]
async fn bad_requests_are_refused_without_affecting_others() {
    let (_origin_dir, edge) = demo_edge(&build(
        "demo",
        "01J0000000000000000000000A",
        &[],
        "demo page",
        "{}",
    ))
    .await;
    let addr = edge.addr.clone();

    // A slow client holding a half-sent request does not block anyone.
    let mut slow = TcpStream::connect(&addr).expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .expect("partial");
    // Oversized headers: 431, connection closed.
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let (status, _, _) = http(&addr, huge.as_bytes());
    assert_eq!(status, 431);
    // A long URL.
    let long = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    let (status, _, _) = http(&addr, long.as_bytes());
    assert!(status == 414 || status == 431, "{status}");
    // Garbage.
    let (status, _, _) = http(&addr, b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n");
    assert_eq!(status, 400);
    let (status, _, _) = http(&addr, b"GET / HTTP/9.9\r\n\r\n");
    assert!(status >= 400, "{status}");
    // Meanwhile a normal client is served, at once.
    let started = std::time::Instant::now();
    let (status, _, body) = get(&addr, "/", "");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("demo page"));
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(slow);
    // Counted by class.
    let metrics = reqwest::get(format!("{}/metrics", edge.process.admin_url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("beacon_edge_responses_total{class=\"2xx\"}"),
        "{metrics}"
    );
}

/// Reads SSE frames until `want` appears in the stream.
fn read_sse_until(stream: &mut TcpStream, seen: &mut String, want: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut buffer = [0u8; 4096];
    while !seen.contains(want) {
        assert!(
            std::time::Instant::now() < deadline,
            "no {want:?} in {seen:?}"
        );
        match stream.read(&mut buffer) {
            Ok(0) => panic!("stream closed; saw {seen:?}"),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buffer[..n])),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn new_versions_arrive_live_and_emergencies_go_up_and_down() {
    let (origin_dir, edge) = demo_edge(&build(
        "demo",
        "01J0000000000000000000000A",
        &[],
        "first",
        "{\"status\":\"one\"}",
    ))
    .await;
    let addr = edge.addr.clone();

    let mut sse = TcpStream::connect(&addr).expect("connect");
    sse.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    sse.write_all(b"GET /demo/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .expect("send");
    let mut seen = String::new();
    read_sse_until(&mut sse, &mut seen, "\"status\":\"one\"");
    assert!(seen.contains("content-type: text/event-stream"), "{seen}");
    assert!(seen.contains("event: status"), "{seen}");

    publish(
        origin_dir.path(),
        &build(
            "demo",
            "01J0000000000000000000000C",
            &[],
            "second",
            "{\"status\":\"two\"}",
        ),
    );
    read_sse_until(&mut sse, &mut seen, "\"status\":\"two\"");
    assert!(seen.contains("id: 01J0000000000000000000000C"));
    let (_, _, body) = get(&addr, "/", "");
    assert!(String::from_utf8_lossy(&body).contains("second"));

    // A version that cannot be read leaves the last good one in place.
    let page_dir = origin::page_dir(origin_dir.path(), "demo");
    let broken = origin::version_dir(&page_dir, "01J0000000000000000000000D");
    std::fs::create_dir_all(&broken).expect("dir");
    std::fs::write(broken.join(origin::MANIFEST), b"not json").expect("write");
    let link = page_dir.join(".tmp-link");
    std::os::unix::fs::symlink(origin::current_target("01J0000000000000000000000D"), &link)
        .expect("link");
    std::fs::rename(&link, page_dir.join(origin::CURRENT)).expect("swap");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, body) = get(&addr, "/", "");
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&body).contains("second"),
        "last good version"
    );

    // Emergency notice up, then down, without any daemon but the edge.
    let ctl = beacon_testkit::daemon::binary("beaconctl");
    let up = std::process::Command::new(&ctl)
        .args(["emergency", "up", "--page", "demo", "--origin"])
        .arg(origin_dir.path())
        .args(["--title", "We are down <b>hard</b>", "-m", "Updates here."])
        .output()
        .expect("beaconctl");
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let body = wait_until("the notice", Duration::from_secs(5), || {
        let addr = addr.clone();
        async move {
            let (_, headers, body) = get(&addr, "/", "");
            let text = String::from_utf8_lossy(&body).to_string();
            text.contains("id=\"emergency\"").then_some((headers, text))
        }
    })
    .await;
    assert!(body.1.contains("We are down &lt;b&gt;hard&lt;/b&gt;"));
    let csp = header(&body.0, "content-security-policy").expect("csp");
    assert!(csp.contains("style-src 'sha256-"), "{csp}");
    let (_, _, json) = get(&addr, "/api/v2/summary.json", "");
    let summary: serde_json::Value = serde_json::from_slice(&json).expect("summary.json");
    assert_eq!(summary["page"], "demo", "the API stays");
    assert_eq!(
        summary["beacon_degradation"]["level"], 3,
        "and says the page is at level 3"
    );
    let down = std::process::Command::new(&ctl)
        .args(["emergency", "down", "--page", "demo", "--origin"])
        .arg(origin_dir.path())
        .output()
        .expect("beaconctl");
    assert!(down.status.success());
    wait_for_page(&addr, "the notice to go", Duration::from_secs(5), "second").await;
}

#[tokio::test]
async fn the_edge_mirrors_the_object_store_and_serves_on_without_nats() {
    let mut nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    beacon_contract::topology::ensure(&js, &beacon_contract::topology::Topology::default())
        .await
        .expect("topology");
    let store = js
        .get_object_store(beacon_contract::names::OBJECT_PAGES)
        .await
        .expect("store");
    let mut objects = beacon_publisher::objects::ObjectOrigin::new(store);
    objects
        .publish(&build(
            "far",
            "01J0000000000000000000000A",
            &[],
            "mirrored one",
            "{}",
        ))
        .await
        .expect("publish to the object store");

    // An edge with an empty directory of its own.
    let origin_dir = tempfile::tempdir().expect("origin");
    let edge = start_edge(origin_dir.path(), &["--mirror", "--nats-url", &nats.url()]);
    edge.process.wait_ready(READY).await;
    let addr = edge.addr.clone();
    let fetch = |want: &'static str| {
        let addr = addr.clone();
        async move {
            wait_until(want, Duration::from_secs(15), || {
                let addr = addr.clone();
                async move {
                    let (status, _, body) = get(&addr, "/far/", "");
                    (status == 200 && String::from_utf8_lossy(&body).contains(want)).then_some(())
                }
            })
            .await
        }
    };
    fetch("mirrored one").await;
    objects
        .publish(&build(
            "far",
            "01J0000000000000000000000B",
            &[],
            "mirrored two",
            "{}",
        ))
        .await
        .expect("publish again");
    fetch("mirrored two").await;

    nats.stop();
    let (status, _, body) = get(&addr, "/far/", "");
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&body).contains("mirrored two"),
        "last good version without NATS"
    );
}

fn post(
    addr: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    http(addr, &request)
}

// The fake API runs on the runtime's workers while the test blocks on
// plain sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_sign_up_goes_to_the_api_and_its_failures_are_a_clear_503() {
    use beacon_testkit::receivers::web::{Reply, WebSink};

    let origin_dir = tempfile::tempdir().expect("origin");
    for (page, version) in [
        ("demo", "01J0000000000000000000000A"),
        ("other", "01J0000000000000000000000B"),
    ] {
        let status = format!("{{\"page\":{{\"id\":\"{page}\"}}}}\n");
        let built = Compressor::default().build(
            page,
            version,
            beacon_contract::hlc::wall_clock_ms(),
            Vec::new(),
            vec![
                ("index.html".into(), b"<!doctype html><p>page</p>".to_vec()),
                ("api/v1/status.json".into(), status.into_bytes()),
            ],
        );
        publish(origin_dir.path(), &built);
    }
    let api = WebSink::start().await;
    api.respond(|_| Reply::json(202, serde_json::json!({"status": "pending"})));
    let edge = start_edge(
        origin_dir.path(),
        &["--page", "demo", "--api-url", &api.url()],
    );
    edge.process.wait_ready(READY).await;
    let addr = edge.addr.clone();
    let json =
        "Content-Type: application/json\r\nX-Beacon-Page: evil\r\nX-Forwarded-For: 203.0.113.9\r\n";
    let body = br#"{"subscriber":{"email":"a@example.com"}}"#;

    // At the root (the default page) and under a page's prefix; the edge
    // names the page and the client, whatever the client said.
    let (status, headers, answer) = post(&addr, "/api/v2/subscribers.json?x=1", json, body);
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    let (status, _, _) = post(&addr, "/other/api/v2/subscribers.json", json, body);
    assert_eq!(status, 202);
    let received = api.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].method, "POST");
    assert_eq!(received[0].path, "/api/v2/subscribers.json?x=1");
    assert_eq!(received[0].header("x-beacon-page"), Some("demo"));
    assert_eq!(received[0].header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(received[0].body, body.to_vec());
    assert_eq!(received[1].path, "/api/v2/subscribers.json");
    assert_eq!(received[1].header("x-beacon-page"), Some("other"));

    // The links go as GET and POST; nothing else is forwarded.
    let (status, _, _) = get(&addr, "/api/v2/subscribers/confirm?token=abc", "");
    assert_eq!(status, 202);
    assert_eq!(
        api.received()[2].path,
        "/api/v2/subscribers/confirm?token=abc"
    );
    for path in [
        "/api/v1/incidents",
        "/api/v2/subscribers",
        "/openapi.json",
        "/api/v2/subscribers/x",
    ] {
        let (status, _, _) = get(&addr, path, "");
        assert_eq!(status, 404, "{path}");
    }
    let (status, headers, _) = get(&addr, "/api/v2/subscribers.json", "");
    assert_eq!(status, 405);
    assert_eq!(header(&headers, "allow"), Some("POST"));
    assert_eq!(api.count(), 3, "nothing else reached the API");

    // Too large a body never leaves the edge.
    let big = vec![b'x'; 20 * 1024];
    let (status, _, _) = post(&addr, "/api/v2/subscribers.json", json, &big);
    assert_eq!(status, 413);
    assert_eq!(api.count(), 3);

    // The API failing is a 503 with Retry-After, JSON or HTML as asked.
    api.respond(|_| Reply::status(500));
    let (status, headers, answer) = post(&addr, "/api/v2/subscribers.json", json, body);
    assert_eq!(status, 503);
    assert!(header(&headers, "retry-after").is_some());
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert!(String::from_utf8_lossy(&answer).contains("try again later"));
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    let (status, headers, answer) = post(
        &addr,
        "/api/v2/subscribers.json",
        form,
        b"subscriber%5Bemail%5D=a",
    );
    assert_eq!(status, 503);
    assert!(header(&headers, "content-type").is_some_and(|v| v.starts_with("text/html")));
    assert!(String::from_utf8_lossy(&answer).contains("try again later"));
    // And the API gone altogether: the same, and the pages serve on.
    drop(api);
    let (status, headers, _) = post(&addr, "/api/v2/subscribers.json", json, body);
    assert_eq!(status, 503);
    assert!(header(&headers, "retry-after").is_some());
    let (status, _, _) = get(&addr, "/", "");
    assert_eq!(status, 200);

    // /api/v1/status/{page}: that page's file, polled at most every 30 s.
    let (status, headers, answer) = get(&addr, "/api/v1/status/other", "");
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "cache-control"),
        Some("public, max-age=30")
    );
    assert!(String::from_utf8_lossy(&answer).contains("\"other\""));
    let etag = header(&headers, "etag").expect("an ETag").to_owned();
    let (status, _, _) = get(
        &addr,
        "/api/v1/status/other",
        &format!("If-None-Match: {etag}\r\n"),
    );
    assert_eq!(status, 304);
    let (status, _, _) = get(&addr, "/api/v1/status/nope", "");
    assert_eq!(status, 404);
    let metrics = reqwest::get(format!("{}/metrics", edge.process.admin_url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("beacon_edge_forwarded_total{outcome=\"api_failed\"} 2"),
        "{metrics}"
    );
}

// ---------------------------------------------------------------------------
// The static path (GET and HEAD of files answered without hyper, large
// bodies by sendfile) and its hand-over to hyper.
// ---------------------------------------------------------------------------

/// Bytes that do not compress, different for every seed.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// A version with a large `big.png` (sent as is: images are not
/// compressed), a JSON file large enough that its gzip and brotli variants
/// also go by sendfile, and the small files the other tests use.
fn build_large(page: &str, version: &str, seed: u64, big_len: usize) -> Built {
    let hex: String = noise(seed, 96 * 1024)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Compressor::default().build(
        page,
        version,
        beacon_contract::hlc::wall_clock_ms(),
        Vec::new(),
        vec![
            (
                "index.html".into(),
                format!("<!doctype html><p>{version}</p>").into_bytes(),
            ),
            (
                "api/v2/summary.json".into(),
                format!("{{\"page\":\"{page}\",\"v\":\"{version}\"}}").into_bytes(),
            ),
            (
                "api/v1/status.json".into(),
                format!("{{\"page\":{{\"id\":\"{page}\"}}}}").into_bytes(),
            ),
            (
                "data.json".into(),
                format!("{{\"noise\":\"{hex}\"}}").into_bytes(),
            ),
            ("big.png".into(), noise(seed, big_len)),
        ],
    )
}

/// (status, lower-case headers, body, raw head).
type Answer = (u16, Vec<(String, String)>, Vec<u8>, Vec<u8>);

/// One response read off a kept-alive connection. `pending` holds bytes
/// read past it.
fn read_one(stream: &mut TcpStream, pending: &mut Vec<u8>, head_request: bool) -> Answer {
    let mut chunk = [0u8; 64 * 1024];
    let split = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).expect("read a head");
        assert!(
            n > 0,
            "closed before a head: {:?}",
            String::from_utf8_lossy(pending)
        );
        pending.extend_from_slice(&chunk[..n]);
    };
    let raw_head: Vec<u8> = pending.drain(..split).collect();
    let (status, headers, _) = parse(&raw_head);
    let length = if head_request || status == 304 {
        0
    } else {
        header(&headers, "content-length")
            .and_then(|l| l.parse::<usize>().ok())
            .expect("content-length")
    };
    while pending.len() < length {
        let n = stream.read(&mut chunk).expect("read a body");
        assert!(
            n > 0,
            "closed {} bytes into a body of {length}",
            pending.len()
        );
        pending.extend_from_slice(&chunk[..n]);
    }
    let body = pending.drain(..length).collect();
    (status, headers, body, raw_head)
}

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

/// The raw head without its `date` line (the one line that may differ
/// between two answers a second apart).
fn without_date(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw).to_string();
    assert!(text.contains("\r\ndate: "), "{text}");
    text.split("\r\n")
        .filter(|line| !line.starts_with("date: "))
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[tokio::test]
async fn the_static_path_answers_byte_for_byte_as_hyper_does() {
    let origin_dir = tempfile::tempdir().expect("origin");
    let built = build_large("demo", "01J0000000000000000000000A", 1, 600 * 1024);
    publish(origin_dir.path(), &built);
    let edge = start_edge(origin_dir.path(), &["--page", "demo"]);
    edge.process.wait_ready(READY).await;
    let addr = edge.addr.clone();

    // A request with `Content-Length: 0` goes to hyper, which answers it
    // like the same request without: so each answer has hyper's twin.
    let requests: &[(&str, bool)] = &[
        ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n", false),
        (
            "GET /data.json HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n",
            false,
        ),
        (
            "GET /data.json HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, br\r\n",
            false,
        ),
        ("GET /data.json HTTP/1.1\r\nHost: x\r\n", false),
        ("GET /big.png?x=1 HTTP/1.1\r\nHost: x\r\n", false),
        ("GET / HTTP/1.1\r\nHost: x\r\nIf-None-Match: *\r\n", false),
        (
            "GET /data.json HTTP/1.1\r\nIf-None-Match: *\r\nAccept-Encoding: br\r\n",
            false,
        ),
        ("HEAD / HTTP/1.1\r\nHost: x\r\n", true),
        ("HEAD /big.png HTTP/1.1\r\nHost: x\r\n", true),
        ("HEAD /nope.html HTTP/1.1\r\nHost: x\r\n", true),
        ("GET /nope.html HTTP/1.1\r\nHost: x\r\n", false),
        ("GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n", false),
        ("GET /demo HTTP/1.1\r\nHost: x\r\n", false),
        ("GET /api/v1/status/demo HTTP/1.1\r\nHost: x\r\n", false),
        ("GET /api/v1/status/nope HTTP/1.1\r\nHost: x\r\n", false),
        ("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n", false),
        (
            "GET /big.png HTTP/1.1\r\nConnection: keep-alive, close\r\n",
            false,
        ),
        ("GET / HTTP/1.0\r\n", false),
        ("GET /big.png HTTP/1.0\r\nConnection: keep-alive\r\n", false),
        (
            "GET / HTTP/1.0\r\nConnection: x\r\nConnection: Keep-Alive\r\n",
            false,
        ),
        ("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n", false),
        ("HEAD /nope.html HTTP/1.0\r\n", true),
    ];
    for (request, head) in requests {
        let exchange = |extra: &str| {
            let mut stream = connect(&addr);
            stream
                .write_all(format!("{request}{extra}\r\n").as_bytes())
                .expect("send");
            read_one(&mut stream, &mut Vec::new(), *head)
        };
        let direct = exchange("");
        let hyper = exchange("Content-Length: 0\r\n");
        assert_eq!(without_date(&direct.3), without_date(&hyper.3), "{request}");
        assert!(direct.2 == hyper.2, "bodies differ: {request}");
    }
    let (status, _, body, _) = {
        let mut stream = connect(&addr);
        stream
            .write_all(b"GET /big.png HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        read_one(&mut stream, &mut Vec::new(), false)
    };
    assert_eq!(status, 200);
    assert!(body == noise(1, 600 * 1024), "the body arrived intact");
    let (_, headers, body, _) = {
        let mut stream = connect(&addr);
        stream
            .write_all(b"GET /data.json HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br\r\n\r\n")
            .expect("send");
        read_one(&mut stream, &mut Vec::new(), false)
    };
    assert_eq!(header(&headers, "content-encoding"), Some("br"));
    assert!(body.len() > 16 * 1024, "large enough for sendfile");
    let mut decoded = Vec::new();
    brotli::BrotliDecompress(&mut std::io::Cursor::new(body), &mut decoded).expect("brotli");
    assert!(decoded.starts_with(b"{\"noise\":\""));
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_and_head_has_no_body() {
    let origin_dir = tempfile::tempdir().expect("origin");
    let built = build_large("demo", "01J0000000000000000000000A", 2, 300 * 1024);
    publish(origin_dir.path(), &built);
    let edge = start_edge(origin_dir.path(), &["--page", "demo"]);
    edge.process.wait_ready(READY).await;

    let mut stream = connect(&edge.addr);
    // All at once, in one write.
    stream
        .write_all(
            b"GET /api/v2/summary.json HTTP/1.1\r\nHost: x\r\n\r\n\
HEAD /big.png HTTP/1.1\r\nHost: x\r\n\r\n\
GET /big.png HTTP/1.1\r\nHost: x\r\n\r\n\
GET /nope.html HTTP/1.1\r\nHost: x\r\n\r\n\
HEAD / HTTP/1.1\r\nHost: x\r\n\r\n\
GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .expect("send");
    let mut pending = Vec::new();
    let (status, _, body, _) = read_one(&mut stream, &mut pending, false);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("\"page\":\"demo\""));
    let (status, headers, body, _) = read_one(&mut stream, &mut pending, true);
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-length"),
        Some((300 * 1024).to_string().as_str())
    );
    assert!(body.is_empty());
    let (status, _, body, _) = read_one(&mut stream, &mut pending, false);
    assert_eq!(status, 200);
    assert!(body == noise(2, 300 * 1024), "the body arrived intact");
    let (status, _, _, _) = read_one(&mut stream, &mut pending, false);
    assert_eq!(status, 404);
    let (status, headers, _, _) = read_one(&mut stream, &mut pending, true);
    assert_eq!(status, 200);
    let index_length = header(&headers, "content-length")
        .expect("length")
        .to_owned();
    let (status, headers, body, _) = read_one(&mut stream, &mut pending, false);
    assert_eq!(status, 200);
    assert_eq!(index_length, body.len().to_string(), "HEAD said the length");
    assert_eq!(header(&headers, "connection"), Some("close"));
    // Then the edge closes, with nothing after the last body.
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("closed");
    assert!(pending.is_empty() && rest.is_empty(), "{rest:?}");
}

#[tokio::test]
async fn a_kept_alive_connection_goes_on_to_the_event_stream() {
    let (origin_dir, edge) = demo_edge(&build(
        "demo",
        "01J0000000000000000000000A",
        &[],
        "first",
        "{\"status\":\"one\"}",
    ))
    .await;

    let mut stream = connect(&edge.addr);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut pending = Vec::new();
    let (status, _, body, _) = read_one(&mut stream, &mut pending, false);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("first"));
    // The same connection, now an event stream, then a new version on it.
    stream
        .write_all(b"GET /demo/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .expect("send");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut seen = String::from_utf8_lossy(&pending).to_string();
    read_sse_until(&mut stream, &mut seen, "\"status\":\"one\"");
    assert!(seen.contains("content-type: text/event-stream"), "{seen}");
    publish(
        origin_dir.path(),
        &build(
            "demo",
            "01J0000000000000000000000C",
            &[],
            "second",
            "{\"status\":\"two\"}",
        ),
    );
    read_sse_until(&mut stream, &mut seen, "\"status\":\"two\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_goes_on_to_sign_up_and_back_to_files() {
    use beacon_testkit::receivers::web::{Reply, WebSink};

    let origin_dir = tempfile::tempdir().expect("origin");
    publish(
        origin_dir.path(),
        &build("demo", "01J0000000000000000000000A", &[], "demo page", "{}"),
    );
    let api = WebSink::start().await;
    api.respond(|_| Reply::json(202, serde_json::json!({"status": "pending"})));
    let edge = start_edge(
        origin_dir.path(),
        &["--page", "demo", "--api-url", &api.url()],
    );
    edge.process.wait_ready(READY).await;

    let body = br#"{"subscriber":{"email":"a@example.com"}}"#;
    let mut request = b"GET /api/v2/summary.json HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    request.extend_from_slice(
        format!(
            "POST /api/v2/subscribers.json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    request.extend_from_slice(body);
    request.extend_from_slice(
        b"GET /api/v2/subscribers/confirm?token=abc HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    request.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut stream = connect(&edge.addr);
    stream.write_all(&request).expect("send");
    let mut pending = Vec::new();
    let (status, _, answer, _) = read_one(&mut stream, &mut pending, false);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&answer).contains("\"page\":\"demo\""));
    let (status, _, answer, _) = read_one(&mut stream, &mut pending, false);
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&answer));
    let (status, _, _, _) = read_one(&mut stream, &mut pending, false);
    assert_eq!(status, 202);
    let (status, headers, answer, _) = read_one(&mut stream, &mut pending, false);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&answer).contains("demo page"));
    assert_eq!(header(&headers, "connection"), Some("close"));
    let received = api.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].body, body.to_vec());
    assert_eq!(received[0].header("x-beacon-page"), Some("demo"));
    assert_eq!(received[1].path, "/api/v2/subscribers/confirm?token=abc");
}

/// A client whose receive buffer is small, so a large response stays in
/// flight until it reads.
fn slow_reader(addr: &str) -> TcpStream {
    let addr: std::net::SocketAddr = addr.parse().expect("address");
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(32 * 1024).expect("buffer");
    socket.connect(&addr.into()).expect("connect");
    let stream = TcpStream::from(socket);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

#[tokio::test]
async fn a_response_in_flight_keeps_its_version_and_a_slow_reader_blocks_no_one() {
    const BIG: usize = 6 * 1024 * 1024;
    let origin_dir = tempfile::tempdir().expect("origin");
    publish(
        origin_dir.path(),
        &build_large("demo", "01J0000000000000000000000A", 3, BIG),
    );
    let edge = start_edge(origin_dir.path(), &["--page", "demo"]);
    edge.process.wait_ready(READY).await;
    let addr = edge.addr.clone();

    // A reader that takes the head and a little of the body, then stalls.
    let mut slow = slow_reader(&addr);
    slow.write_all(b"GET /big.png HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut pending = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while pending.windows(4).all(|w| w != b"\r\n\r\n") {
        let n = slow.read(&mut chunk).expect("read");
        assert!(n > 0);
        pending.extend_from_slice(&chunk[..n]);
    }

    // Meanwhile everyone else is served at once, large bodies too.
    let started = std::time::Instant::now();
    for _ in 0..20 {
        let (status, _, body) = get(&addr, "/", "");
        assert_eq!(status, 200);
        assert!(String::from_utf8_lossy(&body).contains("01J0000000000000000000000A"));
    }
    let (status, _, body) = get(&addr, "/big.png", "");
    assert_eq!(status, 200);
    assert!(body == noise(3, BIG), "the body arrived intact");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A new version goes live while the slow response is still going.
    publish(
        origin_dir.path(),
        &build_large("demo", "01J0000000000000000000000B", 4, BIG),
    );
    wait_for_page(
        &addr,
        "the new version",
        Duration::from_secs(10),
        "01J0000000000000000000000B",
    )
    .await;
    // The slow reader still gets every byte of the version it asked for.
    let (status, _, body, _) = read_one(&mut slow, &mut pending, false);
    assert_eq!(status, 200);
    assert!(body == noise(3, BIG), "the old version, intact");
    // And the next request on its connection the new one.
    slow.write_all(b"GET /big.png HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    let (_, _, body, _) = read_one(&mut slow, &mut pending, false);
    assert!(body == noise(4, BIG), "the new version, intact");
}

/// Sends `requests` on a connection with a small receive buffer and never
/// reads; returns the connection.
fn never_reads(addr: &str, requests: &[u8]) -> TcpStream {
    let mut stream = slow_reader(addr);
    stream.write_all(requests).expect("send");
    stream
}

/// Reads what `stream` still gets until the edge closes it or 10 s pass
/// without a byte; every byte counted.
fn drain(mut stream: TcpStream) -> usize {
    let mut total = 0;
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return total,
            Ok(n) => total += n,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_off_on_both_paths_and_frees_its_place() {
    const BIG: usize = 6 * 1024 * 1024;
    const REQUESTS: usize = 4;
    let origin_dir = tempfile::tempdir().expect("origin");
    publish(
        origin_dir.path(),
        &build_large("demo", "01J0000000000000000000000A", 3, BIG),
    );
    // Two places only: two stuck clients would shut everyone else out.
    let edge = start_edge(
        origin_dir.path(),
        &[
            "--page",
            "demo",
            "--max-connections",
            "2",
            "--write-timeout",
            "1s",
        ],
    );
    edge.process.wait_ready(READY).await;
    let addr = edge.addr.clone();

    // The static path: pipelined GETs of a 6 MiB file.
    let static_path = never_reads(
        &addr,
        &b"GET /big.png HTTP/1.1\r\nHost: x\r\n\r\n".repeat(REQUESTS),
    );
    // Hyper's path: GETs with a body are handed to hyper.
    let hyper_path = never_reads(
        &addr,
        &b"GET /big.png HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx".repeat(REQUESTS),
    );

    // Both are closed once they have taken nothing for a second, so the
    // edge answers others again within a bounded time.
    wait_until("the edge to serve others again", Duration::from_secs(15), || {
        let addr = addr.clone();
        async move {
            let mut stream = TcpStream::connect(&addr).ok()?;
            stream
                .set_read_timeout(Some(Duration::from_secs(2)))
                .ok()?;
            stream
                .write_all(b"GET /api/v2/summary.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .ok()?;
            let mut raw = Vec::new();
            let _ = stream.read_to_end(&mut raw);
            raw.starts_with(b"HTTP/1.1 200").then_some(())
        }
    })
    .await;
    // Reading now gets what was already in flight, then the end: never
    // every response asked for.
    for (path, stream) in [("static", static_path), ("hyper", hyper_path)] {
        let got = drain(stream);
        assert!(
            got < REQUESTS * BIG,
            "the {path} path sent all {got} bytes to a client that stopped reading"
        );
    }
}
