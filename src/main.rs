use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use clap::{Parser, Subcommand};
use sluice::{
    engine::{PollIntervals, verify},
    limits::{Limits, MIN_HEADER_BYTES, parse_bytes, parse_duration},
    peers::{PeerAddr, PeerSecret, PeerSettings},
    server::{self, Backend, RespConfig, ServerConfig},
    storage::S3Settings,
};
use tracing::info;

/// Large buffers (chunks, frames) come and go at high rates; mimalloc reuses their pages
/// where the system allocator maps and unmaps them, faulting every page in again.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Durable streams with the S2 API, kept in object storage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the S2 API and the Redis-Streams (plate) API.
    Serve(Box<ServeArgs>),
    /// Check a bucket (or local directory) read-only: every catalog entry, manifest,
    /// index segment, chunk, pack and consumer group, and objects nothing references.
    /// Exits 0 only if it is sound, 1 if not, 2 if it could not be checked.
    Verify(VerifyArgs),
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// S3 bucket to check (endpoint, region and credentials from the standard AWS
    /// environment variables). Without it, --local-root is checked.
    #[arg(long, env = "SLUICE_BUCKET", conflicts_with = "local_root")]
    bucket: Option<String>,
    /// Key prefix inside the bucket.
    #[arg(long, env = "SLUICE_PATH", requires = "bucket")]
    path: Option<String>,
    /// Local data directory; it must not be in use by a running server (its lock).
    #[arg(long, env = "SLUICE_LOCAL_ROOT")]
    local_root: Option<PathBuf>,
    /// Objects nothing references that are younger than this many seconds are reported
    /// but are no failure: they may belong to writes in flight [default: upkeep's orphan
    /// grace, 300].
    #[arg(long)]
    grace_secs: Option<u64>,
    /// Print the report as JSON instead of the summary.
    #[arg(long)]
    json: bool,
    /// Objects read at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Port to listen on (all interfaces unless --host is given).
    #[arg(long, default_value_t = 8080, env = "SLUICE_PORT")]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "0.0.0.0", env = "SLUICE_HOST")]
    host: std::net::IpAddr,
    /// S3 bucket to keep data in (endpoint, region and credentials from the standard AWS
    /// environment variables). Without it, data goes to --local-root.
    #[arg(long, env = "SLUICE_BUCKET", conflicts_with = "local_root")]
    bucket: Option<String>,
    /// Key prefix inside the bucket.
    #[arg(long, env = "SLUICE_PATH", requires = "bucket")]
    path: Option<String>,
    /// Local data directory (the default backend).
    #[arg(long, env = "SLUICE_LOCAL_ROOT")]
    local_root: Option<PathBuf>,
    /// Memory for cached chunks, in MiB.
    #[arg(long, default_value_t = 1024, env = "SLUICE_CACHE_MIB")]
    cache_mib: u64,
    /// How long a `standard` stream's appender gathers appends before committing
    /// [default: 200 on a bucket, 0 on a local directory, where requests cost nothing].
    #[arg(long, env = "SLUICE_STANDARD_LINGER_MS")]
    standard_linger_ms: Option<u64>,
    /// The same for `express` streams: 0 commits as soon as the previous commit is
    /// written; more trades ack latency for fewer requests per GiB.
    #[arg(long, default_value_t = 0, env = "SLUICE_EXPRESS_LINGER_MS")]
    express_linger_ms: u64,
    /// How often followers look for other nodes' commits on `express` streams while
    /// other nodes commit (S3 only); on a quiet stream up to ten times less often.
    #[arg(long, default_value_t = 50, env = "SLUICE_POLL_EXPRESS_MS")]
    poll_express_ms: u64,
    /// The same for `standard` streams.
    #[arg(long, default_value_t = 500, env = "SLUICE_POLL_STANDARD_MS")]
    poll_standard_ms: u64,
    /// Require an access token on every request (S2 and plate API); this one may do
    /// everything and issues the others (`s2 issue-access-token`). Without it, requests
    /// need no token, as with `s2 lite`. Prefer the environment variable: arguments are
    /// visible to other users.
    #[arg(long, env = "SLUICE_ROOT_TOKEN", hide_env_values = true)]
    root_token: Option<String>,
    /// The most runs of deleted entries (`XDEL` of the Redis-Streams API) one stream
    /// keeps; a deletion that would keep more is refused until the stream is trimmed.
    #[arg(
        long,
        default_value_t = 10_000,
        env = "SLUICE_REDIS_MAX_DELETED_RANGES"
    )]
    redis_max_deleted_ranges: usize,
    /// A consumer group gets a checkpoint (its whole state, written off the commands'
    /// path) once this many log records are past the last one.
    #[arg(
        long,
        default_value_t = 256,
        env = "SLUICE_REDIS_GROUP_CHECKPOINT_RECORDS"
    )]
    redis_group_checkpoint_records: u64,
    /// ... or once this many bytes of log records are.
    #[arg(long, default_value = "1MiB", value_parser = parse_bytes, env = "SLUICE_REDIS_GROUP_CHECKPOINT_BYTES")]
    redis_group_checkpoint_bytes: usize,
    /// How old an object nothing references must be before upkeep's orphan sweep deletes
    /// it; keep it well above a manifest write's longest round trip (README, "Checking a
    /// bucket").
    #[arg(long, default_value = "5m", value_parser = parse_duration, env = "SLUICE_ORPHAN_GRACE")]
    orphan_grace: Duration,
    /// How long a stream nothing on this node uses (no append, read, follower or request
    /// for this long) stays open here before it is released; it is opened again, from
    /// its manifest, by the next request for it.
    #[arg(long, default_value = "60s", value_parser = parse_duration, env = "SLUICE_STREAM_IDLE_RELEASE")]
    stream_idle_release: Duration,
    /// How long a stream's appender task waits for the next append before it ends (the
    /// next append starts another); until then it holds its mailbox and task memory.
    #[arg(long, default_value = "1s", value_parser = parse_duration, env = "SLUICE_APPENDER_IDLE_EXIT")]
    appender_idle_exit: Duration,
    /// How often the node writes its usage counts (the metrics API's figures) to the
    /// bucket: one to four writes each time, however busy the node is; figures lag by up
    /// to this much. Also written on graceful shutdown.
    #[arg(long, default_value = "60s", value_parser = parse_duration, env = "SLUICE_METRICS_FLUSH_INTERVAL")]
    metrics_flush_interval: Duration,
    /// Serve RESP (Redis's protocol, RESP2 and RESP3) on this port too, on the same
    /// address as HTTP: the stream commands for Redis clients. Off unless set.
    #[arg(long, env = "SLUICE_REDIS_PORT")]
    redis_port: Option<u16>,
    /// The plate (basin) of RESP connections that never authenticate, and of
    /// `AUTH <token>`; other plates with `AUTH <plate> <token>`.
    #[arg(long, env = "SLUICE_REDIS_PLATE")]
    redis_plate: Option<String>,
    /// RESP connections open at once; the one past it is answered `-ERR max number of
    /// clients reached` and closed (Redis's `maxclients`).
    #[arg(long, default_value_t = 10_000, env = "SLUICE_REDIS_MAXCLIENTS")]
    redis_maxclients: usize,
    /// The longest argument of a RESP request, in bytes (Redis's `proto-max-bulk-len`);
    /// past it: `-ERR Protocol error: invalid bulk length` and the connection closes.
    #[arg(long, default_value_t = 8 * 1024 * 1024, env = "SLUICE_REDIS_PROTO_MAX_BULK_LEN")]
    redis_proto_max_bulk_len: usize,
    /// The most arguments of one RESP request; past it: `-ERR Protocol error: invalid
    /// multibulk length` and the connection closes.
    #[arg(long, default_value_t = 1024 * 1024, env = "SLUICE_REDIS_MAX_MULTIBULK_LEN")]
    redis_max_multibulk_len: usize,
    /// The most bytes of a RESP request still being received; past it the connection
    /// closes (Redis's `client-query-buffer-limit`).
    #[arg(long, default_value_t = 32 * 1024 * 1024, env = "SLUICE_REDIS_QUERY_BUFFER_LIMIT")]
    redis_query_buffer_limit: usize,
    /// The most bytes of replies a RESP client has not read yet; past it the connection
    /// closes (Redis's `client-output-buffer-limit`).
    #[arg(long, default_value_t = 64 * 1024 * 1024, env = "SLUICE_REDIS_OUTPUT_BUFFER_LIMIT")]
    redis_output_buffer_limit: usize,
    /// The most commands of one RESP connection under way at once: pipelined `XADD`s
    /// with `*` share commits, each waiting for its own while the next are queued.
    #[arg(long, default_value_t = 1024, value_parser = parse_positive, env = "SLUICE_REDIS_PIPELINE_DEPTH")]
    redis_pipeline_depth: usize,
    /// Close a RESP connection idle this many seconds between commands; 0 never (Redis's
    /// `timeout`). A blocked read is not idle.
    #[arg(long, default_value_t = 0, env = "SLUICE_REDIS_TIMEOUT")]
    redis_timeout: u64,
    /// The other nodes on the same bucket and prefix, as `http://host:port` of their HTTP
    /// listeners, comma-separated: this node watches each for commits of the streams
    /// followed here (followers then see them at once and poll only as a fallback) and
    /// serves them the same watch. Off unless set; peers serving TLS cannot be watched.
    #[arg(long, env = "SLUICE_PEERS", value_parser = parse_peers, default_value = "")]
    peers: PeerList,
    /// What peers present to watch each other (`Authorization: Bearer`); every node of
    /// the cluster needs the same. Without it the root token serves, and without either
    /// any caller may watch, as any caller may read.
    #[arg(long, env = "SLUICE_PEER_SECRET", hide_env_values = true)]
    peer_secret: Option<String>,
    /// How long a peer holds this node's watch before answering that nothing is new;
    /// also the longest this node holds its peers' watches.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration, env = "SLUICE_PEER_WATCH_HOLD")]
    peer_watch_hold: Duration,
    /// With `--peers`, do not send a Redis key's writes and group commands to its home
    /// node: each node then runs them itself, racing the others' conditional writes.
    #[arg(long, env = "SLUICE_NO_KEY_HOMES", value_parser = clap::builder::FalseyValueParser::new())]
    no_key_homes: bool,
    /// On a local directory: the size of the write journal (manifests and other
    /// conditional writes, one append and one fdatasync each) at which it is folded into
    /// the objects' files; the memory of the versions it holds is bounded by about twice it.
    #[arg(long, default_value_t = sluice::storage::DEFAULT_LOCAL_JOURNAL_BYTES, value_parser = parse_positive_bytes, env = "SLUICE_LOCAL_JOURNAL_BYTES")]
    local_journal_bytes: u64,
    #[command(flatten)]
    tls: TlsArgs,
    /// Send no CORS headers: browsers on other origins cannot call the node. By default
    /// every origin may, as with `s2 lite` (the S2 console, browser SDK clients).
    #[arg(long, env = "SLUICE_NO_CORS", value_parser = clap::builder::FalseyValueParser::new())]
    no_cors: bool,
    /// A JSON file of basins, streams (with their configs) and access tokens to make exist
    /// at start, in `s2 apply`'s format (README, "Init file"). Applied idempotently: what
    /// is missing is created, what differs is set to the file's config.
    #[arg(long, env = "SLUICE_INIT_FILE")]
    init_file: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// HTTPS for the HTTP listener (README, "TLS"); the RESP listener stays cleartext.
#[derive(clap::Args)]
struct TlsArgs {
    /// Serve HTTPS with a self-signed certificate made at start, for `localhost`,
    /// `127.0.0.1` and `::1` (clients must skip verification, e.g. `S2_SSL_NO_VERIFY=true`).
    #[arg(long, env = "SLUICE_TLS_SELF", value_parser = clap::builder::FalseyValueParser::new(), conflicts_with_all = ["tls_cert", "tls_key"])]
    tls_self: bool,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(long, env = "SLUICE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "SLUICE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl TlsArgs {
    fn tls(&self) -> Result<Option<server::tls::Tls>, String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => server::tls::Tls::from_pem_files(cert, key).map(Some),
            _ if self.tls_self => server::tls::Tls::self_signed().map(Some),
            _ => Ok(None),
        }
    }
}

/// What the node admits (README, "Limits"; `sluice::limits` documents each).
#[derive(clap::Args)]
struct LimitArgs {
    /// Bytes of appends admitted across the node and not yet answered; beyond it appends
    /// wait, unread, for up to --append-admission-timeout, then are refused (S2: 429
    /// `rate_limited`; plate API: 503 `unavailable`), nothing applied.
    #[arg(long, default_value = "128MiB", value_parser = parse_bytes, env = "SLUICE_APPEND_INFLIGHT_BYTES")]
    append_inflight_bytes: usize,
    /// How long an append waits for admission before it is refused.
    #[arg(long, default_value = "2s", value_parser = parse_duration, env = "SLUICE_APPEND_ADMISSION_TIMEOUT")]
    append_admission_timeout: Duration,
    /// Bytes one read session (S2S, SSE) prepares ahead of what its client has taken.
    #[arg(long, default_value = "4MiB", value_parser = parse_bytes, env = "SLUICE_READ_BUFFER_BYTES")]
    read_buffer_bytes: usize,
    /// A client that takes nothing of its read session (or whose connection accepts no
    /// bytes) for this long is cut off.
    #[arg(long, default_value = "60s", value_parser = parse_duration, env = "SLUICE_SLOW_READER_TIMEOUT")]
    slow_reader_timeout: Duration,
    /// Open connections; beyond it new connections wait in the listen backlog.
    #[arg(long, default_value_t = Limits::default().max_connections, env = "SLUICE_MAX_CONNECTIONS")]
    max_connections: usize,
    /// The largest request head (HTTP/1.1: 431 beyond it; HTTP/2: the advertised header
    /// list size). At least 8KiB.
    #[arg(long, default_value = "64KiB", value_parser = parse_header_bytes, env = "SLUICE_MAX_HEADER_BYTES")]
    max_header_bytes: usize,
    /// The largest unary request body, after decompression (413 beyond it).
    #[arg(long, default_value = "8MiB", value_parser = parse_bytes, env = "SLUICE_MAX_BODY_BYTES")]
    max_body_bytes: usize,
    /// HTTP/1.1: how long a request head may take to arrive, including the wait for the
    /// next request on a kept-alive connection.
    #[arg(long, default_value = "30s", value_parser = parse_duration, env = "SLUICE_HEADER_READ_TIMEOUT")]
    header_read_timeout: Duration,
    /// A connection with no request in progress for this long is closed.
    #[arg(long, default_value = "60s", value_parser = parse_duration, env = "SLUICE_IDLE_TIMEOUT")]
    idle_timeout: Duration,
    /// How long a unary request body (or one S2S input frame, from its first byte) may
    /// take to arrive (408 `request_timeout` beyond it).
    #[arg(long, default_value = "30s", value_parser = parse_duration, env = "SLUICE_BODY_READ_TIMEOUT")]
    body_read_timeout: Duration,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        Limits {
            append_inflight_bytes: self.append_inflight_bytes,
            append_admission_timeout: self.append_admission_timeout,
            read_buffer_bytes: self.read_buffer_bytes,
            slow_reader_timeout: self.slow_reader_timeout,
            max_connections: self.max_connections,
            max_header_bytes: self.max_header_bytes,
            max_body_bytes: self.max_body_bytes,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            body_read_timeout: self.body_read_timeout,
        }
    }
}

fn parse_header_bytes(s: &str) -> Result<usize, String> {
    let n = parse_bytes(s)?;
    if n < MIN_HEADER_BYTES {
        return Err(format!(
            "at least {MIN_HEADER_BYTES} bytes (HTTP/1.1's smallest read buffer)"
        ));
    }
    Ok(n)
}

/// Turns transparent huge pages off for the process before the runtime starts any thread:
/// mimalloc asks for them, and then the first touch of fresh memory (every new chunk,
/// until the chunk cache is full) zeroes a whole 2 MiB page inside the append's path. On
/// a VM whose host backs guest memory lazily that first touch ran at 150 MB/s, about
/// 14 ms per page: the ack p99 tail and most of the node's CPU (docs/BENCHMARKS.md, "Those
/// zeroed pages were huge pages").
fn main() -> anyhow_free::Result {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::warn!(error = %e, "transparent huge pages stay enabled");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?
        .block_on(async {
            match Cli::parse().command {
                Command::Serve(args) => serve(*args).await,
                Command::Verify(args) => run_verify(args).await,
            }
        })
}

/// Where the data is, as `serve` and `verify` take it.
fn backend(
    bucket: &Option<String>,
    path: &Option<String>,
    local_root: &Option<PathBuf>,
) -> Backend {
    match bucket {
        Some(bucket) => Backend::S3 {
            settings: S3Settings::from_env(bucket),
            prefix: path.clone(),
        },
        None => Backend::Local(
            local_root
                .clone()
                .unwrap_or_else(|| PathBuf::from("sluice-data")),
        ),
    }
}

/// `sluice verify`: the report on stdout, progress on stderr, the verdict as exit code.
async fn run_verify(args: VerifyArgs) -> anyhow_free::Result {
    let backend = backend(&args.bucket, &args.path, &args.local_root);
    let store = match server::open_store(&backend) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("sluice verify: cannot open the store: {e}");
            std::process::exit(2);
        }
    };
    let mut options = verify::Options {
        concurrency: args.concurrency.max(1),
        ..verify::Options::default()
    };
    if let Some(secs) = args.grace_secs {
        options.grace = Duration::from_secs(secs);
    }
    let started = std::time::Instant::now();
    options.progress = Some(Box::new(move |p: &verify::Progress| {
        eprintln!(
            "sluice verify: {} objects, {} stream directories, {} MiB read, {:.0?}",
            p.objects,
            p.streams,
            p.bytes_read / (1024 * 1024),
            started.elapsed()
        );
    }));
    let report = match verify::verify(&store, &options).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("sluice verify: could not finish: {e}");
            std::process::exit(2);
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("reports serialize")
        );
    } else {
        match &backend {
            Backend::Local(root) => println!("sluice verify: local directory {}", root.display()),
            Backend::S3 { settings, prefix } => println!(
                "sluice verify: bucket {} prefix {:?}",
                settings.bucket,
                prefix.as_deref().unwrap_or("")
            ),
        }
        println!("{report}");
    }
    std::process::exit(if report.is_sound() { 0 } else { 1 });
}

async fn serve(args: ServeArgs) -> anyhow_free::Result {
    let backend = backend(&args.bucket, &args.path, &args.local_root);
    let mut config = ServerConfig::new(backend.clone());
    config.engine.cache_bytes = args.cache_mib * 1024 * 1024;
    config.engine.appender.express_linger = Duration::from_millis(args.express_linger_ms);
    if let Some(ms) = args.standard_linger_ms {
        config.engine.appender.standard_linger = Duration::from_millis(ms);
    }
    if config.engine.poll.is_some() {
        config.engine.poll = Some(PollIntervals {
            express: Duration::from_millis(args.poll_express_ms),
            standard: Duration::from_millis(args.poll_standard_ms),
        });
    }
    config.engine.max_deleted_ranges = args.redis_max_deleted_ranges;
    config.engine.group_checkpoint_records = args.redis_group_checkpoint_records;
    config.engine.group_checkpoint_bytes = args.redis_group_checkpoint_bytes as u64;
    config.engine.orphan_grace = args.orphan_grace;
    config.engine.stream_idle_release = args.stream_idle_release;
    config.engine.appender.idle_exit = args.appender_idle_exit;
    if args.metrics_flush_interval.is_zero() {
        return Err("--metrics-flush-interval must be above zero"
            .to_owned()
            .into());
    }
    config.engine.usage_flush_interval = args.metrics_flush_interval;
    config.root_token = args.root_token.clone().filter(|t| !t.is_empty());
    config.limits = args.limits.limits();
    config.tls = args.tls.tls()?;
    config.cors = !args.no_cors;
    config.local_journal_bytes = args.local_journal_bytes;
    config.peers = PeerSettings {
        peers: args.peers.0.clone(),
        secret: match args.peer_secret.as_deref().filter(|s| !s.is_empty()) {
            Some(secret) => {
                PeerSecret::check(secret).map_err(|e| format!("--peer-secret: {e}"))?;
                Some(Arc::new(PeerSecret::new(secret)))
            }
            None => None,
        },
        hold: args.peer_watch_hold,
        key_homes: !args.no_key_homes,
    };
    if let (false, Backend::Local(_)) = (config.peers.peers.is_empty(), &backend) {
        return Err("--peers needs a bucket: a local directory has one node"
            .to_owned()
            .into());
    }
    let init = args
        .init_file
        .as_deref()
        .map(server::init::InitFile::load)
        .transpose()?;
    let node = server::build_node(&config).map_err(|e| e.to_string())?;
    let engine = node.engine.clone();
    node.engine
        .health()
        .await
        .map_err(|e| format!("storage is not reachable: {e}"))?;
    if let (Some(init), Some(path)) = (init, &args.init_file) {
        init.apply(&node.engine)
            .await
            .map_err(|e| format!("--init-file {}: {e}", path.display()))?;
    }
    let addr = SocketAddr::new(args.host, args.port);
    let listener = server::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    match &backend {
        Backend::Local(root) => {
            info!(%addr, scheme, root = %root.display(), "serving from a local directory")
        }
        Backend::S3 { settings, prefix } => {
            info!(%addr, scheme, bucket = %settings.bucket, prefix = ?prefix, endpoint = ?settings.endpoint, "serving from S3")
        }
    }
    if config.root_token.is_none() {
        info!("no root token: requests need no access token");
    }
    if args.tls.tls_self {
        info!(
            "self-signed certificate for localhost, 127.0.0.1 and ::1: the s2 CLI needs \
             S2_SSL_NO_VERIFY=true"
        );
    }
    let resp = match args.redis_port {
        None => None,
        Some(port) => {
            let addr = SocketAddr::new(args.host, port);
            let listener = server::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            info!(%addr, plate = ?args.redis_plate, "serving RESP");
            let resp = RespConfig {
                plate: args.redis_plate.clone(),
                max_clients: args.redis_maxclients,
                max_bulk: args.redis_proto_max_bulk_len,
                max_multibulk: args.redis_max_multibulk_len,
                query_buffer_limit: args.redis_query_buffer_limit,
                output_buffer_limit: args.redis_output_buffer_limit,
                pipeline_depth: args.redis_pipeline_depth,
                idle_timeout: (args.redis_timeout > 0)
                    .then(|| Duration::from_secs(args.redis_timeout)),
            };
            Some(server::spawn_resp(
                listener,
                &node,
                resp,
                config.shutdown_grace,
            ))
        }
    };
    server::serve(
        listener,
        node.app,
        server::shutdown_signal(),
        config.shutdown_grace,
        node.draining,
        &config.limits,
        config.tls.clone(),
    )
    .await;
    if let Some(resp) = resp {
        let _ = resp.await;
    }
    if let Err(e) = engine.flush_usage().await {
        tracing::warn!(error = %e, "writing usage at shutdown failed");
    }
    Ok(())
}

/// `main`'s error: printed as a plain message, exit code 1.
mod anyhow_free {
    pub type Result = std::result::Result<(), Error>;

    pub struct Error(String);

    impl std::fmt::Debug for Error {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl From<String> for Error {
        fn from(s: String) -> Self {
            Self(s)
        }
    }
}

/// `--peers`: the parsed list (clap takes a value parser's output as the argument's type).
#[derive(Clone, Debug)]
struct PeerList(Vec<PeerAddr>);

fn parse_peers(s: &str) -> Result<PeerList, String> {
    PeerAddr::parse_list(s).map(PeerList)
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be above zero".to_owned()),
        d => Ok(d),
    }
}

/// A count of at least one.
fn parse_positive_bytes(s: &str) -> Result<u64, String> {
    parse_positive(s).map(|n| n as u64)
}

fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{s}` is not a whole number of at least 1")),
    }
}
