//! One accepted connection under the node's limits: a write that makes no progress for
//! `--slow-reader-timeout` fails the connection ([`StallIo`]), and a connection with no
//! request in progress for `--idle-timeout` is shut down gracefully ([`Activity`]; on
//! HTTP/2 that is a `GOAWAY`). The head and header-size limits are the HTTP builder's
//! (see `server::http_builder`).

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::body::Body;
use bytes::Bytes;
use http_body::Frame;
use parking_lot::Mutex;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::Notify,
    time::{Instant, Sleep},
};

/// An I/O stream whose writes fail with `TimedOut` once one has been pending (no byte
/// accepted by the socket) for `timeout`: a peer that stops reading its socket cannot keep
/// the connection, and everything buffered for it, forever. A write that makes any
/// progress resets the clock, so a slow reader that keeps reading is never cut off.
pub struct StallIo<T> {
    inner: T,
    timeout: Duration,
    /// Armed while a write or flush is pending; reset, not reallocated, on each stall.
    stall: Pin<Box<Sleep>>,
    armed: bool,
}

impl<T> StallIo<T> {
    pub fn new(inner: T, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stall: Box::pin(tokio::time::sleep(timeout)),
            armed: false,
        }
    }

    fn on_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(r) => {
                self.armed = false;
                Poll::Ready(r)
            }
            Poll::Pending => {
                if !self.armed {
                    self.armed = true;
                    self.stall.as_mut().reset(Instant::now() + self.timeout);
                }
                match self.stall.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the peer read nothing for {:?}", self.timeout),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.on_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.on_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.on_write(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Requests in progress on one connection, from the service being called until its
/// response body is dropped (sent, failed, or abandoned), and since when there were none.
#[derive(Debug)]
pub struct Activity {
    open: AtomicUsize,
    idle_since: Mutex<Instant>,
    changed: Notify,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            changed: Notify::new(),
        })
    }

    /// Counts a request in progress until the guard drops.
    pub fn open(self: &Arc<Self>) -> OpenRequest {
        self.open.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        OpenRequest(self.clone())
    }

    pub fn is_idle(&self) -> bool {
        self.open.load(Ordering::SeqCst) == 0
    }

    /// Resolves once no request has been in progress for `timeout`.
    pub async fn idle_for(&self, timeout: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.open.load(Ordering::SeqCst) > 0 {
                changed.await;
                continue;
            }
            let deadline = *self.idle_since.lock() + timeout;
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(deadline) => {
                    if self.open.load(Ordering::SeqCst) == 0
                        && Instant::now() >= *self.idle_since.lock() + timeout
                    {
                        return;
                    }
                }
            }
        }
    }
}

/// One request in progress on a connection.
#[derive(Debug)]
pub struct OpenRequest(Arc<Activity>);

impl Drop for OpenRequest {
    fn drop(&mut self) {
        let activity = &self.0;
        if activity.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            *activity.idle_since.lock() = Instant::now();
        }
        activity.changed.notify_waiters();
    }
}

/// A response body that keeps its request counted as in progress until it is dropped.
pub struct Tracked {
    body: Body,
    _open: OpenRequest,
}

impl Tracked {
    pub fn body(body: Body, open: OpenRequest) -> Body {
        Body::new(Self { body, _open: open })
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_write_pending_past_the_timeout_fails() {
        // A pipe whose reader reads nothing: writes block once its 64-byte buffer is full.
        let (client, _server) = tokio::io::duplex(64);
        let mut io = StallIo::new(client, Duration::from_secs(5));
        io.write_all(&[0; 64]).await.unwrap();
        let started = Instant::now();
        let err = io.write_all(&[0; 1]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_but_steady_reader_is_not_cut_off() {
        let (client, mut server) = tokio::io::duplex(64);
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut buf = [0; 16];
            let mut total = 0;
            while total < 640 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                total += server.read(&mut buf).await.unwrap();
            }
        });
        let mut io = StallIo::new(client, Duration::from_secs(5));
        // 640 bytes at 16 per 3 s: two minutes, every stall shorter than the timeout.
        io.write_all(&[0; 640]).await.unwrap();
        reader.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn idleness_counts_from_the_last_request() {
        let activity = Activity::new();
        let idle = tokio::spawn({
            let activity = activity.clone();
            async move {
                activity.idle_for(Duration::from_secs(10)).await;
                Instant::now()
            }
        });
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let request = activity.open();
        // A request in progress for a long time is not idleness.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!idle.is_finished());
        drop(request);
        let closed_at = idle.await.unwrap();
        assert_eq!(closed_at - start, Duration::from_secs(75));
    }
}
