//! Loopback receivers that remember every delivery by its idempotency key:
//! an SMTP server (the key is the `X-Beacon-Idempotency-Key` header) and
//! one HTTP server for webhooks, Slack, Teams and the Twilio Messages API
//! (the `Idempotency-Key` header, or a webhook body's `meta.idempotency_key`).
//!
//! They keep only the key and how often it came, not the message, so a
//! run with hundreds of thousands of deliveries stays small; the testkit's
//! receivers, which keep whole messages for tests to read, would not.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::error::LoadError;

/// Header the notifier's email carries its key in.
const EMAIL_KEY_HEADER: &str = "x-beacon-idempotency-key";

/// Every delivery received, by idempotency key, and when each repeat came.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    keys: Arc<Mutex<HashMap<String, u32>>>,
    repeats: Arc<Mutex<Vec<(std::time::Instant, String)>>>,
}

impl Tally {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, u32>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one delivery of `key`.
    pub fn count(&self, key: &str) {
        let times = {
            let mut keys = self.lock();
            let times = keys.entry(key.to_owned()).or_default();
            *times += 1;
            *times
        };
        if times > 1 {
            let channel = key.rsplit(':').next().unwrap_or_default().to_owned();
            self.repeats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((std::time::Instant::now(), channel));
        }
    }

    /// When each repeat came, and on which channel.
    pub fn repeats(&self) -> Vec<(std::time::Instant, String)> {
        self.repeats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Distinct keys received.
    pub fn distinct(&self) -> usize {
        self.lock().len()
    }

    /// Every key and how often it came.
    pub fn snapshot(&self) -> HashMap<String, u32> {
        self.lock().clone()
    }
}

/// The running receivers.
pub struct Receivers {
    /// What they received.
    pub tally: Tally,
    /// `host:port` of the SMTP server.
    pub smtp: SocketAddr,
    /// `host:port` of the HTTP server.
    pub http: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Receivers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Receivers {
    /// Starts both on free loopback ports.
    pub async fn start() -> Result<Receivers, LoadError> {
        let tally = Tally::default();
        let bind = |what: &'static str| async move {
            TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| LoadError::Unexpected(format!("bind the {what} receiver: {e}")))
        };
        let smtp_listener = bind("SMTP").await?;
        let http_listener = bind("HTTP").await?;
        let address = |l: &TcpListener| {
            l.local_addr()
                .map_err(|e| LoadError::Unexpected(e.to_string()))
        };
        let smtp = address(&smtp_listener)?;
        let http = address(&http_listener)?;
        let smtp_task = tokio::spawn(serve_smtp(smtp_listener, tally.clone()));
        let http_task = tokio::spawn(serve_http(http_listener, tally.clone()));
        Ok(Receivers {
            tally,
            smtp,
            http,
            tasks: vec![smtp_task, http_task],
        })
    }
}

async fn serve_smtp(listener: TcpListener, tally: Tally) {
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let tally = tally.clone();
        tokio::spawn(async move {
            // A session that breaks off (the notifier was killed) is just over.
            let _ = smtp_session(socket, tally).await;
        });
    }
}

/// One SMTP session: every command is accepted; a message counts once its
/// final dot has been answered with 250, as a real server's would.
async fn smtp_session(socket: TcpStream, tally: Tally) -> std::io::Result<()> {
    let _ = socket.set_nodelay(true);
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 chaos.example ESMTP\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => {
                write
                    .write_all(
                        b"250-chaos.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
                    )
                    .await?
            }
            "DATA" => {
                write.write_all(b"354 go ahead\r\n").await?;
                let key = read_message(&mut lines).await?;
                write.write_all(b"250 queued\r\n").await?;
                if let Some(key) = key {
                    tally.count(&key);
                }
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => write.write_all(b"250 ok\r\n").await?,
        }
    }
}

/// Reads a message up to its final dot; returns its idempotency key, whose
/// header may be folded over several lines.
async fn read_message(
    lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    let mut in_headers = true;
    let mut key: Option<String> = None;
    let mut reading_key = false;
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let text = line.trim_end_matches(['\r', '\n']);
        if text == "." {
            return Ok(key);
        }
        if !in_headers {
            continue;
        }
        if text.is_empty() {
            in_headers = false;
            continue;
        }
        if text.starts_with([' ', '\t']) {
            if reading_key {
                if let Some(key) = key.as_mut() {
                    key.push_str(text.trim());
                }
            }
            continue;
        }
        reading_key = false;
        if let Some((name, value)) = text.split_once(':') {
            if name.trim().eq_ignore_ascii_case(EMAIL_KEY_HEADER) {
                key = Some(value.trim().to_owned());
                reading_key = true;
            }
        }
    }
}

async fn serve_http(listener: TcpListener, tally: Tally) {
    let app = axum::Router::new().fallback(
        move |headers: axum::http::HeaderMap, uri: axum::http::Uri, body: axum::body::Bytes| {
            let tally = tally.clone();
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
                    .or_else(|| {
                        serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|v| v["meta"]["idempotency_key"].as_str().map(str::to_owned))
                    });
                if let Some(key) = key {
                    tally.count(&key);
                }
                if uri.path().ends_with("/Messages.json") {
                    (
                        axum::http::StatusCode::CREATED,
                        [("content-type", "application/json")],
                        crate::notifier::TWILIO_ACCEPTED,
                    )
                } else {
                    (
                        axum::http::StatusCode::OK,
                        [("content-type", "text/plain")],
                        "ok",
                    )
                }
            }
        },
    );
    let _ = axum::serve(listener, app).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_folded_key_header_is_read_whole_and_counted_after_the_dot() {
        let receivers = Receivers::start().await.expect("receivers");
        let socket = TcpStream::connect(receivers.smtp).await.expect("connect");
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read);
        let mut line = String::new();
        write
            .write_all(
                b"EHLO me\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n",
            )
            .await
            .expect("write");
        write
            .write_all(b"Subject: x\r\nX-Beacon-Idempotency-Key: incident-01abc.0:\r\n 01sub:email\r\n\r\nbody\r\n.\r\nQUIT\r\n")
            .await
            .expect("write");
        let mut seen = String::new();
        while lines.read_line(&mut line).await.expect("read") > 0 {
            seen.push_str(&line);
            line.clear();
        }
        assert!(seen.contains("250 queued"), "{seen}");
        assert_eq!(
            receivers
                .tally
                .snapshot()
                .get("incident-01abc.0:01sub:email"),
            Some(&1)
        );
    }
}
