//! Email over SMTP with lettre: one pooled transport per account (relay,
//! credentials, TLS mode), multipart text and HTML, RFC 8058
//! `List-Unsubscribe` and `List-Unsubscribe-Post` headers, and a
//! `Message-ID` derived from the idempotency key so a receiving system can
//! tell a repeat from a new message.
//!
//! Headers: the subject is flattened to one line without control
//! characters before lettre encodes it (RFC 2047 for anything non-ASCII);
//! the recipient is a validated plain address (no display name), so no
//! field a subscriber or operator wrote can start a header of its own.

use std::time::Duration;

use beacon_core::config::{Channel, ChannelProvider, SmtpTls};
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Accepted, Delivery, SendError};
use crate::context::env_secret;
use crate::render;
use crate::signing::sha256_hex;

/// One SMTP account.
pub struct Provider {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    domain: String,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("email::Provider").field("domain", &self.domain).finish()
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
        let bad = |what: &str| SendError::permanent(format!("email channel {}: {what}", channel.id));
        let from: Mailbox = from.parse().map_err(|_| bad("the sender is not an address"))?;
        let domain = from.email.domain().to_owned();
        let (host, port) = relay
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
            .ok_or_else(|| bad("the relay is not host:port"))?;
        let tls_parameters = || {
            TlsParameters::new(host.to_owned()).map_err(|_| bad("cannot set up TLS for the relay"))
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(timeout))
            .hello_name(ClientId::Domain(domain.clone()))
            .pool_config(PoolConfig::new().max_size(channel.concurrency.max(1)));
        builder = match tls {
            SmtpTls::Starttls => builder.tls(Tls::Required(tls_parameters()?)),
            SmtpTls::Tls => builder.tls(Tls::Wrapper(tls_parameters()?)),
            SmtpTls::None => builder.tls(Tls::None),
        };
        if let Some(name) = secret_env {
            // A missing secret is an operator's step away: retryable.
            let secret = env_secret(name).ok_or_else(|| {
                SendError::retry(format!("email channel {}: environment variable {name} is not set", channel.id))
            })?;
            let (user, password) = secret
                .split_once(':')
                .ok_or_else(|| bad("its secret must be USER:PASSWORD"))?;
            builder = builder.credentials(Credentials::new(user.to_owned(), password.to_owned()));
        }
        Ok(Self {
            transport: builder.build(),
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
        let content = render::email(delivery.notice, delivery.links);
        Message::builder()
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
            .multipart(MultiPart::alternative_plain_html(content.text, content.html))
            .map_err(|e| SendError::permanent(format!("cannot build the message: {}", kind_of(&e))))
    }

    /// Sends one delivery.
    pub async fn send(&self, delivery: &Delivery<'_>) -> Result<Accepted, SendError> {
        let message = self.message(delivery)?;
        match self.transport.send(message).await {
            Ok(response) => Ok(Accepted {
                detail: format!("smtp {}", response.code()),
            }),
            Err(e) => Err(classify(&e)),
        }
    }
}

fn kind_of(error: &lettre::error::Error) -> &'static str {
    match error {
        lettre::error::Error::MissingFrom => "no sender",
        lettre::error::Error::MissingTo => "no recipient",
        lettre::error::Error::TooManyFrom => "several senders",
        lettre::error::Error::EmailMissingAt | lettre::error::Error::EmailMissingLocalPart | lettre::error::Error::EmailMissingDomain => {
            "bad address"
        }
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
    use beacon_core::messages::{Impact, IncidentState, Notice, NoticeKind, NoticeSubject};

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
        let page = beacon_core::config::load("[page]\nid = \"demo\"\nname = \"Demo\"\n[[components]]\nid = \"api\"\nname = \"API\"\n")
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
        let links = render::Links {
            unsubscribe: "https://n.example/unsubscribe?token=a.b".into(),
            confirm: None,
        };
        let delivery = Delivery {
            page: &page,
            notice: &notice,
            subscriber: "s1",
            address: "ada@example.com",
            key: "incident-i.0:s1:email",
            links: &links,
        };
        let raw = String::from_utf8(provider.message(&delivery).expect("a message").formatted()).expect("utf-8");
        let headers: Vec<&str> = raw.split("\r\n\r\n").next().expect("headers").split("\r\n").collect();
        assert!(headers.iter().any(|h| *h == "List-Unsubscribe: <https://n.example/unsubscribe?token=a.b>"), "{raw}");
        assert!(headers.iter().any(|h| *h == "List-Unsubscribe-Post: List-Unsubscribe=One-Click"), "{raw}");
        let message_id = format!("Message-ID: <{}@example.com>", &sha256_hex("incident-i.0:s1:email")[..32]);
        assert!(headers.iter().any(|h| *h == message_id), "{raw}");
        assert!(!headers.iter().any(|h| h.starts_with("Bcc:") || h.starts_with("X-Injected:")), "{raw}");
        assert!(raw.contains("multipart/alternative"));

        let mut bad = delivery;
        bad.address = "ada@example.com\r\nBcc: eve@example.com";
        assert!(provider.message(&bad).is_err());
    }
}
