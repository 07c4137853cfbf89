//! Connection I/O that puts a deadline on *every* request head of a
//! kept-alive connection.
//!
//! actix applies its head deadline (`client_request_timeout`) to the first
//! request of a connection only; once a kept-alive connection has started
//! a second request, actix has no deadline for its head. [`BoundedHeads`]
//! wraps the connection's stream (plain TCP, or TLS decrypted) and watches the bytes go by: the first byte of a
//! request starts a [`REQUEST_HEAD_TIMEOUT`](super::REQUEST_HEAD_TIMEOUT)
//! deadline, the blank line that ends its head clears it, and the response
//! makes the connection idle again (idle connections are closed by actix's
//! keep-alive timeout). A head still unfinished at its deadline fails the
//! read, and actix drops the connection.
//!
//! It never parses or alters the bytes (actix does that); it only decides
//! when a connection has waited too long for a head.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::rt::time::{sleep, Instant, Sleep};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Where the connection is in its current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests (or before the first): no head deadline.
    Idle,
    /// Head bytes are arriving; the head deadline runs.
    Head,
    /// Head complete: the body and the handler are bounded elsewhere.
    Rest,
}

/// A stream whose request heads must each arrive within `limit`.
pub(super) struct BoundedHeads<IO> {
    io: IO,
    limit: Duration,
    phase: Phase,
    /// The last two bytes of the head seen so far (to find its end
    /// across reads).
    last: [u8; 2],
    deadline: Pin<Box<Sleep>>,
}

impl<IO> BoundedHeads<IO> {
    pub(super) fn new(io: IO, limit: Duration) -> Self {
        Self {
            io,
            limit,
            phase: Phase::Idle,
            last: [0; 2],
            deadline: Box::pin(sleep(limit)),
        }
    }

    /// The wrapped stream.
    pub(super) const fn get_ref(&self) -> &IO {
        &self.io
    }

    /// Advances the phase over bytes just read.
    fn saw(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.phase == Phase::Idle {
                self.phase = Phase::Head;
                self.last = [0; 2];
                self.deadline.as_mut().reset(Instant::now() + self.limit);
            }
            if self.phase == Phase::Head {
                if ends_head(self.last, b) {
                    self.phase = Phase::Rest;
                }
                self.last = [self.last[1], b];
            }
        }
    }

    /// Whether the current head has missed its deadline (registering a
    /// wake-up at the deadline otherwise, so a silent client is noticed).
    fn head_expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.phase == Phase::Head && self.deadline.as_mut().poll(cx).is_ready()
    }
}

/// Whether `b`, after `last`, ends a request head: a blank line, written
/// `\r\n\r\n` or (as HTTP parsers also accept) `\n\n`.
fn ends_head(last: [u8; 2], b: u8) -> bool {
    b == b'\n' && (last[1] == b'\n' || last == [b'\n', b'\r'])
}

fn head_timeout(limit: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "request head not received within {} seconds",
            limit.as_secs()
        ),
    )
}

impl<IO: AsyncRead + Unpin> AsyncRead for BoundedHeads<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = read {
            this.saw(&buf.filled()[before..]);
        }
        // Checked on data too: a client trickling one byte at a time never
        // lets the read go idle.
        if !matches!(read, Poll::Ready(Err(_))) && this.head_expired(cx) {
            return Poll::Ready(Err(head_timeout(this.limit)));
        }
        read
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for BoundedHeads<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        // A response ends the request, except an interim `100 Continue`,
        // after which the body still follows.
        if matches!(written, Poll::Ready(Ok(n)) if n > 0)
            && this.phase == Phase::Rest
            && !buf.starts_with(b"HTTP/1.1 100 ")
        {
            this.phase = Phase::Idle;
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::ends_head;

    fn ends(bytes: &[u8]) -> Option<usize> {
        let mut last = [0u8; 2];
        for (i, &b) in bytes.iter().enumerate() {
            if ends_head(last, b) {
                return Some(i);
            }
            last = [last[1], b];
        }
        None
    }

    #[test]
    fn the_end_of_a_head_is_its_blank_line() {
        assert_eq!(ends(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"), Some(26));
        assert_eq!(ends(b"GET / HTTP/1.1\nHost: a\n\n"), Some(23));
        assert_eq!(ends(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
        assert_eq!(ends(b"GET / HTTP/1.1\r\nX: \r\r\n"), None);
    }
}
