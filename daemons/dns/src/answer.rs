//! What the responder answers, as a pure function of the question, the
//! configuration, which edges are handed out and the statuses known.
//!
//! - A name it does not own: REFUSED, no records (it never recurses, and a
//!   refusal is never larger than the question).
//! - `<host>` A/AAAA: the addresses of the host's edges that pass their
//!   checks; when none does, all of them (users may still get through, and
//!   an empty answer would surely fail them).
//! - `_status.<host>` TXT: the page's status ([`Statuses::txt`]), after
//!   an emergency notice put up by hand if there is one.
//! - `<host>` SOA: the zone's SOA; any other type at an owned name: no
//!   data, with the SOA; any other name under a host: NXDOMAIN.
//! - ANY: one HINFO `RFC8482` record (RFC 8482), never everything.

use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, HINFO, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::config::{DnsConfig, Host};
use crate::emergency::Emergencies;
use crate::health::Healthy;
use crate::status::Statuses;

/// The label under a host that holds its status.
pub const STATUS_LABEL: &str = "_status";

/// An answer, before it is put in a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The response code.
    pub rcode: ResponseCode,
    /// Whether the responder speaks for the name (AA bit).
    pub authoritative: bool,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section (the SOA of a negative answer).
    pub authority: Vec<Record>,
}

impl Reply {
    fn refused() -> Reply {
        Reply {
            rcode: ResponseCode::Refused,
            authoritative: false,
            answers: Vec::new(),
            authority: Vec::new(),
        }
    }
}

/// A bounded name for a query type, for metrics.
pub fn type_label(query_type: RecordType) -> &'static str {
    match query_type {
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        RecordType::TXT => "TXT",
        RecordType::SOA => "SOA",
        RecordType::NS => "NS",
        RecordType::ANY => "ANY",
        _ => "other",
    }
}

/// A bounded name for a response code, for metrics.
pub fn rcode_label(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::ServFail => "SERVFAIL",
        _ => "other",
    }
}

/// The presentation form of `name`, lower case, without the final dot.
fn plain(name: &Name) -> String {
    let mut text = name.to_ascii().to_ascii_lowercase();
    if text.ends_with('.') {
        text.pop();
    }
    text
}

fn seconds(duration: std::time::Duration) -> u32 {
    u32::try_from(duration.as_secs()).unwrap_or(u32::MAX)
}

/// The zone's SOA for `host`. Its serial follows the statuses, so a
/// secondary (or a person) sees that something changed.
fn soa(config: &DnsConfig, host: &Host, statuses: &Statuses) -> Option<Record> {
    let zone = Name::from_ascii(format!("{}.", host.name)).ok()?;
    let mail = Name::from_ascii(format!("hostmaster.{}.", host.name)).ok()?;
    let serial = u32::try_from(statuses.updated_at_ms / 1000).unwrap_or(u32::MAX);
    let minimum = seconds(config.status_ttl);
    Some(Record::from_rdata(
        zone.clone(),
        minimum,
        RData::SOA(SOA::new(zone, mail, serial, 3600, 600, 86_400, minimum)),
    ))
}

/// The addresses handed out for `host` of the given family.
pub fn handed_out(config: &DnsConfig, healthy: &Healthy, host: &Host, v4: bool) -> Vec<IpAddr> {
    let passing: Vec<usize> = host
        .edges
        .iter()
        .copied()
        .filter(|i| healthy.0.get(*i).copied().unwrap_or(true))
        .collect();
    let chosen = if passing.is_empty() {
        host.edges.clone()
    } else {
        passing
    };
    chosen
        .iter()
        .flat_map(|i| config.edges[*i].addresses.iter().copied())
        .filter(|ip| ip.is_ipv4() == v4)
        .collect()
}

/// What the answers are made from.
#[derive(Debug, Clone, Copy)]
pub struct Known<'a> {
    /// Which edges are handed out.
    pub healthy: &'a Healthy,
    /// Components' statuses.
    pub statuses: &'a Statuses,
    /// Emergency notices by page.
    pub emergencies: &'a Emergencies,
}

/// Answers one question.
pub fn answer(config: &DnsConfig, known: Known, name: &Name, query_type: RecordType) -> Reply {
    let Known {
        healthy,
        statuses,
        emergencies,
    } = known;
    let text = plain(name);
    let Some((host, under)) = config.host_of(&text) else {
        return Reply::refused();
    };
    let no_data = |rcode| Reply {
        rcode,
        authoritative: true,
        answers: Vec::new(),
        authority: soa(config, host, statuses).into_iter().collect(),
    };
    let owner = name.clone();
    let found = |answers: Vec<Record>| Reply {
        rcode: ResponseCode::NoError,
        authoritative: true,
        answers,
        authority: Vec::new(),
    };
    if query_type == RecordType::ANY && (under.is_empty() || under == STATUS_LABEL) {
        return found(vec![Record::from_rdata(
            owner,
            seconds(config.status_ttl),
            RData::HINFO(HINFO::new("RFC8482".into(), String::new())),
        )]);
    }
    match (under, query_type) {
        ("", RecordType::A | RecordType::AAAA) => {
            let v4 = query_type == RecordType::A;
            let records: Vec<Record> = handed_out(config, healthy, host, v4)
                .into_iter()
                .map(|ip| {
                    let rdata = match ip {
                        IpAddr::V4(ip) => RData::A(A(ip)),
                        IpAddr::V6(ip) => RData::AAAA(AAAA(ip)),
                    };
                    Record::from_rdata(owner.clone(), seconds(config.ttl), rdata)
                })
                .collect();
            if records.is_empty() {
                no_data(ResponseCode::NoError)
            } else {
                found(records)
            }
        }
        ("", RecordType::SOA) => found(soa(config, host, statuses).into_iter().collect()),
        ("", _) => no_data(ResponseCode::NoError),
        (STATUS_LABEL, RecordType::TXT) => {
            let strings: Vec<String> = emergencies
                .get(&host.page)
                .cloned()
                .into_iter()
                .chain(statuses.txt(&host.page))
                .collect();
            found(vec![Record::from_rdata(
                owner,
                seconds(config.status_ttl),
                RData::TXT(TXT::new(strings)),
            )])
        }
        (STATUS_LABEL, _) => no_data(ResponseCode::NoError),
        _ => no_data(ResponseCode::NXDomain),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_contract::messages::ComponentStatus;

    fn config() -> DnsConfig {
        DnsConfig::parse(
            r#"
[[edges]]
name = "eu"
addresses = ["127.0.0.2", "::2"]
check = "http://127.0.0.2:1/"
[[edges]]
name = "us"
addresses = ["127.0.0.3"]
check = "http://127.0.0.3:1/"
[[hosts]]
name = "status.example.com"
page = "acme"
"#,
        )
        .expect("valid")
    }

    fn ask_with(
        healthy: &[bool],
        emergencies: &Emergencies,
        name: &str,
        query_type: RecordType,
    ) -> Reply {
        let mut statuses = Statuses::default();
        statuses.set("acme", "api", ComponentStatus::MajorOutage);
        statuses.set("acme", "web", ComponentStatus::Operational);
        let known = Known {
            healthy: &Healthy(healthy.to_vec()),
            statuses: &statuses,
            emergencies,
        };
        answer(
            &config(),
            known,
            &Name::from_ascii(name).expect("name"),
            query_type,
        )
    }

    fn ask(healthy: &[bool], name: &str, query_type: RecordType) -> Reply {
        ask_with(healthy, &Emergencies::new(), name, query_type)
    }

    #[test]
    fn an_emergency_notice_comes_first_in_txt() {
        let mut emergencies = Emergencies::new();
        emergencies.insert("acme".into(), "emergency: Checkout down".into());
        emergencies.insert("other".into(), "emergency: elsewhere".into());
        let reply = ask_with(
            &[true, true],
            &emergencies,
            "_status.status.example.com.",
            RecordType::TXT,
        );
        let RData::TXT(txt) = reply.answers[0].data() else {
            panic!("a TXT record");
        };
        let strings: Vec<String> = txt
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        assert_eq!(strings, ["emergency: Checkout down", "major_outage: api"]);
    }

    fn data(reply: &Reply) -> Vec<String> {
        reply.answers.iter().map(|r| r.data().to_string()).collect()
    }

    /// Edges' health, question name and type, response code, answer data.
    type Case<'a> = (&'a [bool], &'a str, RecordType, ResponseCode, &'a [&'a str]);

    #[test]
    fn answer_table() {
        use RecordType::*;
        let cases: &[Case] = &[
            (
                &[true, true],
                "status.example.com.",
                A,
                ResponseCode::NoError,
                &["127.0.0.2", "127.0.0.3"],
            ),
            (
                &[false, true],
                "status.example.com.",
                A,
                ResponseCode::NoError,
                &["127.0.0.3"],
            ),
            (
                &[true, false],
                "STATUS.Example.COM.",
                A,
                ResponseCode::NoError,
                &["127.0.0.2"],
            ),
            // Every edge fails: all of them rather than none.
            (
                &[false, false],
                "status.example.com.",
                A,
                ResponseCode::NoError,
                &["127.0.0.2", "127.0.0.3"],
            ),
            (
                &[true, true],
                "status.example.com.",
                AAAA,
                ResponseCode::NoError,
                &["::2"],
            ),
            // The only IPv6 edge is down: the others have none to give.
            (
                &[false, true],
                "status.example.com.",
                AAAA,
                ResponseCode::NoError,
                &[],
            ),
            (
                &[true, true],
                "_status.status.example.com.",
                TXT,
                ResponseCode::NoError,
                &["major_outage: api"],
            ),
            (
                &[true, true],
                "_status.status.example.com.",
                A,
                ResponseCode::NoError,
                &[],
            ),
            (
                &[true, true],
                "status.example.com.",
                MX,
                ResponseCode::NoError,
                &[],
            ),
            (
                &[true, true],
                "www.status.example.com.",
                A,
                ResponseCode::NXDomain,
                &[],
            ),
            (&[true, true], "example.com.", A, ResponseCode::Refused, &[]),
            (&[true, true], "google.com.", A, ResponseCode::Refused, &[]),
            (
                &[true, true],
                "status.example.com.",
                ANY,
                ResponseCode::NoError,
                &["RFC8482 "],
            ),
        ];
        for (healthy, name, query_type, rcode, expected) in cases {
            let reply = ask(healthy, name, *query_type);
            assert_eq!(reply.rcode, *rcode, "{name} {query_type}");
            assert_eq!(data(&reply), *expected, "{name} {query_type}");
            let refused = *rcode == ResponseCode::Refused;
            assert_eq!(reply.authoritative, !refused, "{name} {query_type}");
            if refused {
                assert!(reply.authority.is_empty(), "a refusal carries nothing");
            }
            if reply.answers.is_empty() && !refused {
                assert_eq!(reply.authority.len(), 1, "negative answers carry the SOA");
            }
        }
    }

    #[test]
    fn addresses_are_short_lived_and_status_lives_longer() {
        let reply = ask(&[true, true], "status.example.com.", RecordType::A);
        assert!(reply.answers.iter().all(|r| r.ttl() == 10));
        let reply = ask(
            &[true, true],
            "_status.status.example.com.",
            RecordType::TXT,
        );
        assert!(reply.answers.iter().all(|r| r.ttl() == 30));
    }
}
