//! Asking a DNS server one question over UDP, the way a stub resolver
//! does, and reading the records of the answer (hickory-proto).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;

/// The bytes of a query for `name` (`status.example.com.`) and `query_type`.
pub fn query_bytes(id: u16, name: &str, query_type: RecordType) -> Option<Vec<u8>> {
    let mut query = Message::new();
    query
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).ok()?, query_type));
    query.to_vec().ok()
}

/// Sends `bytes` to `server` and returns what comes back within `wait`.
pub async fn exchange(server: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.ok()?;
    socket.send_to(bytes, server).await.ok()?;
    let mut buffer = vec![0u8; 4096];
    let (length, _) = tokio::time::timeout(wait, socket.recv_from(&mut buffer))
        .await
        .ok()?
        .ok()?;
    buffer.truncate(length);
    Some(buffer)
}

/// Asks `server` one question; the answer, or `None` within a second.
pub async fn ask(server: SocketAddr, name: &str, query_type: RecordType) -> Option<Message> {
    let bytes = query_bytes(7, name, query_type)?;
    let answer = exchange(server, &bytes, Duration::from_secs(1)).await?;
    Message::from_vec(&answer).ok()
}

/// The A addresses of `answer`, sorted.
pub fn a_records(answer: &Message) -> Vec<String> {
    let mut found: Vec<String> = answer
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    found.sort();
    found
}

/// The strings of every TXT record of `answer`, in order.
pub fn txt_strings(answer: &Message) -> Vec<String> {
    answer
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::TXT(txt) => Some(
                txt.iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect()
}
