//! The least a reader must take: a write deadline by minimum throughput.
//!
//! A client that asks for pages and never reads them (a few pipelined GETs
//! of a large page are enough) would otherwise hold its connection, its
//! connection permit and the version's memory forever. So whenever a
//! response cannot be written because the client's socket is full, the
//! client has [`Pace::grace`] to take at least [`MIN_PROGRESS_BYTES`] of it
//! (or the rest of the response, if that is less); each time it does, it
//! gets another grace. A connection that falls behind is closed.
//!
//! Time only counts while a write waits, so idle keep-alive connections and
//! event streams with nothing to send are never cut; an event stream whose
//! client stopped reading is, once its socket is full.
//!
//! [`Progress`] is the pure bookkeeping; [`Paced`] applies it to anything
//! hyper writes to, and [`crate::direct`] applies it to its own writes and
//! `sendfile(2)`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What a blocked response must have taken within a grace to get another.
pub const MIN_PROGRESS_BYTES: usize = 16 * 1024;

/// Default grace (`--write-timeout`).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// The pace every connection is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// How long a blocked write may wait for [`MIN_PROGRESS_BYTES`].
    pub grace: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            grace: DEFAULT_GRACE,
        }
    }
}

/// One connection's standing against its [`Pace`].
#[derive(Debug, Clone)]
pub struct Progress {
    pace: Pace,
    /// While writes are blocked: since when, and what was taken since.
    blocked: Option<(Instant, usize)>,
}

impl Progress {
    /// A connection that owes nothing.
    pub fn new(pace: Pace) -> Self {
        Self {
            pace,
            blocked: None,
        }
    }

    /// `bytes` were written.
    pub fn wrote(&mut self, bytes: usize) {
        if let Some((_, taken)) = &mut self.blocked {
            *taken += bytes;
            if *taken >= MIN_PROGRESS_BYTES {
                self.blocked = None;
            }
        }
    }

    /// A response was written whole: the client kept up with it.
    pub fn finished(&mut self) {
        self.blocked = None;
    }

    /// A write must wait: until when it may.
    pub fn blocked(&mut self, now: Instant) -> Instant {
        let (since, _) = self.blocked.get_or_insert((now, 0));
        *since + self.pace.grace
    }
}

/// The error of a connection that fell behind.
pub fn too_slow() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the client took too little of its responses",
    )
}

/// An I/O object whose writes are held to a [`Pace`]; reads pass through.
pub struct Paced<I> {
    inner: I,
    progress: Progress,
    deadline: Option<Instant>,
    sleep: Pin<Box<Sleep>>,
}

impl<I> Paced<I> {
    /// Wraps `inner`.
    pub fn new(inner: I, pace: Pace) -> Self {
        Self {
            inner,
            progress: Progress::new(pace),
            deadline: None,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// Accounts for one poll of a write: progress, or a wait that may have
    /// outlived its grace.
    fn account(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(n)) => {
                self.progress.wrote(n);
                self.deadline = None;
                Poll::Ready(Ok(n))
            }
            Poll::Pending => {
                let deadline = self.progress.blocked(Instant::now());
                if self.deadline != Some(deadline) {
                    self.deadline = Some(deadline);
                    self.sleep.as_mut().reset(deadline);
                }
                match self.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(too_slow())),
                    Poll::Pending => Poll::Pending,
                }
            }
            other => other,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Paced<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Paced<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.account(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.account(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_client_gets_a_grace_and_another_for_each_chunk_it_takes() {
        let pace = Pace {
            grace: Duration::from_secs(10),
        };
        let start = Instant::now();
        let mut progress = Progress::new(pace);
        // Writes that never block owe nothing.
        progress.wrote(100);
        assert_eq!(progress.blocked(start), start + pace.grace);
        // Still blocked later: the same deadline, counted from the first wait.
        assert_eq!(
            progress.blocked(start + Duration::from_secs(5)),
            start + pace.grace
        );
        // A trickle below the minimum does not buy more time.
        progress.wrote(MIN_PROGRESS_BYTES - 1);
        assert_eq!(
            progress.blocked(start + Duration::from_secs(6)),
            start + pace.grace
        );
        // Taking the minimum does.
        progress.wrote(1);
        let later = start + Duration::from_secs(7);
        assert_eq!(progress.blocked(later), later + pace.grace);
        // A response written whole clears what was owed.
        progress.finished();
        let much_later = start + Duration::from_secs(60);
        assert_eq!(progress.blocked(much_later), much_later + pace.grace);
    }
}
