//! A loopback SMTP server: greets, answers EHLO, MAIL, RCPT, DATA (with
//! dot-unstuffing), RSET, NOOP and QUIT, and keeps every accepted message.
//! It advertises `PIPELINING` (RFC 2920) unless started without it, and,
//! as that RFC asks, refuses a `DATA` that follows no accepted recipient.
//! A test may script refusals: a transient 451 for the next N messages, or
//! a permanent 550 for one recipient.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Mail {
    /// `MAIL FROM` address.
    pub from: String,
    /// `RCPT TO` addresses.
    pub to: Vec<String>,
    /// The message as sent (headers and body, CRLF line ends).
    pub data: String,
    /// When it was accepted.
    pub at: Instant,
}

impl Mail {
    /// The value of the first header `name` (case-insensitive), unfolded
    /// as RFC 5322 (2.2.3) says: the line break goes, the whitespace after
    /// it stays (it separates the words, and RFC 2047 encoded words).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(current) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    current.push_str(line);
                    continue;
                }
                return value;
            }
            if let Some((key, rest)) = line.split_once(':') {
                if key.eq_ignore_ascii_case(name) {
                    value = Some(rest.trim().to_owned());
                }
            }
        }
        value
    }

    /// Every part's body, decoded (quoted-printable and base64 undone), one
    /// after another: what a reader sees, for finding links in a message.
    pub fn decoded(&self) -> String {
        let Some((head, body)) = self.data.split_once("\r\n\r\n") else {
            return String::new();
        };
        let boundary = head.split("boundary=").nth(1).map(|b| {
            b.split([';', '\r'])
                .next()
                .unwrap_or("")
                .trim_matches('"')
                .to_owned()
        });
        let Some(boundary) = boundary else {
            let encoding = self.header("Content-Transfer-Encoding").unwrap_or_default();
            return decode_part(&encoding, body);
        };
        let mut out = String::new();
        for part in body.split(&format!("--{boundary}")) {
            let Some((part_head, part_body)) = part.split_once("\r\n\r\n") else {
                continue;
            };
            let encoding = part_head
                .split("\r\n")
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-transfer-encoding")
                        .then(|| v.trim().to_owned())
                })
                .unwrap_or_default();
            out.push_str(&decode_part(&encoding, part_body));
            out.push('\n');
        }
        out
    }

    /// Every header name, in order.
    pub fn header_names(&self) -> Vec<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        head.split("\r\n")
            .filter(|l| !l.starts_with([' ', '\t']))
            .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_owned()))
            .collect()
    }
}

#[derive(Debug, Default)]
struct Script {
    transient_failures: usize,
    refused_recipients: Vec<String>,
    /// `MAIL` commands that arrived with the next command already behind
    /// them, before any answer: the client pipelined.
    pipelined: usize,
}

/// The server.
pub struct SmtpSink {
    port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
    script: Arc<Mutex<Script>>,
    task: JoinHandle<()>,
}

impl SmtpSink {
    /// Starts it on a free loopback port.
    pub async fn start() -> SmtpSink {
        Self::start_on("127.0.0.1:0")
            .await
            .expect("bind SMTP on a free loopback port")
    }

    /// Starts it on a free loopback port, not advertising `PIPELINING`.
    pub async fn start_without_pipelining() -> SmtpSink {
        Self::listen("127.0.0.1:0", false)
            .await
            .expect("bind SMTP on a free loopback port")
    }

    /// Starts it on `address` (the demo's mail catcher has a fixed port).
    pub async fn start_on(address: &str) -> std::io::Result<SmtpSink> {
        Self::listen(address, true).await
    }

    async fn listen(address: &str, pipelining: bool) -> std::io::Result<SmtpSink> {
        let listener = TcpListener::bind(address).await?;
        let port = listener.local_addr()?.port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(Script::default()));
        let (m, s) = (mails.clone(), script.clone());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(session(socket, pipelining, m.clone(), s.clone()));
            }
        });
        Ok(SmtpSink {
            port,
            mails,
            script,
            task,
        })
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, as a channel's `endpoint`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every accepted message so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("mails").clone()
    }

    /// How many messages were accepted.
    pub fn count(&self) -> usize {
        self.mails.lock().expect("mails").len()
    }

    /// Answers the next `n` messages with `451` (try again later).
    pub fn fail_next(&self, n: usize) {
        self.script.lock().expect("script").transient_failures = n;
    }

    /// How many transactions the clients pipelined: a `MAIL` command that
    /// arrived with the next command already behind it.
    pub fn pipelined(&self) -> usize {
        self.script.lock().expect("script").pipelined
    }

    /// Refuses `address` for good (`550`).
    pub fn refuse(&self, address: &str) {
        self.script
            .lock()
            .expect("script")
            .refused_recipients
            .push(address.to_owned());
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn session(
    socket: TcpStream,
    pipelining: bool,
    mails: Arc<Mutex<Vec<Mail>>>,
    script: Arc<Mutex<Script>>,
) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    if write.write_all(b"220 sink ESMTP ready\r\n").await.is_err() {
        return;
    }
    let mut from = String::new();
    let mut to: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") && pipelining {
            b"250-sink\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 SIZE 10485760\r\n"
        } else if upper.starts_with("EHLO") {
            b"250-sink\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n"
        } else if upper.starts_with("HELO") {
            b"250 sink\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            if !lines.buffer().is_empty() {
                script.lock().expect("script").pipelined += 1;
            }
            from = address_of(&command[10..]);
            to.clear();
            b"250 2.1.0 ok\r\n"
        } else if upper.starts_with("RCPT TO:") {
            let address = address_of(&command[8..]);
            if script
                .lock()
                .expect("script")
                .refused_recipients
                .contains(&address)
            {
                b"550 5.1.1 mailbox unavailable\r\n"
            } else {
                to.push(address);
                b"250 2.1.5 ok\r\n"
            }
        } else if upper == "DATA" && to.is_empty() {
            b"554 5.5.1 no valid recipients\r\n"
        } else if upper == "DATA" {
            if write.write_all(b"354 go ahead\r\n").await.is_err() {
                return;
            }
            let mut data = String::new();
            loop {
                line.clear();
                match lines.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                data.push_str(unstuffed);
            }
            let fail = {
                let mut script = script.lock().expect("script");
                if script.transient_failures > 0 {
                    script.transient_failures -= 1;
                    true
                } else {
                    false
                }
            };
            if fail {
                b"451 4.3.0 try again later\r\n"
            } else {
                mails.lock().expect("mails").push(Mail {
                    from: from.clone(),
                    to: std::mem::take(&mut to),
                    data,
                    at: Instant::now(),
                });
                b"250 2.0.0 queued\r\n"
            }
        } else if upper == "RSET" {
            from.clear();
            to.clear();
            b"250 2.0.0 ok\r\n"
        } else if upper == "NOOP" {
            b"250 2.0.0 ok\r\n"
        } else if upper == "QUIT" {
            let _ = write.write_all(b"221 2.0.0 bye\r\n").await;
            return;
        } else {
            b"502 5.5.2 command not recognized\r\n"
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

fn decode_part(encoding: &str, body: &str) -> String {
    use base64::Engine;
    if encoding.eq_ignore_ascii_case("base64") {
        let compact: String = body.split_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .unwrap_or_default();
        return String::from_utf8_lossy(&bytes).into_owned();
    }
    if encoding.eq_ignore_ascii_case("quoted-printable") {
        let joined = body.replace("=\r\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' && i + 2 < bytes.len() {
                if let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        return String::from_utf8_lossy(&out).into_owned();
    }
    body.to_owned()
}

fn address_of(text: &str) -> String {
    let text = text.trim();
    let inner = text
        .strip_prefix('<')
        .and_then(|t| t.split_once('>').map(|(a, _)| a))
        .unwrap_or(text);
    inner.split_whitespace().next().unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
    use super::Mail;

    #[test]
    fn a_long_non_ascii_subject_survives_folding_and_a_standard_parser() {
        let subject = "Störung: Zahlungsabwicklung und Anmeldung teilweise nicht erreichbar — \
                       wir arbeiten daran, 東京リージョン";
        let message = lettre::Message::builder()
            .from("status@example.com".parse().expect("from"))
            .to("reader@example.com".parse().expect("to"))
            .subject(subject)
            .body(String::from("x"))
            .expect("message");
        let data = String::from_utf8(message.formatted()).expect("ascii");
        assert!(
            data.contains("\r\n "),
            "the subject is long enough to be folded: {data}"
        );
        let mail = Mail {
            from: String::new(),
            to: Vec::new(),
            data,
            at: std::time::Instant::now(),
        };
        let unfolded = mail.header("Subject").expect("a subject");
        let reparsed = format!("Subject: {unfolded}\r\n\r\n");
        let parsed = mail_parser::MessageParser::default()
            .parse(reparsed.as_bytes())
            .expect("parses");
        assert_eq!(parsed.subject(), Some(subject));
    }
}
