//! A read session's send buffer: a task runs the session ahead of its client by at most
//! `--read-buffer-bytes`, and a client that takes nothing for `--slow-reader-timeout`
//! while something waits for it is cut off.
//!
//! Why a task: the HTTP stack polls a response body only when it can send, so a body
//! that produced on demand could neither read ahead (fetch the next chunks while the
//! client receives the last ones) nor notice that its client stopped reading. With the
//! task in between, the buffer's bound is explicit and in bytes, and the stall is seen
//! whether or not the stack polls.
//!
//! Invariants: the buffer holds at most the limit, or one item more than nothing (an item
//! larger than the limit still goes out, alone). Once cut off or abandoned by its client,
//! the buffer is emptied at once and the session (its engine reader) dropped; a cut-off
//! body then fails rather than ending, so the client sees a broken response (HTTP/2
//! `RST_STREAM`, HTTP/1.1 an unterminated chunked body), never a clean end of the read.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use axum::body::{Body, Bytes};
use futures::{Stream, StreamExt};
use http_body::Frame;
use parking_lot::Mutex;
use tokio::{sync::Notify, time::Instant};

use crate::limits::Limits;

/// The node's read-session buffers, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct SendBufferStats {
    buffered: AtomicUsize,
    cut_off: AtomicU64,
}

impl SendBufferStats {
    /// Bytes buffered across every read session, not yet taken by their clients.
    pub fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }

    /// Read sessions cut off because their client took nothing for the timeout.
    pub fn cut_off(&self) -> u64 {
        self.cut_off.load(Ordering::Relaxed)
    }
}

/// A response body carrying `items`, produced ahead of the client within `limits`.
pub fn buffered<S>(items: S, limits: &Limits, stats: Arc<SendBufferStats>) -> Body
where
    S: Stream<Item = Bytes> + Send + 'static,
{
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            bytes: 0,
            since: Instant::now(),
            end: None,
            consumer: None,
            consumer_gone: false,
        }),
        space: Notify::new(),
        stats,
    });
    tokio::spawn(produce(
        items,
        shared.clone(),
        limits.read_buffer_bytes.max(1),
        limits.slow_reader_timeout,
    ));
    Body::new(BufferedBody { shared })
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when the client takes an item or goes away.
    space: Notify,
    stats: Arc<SendBufferStats>,
}

struct State {
    queue: VecDeque<Bytes>,
    bytes: usize,
    /// When the client last took an item, or when the queue last became non-empty: a
    /// non-empty queue untouched since `since + timeout` is a stalled client.
    since: Instant,
    end: Option<End>,
    consumer: Option<Waker>,
    consumer_gone: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Finished,
    CutOff(Duration),
}

impl Shared {
    /// Empties the queue, giving its bytes back to the node's count.
    fn clear(&self, st: &mut State) {
        st.queue.clear();
        self.stats.buffered.fetch_sub(st.bytes, Ordering::Relaxed);
        st.bytes = 0;
    }

    fn end(&self, end: End) {
        let waker = {
            let mut st = self.state.lock();
            if let End::CutOff(_) = end {
                self.clear(&mut st);
                self.stats.cut_off.fetch_add(1, Ordering::Relaxed);
            }
            st.end = Some(end);
            st.consumer.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// When the queued items count as stalled, if any are queued; `None` once the
    /// client is gone (the producer stops).
    fn stall_deadline(&self, timeout: Duration) -> Result<Option<Instant>, Gone> {
        let st = self.state.lock();
        if st.consumer_gone {
            return Err(Gone);
        }
        Ok((!st.queue.is_empty()).then(|| st.since + timeout))
    }
}

struct Gone;

async fn produce<S>(items: S, shared: Arc<Shared>, limit: usize, timeout: Duration)
where
    S: Stream<Item = Bytes> + Send + 'static,
{
    let mut items = std::pin::pin!(items);
    loop {
        // Room for the next item, unless the client is gone or stalled.
        loop {
            let deadline = {
                let st = shared.state.lock();
                if st.consumer_gone {
                    return;
                }
                if st.queue.is_empty() || st.bytes < limit {
                    break;
                }
                st.since + timeout
            };
            tokio::select! {
                () = shared.space.notified() => {}
                () = tokio::time::sleep_until(deadline) => {
                    if stalled(&shared, timeout) {
                        return shared.end(End::CutOff(timeout));
                    }
                }
            }
        }
        // The next item, watching what is already queued for a stall meanwhile.
        let item = loop {
            let Ok(stall) = shared.stall_deadline(timeout) else {
                return;
            };
            tokio::select! {
                item = items.next() => break item,
                () = shared.space.notified() => {}
                () = sleep_until_opt(stall) => {
                    if stalled(&shared, timeout) {
                        return shared.end(End::CutOff(timeout));
                    }
                }
            }
        };
        let Some(item) = item else {
            return shared.end(End::Finished);
        };
        if item.is_empty() {
            continue;
        }
        let waker = {
            let mut st = shared.state.lock();
            if st.consumer_gone {
                return;
            }
            if st.queue.is_empty() {
                st.since = Instant::now();
            }
            st.bytes += item.len();
            shared
                .stats
                .buffered
                .fetch_add(item.len(), Ordering::Relaxed);
            st.queue.push_back(item);
            st.consumer.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn stalled(shared: &Shared, timeout: Duration) -> bool {
    let st = shared.state.lock();
    !st.queue.is_empty() && Instant::now() >= st.since + timeout
}

struct BufferedBody {
    shared: Arc<Shared>,
}

impl http_body::Body for BufferedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let shared = &self.shared;
        let mut st = shared.state.lock();
        if let Some(item) = st.queue.pop_front() {
            st.bytes -= item.len();
            st.since = Instant::now();
            shared
                .stats
                .buffered
                .fetch_sub(item.len(), Ordering::Relaxed);
            drop(st);
            shared.space.notify_one();
            return Poll::Ready(Some(Ok(Frame::data(item))));
        }
        match st.end {
            Some(End::Finished) => Poll::Ready(None),
            Some(End::CutOff(after)) => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("read session cut off: its client took nothing for {after:?}"),
            )))),
            None => {
                st.consumer = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for BufferedBody {
    fn drop(&mut self) {
        {
            let mut st = self.shared.state.lock();
            st.consumer_gone = true;
            self.shared.clear(&mut st);
        }
        self.shared.space.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn limits(buffer: usize, timeout: Duration) -> Limits {
        Limits {
            read_buffer_bytes: buffer,
            slow_reader_timeout: timeout,
            ..Limits::default()
        }
    }

    /// An endless session of 100-byte items, counting how many it produced.
    fn endless(produced: Arc<AtomicUsize>) -> impl Stream<Item = Bytes> + Send + 'static {
        futures::stream::repeat_with(move || {
            produced.fetch_add(1, Ordering::Relaxed);
            Bytes::from(vec![7u8; 100])
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_session_runs_ahead_by_at_most_the_buffer() {
        let stats = Arc::new(SendBufferStats::default());
        let produced = Arc::new(AtomicUsize::new(0));
        let mut body = buffered(
            endless(produced.clone()),
            &limits(1000, Duration::from_secs(60)),
            stats.clone(),
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(stats.buffered(), 1000);
        assert_eq!(
            produced.load(Ordering::Relaxed),
            10,
            "nothing produced past the bound"
        );
        for _ in 0..5 {
            body.frame().await.unwrap().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(stats.buffered(), 1000, "refilled to the bound, not past it");
        drop(body);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(stats.buffered(), 0, "an abandoned buffer is emptied");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_takes_nothing_is_cut_off_and_its_buffer_freed() {
        let stats = Arc::new(SendBufferStats::default());
        let produced = Arc::new(AtomicUsize::new(0));
        let mut body = buffered(
            endless(produced.clone()),
            &limits(1000, Duration::from_secs(5)),
            stats.clone(),
        );
        tokio::time::sleep(Duration::from_secs(4)).await;
        // Taking something in time resets the clock.
        body.frame().await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!((stats.cut_off(), stats.buffered()), (0, 1000));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!((stats.cut_off(), stats.buffered()), (1, 0));
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("took nothing for 5s"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_session_is_not_a_stalled_client() {
        let stats = Arc::new(SendBufferStats::default());
        // One item, then nothing for a long while (a follower at the tail).
        let items = futures::stream::once(async { Bytes::from_static(b"hb") })
            .chain(futures::stream::pending());
        let mut body = buffered(items, &limits(1000, Duration::from_secs(5)), stats.clone());
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "hb"
        );
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(stats.cut_off(), 0);
        // A large item goes out alone even though it is over the bound.
        drop(body);
        let big = futures::stream::iter([Bytes::from(vec![1u8; 5000]), Bytes::from("end")]);
        let body = buffered(big, &limits(1000, Duration::from_secs(5)), stats.clone());
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(all.len(), 5003);
    }
}
