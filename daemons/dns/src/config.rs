//! The responder's configuration file (`deploy/dns/beacon-dns.toml`): the
//! edges it may hand out, how it checks them, and the host names it
//! answers for. Read and checked once at start; every problem is reported.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// Longest DNS name, in presentation form without the final dot.
const MAX_NAME: usize = 253;
/// Longest label.
const MAX_LABEL: usize = 63;

/// One edge: where users are sent, and how its health is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Its name (`eu`), for metrics and logs.
    pub name: String,
    /// The addresses handed out for it (A for IPv4, AAAA for IPv6).
    pub addresses: Vec<IpAddr>,
    /// The URL checked: healthy when it answers 2xx within the timeout.
    pub check: url::Url,
}

/// One host name the responder owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Lower case, without the final dot: `status.example.com`.
    pub name: String,
    /// The page it serves (its status goes in `_status.<name>` TXT).
    pub page: String,
    /// Indices into [`DnsConfig::edges`] of the edges that serve it.
    pub edges: Vec<usize>,
}

/// The whole configuration, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// TTL of A and AAAA answers: short, so a dead edge leaves caches fast.
    pub ttl: Duration,
    /// TTL of TXT, SOA and negative answers.
    pub status_ttl: Duration,
    /// How often every edge is checked.
    pub check_interval: Duration,
    /// How long one check may take.
    pub check_timeout: Duration,
    /// Failed checks in a row before a healthy edge is left out.
    pub fail_after: u32,
    /// Passed checks in a row before a left-out edge is handed out again.
    pub recover_after: u32,
    /// The edges.
    pub edges: Vec<Edge>,
    /// The host names.
    pub hosts: Vec<Host>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_ttl")]
    ttl: String,
    #[serde(default = "default_status_ttl")]
    status_ttl: String,
    #[serde(default = "default_interval")]
    check_interval: String,
    #[serde(default = "default_timeout")]
    check_timeout: String,
    #[serde(default = "default_fail_after")]
    fail_after: u32,
    #[serde(default = "default_recover_after")]
    recover_after: u32,
    #[serde(default)]
    edges: Vec<RawEdge>,
    #[serde(default)]
    hosts: Vec<RawHost>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEdge {
    name: String,
    addresses: Vec<String>,
    check: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: String,
    page: String,
    #[serde(default)]
    edges: Option<Vec<String>>,
}

fn default_ttl() -> String {
    "10s".into()
}
fn default_status_ttl() -> String {
    "30s".into()
}
fn default_interval() -> String {
    "2s".into()
}
fn default_timeout() -> String {
    "1s".into()
}
fn default_fail_after() -> u32 {
    2
}
fn default_recover_after() -> u32 {
    2
}

/// Whether `name` is a host name the responder can own: letters, digits
/// and hyphens in labels of at most 63, at most 253 in all, at least two
/// labels.
pub fn check_host_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("must be 1 to {MAX_NAME} characters"));
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err("must have at least two labels (status.example.com)".into());
    }
    for label in labels {
        if label.is_empty() || label.len() > MAX_LABEL {
            return Err(format!(
                "label {label:?} must be 1 to {MAX_LABEL} characters"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} must not start or end with '-'"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(format!("label {label:?} has {c:?}: use a-z, 0-9 and '-'"));
        }
    }
    Ok(())
}

fn duration(field: &str, text: &str, errors: &mut Vec<String>) -> Duration {
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => {
            errors.push(format!("{field}: must be more than zero"));
            Duration::from_secs(1)
        }
        Err(e) => {
            errors.push(format!("{field}: {text:?} is not a duration: {e}"));
            Duration::from_secs(1)
        }
    }
}

impl DnsConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<DnsConfig, Vec<String>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
        DnsConfig::parse(&text).map_err(|errors| {
            errors
                .into_iter()
                .map(|e| format!("{}: {e}", path.display()))
                .collect()
        })
    }

    /// Parses and checks a configuration; returns every problem.
    pub fn parse(text: &str) -> Result<DnsConfig, Vec<String>> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let mut errors = Vec::new();
        let ttl = duration("ttl", &raw.ttl, &mut errors);
        let status_ttl = duration("status_ttl", &raw.status_ttl, &mut errors);
        let check_interval = duration("check_interval", &raw.check_interval, &mut errors);
        let check_timeout = duration("check_timeout", &raw.check_timeout, &mut errors);
        if check_timeout > check_interval {
            errors.push("check_timeout: must not be longer than check_interval".into());
        }
        for (field, value) in [
            ("fail_after", raw.fail_after),
            ("recover_after", raw.recover_after),
        ] {
            if value == 0 {
                errors.push(format!("{field}: must be at least 1"));
            }
        }
        if raw.edges.is_empty() {
            errors.push("edges: at least one edge is required".into());
        }
        let mut names = BTreeSet::new();
        let mut edges = Vec::new();
        for (i, edge) in raw.edges.iter().enumerate() {
            let at = format!("edges[{i}]");
            if let Err(e) = beacon_contract::names::check_token(&edge.name) {
                errors.push(format!("{at}.name: {e}"));
            }
            if !names.insert(edge.name.clone()) {
                errors.push(format!("{at}.name: edge {:?} is named twice", edge.name));
            }
            if edge.addresses.is_empty() {
                errors.push(format!("{at}.addresses: at least one address is required"));
            }
            let mut addresses = Vec::new();
            for (j, address) in edge.addresses.iter().enumerate() {
                match address.parse::<IpAddr>() {
                    Ok(ip) if ip.is_unspecified() || ip.is_multicast() => errors.push(format!(
                        "{at}.addresses[{j}]: {address} cannot be handed out"
                    )),
                    Ok(ip) => addresses.push(ip),
                    Err(_) => errors.push(format!(
                        "{at}.addresses[{j}]: {address:?} is not an IP address"
                    )),
                }
            }
            let check = match url::Url::parse(&edge.check) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                    Some(url)
                }
                Ok(_) => {
                    errors.push(format!("{at}.check: must be an http(s) URL with a host"));
                    None
                }
                Err(e) => {
                    errors.push(format!("{at}.check: {:?} is not a URL: {e}", edge.check));
                    None
                }
            };
            if let Some(check) = check {
                edges.push(Edge {
                    name: edge.name.clone(),
                    addresses,
                    check,
                });
            }
        }
        if raw.hosts.is_empty() {
            errors.push("hosts: at least one host name is required".into());
        }
        let mut seen_hosts = BTreeSet::new();
        let mut hosts = Vec::new();
        for (i, host) in raw.hosts.iter().enumerate() {
            let at = format!("hosts[{i}]");
            let name = host.name.trim_end_matches('.').to_ascii_lowercase();
            if let Err(e) = check_host_name(&name) {
                errors.push(format!("{at}.name: {:?} {e}", host.name));
            }
            if !seen_hosts.insert(name.clone()) {
                errors.push(format!("{at}.name: host {name:?} is named twice"));
            }
            if let Err(e) = beacon_contract::names::check_token(&host.page) {
                errors.push(format!("{at}.page: {e}"));
            }
            let wanted: Vec<String> = match &host.edges {
                Some(list) => list.clone(),
                None => raw.edges.iter().map(|e| e.name.clone()).collect(),
            };
            if wanted.is_empty() {
                errors.push(format!("{at}.edges: at least one edge is required"));
            }
            let mut indices = Vec::new();
            for (j, edge) in wanted.iter().enumerate() {
                match edges.iter().position(|e| &e.name == edge) {
                    Some(index) => indices.push(index),
                    None if names.contains(edge) => {}
                    None => errors.push(format!("{at}.edges[{j}]: no edge named {edge:?}")),
                }
            }
            hosts.push(Host {
                name,
                page: host.page.clone(),
                edges: indices,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(DnsConfig {
            ttl,
            status_ttl,
            check_interval,
            check_timeout,
            fail_after: raw.fail_after,
            recover_after: raw.recover_after,
            edges,
            hosts,
        })
    }

    /// The host a query name belongs to: the host itself, or a name under
    /// it (`_status.<host>`), with the part before it.
    pub fn host_of<'a>(&self, name: &'a str) -> Option<(&Host, &'a str)> {
        self.hosts.iter().find_map(|host| {
            if name == host.name {
                Some((host, ""))
            } else {
                name.strip_suffix(host.name.as_str())
                    .and_then(|rest| rest.strip_suffix('.'))
                    .map(|rest| (host, rest))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
ttl = "5s"
[[edges]]
name = "eu"
addresses = ["127.0.0.2", "::2"]
check = "http://127.0.0.2:8080/healthz"
[[edges]]
name = "us"
addresses = ["127.0.0.3"]
check = "http://127.0.0.3:8080/healthz"
[[hosts]]
name = "Status.Example.com."
page = "acme"
[[hosts]]
name = "eu.status.example.com"
page = "acme"
edges = ["eu"]
"#;

    #[test]
    fn a_good_file_is_read_with_defaults_and_every_edge_by_default() {
        let config = DnsConfig::parse(GOOD).expect("valid");
        assert_eq!(config.ttl, Duration::from_secs(5));
        assert_eq!(config.check_interval, Duration::from_secs(2));
        assert_eq!(config.fail_after, 2);
        assert_eq!(config.hosts[0].name, "status.example.com");
        assert_eq!(config.hosts[0].edges, vec![0, 1]);
        assert_eq!(config.hosts[1].edges, vec![0]);
        assert_eq!(config.edges[0].addresses.len(), 2);
    }

    #[test]
    fn names_under_a_host_belong_to_the_most_specific_listed_first() {
        let config = DnsConfig::parse(GOOD).expect("valid");
        let (host, rest) = config.host_of("_status.status.example.com").expect("owned");
        assert_eq!(
            (host.name.as_str(), rest),
            ("status.example.com", "_status")
        );
        assert!(config.host_of("example.com").is_none());
        assert!(config.host_of("xstatus.example.com").is_none());
        assert_eq!(config.host_of("status.example.com").map(|h| h.1), Some(""));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let bad = r#"
ttl = "soon"
check_interval = "1s"
check_timeout = "2s"
fail_after = 0
[[edges]]
name = "eu"
addresses = ["not-an-ip", "0.0.0.0"]
check = "ftp://x"
[[edges]]
name = "eu"
addresses = []
check = "http://127.0.0.1/"
[[hosts]]
name = "localhost"
page = "Bad Page"
edges = ["mars"]
[[hosts]]
name = "localhost"
page = "acme"
"#;
        let errors = DnsConfig::parse(bad).expect_err("invalid");
        for expected in [
            "ttl: \"soon\" is not a duration",
            "check_timeout: must not be longer",
            "fail_after: must be at least 1",
            "edges[0].addresses[0]: \"not-an-ip\" is not an IP address",
            "edges[0].addresses[1]: 0.0.0.0 cannot be handed out",
            "edges[0].check: must be an http(s) URL",
            "edges[1].name: edge \"eu\" is named twice",
            "edges[1].addresses: at least one address",
            "hosts[0].name: \"localhost\" must have at least two labels",
            "hosts[0].page:",
            "hosts[0].edges[0]: no edge named \"mars\"",
            "hosts[1].name: host \"localhost\" is named twice",
        ] {
            assert!(
                errors.iter().any(|e| e.starts_with(expected)),
                "missing {expected:?} in {errors:#?}"
            );
        }
    }

    #[test]
    fn unknown_fields_and_empty_files_are_refused() {
        assert!(DnsConfig::parse("tll = \"5s\"").is_err());
        let errors = DnsConfig::parse("").expect_err("empty");
        assert!(errors.iter().any(|e| e.starts_with("edges:")));
        assert!(errors.iter().any(|e| e.starts_with("hosts:")));
    }

    #[test]
    fn host_names_are_checked_label_by_label() {
        for good in ["status.example.com", "a-b.c1.io", "x.y"] {
            assert!(check_host_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "com",
            "-a.com",
            "a..com",
            "a_b.com",
            &"a".repeat(64),
            "ä.com",
        ] {
            assert!(check_host_name(bad).is_err(), "{bad}");
        }
    }
}
