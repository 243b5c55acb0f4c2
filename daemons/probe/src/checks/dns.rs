//! DNS checks with `hickory-resolver`: one query of one record type, to
//! the check's nameserver (or the host's resolvers). NXDOMAIN, SERVFAIL,
//! REFUSED and every other error code fail with kind `dns`; so does an
//! answer that lacks an expected value. Resolvers are kept per nameserver
//! with their cache off, so every run asks the server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beacon_contract::messages::{ErrorKind, Observed, Outcome, Timings};
use beacon_page::config::condition::Observation;
use beacon_page::config::DnsTarget;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{ResolveErrorKind, TokioResolver};

use super::{judge, micros, CheckOutput};

/// A resolver's settings: nameserver (`None`: the host's) and timeout in ms.
type ResolverKey = (Option<SocketAddr>, u64);

/// Resolvers by nameserver and timeout, built on first use.
#[derive(Clone, Default)]
pub struct Resolvers {
    by_server: Arc<Mutex<HashMap<ResolverKey, TokioResolver>>>,
}

impl Resolvers {
    fn resolver(
        &self,
        nameserver: Option<SocketAddr>,
        timeout: Duration,
    ) -> Result<TokioResolver, String> {
        let key = (nameserver, timeout.as_millis() as u64);
        let mut by_server = self.by_server.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(resolver) = by_server.get(&key) {
            return Ok(resolver.clone());
        }
        let mut builder = match nameserver {
            Some(server) => {
                let servers =
                    NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
                TokioResolver::builder_with_config(
                    ResolverConfig::from_parts(None, vec![], servers),
                    TokioConnectionProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio()
                .map_err(|e| format!("cannot read the host's resolver config: {e}"))?,
        };
        let options = builder.options_mut();
        // Every run asks the server: a cached answer would hide an outage.
        options.cache_size = 0;
        options.attempts = 1;
        options.timeout = timeout;
        options.ndots = 0;
        let resolver = builder.build();
        by_server.insert(key, resolver.clone());
        Ok(resolver)
    }

    /// Runs one DNS check within `timeout`.
    pub async fn check(
        &self,
        target: &DnsTarget,
        timeout: Duration,
        started: Instant,
    ) -> CheckOutput {
        let resolver = match self.resolver(target.nameserver, timeout.mul_f64(0.9)) {
            Ok(resolver) => resolver,
            Err(e) => return CheckOutput::down(started, ErrorKind::Dns, e),
        };
        let record_type = match target.record_type.parse::<RecordType>() {
            Ok(t) => t,
            Err(e) => {
                return CheckOutput::down(started, ErrorKind::Dns, format!("record type: {e}"))
            }
        };
        // A trailing dot: the name is absolute, search domains never apply.
        let name = if target.name.ends_with('.') {
            target.name.clone()
        } else {
            format!("{}.", target.name)
        };
        let looked_up = resolver.lookup(name.as_str(), record_type).await;
        let latency = started.elapsed();
        let (rcode, answers, failure) = match looked_up {
            Ok(lookup) => {
                let mut answers: Vec<String> = lookup.iter().map(|data| data.to_string()).collect();
                answers.sort();
                ("NOERROR".to_owned(), answers, None)
            }
            Err(e) => {
                let code = match e.kind() {
                    ResolveErrorKind::Proto(proto) => match proto.kind() {
                        ProtoErrorKind::NoRecordsFound { response_code, .. } => {
                            Some(*response_code)
                        }
                        _ => None,
                    },
                    _ => None,
                };
                match code {
                    Some(ResponseCode::NoError) => (
                        "NOERROR".to_owned(),
                        Vec::new(),
                        Some(format!(
                            "no {} records for {}",
                            target.record_type, target.name
                        )),
                    ),
                    Some(code) => (
                        rcode_name(code),
                        Vec::new(),
                        Some(format!(
                            "{} for {} {}",
                            rcode_name(code),
                            target.name,
                            target.record_type
                        )),
                    ),
                    None => (
                        rcode_in(&e.to_string()).unwrap_or("ERROR").to_owned(),
                        Vec::new(),
                        Some(format!("query failed: {e}")),
                    ),
                }
            }
        };
        let mut output = CheckOutput::up(started);
        output.timings = Some(Timings {
            total_us: micros(latency),
            ..Timings::default()
        });
        output.observed = Observed {
            response_time_ms: Some(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX)),
            dns_rcode: Some(rcode.clone()),
            dns_answers: answers.clone(),
            ..Observed::default()
        };
        if let Some(failure) = failure {
            output.outcome = Outcome::Down;
            output.error_kind = Some(ErrorKind::Dns);
            output.error = Some(failure);
            return output;
        }
        if let Some(missing) = target.expect_answers.iter().find(|want| {
            !answers
                .iter()
                .any(|a| a.trim_end_matches('.') == want.trim_end_matches('.'))
        }) {
            output.outcome = Outcome::Down;
            output.error_kind = Some(ErrorKind::Dns);
            output.error = Some(format!(
                "answer {missing} missing; got {}",
                answers.join(", ")
            ));
            return output;
        }
        let seen = Observation {
            response_time: Some(latency),
            dns_rcode: Some(&rcode),
            answers: Some(&answers),
            ..Observation::default()
        };
        output.with_verdict(judge(&target.conditions, &target.degraded_if, &seen))
    }
}

/// The conventional name of a response code, e.g. `NXDOMAIN`.
fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NOERROR".to_owned(),
        ResponseCode::FormErr => "FORMERR".to_owned(),
        ResponseCode::ServFail => "SERVFAIL".to_owned(),
        ResponseCode::NXDomain => "NXDOMAIN".to_owned(),
        ResponseCode::NotImp => "NOTIMP".to_owned(),
        ResponseCode::Refused => "REFUSED".to_owned(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

/// A response code named in an error text (hickory reports SERVFAIL and
/// REFUSED from a server as errors, not as empty answers).
fn rcode_in(text: &str) -> Option<&'static str> {
    let upper = text.to_ascii_uppercase();
    ["SERVFAIL", "REFUSED", "NXDOMAIN", "FORMERR", "NOTIMP"]
        .into_iter()
        .find(|code| {
            upper.contains(code) || upper.contains(&code.replace("SERVFAIL", "SERVER FAILURE"))
        })
}
