//! The guard between subscriber-supplied URLs (webhooks, Slack, Teams) and
//! the network: no request may reach a private, loopback, link-local,
//! CGNAT, metadata or otherwise internal address.
//!
//! - [`forbidden`] is the pure rule: which addresses are refused and why.
//!   IPv4 addresses embedded in IPv6 (mapped `::ffff:a.b.c.d`, the
//!   deprecated compatible form, NAT64 `64:ff9b::/96` and 6to4 `2002::/16`)
//!   are judged by their IPv4 address.
//! - [`Guard::resolve`] resolves a host once and refuses it when *any* of
//!   its addresses is forbidden. The sender's HTTP client uses the guard as
//!   its DNS resolver ([`GuardResolver`]), so the addresses it connects to
//!   are exactly the ones checked: a name that resolves to a public address
//!   for the check and to a private one a moment later (DNS rebinding) has
//!   no second resolution to exploit. URLs with an IP literal never reach a
//!   resolver, so [`Guard::check_url`] checks them before the request.
//! - Redirects are never followed (the client is built with none), so a
//!   public endpoint cannot bounce a request to an internal one.
//! - Operators may allow ranges explicitly (`--webhook-allow`), e.g. an
//!   internal network they trust, or loopback in tests.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use url::Url;

/// Why an address or URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsrfError {
    /// The address is in a range no webhook may reach.
    #[error("the address is in a refused range ({0})")]
    Forbidden(&'static str),
    /// Not an http(s) URL with a host, or it carries credentials.
    #[error("{0}")]
    BadUrl(String),
    /// The host did not resolve.
    #[error("the host does not resolve: {0}")]
    Unresolved(String),
}

impl SsrfError {
    /// Whether another attempt may get a different answer (DNS away).
    pub fn is_retryable(&self) -> bool {
        matches!(self, SsrfError::Unresolved(_))
    }
}

/// A CIDR range: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `::1/128`, or a bare address (a single host).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an address or CIDR range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix must be 0 to {max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(u128::from(u32::from(net)) << 96, u128::from(u32::from(ip)) << 96, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(u128::from(net), u128::from(ip), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(prefix));
    a & mask == b & mask
}

fn v4_in(ip: Ipv4Addr, net: [u8; 4], prefix: u8) -> bool {
    prefix_eq(
        u128::from(u32::from(ip)) << 96,
        u128::from(u32::from(Ipv4Addr::from(net))) << 96,
        prefix,
    )
}

fn v6_in(ip: Ipv6Addr, net: [u16; 8], prefix: u8) -> bool {
    prefix_eq(u128::from(ip), u128::from(Ipv6Addr::from(net)), prefix)
}

/// Why `ip` may not be reached, or `None` when it may.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => forbidden_v4(ip),
        IpAddr::V6(ip) => forbidden_v6(ip),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[([u8; 4], u8, &str)] = &[
        ([0, 0, 0, 0], 8, "this network"),
        ([10, 0, 0, 0], 8, "private"),
        ([100, 64, 0, 0], 10, "carrier-grade NAT"),
        ([127, 0, 0, 0], 8, "loopback"),
        // 169.254.169.254 is the cloud metadata service.
        ([169, 254, 0, 0], 16, "link-local or metadata"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 0, 0, 0], 24, "IETF protocol assignments"),
        ([192, 0, 2, 0], 24, "documentation"),
        ([192, 88, 99, 0], 24, "6to4 relay"),
        ([192, 168, 0, 0], 16, "private"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved or broadcast"),
    ];
    RANGES
        .iter()
        .find(|(net, prefix, _)| v4_in(ip, *net, *prefix))
        .map(|(_, _, why)| *why)
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // IPv4 inside IPv6: judged as the IPv4 address it carries.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4).or(None);
    }
    let segments = ip.segments();
    if v6_in(ip, [0, 0, 0, 0, 0, 0, 0, 0], 96) {
        // `::`, `::1` and the deprecated IPv4-compatible `::a.b.c.d`.
        return match ip {
            ip if ip.is_unspecified() => Some("unspecified"),
            ip if ip.is_loopback() => Some("loopback"),
            _ => Some(forbidden_v4(embedded_v4(ip, 96)).unwrap_or("IPv4-compatible")),
        };
    }
    if v6_in(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        return forbidden_v4(embedded_v4(ip, 96)).or(None);
    }
    if segments[0] == 0x2002 {
        // 6to4: the IPv4 address is in bits 16..48.
        let v4 = Ipv4Addr::new(
            (segments[1] >> 8) as u8,
            segments[1] as u8,
            (segments[2] >> 8) as u8,
            segments[2] as u8,
        );
        return forbidden_v4(v4);
    }
    const RANGES: &[([u16; 8], u8, &str)] = &[
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, "local NAT64"),
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "discard"),
        // Teredo, ORCHID and other protocol assignments.
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, "IETF protocol assignments"),
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, "documentation"),
        // fd00:ec2::254 (a metadata service) is in here too.
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "unique local"),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local"),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "site-local"),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast"),
    ];
    RANGES
        .iter()
        .find(|(net, prefix, _)| v6_in(ip, *net, *prefix))
        .map(|(_, _, why)| *why)
}

/// The IPv4 address in the last 32 bits of `ip`.
fn embedded_v4(ip: Ipv6Addr, _prefix: u8) -> Ipv4Addr {
    let bits = u128::from(ip) as u32;
    Ipv4Addr::from(bits)
}

/// Looks a host name up. Production uses the system resolver; tests give
/// one that answers as they need (e.g. differently the second time).
pub trait Lookup: Send + Sync + 'static {
    /// Every address of `host`.
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;
}

/// The system resolver (`getaddrinfo` through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// The guard: the rule, the operator's allowed ranges and a resolver.
#[derive(Clone)]
pub struct Guard {
    allow: Vec<Cidr>,
    lookup: Arc<dyn Lookup>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").field("allow", &self.allow).finish()
    }
}

impl Guard {
    /// A guard allowing `allow` on top of the public internet, resolving
    /// names with `lookup`.
    pub fn new(allow: Vec<Cidr>, lookup: Arc<dyn Lookup>) -> Self {
        Self { allow, lookup }
    }

    /// A guard with the system resolver.
    pub fn system(allow: Vec<Cidr>) -> Self {
        Self::new(allow, Arc::new(SystemLookup))
    }

    /// `Ok` when `ip` may be reached.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), SsrfError> {
        if self.allow.iter().any(|c| c.contains(ip)) {
            return Ok(());
        }
        match forbidden(ip) {
            Some(why) => Err(SsrfError::Forbidden(why)),
            None => Ok(()),
        }
    }

    /// Resolves `host` once; refused when any address is forbidden.
    pub async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, SsrfError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            self.check_ip(ip)?;
            return Ok(vec![ip]);
        }
        let addrs = self
            .lookup
            .lookup(host.to_owned())
            .await
            .map_err(|e| SsrfError::Unresolved(e.kind().to_string()))?;
        if addrs.is_empty() {
            return Err(SsrfError::Unresolved("no addresses".into()));
        }
        for ip in &addrs {
            self.check_ip(*ip)?;
        }
        Ok(addrs)
    }

    /// Checks a URL's form and, when its host is an IP literal, the
    /// address. Names are checked when they are resolved.
    pub fn check_url_form(&self, url: &Url) -> Result<(), SsrfError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SsrfError::BadUrl("must be an http or https URL".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(SsrfError::BadUrl("must not carry credentials".into()));
        }
        match url.host() {
            None => Err(SsrfError::BadUrl("must have a host".into())),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => Ok(()),
        }
    }

    /// The whole check at sign-up: the form, then every address the host
    /// resolves to now.
    pub async fn check_url(&self, url: &Url) -> Result<(), SsrfError> {
        self.check_url_form(url)?;
        if let Some(url::Host::Domain(host)) = url.host() {
            self.resolve(host).await?;
        }
        Ok(())
    }
}

/// The guard as the HTTP client's resolver: the client connects only to
/// addresses the guard has just checked.
#[derive(Debug, Clone)]
pub struct GuardResolver(pub Guard);

impl reqwest::dns::Resolve for GuardResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = guard
                .resolve(&host)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
            let addrs: reqwest::dns::Addrs =
                Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges_are_refused_and_public_ones_pass() {
        let table: &[(&str, bool)] = &[
            ("8.8.8.8", true),
            ("1.1.1.1", true),
            ("93.184.216.34", true),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("172.31.255.255", false),
            ("172.32.0.1", true),
            ("192.168.1.1", false),
            ("127.0.0.1", false),
            ("127.1.2.3", false),
            ("0.0.0.0", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("100.100.100.200", false),
            ("100.128.0.1", true),
            ("198.18.0.1", false),
            ("224.0.0.1", false),
            ("255.255.255.255", false),
            ("2606:4700:4700::1111", true),
            ("::1", false),
            ("::", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:10.0.0.1", false),
            ("::ffff:169.254.169.254", false),
            ("::ffff:8.8.8.8", true),
            ("::127.0.0.1", false),
            ("64:ff9b::10.0.0.1", false),
            ("64:ff9b::8.8.8.8", true),
            ("2002:0a00:0001::1", false),
            ("2002:0808:0808::1", true),
            ("fc00::1", false),
            ("fd00:ec2::254", false),
            ("fe80::1", false),
            ("fec0::1", false),
            ("ff02::1", false),
            ("2001:db8::1", false),
            ("2001::1", false),
        ];
        for (text, allowed) in table {
            let ip: IpAddr = text.parse().expect("an address");
            assert_eq!(forbidden(ip).is_none(), *allowed, "{text}: {:?}", forbidden(ip));
        }
    }

    #[test]
    fn operators_may_allow_a_range() {
        let guard = Guard::system(vec![Cidr::parse("127.0.0.1/32").expect("cidr")]);
        assert!(guard.check_ip("127.0.0.1".parse().expect("ip")).is_ok());
        assert!(guard.check_ip("127.0.0.2".parse().expect("ip")).is_err());
        assert!(guard.check_ip("::ffff:127.0.0.2".parse().expect("ip")).is_err());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
        assert!(Cidr::parse("::/0").expect("all").contains("::1".parse().expect("ip")));
    }

    #[test]
    fn url_forms_are_checked_before_any_lookup() {
        let guard = Guard::system(vec![]);
        let check = |text: &str| guard.check_url_form(&Url::parse(text).expect("a URL"));
        assert!(check("https://hooks.example.com/x").is_ok());
        assert!(check("ftp://example.com/").is_err());
        assert!(check("https://user:pw@example.com/").is_err());
        assert!(check("http://127.0.0.1:8080/").is_err());
        assert!(check("http://[::ffff:127.0.0.1]/").is_err());
        assert!(check("http://[::1]/").is_err());
        assert!(check("http://2130706433/").is_err(), "127.0.0.1 as a number");
        assert!(check("http://0x7f.1/").is_err(), "127.0.0.1 in hex");
    }
}
