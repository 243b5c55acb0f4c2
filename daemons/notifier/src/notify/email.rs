//! Email over SMTP with lettre: a pool of connections per account (relay,
//! credentials, TLS mode), multipart text and HTML, RFC 8058
//! `List-Unsubscribe` and `List-Unsubscribe-Post` headers, and a
//! `Message-ID` derived from the idempotency key so a receiving system can
//! tell a repeat from a new message.
//!
//! The pool is this module's, around lettre's `AsyncSmtpConnection`,
//! rather than lettre's own transport: lettre writes a message's body and
//! its final `.` in two writes on a socket without `TCP_NODELAY`, so every
//! message waits for the server's delayed ACK (about 40 ms; 25 messages a
//! second a connection). Connecting here sets `TCP_NODELAY` (plain and
//! STARTTLS; implicit TLS goes through lettre's own connect). A connection
//! lettre closed after an error is dropped; an idle one older than
//! [`MAX_IDLE`] is closed, and a send that fails on a reused connection
//! before any answer is tried once more on a fresh one.
//!
//! Commands are pipelined (RFC 2920) when the server advertises
//! `PIPELINING`: `MAIL`, `RCPT` and `DATA` leave in one write and their
//! answers are read together, then the body and its final dot, so a
//! message costs two round trips instead of four. lettre has no pipelining
//! of its own but sends any command text it is given and reads answers one
//! at a time, so the pipelined exchange is built from lettre's own commands
//! on lettre's connection (TLS, authentication and dot-stuffing stay
//! lettre's). lettre does not keep the `EHLO` keywords it does not know, so
//! a new connection asks once more, before authenticating. A refusal inside
//! a pipelined exchange ends the connection rather than resynchronising it.
//!
//! Headers: the subject is flattened to one line without control
//! characters before lettre encodes it (RFC 2047 for anything non-ASCII);
//! the recipient is a validated plain address (no display name), so no
//! field a subscriber or operator wrote can start a header of its own.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use beacon_page::config::{Channel, ChannelProvider, SmtpTls};
use lettre::address::Envelope;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use lettre::Message;

use super::{Accepted, Delivery, SendError};
use crate::context::env_secret;
use crate::signing::sha256_hex;

/// Idle connections older than this are closed rather than reused.
pub const MAX_IDLE: Duration = Duration::from_secs(30);

/// One SMTP account and its idle connections.
pub struct Provider {
    host: String,
    port: u16,
    tls: SmtpTls,
    credentials: Option<Credentials>,
    timeout: Duration,
    hello: ClientId,
    idle: Mutex<Vec<(Connection, Instant)>>,
    from: Mailbox,
    domain: String,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("email::Provider")
            .field("domain", &self.domain)
            .finish()
    }
}

/// An SMTP connection and what its server takes.
struct Connection {
    smtp: AsyncSmtpConnection,
    /// The server advertised `PIPELINING` (RFC 2920).
    pipelining: bool,
    /// A pipelined exchange failed: the connection's state is unknown.
    broken: bool,
}

type SmtpError = lettre::transport::smtp::Error;

/// Whether the server answered (a refusal or a garbled answer) rather than
/// the connection failing before any answer.
fn answered(error: &SmtpError) -> bool {
    error.is_transient() || error.is_permanent() || error.is_response()
}

impl Connection {
    /// Sends one message: pipelined when the server allows it and the
    /// message needs no SMTPUTF8 or 8BITMIME parameter (lettre's own
    /// exchange checks and asks for those). A failed exchange leaves the
    /// connection marked broken, so it is not reused.
    async fn send(&mut self, envelope: &Envelope, bytes: &[u8]) -> Result<Response, SmtpError> {
        let ascii_envelope = envelope
            .from()
            .is_none_or(|a| AsRef::<str>::as_ref(a).is_ascii())
            && envelope
                .to()
                .iter()
                .all(|a| AsRef::<str>::as_ref(a).is_ascii());
        if !self.pipelining || !ascii_envelope || !bytes.is_ascii() {
            return self.smtp.send(envelope, bytes).await;
        }
        let mut group = Mail::new(envelope.from().cloned(), vec![]).to_string();
        for to in envelope.to() {
            group.push_str(&Rcpt::new(to.clone(), vec![]).to_string());
        }
        group.push_str(&Data.to_string());
        // One answer per command; all of them are read, so the first
        // refusal is the one reported.
        let mut refusal = None;
        let mut outcome = Ok(());
        for answer in 0..envelope.to().len() + 2 {
            let read = if answer == 0 {
                self.smtp.command(&group).await
            } else {
                self.smtp.read_response().await
            };
            match read {
                Ok(_) => {}
                Err(e) if answered(&e) => {
                    refusal.get_or_insert(e);
                }
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        if let Some(refusal) = refusal {
            outcome = Err(refusal);
        }
        let sent = match outcome {
            Ok(()) => self.smtp.message(bytes).await,
            Err(e) => Err(e),
        };
        self.broken = sent.is_err();
        sent
    }

    /// Whether it can take another message.
    fn reusable(&self) -> bool {
        !self.broken && !self.smtp.has_broken()
    }
}

macro_rules! text_header {
    ($name:ident, $text:literal) => {
        #[derive(Debug, Clone)]
        struct $name(String);

        impl Header for $name {
            fn name() -> HeaderName {
                HeaderName::new_from_ascii_str($text)
            }

            fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok(Self(s.to_owned()))
            }

            fn display(&self) -> HeaderValue {
                HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}

text_header!(ListUnsubscribe, "List-Unsubscribe");
text_header!(ListUnsubscribePost, "List-Unsubscribe-Post");
text_header!(IdempotencyKey, "X-Beacon-Idempotency-Key");
text_header!(AutoSubmitted, "Auto-Submitted");

impl Provider {
    /// The account a channel config describes.
    pub fn build(channel: &Channel, timeout: Duration) -> Result<Self, SendError> {
        let ChannelProvider::Email {
            from,
            relay,
            secret_env,
            tls,
        } = &channel.provider
        else {
            return Err(SendError::permanent("not an email channel"));
        };
        let bad =
            |what: &str| SendError::permanent(format!("email channel {}: {what}", channel.id));
        let from: Mailbox = from
            .parse()
            .map_err(|_| bad("the sender is not an address"))?;
        let domain = from.email.domain().to_owned();
        let (host, port) = relay
            .rsplit_once(':')
            .and_then(|(h, p)| {
                Some((
                    h.trim_matches(['[', ']']).to_owned(),
                    p.parse::<u16>().ok()?,
                ))
            })
            .ok_or_else(|| bad("the relay is not host:port"))?;
        let credentials = match secret_env {
            None => None,
            Some(name) => {
                // A missing secret is an operator's step away: retryable.
                let secret = env_secret(name).ok_or_else(|| {
                    SendError::retry(format!(
                        "email channel {}: environment variable {name} is not set",
                        channel.id
                    ))
                })?;
                let (user, password) = secret
                    .split_once(':')
                    .ok_or_else(|| bad("its secret must be USER:PASSWORD"))?;
                Some(Credentials::new(user.to_owned(), password.to_owned()))
            }
        };
        Ok(Self {
            host,
            port,
            tls: *tls,
            credentials,
            timeout,
            hello: ClientId::Domain(domain.clone()),
            idle: Mutex::new(Vec::new()),
            from,
            domain,
        })
    }

    /// The message for one delivery.
    pub fn message(&self, delivery: &Delivery<'_>) -> Result<Message, SendError> {
        let to: Mailbox = delivery
            .address
            .parse()
            .map_err(|_| SendError::permanent("the address cannot be used"))?;
        let content = delivery.template.email(delivery.notice, delivery.links);
        // Given, not derived: lettre would parse the From and To headers it
        // just wrote back into addresses.
        let envelope = Envelope::new(Some(self.from.email.clone()), vec![to.email.clone()])
            .map_err(|e| {
                SendError::permanent(format!("cannot build the message: {}", kind_of(&e)))
            })?;
        Message::builder()
            .envelope(envelope)
            .from(self.from.clone())
            .to(to)
            .subject(content.subject)
            .message_id(Some(format!(
                "<{}@{}>",
                &sha256_hex(delivery.key)[..32],
                self.domain
            )))
            .header(ListUnsubscribe(format!("<{}>", delivery.links.unsubscribe)))
            .header(ListUnsubscribePost("List-Unsubscribe=One-Click".to_owned()))
            .header(IdempotencyKey(delivery.key.to_owned()))
            .header(AutoSubmitted("auto-generated".to_owned()))
            .multipart(MultiPart::alternative_plain_html(
                content.text,
                content.html,
            ))
            .map_err(|e| SendError::permanent(format!("cannot build the message: {}", kind_of(&e))))
    }

    fn tls_parameters(&self) -> Result<TlsParameters, lettre::transport::smtp::Error> {
        TlsParameters::new(self.host.clone())
    }

    async fn connect(&self) -> Result<Connection, SendError> {
        let tls_parameters = || {
            self.tls_parameters()
                .map_err(|_| SendError::permanent("smtp: cannot set up TLS for the relay"))
        };
        let mut connection = match self.tls {
            SmtpTls::Tls => AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.timeout),
                &self.hello,
                Some(tls_parameters()?),
                None,
            )
            .await
            .map_err(|e| classify(&e))?,
            SmtpTls::None | SmtpTls::Starttls => {
                let stream = tokio::time::timeout(
                    self.timeout,
                    tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
                )
                .await
                .map_err(|_| SendError::retry("smtp: connecting timed out"))?
                .map_err(|_| SendError::retry("smtp: cannot connect"))?;
                // Without it every message waits for the server's delayed ACK.
                let _ = stream.set_nodelay(true);
                let mut connection =
                    AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                        .await
                        .map_err(|e| classify(&e))?;
                if self.tls == SmtpTls::Starttls {
                    connection
                        .starttls(tls_parameters()?, &self.hello)
                        .await
                        .map_err(|e| classify(&e))?;
                }
                connection
            }
        };
        // lettre keeps only the keywords it knows; PIPELINING is not one.
        let pipelining = connection
            .command(Ehlo::new(self.hello.clone()))
            .await
            .map_err(|e| classify(&e))?
            .message()
            .skip(1)
            .any(|keyword| keyword.trim().eq_ignore_ascii_case("PIPELINING"));
        if let Some(credentials) = &self.credentials {
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|e| classify(&e))?;
        }
        Ok(Connection {
            smtp: connection,
            pipelining,
            broken: false,
        })
    }

    fn take_idle(&self) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((connection, since)) = idle.pop() {
            if since.elapsed() < MAX_IDLE && connection.reusable() {
                return Some(connection);
            }
        }
        None
    }

    /// Sends one delivery.
    pub async fn send(&self, delivery: &Delivery<'_>) -> Result<Accepted, SendError> {
        let message = self.message(delivery)?;
        let envelope = message.envelope().clone();
        let bytes = message.formatted();
        let reused = self.take_idle();
        let fresh = reused.is_none();
        let mut connection = match reused {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        let mut sent = tokio::time::timeout(self.timeout, connection.send(&envelope, &bytes)).await;
        // A reused connection the server closed meanwhile fails before any
        // answer: once more on a fresh one.
        if !fresh && matches!(&sent, Ok(Err(e)) if !answered(e)) {
            connection = self.connect().await?;
            sent = tokio::time::timeout(self.timeout, connection.send(&envelope, &bytes)).await;
        }
        match sent {
            Ok(Ok(response)) => {
                if connection.reusable() {
                    self.idle
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((connection, Instant::now()));
                }
                Ok(Accepted {
                    detail: format!("smtp {}", response.code()),
                })
            }
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(SendError::retry("smtp: timed out")),
        }
    }
}

fn kind_of(error: &lettre::error::Error) -> &'static str {
    match error {
        lettre::error::Error::MissingFrom => "no sender",
        lettre::error::Error::MissingTo => "no recipient",
        lettre::error::Error::TooManyFrom => "several senders",
        lettre::error::Error::EmailMissingAt
        | lettre::error::Error::EmailMissingLocalPart
        | lettre::error::Error::EmailMissingDomain => "bad address",
        _ => "invalid",
    }
}

/// SMTP answers: 4xx and connection trouble retryable, 5xx permanent. The
/// server's text is left out: it often repeats the address.
fn classify(error: &lettre::transport::smtp::Error) -> SendError {
    let code = error.status().map(|c| c.to_string());
    if error.is_permanent() {
        SendError::permanent(format!("smtp {}", code.unwrap_or_else(|| "5xx".into())))
    } else if error.is_transient() {
        SendError::retry(format!("smtp {}", code.unwrap_or_else(|| "4xx".into())))
    } else if error.is_timeout() {
        SendError::retry("smtp: timed out")
    } else if error.is_tls() {
        SendError::retry("smtp: TLS failed")
    } else {
        SendError::retry("smtp: connection failed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_contract::messages::{Impact, IncidentState, Notice, NoticeKind, NoticeSubject};

    fn channel() -> Channel {
        Channel {
            id: "mail".into(),
            provider: ChannelProvider::Email {
                from: "status@example.com".into(),
                relay: "127.0.0.1:2525".into(),
                secret_env: None,
                tls: SmtpTls::None,
            },
            rate_per_second: 10,
            burst: 10,
            concurrency: 2,
            destination_rate_per_second: 5,
        }
    }

    #[tokio::test]
    async fn messages_carry_unsubscribe_headers_and_no_injected_header() {
        let provider = Provider::build(&channel(), Duration::from_secs(1)).expect("builds");
        let page = beacon_page::config::load("[page]\nid = \"demo\"\nname = \"Demo\"\n[[components]]\nid = \"api\"\nname = \"API\"\n")
            .expect("a page");
        let notice = Notice {
            id: "incident-i.0".into(),
            kind: NoticeKind::IncidentCreated,
            page_name: "Demo\r\nBcc: eve@example.com".into(),
            page_url: None,
            subject: NoticeSubject::Incident {
                id: "i".into(),
                title: "API down\r\nX-Injected: yes".into(),
                impact: Impact::Major,
                state: IncidentState::Investigating,
                components: vec![],
                updates: vec![],
                created_at_ms: 0,
                updated_at_ms: 0,
                resolved_at_ms: None,
            },
            at_ms: 0,
            updates: 1,
        };
        let links = crate::render::Links {
            unsubscribe: "https://n.example/unsubscribe?token=a.b".into(),
            confirm: None,
        };
        let template = crate::render::Template::new(
            beacon_contract::messages::ChannelKind::Email,
            &notice,
            "demo",
        );
        let delivery = Delivery {
            page: &page,
            notice: &notice,
            subscriber: "s1",
            address: "ada@example.com",
            key: "incident-i.0:s1:email",
            links: &links,
            template: &template,
        };
        let raw = String::from_utf8(provider.message(&delivery).expect("a message").formatted())
            .expect("utf-8");
        let headers: Vec<&str> = raw
            .split("\r\n\r\n")
            .next()
            .expect("headers")
            .split("\r\n")
            .collect();
        assert!(
            headers.contains(&"List-Unsubscribe: <https://n.example/unsubscribe?token=a.b>"),
            "{raw}"
        );
        assert!(
            headers.contains(&"List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
            "{raw}"
        );
        let message_id = format!(
            "Message-ID: <{}@example.com>",
            &sha256_hex("incident-i.0:s1:email")[..32]
        );
        assert!(headers.iter().any(|h| *h == message_id), "{raw}");
        assert!(
            !headers
                .iter()
                .any(|h| h.starts_with("Bcc:") || h.starts_with("X-Injected:")),
            "{raw}"
        );
        assert!(raw.contains("multipart/alternative"));

        let mut bad = delivery;
        bad.address = "ada@example.com\r\nBcc: eve@example.com";
        assert!(provider.message(&bad).is_err());
    }
}
