//! Every check kind against real local servers, and every failure mode:
//! HTTP and HTTPS (a CA-signed certificate, a self-signed one, one about to
//! expire), keep-alive pooling, timeout, refused, wrong status, a failed
//! condition, a server that drips one byte a second, a huge body, garbage
//! instead of HTTP, a redirect loop; TCP with a banner; ICMP to loopback;
//! DNS against a real UDP server in the test (NOERROR, NXDOMAIN, SERVFAIL).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;
use beacon_contract::messages::{ErrorKind, Outcome};
use beacon_page::config::condition::Condition;
use beacon_page::config::{CheckTarget, DnsTarget, HttpMethod, HttpTarget, IcmpTarget, TcpTarget};
use beacon_probe::checks::http::HttpClient;
use beacon_probe::checks::{self, CheckOutput, Clients};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{rdata::A, RData, Record, RecordType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

const TIMEOUT: Duration = Duration::from_secs(2);

fn http(url: &str) -> HttpTarget {
    HttpTarget {
        keep_alive: false,
        ..beacon_probe::canary_target(url)
    }
}

fn conditions(texts: &[&str]) -> Vec<Condition> {
    texts
        .iter()
        .map(|t| Condition::parse(t).expect("condition parses"))
        .collect()
}

async fn run_with(clients: &Clients, target: CheckTarget, timeout: Duration) -> CheckOutput {
    checks::run(clients, &target, timeout).await
}

fn clients() -> Clients {
    Clients::new(HttpClient::new(None).expect("client"))
}

fn assert_down(output: &CheckOutput, kind: ErrorKind) {
    assert_eq!(output.outcome, Outcome::Down, "{output:#?}");
    assert_eq!(output.error_kind, Some(kind), "{output:#?}");
    assert!(
        output.error.as_deref().is_some_and(|e| !e.is_empty()),
        "{output:#?}"
    );
}

// ---------------------------------------------------------------------------
// Servers.
// ---------------------------------------------------------------------------

/// A keep-alive HTTP server with one route per behaviour.
async fn web() -> SocketAddr {
    let app = Router::new()
        .route(
            "/ok",
            get(|| async {
                (
                    [("content-type", "application/json")],
                    r#"{"status":"UP","items":[1,2]}"#,
                )
            }),
        )
        .route(
            "/down",
            get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "maintenance") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/huge",
            get(|| async { vec![b'x'; 3 * 1024 * 1024].into_response() }),
        )
        .route("/loop-a", get(|| async { Redirect::temporary("/loop-b") }))
        .route("/loop-b", get(|| async { Redirect::temporary("/loop-a") }))
        .route(
            "/hop/{n}",
            get(
                |axum::extract::Path(n): axum::extract::Path<u32>| async move {
                    if n == 0 {
                        Redirect::to("/ok").into_response()
                    } else {
                        Redirect::to(&format!("/hop/{}", n - 1)).into_response()
                    }
                },
            ),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A server that writes `reply` to every connection, one byte per `gap`.
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
                if gap.is_zero() {
                    let _ = socket.write_all(reply).await;
                } else {
                    for byte in reply {
                        if socket.write_all(&[*byte]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(gap).await;
                    }
                }
            });
        }
    });
    addr
}

/// A port nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr
}

struct Tls {
    ca: CertificateDer<'static>,
    ca_key: rcgen::KeyPair,
    ca_cert: rcgen::Certificate,
}

impl Tls {
    fn new() -> Tls {
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Beacon test CA");
        let ca_cert = params.self_signed(&ca_key).expect("ca cert");
        Tls {
            ca: ca_cert.der().clone(),
            ca_key,
            ca_cert,
        }
    }

    /// A certificate for 127.0.0.1 valid for `days` more days, signed by
    /// this CA or by itself.
    fn leaf(
        &self,
        days: i64,
        self_signed: bool,
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("params");
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
        let cert = if self_signed {
            params.self_signed(&key).expect("self-signed")
        } else {
            params
                .signed_by(&key, &self.ca_cert, &self.ca_key)
                .expect("signed")
        };
        (
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }
}

/// An HTTPS server answering `200 ok` with `cert`.
async fn https(cert: (CertificateDer<'static>, PrivateKeyDer<'static>)) -> SocketAddr {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.0], cert.1)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let mut request = [0u8; 2048];
                let _ = tls.read(&mut request).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

// ---------------------------------------------------------------------------
// HTTP.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn http_passes_with_conditions_and_reports_its_phases() {
    let web = web().await;
    let mut target = http(&format!("http://{web}/ok"));
    target.conditions = conditions(&[
        "[STATUS] == 200",
        "[BODY].status == UP",
        "len([BODY].items) == 2",
        "[HEADER].content-type contains json",
        "[RESPONSE_TIME] < 2s",
    ]);
    let output = run_with(&clients(), CheckTarget::Http(target), TIMEOUT).await;
    assert_eq!(output.outcome, Outcome::Up, "{output:#?}");
    let timings = output.timings.expect("timings");
    assert!(
        timings.connect_us.is_some() && timings.first_byte_us.is_some(),
        "{timings:?}"
    );
    assert_eq!(timings.dns_us, None, "an IP needs no DNS");
    assert_eq!(output.observed.status, Some(200));
}

#[tokio::test]
async fn a_failed_condition_is_named() {
    let web = web().await;
    let mut target = http(&format!("http://{web}/ok"));
    target.conditions = conditions(&["[STATUS] == 200", "[BODY].status == DOWN"]);
    let output = run_with(&clients(), CheckTarget::Http(target), TIMEOUT).await;
    assert_down(&output, ErrorKind::Condition);
    assert_eq!(
        output.failed_condition.as_deref(),
        Some("[BODY].status == DOWN")
    );
    assert_eq!(output.error.as_deref(), Some("[BODY].status was \"UP\""));

    // A degrading condition makes a passing run degraded.
    let mut target = http(&format!("http://{web}/ok"));
    target.degraded_if = conditions(&["[RESPONSE_TIME] >= 0"]);
    let output = run_with(&clients(), CheckTarget::Http(target), TIMEOUT).await;
    assert_eq!(output.outcome, Outcome::Degraded, "{output:#?}");
    assert_eq!(
        output.failed_condition.as_deref(),
        Some("[RESPONSE_TIME] >= 0")
    );
}

#[tokio::test]
async fn wrong_status_timeout_and_refused_have_their_kinds() {
    let web = web().await;
    let clients = clients();
    let down = run_with(
        &clients,
        CheckTarget::Http(http(&format!("http://{web}/down"))),
        TIMEOUT,
    )
    .await;
    assert_down(&down, ErrorKind::Status);
    assert_eq!(down.observed.status, Some(503));

    let mut expected = http(&format!("http://{web}/down"));
    expected.expect_status = vec![503];
    let output = run_with(&clients, CheckTarget::Http(expected), TIMEOUT).await;
    assert_eq!(output.outcome, Outcome::Up, "{output:#?}");

    let slow = run_with(
        &clients,
        CheckTarget::Http(http(&format!("http://{web}/slow"))),
        Duration::from_millis(300),
    )
    .await;
    assert_down(&slow, ErrorKind::Timeout);
    assert!(slow.latency < Duration::from_secs(1), "{slow:#?}");

    let closed = closed_port().await;
    let refused = run_with(
        &clients,
        CheckTarget::Http(http(&format!("http://{closed}/"))),
        TIMEOUT,
    )
    .await;
    assert_down(&refused, ErrorKind::Refused);
}

#[tokio::test]
async fn hostile_targets_fail_with_the_right_kind() {
    let web = web().await;
    let clients = clients();
    // Redirects: a loop, too many, and a chain within the limit.
    let looping = run_with(
        &clients,
        CheckTarget::Http(http(&format!("http://{web}/loop-a"))),
        TIMEOUT,
    )
    .await;
    assert_down(&looping, ErrorKind::Redirect);
    assert!(
        looping.error.as_deref().is_some_and(|e| e.contains("loop")),
        "{looping:#?}"
    );
    let far = run_with(
        &clients,
        CheckTarget::Http(http(&format!("http://{web}/hop/9"))),
        TIMEOUT,
    )
    .await;
    assert_down(&far, ErrorKind::Redirect);
    let near = run_with(
        &clients,
        CheckTarget::Http(http(&format!("http://{web}/hop/2"))),
        TIMEOUT,
    )
    .await;
    assert_eq!(
        (near.outcome, near.observed.redirects),
        (Outcome::Up, Some(3)),
        "{near:#?}"
    );
    let mut no_follow = http(&format!("http://{web}/hop/2"));
    no_follow.follow_redirects = false;
    no_follow.expect_status = vec![303];
    let output = run_with(&clients, CheckTarget::Http(no_follow), TIMEOUT).await;
    assert_eq!(output.outcome, Outcome::Up, "{output:#?}");

    // A body over the cap.
    let huge = run_with(
        &clients,
        CheckTarget::Http(http(&format!("http://{web}/huge"))),
        TIMEOUT,
    )
    .await;
    assert_down(&huge, ErrorKind::BodyTooLarge);

    // Garbage instead of HTTP.
    let garbage = raw(
        b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff\xfe garbage\r\n\r\n",
        Duration::ZERO,
    )
    .await;
    let output = run_with(
        &clients,
        CheckTarget::Http(http(&format!("http://{garbage}/"))),
        TIMEOUT,
    )
    .await;
    assert_down(&output, ErrorKind::Protocol);

    // A server that drips one byte a second never finishes in time.
    let drip = raw(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        Duration::from_secs(1),
    )
    .await;
    let output = run_with(
        &clients,
        CheckTarget::Http(http(&format!("http://{drip}/"))),
        Duration::from_millis(1500),
    )
    .await;
    assert_down(&output, ErrorKind::Timeout);
    assert!(output.latency < Duration::from_secs(2), "{output:#?}");
}

#[tokio::test]
async fn keep_alive_reuses_one_connection_per_target() {
    let web = web().await;
    let metrics = beacon_runtime::telemetry::Metrics::new("probe_pool_test");
    let counter = metrics
        .counter("connections", "c", &["connection"])
        .expect("counter");
    let clients = Clients::new(HttpClient::new(Some(counter.clone())).expect("client"));
    let mut target = http(&format!("http://{web}/ok"));
    target.keep_alive = true;
    let first = run_with(&clients, CheckTarget::Http(target.clone()), TIMEOUT).await;
    let second = run_with(&clients, CheckTarget::Http(target.clone()), TIMEOUT).await;
    assert_eq!((first.outcome, second.outcome), (Outcome::Up, Outcome::Up));
    assert!(first.timings.expect("timings").connect_us.is_some());
    assert_eq!(
        second.timings.expect("timings").connect_us,
        None,
        "reused: no connect"
    );
    assert_eq!(counter.with_label_values(&["new"]).get(), 1);
    assert_eq!(counter.with_label_values(&["reused"]).get(), 1);
    assert_eq!(clients.http.idle_connections(), 1);

    // Without keep-alive every run connects.
    target.keep_alive = false;
    let third = run_with(&clients, CheckTarget::Http(target), TIMEOUT).await;
    assert!(third.timings.expect("timings").connect_us.is_some());
    assert_eq!(counter.with_label_values(&["new"]).get(), 2);
}

// ---------------------------------------------------------------------------
// HTTPS.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn https_observes_the_certificate_and_refuses_bad_ones() {
    let tls = Tls::new();
    let clients =
        Clients::new(HttpClient::with_roots(None, std::slice::from_ref(&tls.ca)).expect("client"));

    // Signed by the trusted CA, 90 days left.
    let good = https(tls.leaf(90, false)).await;
    let mut target = http(&format!("https://127.0.0.1:{}/", good.port()));
    target.conditions = conditions(&["[CERTIFICATE_EXPIRATION] > 14d"]);
    let output = run_with(&clients, CheckTarget::Http(target), TIMEOUT).await;
    assert_eq!(output.outcome, Outcome::Up, "{output:#?}");
    assert!(output.timings.expect("timings").tls_us.is_some());
    let now_ms = beacon_contract::hlc::wall_clock_ms();
    let left = output.observed.certificate_expires_at_ms.expect("expiry") - now_ms;
    assert!(
        (89 * 86_400_000..=91 * 86_400_000).contains(&left),
        "{left}"
    );

    // About to expire: valid, but the condition fails and says so.
    let expiring = https(tls.leaf(3, false)).await;
    let mut target = http(&format!("https://127.0.0.1:{}/", expiring.port()));
    target.conditions = conditions(&["[CERTIFICATE_EXPIRATION] > 14d"]);
    let output = run_with(&clients, CheckTarget::Http(target), TIMEOUT).await;
    assert_down(&output, ErrorKind::Condition);
    assert_eq!(
        output.failed_condition.as_deref(),
        Some("[CERTIFICATE_EXPIRATION] > 14d")
    );

    // Self-signed: a TLS failure, unless the check skips verification,
    // which still sees the expiry.
    let self_signed = https(tls.leaf(30, true)).await;
    let url = format!("https://127.0.0.1:{}/", self_signed.port());
    let output = run_with(&clients, CheckTarget::Http(http(&url)), TIMEOUT).await;
    assert_down(&output, ErrorKind::Tls);
    let mut skip = http(&url);
    skip.tls_skip_verify = true;
    let output = run_with(&clients, CheckTarget::Http(skip), TIMEOUT).await;
    assert_eq!(output.outcome, Outcome::Up, "{output:#?}");
    assert!(output.observed.certificate_expires_at_ms.is_some());

    // Expired: invalid.
    let expired = https(tls.leaf(-2, false)).await;
    let output = run_with(
        &clients,
        CheckTarget::Http(http(&format!("https://127.0.0.1:{}/", expired.port()))),
        TIMEOUT,
    )
    .await;
    assert_down(&output, ErrorKind::Tls);
    assert!(
        output
            .error
            .as_deref()
            .is_some_and(|e| e.contains("xpired")),
        "{output:#?}"
    );
}

// ---------------------------------------------------------------------------
// TCP and ICMP.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn tcp_connects_sends_and_reads_the_banner() {
    let clients = clients();
    let server = raw(b"+PONG\r\n", Duration::ZERO).await;
    let mut target = TcpTarget::connect(&server.to_string());
    target.send = Some("PING\r\n".into());
    target.expect = Some("+PONG".into());
    let output = run_with(&clients, CheckTarget::Tcp(target.clone()), TIMEOUT).await;
    assert_eq!(output.outcome, Outcome::Up, "{output:#?}");
    assert!(output.timings.expect("timings").first_byte_us.is_some());

    target.expect = Some("+OK".into());
    let output = run_with(&clients, CheckTarget::Tcp(target), TIMEOUT).await;
    assert_down(&output, ErrorKind::Condition);

    let closed = closed_port().await;
    let output = run_with(
        &clients,
        CheckTarget::Tcp(TcpTarget::connect(&closed.to_string())),
        TIMEOUT,
    )
    .await;
    assert_down(&output, ErrorKind::Refused);
}

#[tokio::test]
async fn icmp_pings_loopback() {
    let target = IcmpTarget {
        host: "127.0.0.1".into(),
        count: 3,
        conditions: conditions(&["[PACKET_LOSS] < 50", "[RTT] < 500"]),
        degraded_if: Vec::new(),
    };
    let output = run_with(&clients(), CheckTarget::Icmp(target), TIMEOUT).await;
    match output.error_kind {
        // Where the kernel allows neither ping sockets nor raw sockets,
        // the error must say what is missing.
        Some(ErrorKind::Permission) => {
            let error = output.error.unwrap_or_default();
            assert!(
                error.contains("ping_group_range") && error.contains("CAP_NET_RAW"),
                "{error}"
            );
        }
        _ => {
            assert_eq!(output.outcome, Outcome::Up, "{output:#?}");
            assert_eq!(output.observed.packet_loss_percent, Some(0.0));
            assert!(output.observed.rtt_avg_us.is_some());
        }
    }
}

// ---------------------------------------------------------------------------
// DNS.
// ---------------------------------------------------------------------------

/// A real UDP DNS server: `ok.test.` has A 127.0.0.1, `broken.test.`
/// answers SERVFAIL, every other name NXDOMAIN.
async fn dns_server() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buffer = [0u8; 1500];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buffer).await else {
                continue;
            };
            let Ok(request) = Message::from_vec(&buffer[..n]) else {
                continue;
            };
            let mut response = Message::new();
            response
                .set_id(request.id())
                .set_message_type(MessageType::Response)
                .set_op_code(request.op_code())
                .set_recursion_desired(request.recursion_desired())
                .set_recursion_available(true)
                .add_queries(request.queries().to_vec());
            let name = request.queries().first().map(|q| q.name().to_ascii());
            match name.as_deref() {
                Some("ok.test.") => {
                    if request.queries()[0].query_type() == RecordType::A {
                        response.add_answer(Record::from_rdata(
                            request.queries()[0].name().clone(),
                            60,
                            RData::A(A::new(127, 0, 0, 1)),
                        ));
                    }
                    response.set_response_code(ResponseCode::NoError);
                }
                Some("broken.test.") => {
                    response.set_response_code(ResponseCode::ServFail);
                }
                _ => {
                    response.set_response_code(ResponseCode::NXDomain);
                }
            }
            if let Ok(bytes) = response.to_vec() {
                let _ = socket.send_to(&bytes, peer).await;
            }
        }
    });
    addr
}

fn dns(name: &str, server: SocketAddr, expect: &[&str]) -> CheckTarget {
    CheckTarget::Dns(DnsTarget {
        name: name.into(),
        record_type: "A".into(),
        nameserver: Some(server),
        expect_answers: expect.iter().map(|s| s.to_string()).collect(),
        conditions: conditions(&["[DNS_RCODE] == NOERROR"]),
        degraded_if: Vec::new(),
    })
}

#[tokio::test]
async fn dns_answers_nxdomain_and_servfail() {
    let server = dns_server().await;
    let clients = clients();
    let ok = run_with(&clients, dns("ok.test", server, &["127.0.0.1"]), TIMEOUT).await;
    assert_eq!(ok.outcome, Outcome::Up, "{ok:#?}");
    assert_eq!(ok.observed.dns_answers, ["127.0.0.1"]);
    assert_eq!(ok.observed.dns_rcode.as_deref(), Some("NOERROR"));

    let wrong = run_with(&clients, dns("ok.test", server, &["10.0.0.1"]), TIMEOUT).await;
    assert_down(&wrong, ErrorKind::Dns);

    let missing = run_with(&clients, dns("missing.test", server, &[]), TIMEOUT).await;
    assert_down(&missing, ErrorKind::Dns);
    assert_eq!(
        missing.observed.dns_rcode.as_deref(),
        Some("NXDOMAIN"),
        "{missing:#?}"
    );

    let broken = run_with(&clients, dns("broken.test", server, &[]), TIMEOUT).await;
    assert_down(&broken, ErrorKind::Dns);
    assert_eq!(
        broken.observed.dns_rcode.as_deref(),
        Some("SERVFAIL"),
        "{broken:#?}"
    );

    // A nameserver that does not answer at all.
    let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let output = run_with(
        &clients,
        dns("ok.test", silent.local_addr().expect("addr"), &[]),
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(output.outcome, Outcome::Down, "{output:#?}");
    assert!(
        matches!(output.error_kind, Some(ErrorKind::Dns | ErrorKind::Timeout)),
        "{output:#?}"
    );
}

#[tokio::test]
async fn an_http_method_with_a_body_and_headers_is_sent_as_configured() {
    // The server echoes the request line and headers it got.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut request = vec![0u8; 4096];
        let n = socket.read(&mut request).await.expect("read");
        let _ = seen_tx.send(String::from_utf8_lossy(&request[..n]).into_owned());
        let _ = socket
            .write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
    });
    let mut target = http(&format!("http://{addr}/jobs?x=1"));
    target.method = HttpMethod::Post;
    target.headers = vec![("x-beacon".into(), "probe".into())];
    target.body = Some("{\"ping\":1}".into());
    let output = run_with(&clients(), CheckTarget::Http(target), TIMEOUT).await;
    assert_eq!(output.outcome, Outcome::Up, "{output:#?}");
    let request = seen_rx.await.expect("request seen");
    assert!(
        request.starts_with("POST /jobs?x=1 HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.to_ascii_lowercase().contains("x-beacon: probe"),
        "{request}"
    );
    assert!(request.ends_with("{\"ping\":1}"), "{request}");
}
