//! The static path: every connection starts here, and GET and HEAD of
//! published files are answered here, with large bodies sent by
//! `sendfile(2)` from the version's sealed memfd ([`crate::site`]).
//!
//! # Why by hand
//!
//! Serving a 360 KB page, the edge spent close to half its time in the
//! kernel copying the body from its memory into the socket, where nginx's
//! `sendfile` copies nothing; that copy was the whole of nginx's lead.
//! hyper writes bodies only from memory and has no way to give it a file
//! descriptor, so this module reads request heads itself (with `httparse`,
//! the parser hyper uses), decides with the same function as the hyper
//! path ([`crate::serve::decide`]), writes the head exactly as hyper
//! would, and sends the body with `sendfile(2)` (the head leaves with it,
//! sent with `MSG_MORE`). Small bodies go with their head in one
//! `writev`, which is cheaper than a second system call.
//!
//! It answers only what it fully understands: a complete GET or HEAD head
//! of HTTP/1.0 or 1.1 with no body (`Content-Length`, `Transfer-Encoding`),
//! no `Expect` and no `Upgrade`, a plain origin-form target, and a decision
//! that is a reply. Anything else (event streams, forwarded sign-up, other
//! methods, malformed, oversized or unfinished heads) hands the connection
//! to hyper with the bytes read so far replayed in front of the socket, so
//! hyper answers those, and everything after them on that connection,
//! exactly as it always has. Limits are the hyper path's: a head within
//! [`HEAD_TIMEOUT`] (counted, as hyper does, from when the connection
//! waits for it), at most [`MAX_HEAD_BYTES`] and [`MAX_HEADERS`] lines;
//! and on both paths a client must take its responses at the pace
//! [`crate::pace`] sets, or the connection is closed.

use std::cell::RefCell;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes};
use hyper::header;
use hyper::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::pace::{self, Paced, Progress};
use crate::serve::{
    decide, forward_target, serve_with_hyper, Ask, Decision, Edge, Reply, ReplyBody, HEAD_TIMEOUT,
    MAX_HEADERS, MAX_HEAD_BYTES,
};
use crate::site::Sendable;

/// Bytes asked of the socket per read of a request head.
const READ_CHUNK: usize = 8 * 1024;

/// A request head answered here.
#[derive(Debug)]
struct Answer {
    /// Bytes of the head.
    len: usize,
    reply: Reply,
    /// HEAD: headers only.
    head: bool,
    /// HTTP/1.1 (else 1.0, answered in 1.0, as hyper does).
    http11: bool,
    /// Close after this response.
    close: bool,
}

/// What the buffered bytes call for.
#[derive(Debug)]
enum Step {
    /// A head not yet complete.
    Partial,
    /// A head answered here.
    Answer(Answer),
    /// A head hyper answers (or rejects).
    Handoff,
}

/// Serves a connection: answers what it can, then hands the rest to hyper.
pub async fn serve(mut stream: TcpStream, edge: Arc<Edge>, peer: SocketAddr) {
    let mut buffer: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(2048);
    let mut progress = Standing::new(edge.pace);
    loop {
        // Like hyper's header timeout: from when the connection waits for
        // a head, idle keep-alive time included.
        let deadline = Instant::now() + HEAD_TIMEOUT;
        let answer = loop {
            if !buffer.is_empty() {
                match step(&edge, &buffer) {
                    Step::Answer(answer) => break answer,
                    Step::Handoff => return handoff(stream, buffer, edge, peer).await,
                    Step::Partial if buffer.len() >= MAX_HEAD_BYTES => {
                        return handoff(stream, buffer, edge, peer).await;
                    }
                    Step::Partial => {}
                }
            }
            let want = READ_CHUNK.min(MAX_HEAD_BYTES.saturating_sub(buffer.len()));
            buffer.reserve(want);
            let mut limited = (&mut buffer).limit(want);
            let read = tokio::time::timeout_at(deadline, stream.read_buf(&mut limited)).await;
            match read {
                // End of input: quietly between requests; mid-head, hyper
                // says what it says of a cut-off head.
                Ok(Ok(0)) if buffer.is_empty() => return,
                Ok(Ok(0)) => return handoff(stream, buffer, edge, peer).await,
                Ok(Ok(_)) => {}
                // Timed out or failed: closed without an answer, as hyper does.
                Err(_) | Ok(Err(_)) => return,
            }
        };
        buffer.drain(..answer.len);
        edge.counters.count(answer.reply.status);
        out.clear();
        write_head(&mut out, &answer);
        let sent = send(&stream, &out, &answer, &mut progress).await;
        if sent.is_err() {
            return;
        }
        progress.finished();
        if answer.close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// Hands the connection to hyper, `read` replayed first.
async fn handoff(stream: TcpStream, read: Vec<u8>, edge: Arc<Edge>, peer: SocketAddr) {
    let io = Replay {
        prefix: Bytes::from(read),
        stream,
    };
    let pace = edge.pace;
    serve_with_hyper(Paced::new(io, pace), edge, peer).await;
}

/// Reads one request head from `buffer` and decides what to do with it.
fn step(edge: &Edge, buffer: &[u8]) -> Step {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buffer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Step::Partial,
        Err(_) => return Step::Handoff,
    };
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Step::Handoff;
    };
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Step::Handoff,
    };
    let Some(path) = plain_path(target) else {
        return Step::Handoff;
    };
    let http11 = version == 1;
    // hyper's reading of `Connection`: HTTP/1.1 stays open unless a line
    // says `close`; HTTP/1.0 closes unless one says `keep-alive` (and
    // none `close`).
    let mut keep_alive = http11;
    let mut said_close = false;
    let mut host = None;
    let mut accept_encoding = None;
    let mut if_none_match = None;
    for line in request.headers.iter() {
        let name = line.name;
        let is = |other: &header::HeaderName| name.eq_ignore_ascii_case(other.as_str());
        if is(&header::CONTENT_LENGTH)
            || is(&header::TRANSFER_ENCODING)
            || is(&header::EXPECT)
            || is(&header::UPGRADE)
        {
            return Step::Handoff;
        }
        if is(&header::CONNECTION) {
            if said_close || has_token(line.value, "close") {
                said_close = true;
                keep_alive = false;
            } else if !keep_alive {
                keep_alive = has_token(line.value, "keep-alive");
            }
        } else if is(&header::HOST) {
            host.get_or_insert(text(line.value));
        } else if is(&header::ACCEPT_ENCODING) {
            accept_encoding.get_or_insert(text(line.value));
        } else if is(&header::IF_NONE_MATCH) {
            if_none_match.get_or_insert(text(line.value));
        }
    }
    let ask = Ask {
        method,
        path,
        host: host.flatten(),
        accept_encoding: accept_encoding.flatten(),
        if_none_match: if_none_match.flatten(),
    };
    if forward_target(edge, &ask).is_some() {
        return Step::Handoff;
    }
    match decide(edge, &ask) {
        Decision::Reply(reply) => Step::Answer(Answer {
            len,
            reply,
            head,
            http11,
            close: !keep_alive,
        }),
        Decision::Events(_) => Step::Handoff,
    }
}

/// The path of an origin-form target whose every byte is one the URI
/// parser hyper uses takes as is, so the path is what hyper would give;
/// `None` for anything else, left to hyper.
fn plain_path(target: &str) -> Option<&str> {
    if !target.starts_with('/') {
        return None;
    }
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@%?".contains(&b);
    if !target.bytes().all(plain) {
        return None;
    }
    Some(target.split_once('?').map_or(target, |(path, _)| path))
}

/// A header value as `HeaderValue::to_str` gives it: visible ASCII (and
/// tabs), else nothing.
fn text(value: &[u8]) -> Option<&str> {
    if value
        .iter()
        .all(|&b| b == b'\t' || (b' '..0x7f).contains(&b))
    {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// Whether a comma-separated header value holds `token` (as hyper reads
/// `Connection`).
fn has_token(value: &[u8], token: &str) -> bool {
    text(value).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Whether a status may carry a body or a length (hyper's rules).
fn bodiless(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// Writes the response head exactly as hyper writes it for the same
/// response: status line, the headers in their map order, `connection`
/// when it departs from the version's default, the length hyper adds,
/// `date`.
fn write_head(out: &mut Vec<u8>, answer: &Answer) {
    let reply = &answer.reply;
    if answer.http11 {
        if reply.status == StatusCode::OK {
            out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        } else {
            out.extend_from_slice(b"HTTP/1.1 ");
            status_line(out, reply.status);
        }
    } else {
        out.extend_from_slice(b"HTTP/1.0 ");
        status_line(out, reply.status);
    }
    let mut wrote_length = false;
    for (name, value) in &reply.headers {
        if name == header::CONTENT_LENGTH {
            // hyper drops a length on an empty body except for HEAD.
            if reply.body.is_empty() && !answer.head {
                continue;
            }
            wrote_length = true;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // hyper says when it departs from the version's default.
    match (answer.http11, answer.close) {
        (true, true) => out.extend_from_slice(b"connection: close\r\n"),
        (false, false) => out.extend_from_slice(b"connection: keep-alive\r\n"),
        _ => {}
    }
    let len = reply.body.len();
    if !wrote_length && !bodiless(reply.status) && (len > 0 || !answer.head) {
        // Writing to a Vec cannot fail.
        let _ = write!(out, "content-length: {len}\r\n");
    }
    out.extend_from_slice(b"date: ");
    date(out);
    out.extend_from_slice(b"\r\n\r\n");
}

fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    out.extend_from_slice(b"\r\n");
}

thread_local! {
    /// The `Date` value of the current second (hyper keeps one the same way).
    static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Appends the current `Date` value.
fn date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            *cached = (second, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(cached.1.as_bytes());
    });
}

/// Sends the head in `out` and the body, if the response has one, at the
/// client's [`Pace`](crate::pace::Pace).
async fn send(
    stream: &TcpStream,
    out: &[u8],
    answer: &Answer,
    progress: &mut Standing,
) -> io::Result<()> {
    let with_body = !answer.head && !bodiless(answer.reply.status);
    match &answer.reply.body {
        ReplyBody::File(bytes, Some(sendable)) if with_body => {
            send_more(stream, out, progress).await?;
            let sent = send_file(stream, sendable, progress).await?;
            if sent < bytes.len() {
                // sendfile(2) refused this memfd (a kernel or sandbox
                // without it): the rest from memory, as before.
                write_all(stream, &bytes[sent..], progress).await?;
            }
            Ok(())
        }
        ReplyBody::Text(text) if with_body => {
            write_both(stream, out, text.as_bytes(), progress).await
        }
        ReplyBody::File(bytes, _) if with_body => write_both(stream, out, bytes, progress).await,
        _ => write_all(stream, out, progress).await,
    }
}

/// A connection's standing against its pace, and the one timer its
/// blocked writes share. Arming a timer for every wait cost the
/// uncompressed page a third of its rate (nearly every response of it
/// waits for the socket at least once); this one is armed when the
/// connection first blocks and moved only when it fires before the
/// deadline of the moment, about once a grace.
struct Standing {
    progress: Progress,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Standing {
    fn new(pace: pace::Pace) -> Self {
        Self {
            progress: Progress::new(pace),
            timer: None,
        }
    }

    fn wrote(&mut self, bytes: usize) {
        self.progress.wrote(bytes);
    }

    fn finished(&mut self) {
        self.progress.finished();
    }
}

/// Waits until the socket takes bytes again, for as long as the client's
/// pace allows.
async fn wait_writable(stream: &TcpStream, standing: &mut Standing) -> io::Result<()> {
    let deadline = standing.progress.blocked(Instant::now());
    // A deadline only ever moves later, so the timer, set to an earlier
    // one, fires early at worst and is then moved to this one.
    let timer = standing
        .timer
        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    loop {
        tokio::select! {
            biased;
            ready = stream.writable() => return ready,
            () = timer.as_mut() => {
                if Instant::now() >= deadline {
                    return Err(pace::too_slow());
                }
                timer.as_mut().reset(deadline);
            }
        }
    }
}

/// Writes `total` bytes with `write`, which is given how many are done
/// and writes what the socket takes of the rest; waits for the socket at
/// the client's pace. Returns how many were written (`write` may take
/// more than `total` when it writes beyond, as `writev` does).
async fn paced(
    stream: &TcpStream,
    progress: &mut Standing,
    total: usize,
    mut write: impl FnMut(usize) -> io::Result<usize>,
) -> io::Result<usize> {
    let mut done = 0;
    while done < total {
        match write(done) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                done += n;
                progress.wrote(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_writable(stream, progress).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Writes all of `bytes`.
async fn write_all(stream: &TcpStream, bytes: &[u8], progress: &mut Standing) -> io::Result<()> {
    paced(stream, progress, bytes.len(), |done| {
        stream.try_write(&bytes[done..])
    })
    .await
    .map(drop)
}

/// Writes head and body with `writev`, as hyper does: one system call
/// when the socket takes it all, and no copy of the body into a buffer
/// each connection would keep.
async fn write_both(
    stream: &TcpStream,
    head: &[u8],
    body: &[u8],
    progress: &mut Standing,
) -> io::Result<()> {
    let done = paced(stream, progress, head.len(), |done| {
        stream.try_write_vectored(&[io::IoSlice::new(&head[done..]), io::IoSlice::new(body)])
    })
    .await?;
    write_all(stream, &body[done - head.len()..], progress).await
}

/// Sends `bytes` with `MSG_MORE`, so they leave in the same segment as the
/// body that follows.
async fn send_more(stream: &TcpStream, bytes: &[u8], progress: &mut Standing) -> io::Result<()> {
    let flags = rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL;
    paced(stream, progress, bytes.len(), |done| {
        stream.try_io(Interest::WRITABLE, || {
            rustix::net::send(stream, &bytes[done..], flags).map_err(io::Error::from)
        })
    })
    .await
    .map(drop)
}

/// Sends a body from its memfd with `sendfile(2)`: the kernel moves the
/// pages to the socket without copying them through this process. Returns
/// the bytes sent: all of them, or fewer if `sendfile(2)` is refused
/// (`EINVAL`, `ENOSYS`), for the caller to write the rest.
async fn send_file(
    stream: &TcpStream,
    body: &Sendable,
    progress: &mut Standing,
) -> io::Result<usize> {
    let mut offset = body.offset;
    let end = body.offset + body.len as u64;
    while offset < end {
        let left = usize::try_from(end - offset).unwrap_or(usize::MAX);
        let before = offset;
        match stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream, &*body.file, Some(&mut offset), left)
                .map_err(io::Error::from)
        }) {
            // The memfd is sealed and holds the body: nothing sent means
            // the memfd is not what it should be; stop rather than spin.
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => progress.wrote(usize::try_from(offset - before).unwrap_or(0)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_writable(stream, progress).await?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
                ) =>
            {
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(usize::try_from(offset - body.offset).unwrap_or(0))
}

/// The socket, with the bytes already read given back first: how a
/// connection reaches hyper mid-stream.
struct Replay {
    prefix: Bytes,
    stream: TcpStream,
}

impl AsyncRead for Replay {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.is_empty() {
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        }
        let n = this.prefix.len().min(buf.remaining());
        buf.put_slice(&this.prefix.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_origin_form_targets_are_read_here() {
        assert_eq!(plain_path("/"), Some("/"));
        assert_eq!(plain_path("/a/b.json?x=1&y"), Some("/a/b.json"));
        assert_eq!(plain_path("/%2e%2e/x"), Some("/%2e%2e/x"));
        for other in ["*", "http://x/", "/a#b", "/a\"b", "/{x}", "/a|b", "/é"] {
            assert_eq!(plain_path(other), None, "{other}");
        }
    }

    #[test]
    fn header_values_read_like_hyper() {
        assert_eq!(text(b"gzip, br"), Some("gzip, br"));
        assert_eq!(text(b"a\tb"), Some("a\tb"));
        assert_eq!(text(b"caf\xc3\xa9"), None);
        assert_eq!(text(b"a\x7fb"), None);
        assert!(has_token(b"keep-alive, Close", "close"));
        assert!(!has_token(b"closed", "close"));
    }
}
