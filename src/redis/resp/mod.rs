//! The RESP listener (`--redis-port`): Redis clients (redis-cli, redis-py, ioredis, …)
//! speak RESP2 or RESP3 to it and run the stream commands on a plate, as the plate HTTP
//! surface runs them.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | [`RespConfig`], the accept loop (client limit, draining) and the connection loop (pipelining, limits, blocked reads) |
//! | `codec.rs` | requests in (multibulk and inline, Redis's protocol errors), replies out (RESP2/RESP3) |
//! | `session.rs` | a connection's state; `HELLO`, `AUTH`, `CLIENT`, `COMMAND`, … ; the stream commands through [`crate::redis::execute`] |
//! | `table.rs` | the commands served, for `COMMAND` and the checks before `NOAUTH` |
//! | `info.rs` | `INFO` |
//!
//! One connection is one task reading requests, running commands and writing their
//! replies in request order, so that a client may pipeline. Replies go straight to the
//! socket as far as it takes them without waiting; what it does not take yet stays
//! owed and goes out whenever the socket is writable again, while the connection waits
//! for anything else (input, a commit, a blocked read). Pipelined `XADD`s with
//! `*` and no trimming overlap: each is queued at its key's appender as it is read (the
//! appender applies entries in the order queued, in whatever commits) and its reply
//! awaited while the next ones are queued, so they share commits; any other command
//! first waits until everything before it is answered, and so sees their effects, as
//! in Redis. Bounds, each from a flag: commands under way on one connection
//! ([`RespConfig::pipeline_depth`]),
//! connections ([`RespConfig::max_clients`]: the one past it gets `-ERR max number of
//! clients reached` and is closed), a request's arguments and argument length (beyond
//! them, `-ERR Protocol error: …` and that connection is closed), the bytes of a request
//! not yet complete (the query buffer), the bytes of replies not yet written (the output
//! buffer: a client that sends without reading is closed once its replies pass the
//! bound, so the node never buffers them without end), and optionally how long a
//! connection may sit idle between commands.
//!
//! A blocking `XREAD`/`XREADGROUP` waits as long as it asked (`BLOCK 0`: until data comes)
//! while the connection keeps reading: if the client goes away, the wait is dropped. On
//! shutdown (the node's draining) the listener stops accepting; a connection finishes
//! the command it is running, writes what it owes and closes, a blocked read is dropped
//! as Redis drops it when it shuts down, and whatever is still open after the grace
//! period is closed.

pub(crate) mod codec;
mod info;
mod session;
mod table;

use std::{
    collections::VecDeque,
    io::ErrorKind,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::{Buf, Bytes, BytesMut};
use futures::{FutureExt, StreamExt, future::BoxFuture, stream::FuturesOrdered};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, tcp::OwnedWriteHalf},
    sync::Semaphore,
    task::JoinSet,
};
use tracing::{debug, info, warn};

use crate::{
    engine::Engine,
    http::{Draining, auth::Authenticator},
    redis::{Homes, cmd::is},
};
use codec::{Decoder, FrameLimits, Protocol, encode, encode_error};
use session::{Session, Step};

/// The Redis version the listener presents itself as (`HELLO`, `INFO`): the one whose
/// commands and replies it follows. Clients gate features on it.
pub const REDIS_VERSION: &str = "7.0.15";

/// The RESP listener's settings (`sluice serve --redis-*`).
#[derive(Debug, Clone)]
pub struct RespConfig {
    /// The plate of connections that never authenticate, and of `AUTH <token>`.
    pub plate: Option<String>,
    /// Connections open at once (Redis's `maxclients`, default 10000).
    pub max_clients: usize,
    /// The longest argument (Redis's `proto-max-bulk-len`).
    pub max_bulk: usize,
    /// The most arguments of one command.
    pub max_multibulk: usize,
    /// The most bytes of a request not yet complete (Redis's `client-query-buffer-limit`).
    pub query_buffer_limit: usize,
    /// The most bytes of replies not yet written (Redis's `client-output-buffer-limit`).
    pub output_buffer_limit: usize,
    /// The most commands of one connection under way at once: `XADD`s with `*` begun
    /// while earlier ones wait for their commits (their arguments also count against
    /// [`RespConfig::query_buffer_limit`]).
    pub pipeline_depth: usize,
    /// Close a connection idle this long between commands (Redis's `timeout`); `None`
    /// never.
    pub idle_timeout: Option<Duration>,
}

impl Default for RespConfig {
    fn default() -> Self {
        Self {
            plate: None,
            max_clients: 10_000,
            max_bulk: 8 * 1024 * 1024,
            max_multibulk: 1024 * 1024,
            query_buffer_limit: 32 * 1024 * 1024,
            output_buffer_limit: 64 * 1024 * 1024,
            pipeline_depth: 1024,
            idle_timeout: None,
        }
    }
}

/// What every connection of the listener shares.
pub struct Shared {
    engine: Engine,
    /// With `--peers`, where each key's commands run ([`crate::redis::homes`]).
    homes: Option<Arc<Homes>>,
    auth: Authenticator,
    /// Whether the node has a root token: then connections must `AUTH`.
    auth_required: bool,
    config: RespConfig,
    connected: AtomicUsize,
    started: Instant,
    port: u16,
}

/// Replies are written once this much has gathered (or when no complete request is left
/// to run).
const FLUSH_AT: usize = 64 * 1024;

/// Serves RESP on `listener` until the node drains, then closes connections, waiting up
/// to `grace` for them to finish.
pub async fn serve(
    listener: TcpListener,
    engine: Engine,
    homes: Option<Arc<Homes>>,
    auth: Authenticator,
    config: RespConfig,
    draining: Draining,
    grace: Duration,
) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let shared = Arc::new(Shared {
        auth_required: auth.required(),
        engine,
        homes,
        auth,
        connected: AtomicUsize::new(0),
        started: Instant::now(),
        port,
        config,
    });
    let slots = Arc::new(Semaphore::new(shared.config.max_clients));
    let next_id = AtomicU64::new(1);
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "RESP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = draining.started() => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!(%peer, "RESP connection refused: max number of clients reached");
            tasks.spawn(refuse(stream));
            continue;
        };
        let shared = shared.clone();
        let draining = draining.clone();
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(async move {
            shared.connected.fetch_add(1, Ordering::Relaxed);
            connection(&shared, stream, id, &draining, grace).await;
            shared.connected.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    info!("RESP listener: closing connections");
    let all_closed = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, all_closed).await.is_err() {
        warn!("RESP connections still open after {grace:?} are closed");
    }
}

/// The answer past the client limit, as Redis sends it before closing.
async fn refuse(mut stream: TcpStream) {
    let write = stream.write_all(b"-ERR max number of clients reached\r\n");
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
    let _ = stream.shutdown().await;
}

/// Why a connection ends.
#[derive(Debug)]
enum End {
    /// After writing what it owes: `QUIT`, a protocol error, the client's end of input,
    /// draining, the idle timeout.
    Flush,
    /// At once, its pending replies dropped: the output buffer passed its bound, the
    /// query buffer passed its, or a write failed (the client is gone).
    Drop,
}

/// One connection: reads requests, runs them in order, writes their replies.
async fn connection(
    shared: &Shared,
    stream: TcpStream,
    id: u64,
    draining: &Draining,
    grace: Duration,
) {
    let peer = stream.peer_addr().ok();
    let (mut rd, wr) = stream.into_split();
    let mut session = Session::new(shared, id).await;
    let mut conn = Conn {
        shared,
        wr,
        out: BytesMut::with_capacity(16 * 1024),
        owed: 0,
        input: BytesMut::with_capacity(16 * 1024),
        decoder: Decoder::default(),
        eof: false,
        inflight: FuturesOrdered::new(),
        inflight_sizes: VecDeque::new(),
        inflight_bytes: 0,
    };
    let end = conn.run(&mut session, &mut rd, draining).await;
    debug!(?peer, id, ?end, "RESP connection ends");
    if let End::Flush = end {
        let Conn {
            mut wr, out, owed, ..
        } = conn;
        let rest = async {
            wr.write_all(&out[..owed]).await?;
            wr.shutdown().await
        };
        let _ = tokio::time::timeout(grace, rest).await;
    }
}

struct Conn<'a> {
    shared: &'a Shared,
    wr: OwnedWriteHalf,
    /// Replies encoded and not yet written, in request order. The first
    /// [`Conn::owed`] bytes of it are flushed: they go out as the socket takes them.
    out: BytesMut,
    /// Bytes at the front of [`Conn::out`] flushed and not yet written; never more
    /// than [`RespConfig::output_buffer_limit`].
    owed: usize,
    input: BytesMut,
    decoder: Decoder,
    /// The client has sent its last byte (or the read failed).
    eof: bool,
    /// Commands begun and not yet answered, in request order; their answers are
    /// encoded in that order.
    inflight: FuturesOrdered<BoxFuture<'static, session::Answer>>,
    /// The argument bytes of each of them, and their sum.
    inflight_sizes: VecDeque<usize>,
    inflight_bytes: usize,
}

impl Conn<'_> {
    async fn run(
        &mut self,
        session: &mut Session,
        rd: &mut tokio::net::tcp::OwnedReadHalf,
        draining: &Draining,
    ) -> End {
        let config = &self.shared.config;
        let limits = FrameLimits {
            max_multibulk: config.max_multibulk,
            max_bulk: config.max_bulk,
        };
        loop {
            // Every complete request buffered, in order.
            loop {
                let argv =
                    match self
                        .decoder
                        .decode(&mut self.input, limits, session.authenticated())
                    {
                        Ok(Some(argv)) => argv,
                        Ok(None) => break,
                        Err(e) => {
                            debug!(error = %e.0, "RESP protocol error");
                            if let Err(end) = self.settle_all(session.protocol).await {
                                return end;
                            }
                            encode_error(&e.reply_text(), &mut self.out);
                            return self.flush().map_or(End::Drop, |()| End::Flush);
                        }
                    };
                if argv.is_empty() {
                    continue;
                }
                if is(&argv[0], "xadd") {
                    match self.start(session, &argv, rd).await {
                        Ok(true) => continue,
                        Ok(false) => {}
                        Err(end) => return end,
                    }
                }
                if let Err(end) = self.settle(session.protocol, rd).await {
                    return end;
                }
                let blocking = is(&argv[0], "xread") || is(&argv[0], "xreadgroup");
                if blocking && self.flush().is_err() {
                    return End::Drop;
                }
                let answer = match self.run_one(session, &argv, blocking, rd, draining).await {
                    Ok(answer) => answer,
                    Err(end) => return end,
                };
                match answer.reply {
                    Some(Ok(reply)) => encode(&reply, session.protocol, &mut self.out),
                    Some(Err(text)) => encode_error(&text, &mut self.out),
                    None if answer.close => return End::Drop,
                    None => {}
                }
                if answer.close {
                    return self.flush().map_or(End::Drop, |()| End::Flush);
                }
                if self.gathered() >= FLUSH_AT && self.flush().is_err() {
                    return End::Drop;
                }
            }
            if self.flush().is_err() {
                return End::Drop;
            }
            if self.eof {
                return self.finish(session.protocol).await;
            }
            let idle = async {
                match config.idle_timeout {
                    Some(t) => tokio::time::sleep(t).await,
                    None => std::future::pending().await,
                }
            };
            let waiting = !self.inflight.is_empty();
            tokio::select! {
                read = rd.read_buf(&mut self.input) => {
                    if !matches!(read, Ok(n) if n > 0) {
                        self.eof = true;
                    }
                    if self.query_too_big() {
                        return End::Drop;
                    }
                }
                Some(answer) = self.inflight.next(), if waiting => {
                    if let Err(end) = self.answered(answer, session.protocol) {
                        return end;
                    }
                    // Whatever else is answered already goes out in the same write.
                    while let Some(Some(answer)) = self.inflight.next().now_or_never() {
                        if let Err(end) = self.answered(answer, session.protocol) {
                            return end;
                        }
                    }
                }
                () = idle, if !waiting => return End::Flush,
                () = draining.started() => return self.finish(session.protocol).await,
                writable = self.wr.writable(), if self.owed > 0 => {
                    if writable.is_err() || self.write_owed().is_err() {
                        return End::Drop;
                    }
                }
            }
        }
    }

    /// Begins an `XADD` that may overlap the commands after it, once what is in flight
    /// is within its bounds; `Ok(false)` when it must run alone instead (nothing done).
    async fn start(
        &mut self,
        session: &mut Session,
        argv: &[Bytes],
        rd: &mut tokio::net::tcp::OwnedReadHalf,
    ) -> Result<bool, End> {
        let config = &self.shared.config;
        let size: usize = argv.iter().map(Bytes::len).sum();
        while !self.inflight.is_empty()
            && (self.inflight.len() >= config.pipeline_depth
                || self.inflight_bytes + size > config.query_buffer_limit)
        {
            self.settle_next(session.protocol, rd).await?;
        }
        match session.start(self.shared, argv).await {
            Step::Alone => return Ok(false),
            Step::Done(answer) if self.inflight.is_empty() => {
                self.answered(answer, session.protocol)?;
            }
            Step::Done(answer) => self.push(Box::pin(std::future::ready(answer)), size),
            Step::Later(answer) => self.push(answer, size),
        }
        Ok(true)
    }

    fn push(&mut self, answer: BoxFuture<'static, session::Answer>, size: usize) {
        self.inflight.push_back(answer);
        self.inflight_sizes.push_back(size);
        self.inflight_bytes += size;
    }

    /// Encodes the answer of the oldest command in flight (pipelined answers never
    /// close the connection).
    fn answered(&mut self, answer: session::Answer, protocol: Protocol) -> Result<(), End> {
        if let Some(size) = self.inflight_sizes.pop_front() {
            self.inflight_bytes -= size;
        }
        match answer.reply {
            Some(Ok(reply)) => encode(&reply, protocol, &mut self.out),
            Some(Err(text)) => encode_error(&text, &mut self.out),
            None => {}
        }
        if self.gathered() >= FLUSH_AT && self.flush().is_err() {
            return Err(End::Drop);
        }
        Ok(())
    }

    /// Waits for the oldest command in flight, reading meanwhile as [`Conn::run_one`] does.
    async fn settle_next(
        &mut self,
        protocol: Protocol,
        rd: &mut tokio::net::tcp::OwnedReadHalf,
    ) -> Result<(), End> {
        loop {
            tokio::select! {
                Some(answer) = self.inflight.next() => return self.answered(answer, protocol),
                read = rd.read_buf(&mut self.input), if !self.eof => {
                    if !matches!(read, Ok(n) if n > 0) {
                        self.eof = true;
                    }
                    if self.query_too_big() {
                        return Err(End::Drop);
                    }
                }
                writable = self.wr.writable(), if self.owed > 0 => {
                    if writable.is_err() || self.write_owed().is_err() {
                        return Err(End::Drop);
                    }
                }
            }
        }
    }

    /// Waits until every command in flight is answered, so that the next one sees their
    /// effects.
    async fn settle(
        &mut self,
        protocol: Protocol,
        rd: &mut tokio::net::tcp::OwnedReadHalf,
    ) -> Result<(), End> {
        while !self.inflight.is_empty() {
            self.settle_next(protocol, rd).await?;
        }
        Ok(())
    }

    /// Answers what is in flight without reading further: the connection is ending.
    async fn settle_all(&mut self, protocol: Protocol) -> Result<(), End> {
        while let Some(answer) = self.inflight.next().await {
            self.answered(answer, protocol)?;
        }
        Ok(())
    }

    /// Ends the connection after answering what is in flight.
    async fn finish(&mut self, protocol: Protocol) -> End {
        if let Err(end) = self.settle_all(protocol).await {
            return end;
        }
        self.flush().map_or(End::Drop, |()| End::Flush)
    }

    /// Runs one command. While it runs the connection keeps reading (pipelined requests
    /// queue up, within the query buffer's bound), and a blocking read is dropped when
    /// the client goes away or the node drains.
    async fn run_one(
        &mut self,
        session: &mut Session,
        argv: &[Bytes],
        blocking: bool,
        rd: &mut tokio::net::tcp::OwnedReadHalf,
        draining: &Draining,
    ) -> Result<session::Answer, End> {
        let shared = self.shared;
        let run = session.run(shared, argv);
        tokio::pin!(run);
        loop {
            tokio::select! {
                answer = &mut run => return Ok(answer),
                read = rd.read_buf(&mut self.input), if !self.eof => {
                    if !matches!(read, Ok(n) if n > 0) {
                        self.eof = true;
                        if blocking {
                            return Err(End::Drop);
                        }
                    }
                    if self.query_too_big() {
                        return Err(End::Drop);
                    }
                }
                () = draining.started(), if blocking => return Err(End::Flush),
                writable = self.wr.writable(), if self.owed > 0 => {
                    if writable.is_err() || self.write_owed().is_err() {
                        return Err(End::Drop);
                    }
                }
            }
        }
    }

    /// Whether the request being read has passed the query buffer's bound; Redis closes
    /// such a client without a reply.
    fn query_too_big(&self) -> bool {
        let held = self.input.len() + self.decoder.pending_bytes();
        let too_big = held > self.shared.config.query_buffer_limit;
        if too_big {
            warn!(
                bytes = held,
                "closing a RESP client that reached the query buffer limit"
            );
        }
        too_big
    }

    /// Bytes of replies encoded and not yet flushed.
    fn gathered(&self) -> usize {
        self.out.len() - self.owed
    }

    /// Writes the gathered replies as far as the socket takes them now; the rest stays
    /// owed. `Err` when a write fails or the replies not yet written pass the output
    /// buffer's bound.
    fn flush(&mut self) -> Result<(), ()> {
        if self.out.len() == self.owed {
            return Ok(());
        }
        self.owed = self.out.len();
        if self.owed > self.shared.config.output_buffer_limit {
            warn!(
                bytes = self.owed,
                "closing a RESP client whose unread replies passed the output buffer limit"
            );
            return Err(());
        }
        self.write_owed()
    }

    /// Writes owed bytes until the socket would block; `Err` when a write fails.
    fn write_owed(&mut self) -> Result<(), ()> {
        while self.owed > 0 {
            match self.wr.try_write(&self.out[..self.owed]) {
                Ok(0) => return Err(()),
                Ok(n) => {
                    self.out.advance(n);
                    self.owed -= n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(()),
            }
        }
        Ok(())
    }
}
