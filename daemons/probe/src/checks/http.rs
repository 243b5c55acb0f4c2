//! HTTP(S) checks, on hyper's connection API rather than a high-level
//! client, because a status page needs what such clients hide: how long
//! DNS, connect, TLS and the first byte took, when the server's
//! certificate expires, and whether a connection was new or reused.
//!
//! Connections are pooled per target (scheme, host, port, TLS settings)
//! when the check allows keep-alive: a pooled connection that still works
//! is reused (no DNS, connect or TLS phase), and one that is done goes back
//! after its body was read in full. A check with `keep_alive = false` opens
//! a new connection every run and closes it, so connect and TLS failures
//! and times are seen every time.
//!
//! Every failure has a kind: `dns`, `refused`, `connect`, `tls`,
//! `protocol` (an answer that is not HTTP), `body_too_large`, `redirect`
//! (a loop, or more than `max_redirects`), `status`, `condition`. The
//! caller bounds the whole run with the check's timeout, so a server that
//! drips one byte a second ends as `timeout`, and its connection is
//! dropped, never pooled.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use beacon_contract::messages::{ErrorKind, Observed, Timings};
use beacon_page::config::condition::{Observation, Placeholder};
use beacon_page::config::{HttpMethod, HttpTarget};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, HOST, LOCATION, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::IntCounterVec;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::Url;

use super::{connect_error_kind, judge, micros, CheckOutput};

/// Idle connections kept per target; more are closed when returned.
const MAX_IDLE_PER_TARGET: usize = 1024;
/// A pooled connection idle longer than this is closed rather than reused
/// (servers commonly close idle connections after 60 s or more).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a connection goes; connections are pooled per key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    https: bool,
    host: String,
    port: u16,
    skip_verify: bool,
}

/// An idle connection.
struct Idle {
    sender: SendRequest<Full<Bytes>>,
    /// The server certificate's expiry, seen when the connection was made.
    certificate_expires_at_ms: Option<u64>,
    since: Instant,
}

/// The HTTP client every HTTP check and the canary share.
#[derive(Clone)]
pub struct HttpClient {
    pool: Arc<Mutex<HashMap<PoolKey, Vec<Idle>>>>,
    verified: TlsConnector,
    unverified: TlsConnector,
    user_agent: HeaderValue,
    connections: Option<IntCounterVec>,
}

/// Why building the client failed (TLS setup).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS: {0}")]
pub struct TlsSetupError(String);

impl HttpClient {
    /// A client trusting the Mozilla root certificates (webpki-roots) and,
    /// for checks with `tls_skip_verify`, anything. `connections` counts
    /// connections by `new` / `reused`.
    pub fn new(connections: Option<IntCounterVec>) -> Result<Self, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let verified = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let unverified = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth();
        Ok(Self {
            pool: Arc::new(Mutex::new(HashMap::new())),
            verified: TlsConnector::from(Arc::new(verified)),
            unverified: TlsConnector::from(Arc::new(unverified)),
            user_agent: HeaderValue::from_static(concat!(
                "Beacon-Probe/",
                env!("CARGO_PKG_VERSION")
            )),
            connections,
        })
    }

    /// A client that also trusts `extra` roots (tests with their own CA).
    pub fn with_roots(
        connections: Option<IntCounterVec>,
        extra: &[CertificateDer<'static>],
    ) -> Result<Self, TlsSetupError> {
        let mut client = Self::new(connections)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in extra {
            roots
                .add(cert.clone())
                .map_err(|e| TlsSetupError(e.to_string()))?;
        }
        let verified = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.verified = TlsConnector::from(Arc::new(verified));
        Ok(client)
    }

    /// Closes pooled connections idle longer than the idle timeout, or
    /// closed by their server, so targets no longer checked do not keep
    /// sockets open. The probe calls it periodically.
    pub fn sweep(&self) {
        let mut pool = self.lock();
        for idle in pool.values_mut() {
            idle.retain(|i| i.since.elapsed() < IDLE_TIMEOUT && !i.sender.is_closed());
        }
        pool.retain(|_, idle| !idle.is_empty());
    }

    /// Idle pooled connections, over every target.
    pub fn idle_connections(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PoolKey, Vec<Idle>>> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, how: &str) {
        if let Some(counter) = &self.connections {
            counter.with_label_values(&[how]).inc();
        }
    }

    /// Runs one HTTP check (the caller bounds it with the timeout).
    pub async fn check(&self, target: &HttpTarget, started: Instant) -> CheckOutput {
        let mut url = match Url::parse(&target.url) {
            Ok(url) => url,
            Err(e) => {
                return CheckOutput::down(started, ErrorKind::Protocol, format!("bad URL: {e}"))
            }
        };
        let mut method = target.method;
        let mut seen_urls = HashSet::new();
        let mut redirects = 0u32;
        loop {
            seen_urls.insert(url.to_string());
            let exchange = match self.exchange(target, &url, method).await {
                Ok(exchange) => exchange,
                Err(failure) => return failure.into_output(started, redirects),
            };
            let status = exchange.status;
            let location = exchange.location.clone();
            let is_redirect = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308);
            if target.follow_redirects && is_redirect {
                if let Some(location) = location {
                    let next = match url.join(&location) {
                        Ok(next) if matches!(next.scheme(), "http" | "https") => next,
                        _ => {
                            return Failure::new(
                                ErrorKind::Redirect,
                                format!("redirect to an invalid location {location:?}"),
                            )
                            .into_output(started, redirects)
                        }
                    };
                    redirects += 1;
                    if seen_urls.contains(next.as_str()) {
                        return Failure::new(
                            ErrorKind::Redirect,
                            format!("redirect loop back to {}", next.path()),
                        )
                        .into_output(started, redirects);
                    }
                    if redirects > target.max_redirects {
                        return Failure::new(
                            ErrorKind::Redirect,
                            format!("more than {} redirects", target.max_redirects),
                        )
                        .into_output(started, redirects);
                    }
                    // 303 always, and 301/302 for POST by long custom, become GET.
                    if status == StatusCode::SEE_OTHER
                        || (method == HttpMethod::Post && matches!(status.as_u16(), 301 | 302))
                    {
                        method = HttpMethod::Get;
                    }
                    url = next;
                    continue;
                }
            }
            return judge_exchange(target, exchange, started, redirects);
        }
    }

    /// One request and its response, on a pooled or a new connection.
    async fn exchange(
        &self,
        target: &HttpTarget,
        url: &Url,
        method: HttpMethod,
    ) -> Result<Exchange, Failure> {
        let https = url.scheme() == "https";
        let host = url
            .host_str()
            .ok_or_else(|| Failure::new(ErrorKind::Protocol, "URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url
            .port_or_known_default()
            .unwrap_or(if https { 443 } else { 80 });
        let key = PoolKey {
            https,
            host,
            port,
            skip_verify: target.tls_skip_verify,
        };
        let mut timings = Timings::default();
        let (mut sender, certificate_expires_at_ms) =
            match self.pooled(&key, target.keep_alive).await {
                Some(idle) => {
                    self.count("reused");
                    (idle.sender, idle.certificate_expires_at_ms)
                }
                None => {
                    let connection = self.connect(&key, &mut timings).await?;
                    self.count("new");
                    connection
                }
            };

        let mut request = Request::builder()
            .method(method.as_str())
            .uri(match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_owned(),
            })
            .header(HOST, host_header(url))
            .header(USER_AGENT, self.user_agent.clone());
        for (name, value) in &target.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if !target.keep_alive {
            request = request.header(CONNECTION, HeaderValue::from_static("close"));
        }
        let body = target.body.clone().unwrap_or_default();
        if !body.is_empty()
            || matches!(
                method,
                HttpMethod::Post | HttpMethod::Put | HttpMethod::Patch
            )
        {
            request = request.header(CONTENT_LENGTH, body.len());
        }
        let request = request.body(Full::new(Bytes::from(body))).map_err(|e| {
            Failure::new(
                ErrorKind::Protocol,
                format!("cannot build the request: {e}"),
            )
        })?;

        let sent = Instant::now();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Failure::from_hyper(&e).with(timings, certificate_expires_at_ms))?;
        timings.first_byte_us = Some(micros(sent.elapsed()));
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let server_closes = response
            .headers()
            .get(CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let needs_headers = target
            .conditions
            .iter()
            .chain(&target.degraded_if)
            .any(|c| c.placeholder() == Placeholder::Header);
        let headers = if needs_headers {
            response
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };

        // The body is read in full (up to the cap) so the connection can be
        // reused, and so conditions can look at it.
        let mut body = Vec::new();
        let mut incoming = response.into_body();
        let cap = usize::try_from(target.max_body_bytes).unwrap_or(usize::MAX);
        while let Some(frame) = incoming.frame().await {
            let frame = frame
                .map_err(|e| Failure::from_hyper(&e).with(timings, certificate_expires_at_ms))?;
            if let Some(chunk) = frame.data_ref() {
                if body.len() + chunk.len() > cap {
                    return Err(Failure::new(
                        ErrorKind::BodyTooLarge,
                        format!("body larger than max_body_bytes ({cap} bytes)"),
                    )
                    .with(timings, certificate_expires_at_ms));
                }
                body.extend_from_slice(chunk);
            }
        }
        if target.keep_alive && !server_closes {
            self.put_back(key, sender, certificate_expires_at_ms);
        }
        Ok(Exchange {
            status,
            location,
            headers,
            body,
            timings,
            certificate_expires_at_ms,
        })
    }

    /// A pooled connection to `key` that is still open, if any.
    async fn pooled(&self, key: &PoolKey, keep_alive: bool) -> Option<Idle> {
        if !keep_alive {
            return None;
        }
        loop {
            let idle = self.lock().get_mut(key).and_then(Vec::pop)?;
            if idle.since.elapsed() < IDLE_TIMEOUT
                && idle.sender.is_ready()
                && !idle.sender.is_closed()
            {
                return Some(idle);
            }
            // Closed by the server, or idle too long: dropping it closes it.
        }
    }

    fn put_back(
        &self,
        key: PoolKey,
        sender: SendRequest<Full<Bytes>>,
        certificate_expires_at_ms: Option<u64>,
    ) {
        let mut pool = self.lock();
        let idle = pool.entry(key).or_default();
        if idle.len() < MAX_IDLE_PER_TARGET {
            idle.push(Idle {
                sender,
                certificate_expires_at_ms,
                since: Instant::now(),
            });
        }
    }

    /// Resolves, connects, shakes hands (TLS) and starts an HTTP/1.1
    /// connection, timing each phase into `timings`.
    async fn connect(
        &self,
        key: &PoolKey,
        timings: &mut Timings,
    ) -> Result<(SendRequest<Full<Bytes>>, Option<u64>), Failure> {
        let addresses = resolve(&key.host, key.port, timings).await?;
        let connect_started = Instant::now();
        let mut last_error = None;
        let mut stream = None;
        for address in addresses {
            match TcpStream::connect(address).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_error = Some(e),
            }
        }
        let stream = match (stream, last_error) {
            (Some(stream), _) => stream,
            (None, Some(e)) => {
                return Err(
                    Failure::new(connect_error_kind(&e), format!("connect failed: {e}"))
                        .with(*timings, None),
                )
            }
            (None, None) => return Err(Failure::new(ErrorKind::Dns, "the name has no address")),
        };
        timings.connect_us = Some(micros(connect_started.elapsed()));
        let _ = stream.set_nodelay(true);

        if !key.https {
            let sender = handshake(TokioIo::new(stream), *timings).await?;
            return Ok((sender, None));
        }
        let tls_started = Instant::now();
        let name = ServerName::try_from(key.host.clone())
            .map_err(|e| Failure::new(ErrorKind::Tls, format!("invalid TLS server name: {e}")))?;
        let connector = if key.skip_verify {
            &self.unverified
        } else {
            &self.verified
        };
        let tls = connector.connect(name, stream).await.map_err(|e| {
            Failure::new(ErrorKind::Tls, format!("TLS handshake failed: {e}")).with(*timings, None)
        })?;
        timings.tls_us = Some(micros(tls_started.elapsed()));
        let expires = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| certificate_expiry_ms(cert));
        let sender = handshake(TokioIo::new(tls), *timings).await?;
        Ok((sender, expires))
    }
}

/// Starts HTTP/1.1 on `io`, with the connection driven by its own task.
async fn handshake<T>(io: TokioIo<T>, timings: Timings) -> Result<SendRequest<Full<Bytes>>, Failure>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| Failure::from_hyper(&e).with(timings, None))?;
    tokio::spawn(async move {
        // Ends when the connection closes or every sender is dropped;
        // errors show on the request that sees them.
        let _ = connection.await;
    });
    Ok(sender)
}

/// The addresses of `host`: itself when it is an IP (no DNS phase),
/// otherwise a lookup timed into `timings`.
async fn resolve(host: &str, port: u16, timings: &mut Timings) -> Result<Vec<SocketAddr>, Failure> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let started = Instant::now();
    let found = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Failure::new(ErrorKind::Dns, format!("cannot resolve {host}: {e}")))?;
    timings.dns_us = Some(micros(started.elapsed()));
    Ok(found.collect())
}

fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// When `cert` (DER) stops being valid, in Unix milliseconds.
pub fn certificate_expiry_ms(cert: &CertificateDer<'_>) -> Option<u64> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(cert.as_ref()).ok()?;
    let not_after = cert.tbs_certificate.validity.not_after.to_unix_duration();
    u64::try_from(not_after.as_millis()).ok()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A response read in full.
struct Exchange {
    status: StatusCode,
    location: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timings: Timings,
    certificate_expires_at_ms: Option<u64>,
}

/// A run that ended before there was a response to judge.
struct Failure {
    kind: ErrorKind,
    message: String,
    timings: Option<Timings>,
    certificate_expires_at_ms: Option<u64>,
}

impl Failure {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            timings: None,
            certificate_expires_at_ms: None,
        }
    }

    fn with(mut self, timings: Timings, certificate_expires_at_ms: Option<u64>) -> Self {
        self.timings = Some(timings);
        self.certificate_expires_at_ms = certificate_expires_at_ms;
        self
    }

    /// hyper's errors by kind: a parse error is a server that does not
    /// speak HTTP; a closed or incomplete message is a broken connection.
    fn from_hyper(e: &hyper::Error) -> Self {
        let kind = if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
            ErrorKind::Protocol
        } else if e.is_timeout() {
            ErrorKind::Timeout
        } else {
            ErrorKind::Connect
        };
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        Self::new(kind, message)
    }

    fn into_output(self, started: Instant, redirects: u32) -> CheckOutput {
        let mut output = CheckOutput::down(started, self.kind, self.message);
        if let Some(mut timings) = self.timings {
            timings.total_us = micros(output.latency);
            output.timings = Some(timings);
        }
        output.observed.certificate_expires_at_ms = self.certificate_expires_at_ms;
        if redirects > 0 {
            output.observed.redirects = Some(redirects);
        }
        output
    }
}

/// Status, `body_contains` and conditions, in that order.
fn judge_exchange(
    target: &HttpTarget,
    exchange: Exchange,
    started: Instant,
    redirects: u32,
) -> CheckOutput {
    let latency = started.elapsed();
    let status = exchange.status.as_u16();
    let mut output = CheckOutput::up(started);
    output.latency = latency;
    output.timings = Some(Timings {
        total_us: micros(latency),
        ..exchange.timings
    });
    output.observed = Observed {
        status: Some(status),
        response_time_ms: Some(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX)),
        certificate_expires_at_ms: exchange.certificate_expires_at_ms,
        body_bytes: Some(exchange.body.len() as u64),
        redirects: (redirects > 0).then_some(redirects),
        ..Observed::default()
    };
    let status_judged_by_conditions = target
        .conditions
        .iter()
        .any(|c| c.placeholder() == Placeholder::Status);
    let status_ok = if !target.expect_status.is_empty() {
        target.expect_status.contains(&status)
    } else {
        status_judged_by_conditions || (200..300).contains(&status)
    };
    if !status_ok {
        let expected = if target.expect_status.is_empty() {
            "2xx".to_owned()
        } else {
            format!("{:?}", target.expect_status)
        };
        output.outcome = beacon_contract::messages::Outcome::Down;
        output.error = Some(format!("status {status}, expected {expected}"));
        output.error_kind = Some(ErrorKind::Status);
        return output;
    }
    if let Some(needle) = &target.body_contains {
        if !exchange
            .body
            .windows(needle.len().max(1))
            .any(|w| w == needle.as_bytes())
        {
            output.outcome = beacon_contract::messages::Outcome::Down;
            output.error = Some(format!("body does not contain {needle:?}"));
            output.error_kind = Some(ErrorKind::Condition);
            output.failed_condition = Some(format!("body_contains = {needle:?}"));
            return output;
        }
    }
    let seen = Observation {
        status: Some(status),
        response_time: Some(latency),
        body: Some(&exchange.body),
        headers: exchange.headers,
        certificate_expires_in_ms: exchange
            .certificate_expires_at_ms
            .map(|at| at as i64 - now_ms() as i64),
        ..Observation::default()
    };
    let verdict = judge(&target.conditions, &target.degraded_if, &seen);
    output.with_verdict(verdict)
}

/// For checks with `tls_skip_verify`: accepts any certificate, but still
/// checks the handshake signatures, so the connection is really TLS with
/// whoever holds the certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
