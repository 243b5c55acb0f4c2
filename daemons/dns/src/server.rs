//! The `hickory-server` glue: one [`RequestHandler`] that answers every
//! query from the shared views through [`crate::answer`], and counts it.
//!
//! hickory-server answers what cannot be parsed itself (FORMERR when the
//! header could be read, nothing otherwise), never answers a message that
//! is a response, and truncates over-long UDP answers; this handler sees
//! only well-formed requests.

use std::sync::Arc;

use hickory_proto::op::{Header, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, Record};
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use prometheus::IntCounterVec;

use crate::answer::{answer, rcode_label, type_label, Known, Reply};
use crate::config::DnsConfig;
use crate::emergency::EmergencyView;
use crate::health::HealthView;
use crate::status::StatusView;

/// Answers queries; cheap to share.
pub struct Responder {
    /// What it owns.
    pub config: Arc<DnsConfig>,
    /// Which edges are handed out.
    pub health: HealthView,
    /// Statuses for TXT.
    pub statuses: StatusView,
    /// Emergency notices for TXT.
    pub emergencies: EmergencyView,
    /// `queries_total{type,rcode}`.
    pub queries: IntCounterVec,
}

impl Responder {
    fn reply_to(&self, request: &Request) -> (Reply, &'static str) {
        let bare = |rcode| {
            (
                Reply {
                    rcode,
                    authoritative: false,
                    answers: Vec::new(),
                    authority: Vec::new(),
                },
                "other",
            )
        };
        if request.message_type() != MessageType::Query || request.op_code() != OpCode::Query {
            return bare(ResponseCode::NotImp);
        }
        let Ok(info) = request.request_info() else {
            // Zero or several questions: nobody sends that on purpose.
            return bare(ResponseCode::FormErr);
        };
        let query = info.query;
        if query.query_class() != DNSClass::IN {
            return bare(ResponseCode::Refused);
        }
        let name = Name::from(query.name().clone());
        let (healthy, statuses, emergencies) = (
            self.health.load(),
            self.statuses.load(),
            self.emergencies.load(),
        );
        let known = Known {
            healthy: &healthy,
            statuses: &statuses,
            emergencies: &emergencies,
        };
        let reply = answer(&self.config, known, &name, query.query_type());
        (reply, type_label(query.query_type()))
    }
}

#[async_trait::async_trait]
impl RequestHandler for Responder {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let (reply, query_type) = self.reply_to(request);
        self.queries
            .with_label_values(&[query_type, rcode_label(reply.rcode)])
            .inc();
        let mut header = Header::response_from_request(request.header());
        header.set_authoritative(reply.authoritative);
        header.set_recursion_available(false);
        header.set_response_code(reply.rcode);
        let none: [&Record; 0] = [];
        let builder = MessageResponseBuilder::from_message_request(request);
        let message = builder.build(
            header,
            reply.answers.iter(),
            none.iter().copied(),
            reply.authority.iter(),
            none.iter().copied(),
        );
        match response_handle.send_response(message).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "Cannot send a DNS answer.");
                header.into()
            }
        }
    }
}
