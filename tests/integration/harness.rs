//! Test fixture: a Sluice node in this process on a loopback port, over a local directory
//! or over a real S3 server (ministack) started once per test process.

use std::{
    path::PathBuf,
    process::Command,
    sync::{Mutex, OnceLock},
    time::Duration,
};

use s2_sdk::{
    S2,
    types::{BasinName, RetryConfig, S2Config, S2Endpoints},
};
use sluice::{
    server::{self, Backend as ServerBackend, ServerConfig},
    storage::{DynStore, S3Settings},
};
use tokio::{sync::oneshot, task::JoinHandle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An in-process node on a temporary local directory.
    Local,
    /// An in-process node on ministack.
    Ministack,
    /// Several `sluice` processes behind a load balancer, started outside the test
    /// process (`scripts/cluster.sh`): h2c at `SLUICE_TEST_CLUSTER_ENDPOINT`, HTTP/1.1 at
    /// `SLUICE_TEST_CLUSTER_HTTP1_ENDPOINT` (the same if unset).
    Cluster,
}

/// Dummy credentials and region, so that no client ever looks for cloud metadata.
pub fn set_aws_env() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // SAFETY: set once, before any thread of this process reads these variables.
        unsafe {
            for (k, v) in [
                ("AWS_ACCESS_KEY_ID", "sluice-test"),
                ("AWS_SECRET_ACCESS_KEY", "sluice-test"),
                ("AWS_REGION", "us-east-1"),
                ("AWS_DEFAULT_REGION", "us-east-1"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ] {
                if std::env::var_os(k).is_none() {
                    std::env::set_var(k, v);
                }
            }
        }
    });
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A local S3 server used by the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum S3Server {
    Ministack,
    Moto,
}

impl S3Server {
    fn script(self) -> &'static str {
        match self {
            Self::Ministack => "scripts/ministack.sh",
            Self::Moto => "scripts/moto.sh",
        }
    }

    fn env_prefix(self) -> &'static str {
        match self {
            Self::Ministack => "SLUICE_TEST_S3",
            Self::Moto => "SLUICE_TEST_MOTO",
        }
    }

    fn endpoint_line(self) -> &'static str {
        match self {
            Self::Ministack => "MINISTACK_ENDPOINT=",
            Self::Moto => "MOTO_ENDPOINT=",
        }
    }
}

/// Where a running S3 server is, and the bucket tests use on it.
#[derive(Debug, Clone)]
pub struct S3Endpoint {
    pub endpoint: String,
    pub bucket: String,
}

static S3_SERVERS: Mutex<Vec<(S3Server, S3Endpoint)>> = Mutex::new(Vec::new());
static STARTED_HERE: Mutex<Vec<(S3Server, PathBuf)>> = Mutex::new(Vec::new());

extern "C" fn stop_s3_servers() {
    if let Ok(started) = STARTED_HERE.lock() {
        for (server, dir) in started.iter() {
            let _ = Command::new(repo_root().join(server.script()))
                .arg("stop")
                .arg(dir)
                .status();
        }
    }
}

unsafe extern "C" {
    fn atexit(f: extern "C" fn()) -> i32;
}

/// The endpoint of `server`: from `<PREFIX>_ENDPOINT` / `<PREFIX>_BUCKET` when the test
/// command started one, otherwise started here (once per process) and stopped at exit.
pub fn s3_server(server: S3Server) -> S3Endpoint {
    set_aws_env();
    let mut servers = S3_SERVERS.lock().unwrap();
    if let Some((_, e)) = servers.iter().find(|(s, _)| *s == server) {
        return e.clone();
    }
    let prefix = server.env_prefix();
    let endpoint = if let Ok(endpoint) = std::env::var(format!("{prefix}_ENDPOINT")) {
        let bucket =
            std::env::var(format!("{prefix}_BUCKET")).unwrap_or_else(|_| "sluice-test".into());
        S3Endpoint { endpoint, bucket }
    } else {
        let dir = std::env::temp_dir()
            .join(format!("sluice-test-{server:?}-{}", std::process::id()))
            .join("s3");
        std::fs::create_dir_all(&dir).expect("s3 data dir");
        let out = Command::new(repo_root().join(server.script()))
            .arg("start")
            .arg(&dir)
            .arg("sluice-test")
            .output()
            .expect("run the S3 server script");
        assert!(
            out.status.success(),
            "starting {server:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut started = STARTED_HERE.lock().unwrap();
        if started.is_empty() {
            // SAFETY: registering a plain extern "C" function.
            unsafe { atexit(stop_s3_servers) };
        }
        started.push((server, dir));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let endpoint = stdout
            .lines()
            .find_map(|l| l.strip_prefix(server.endpoint_line()))
            .expect("endpoint line")
            .trim()
            .to_owned();
        S3Endpoint {
            endpoint,
            bucket: "sluice-test".into(),
        }
    };
    servers.push((server, endpoint.clone()));
    endpoint
}

/// S3 settings for `server`'s test bucket.
pub fn s3_settings(server: S3Server) -> S3Settings {
    let e = s3_server(server);
    let mut settings = S3Settings::from_env(&e.bucket);
    settings.endpoint = Some(e.endpoint);
    settings
}

/// A unique, valid name fragment.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// A fresh basin name.
pub fn basin_name() -> String {
    unique("basin")
}

pub struct TestServer {
    pub backend: Backend,
    /// `host:port` the tests talk to over h2c (the SDK, [`Self::h2`]).
    pub addr: String,
    /// `host:port` for HTTP/1.1 clients ([`Self::http`]): `addr`, except behind a balancer
    /// that serves the two protocols on separate ports.
    pub http1_addr: String,
    /// Present for in-process nodes.
    local: Option<LocalNode>,
}

struct LocalNode {
    storage: ServerBackend,
    /// The node's own store (the local directory's lock admits no second opener).
    store: DynStore,
    _dir: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        if backend == Backend::Cluster {
            set_aws_env();
            let endpoint = std::env::var("SLUICE_TEST_CLUSTER_ENDPOINT")
                .expect("cluster tests need SLUICE_TEST_CLUSTER_ENDPOINT (see scripts/cluster.sh)");
            let http1 =
                std::env::var("SLUICE_TEST_CLUSTER_HTTP1_ENDPOINT").unwrap_or(endpoint.clone());
            let host_port = |url: &str| {
                url.trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_owned()
            };
            return Self {
                backend,
                addr: host_port(&endpoint),
                http1_addr: host_port(&http1),
                local: None,
            };
        }
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a node, letting `tweak` adjust its configuration first.
    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::start_wrapped(backend, tweak, |s| s).await
    }

    /// Starts a node whose store is `wrap`ped (e.g. in a fault injector).
    pub async fn start_wrapped(
        backend: Backend,
        tweak: impl FnOnce(&mut ServerConfig),
        wrap: impl FnOnce(DynStore) -> DynStore,
    ) -> Self {
        set_aws_env();
        let (storage, dir) = match backend {
            Backend::Cluster => panic!("this test needs an in-process node"),
            Backend::Local => {
                let dir = tempfile::tempdir().expect("tempdir");
                (ServerBackend::Local(dir.path().to_owned()), Some(dir))
            }
            Backend::Ministack => (
                ServerBackend::S3 {
                    settings: s3_settings(S3Server::Ministack),
                    prefix: Some(unique("t")),
                },
                None,
            ),
        };
        let mut config = test_config(&storage);
        tweak(&mut config);
        let store = wrap(server::open_store(&storage).expect("open store"));
        let node = server::build_node_on(store, &config);
        Self::serve_node(backend, storage, dir, config, node, None).await
    }

    async fn launch(
        backend: Backend,
        storage: ServerBackend,
        dir: Option<tempfile::TempDir>,
        config: ServerConfig,
        port: Option<u16>,
    ) -> Self {
        let node = open_node(&config).await;
        Self::serve_node(backend, storage, dir, config, node, port).await
    }

    async fn serve_node(
        backend: Backend,
        storage: ServerBackend,
        dir: Option<tempfile::TempDir>,
        config: ServerConfig,
        node: sluice::server::Node,
        port: Option<u16>,
    ) -> Self {
        let listener = bind(port.unwrap_or(0)).await;
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let app = node.app.clone();
        let draining = node.draining.clone();
        let store = node.store.clone();
        let task = tokio::spawn(async move {
            server::serve(
                listener,
                app,
                async move {
                    let _ = rx.await;
                },
                config.shutdown_grace,
                draining,
                &config.limits,
                config.tls.clone(),
            )
            .await;
        });
        Self {
            backend,
            addr: addr.to_string(),
            http1_addr: addr.to_string(),
            local: Some(LocalNode {
                storage,
                store,
                _dir: dir,
                shutdown: Some(tx),
                task: Some(task),
            }),
        }
    }

    /// The base URL for h2c clients (the SDK).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A URL for an HTTP/1.1 client ([`Self::http`]).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http1_addr)
    }

    /// A URL for an h2c client ([`Self::h2`]).
    pub fn h2_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Another node on the same bucket and prefix (S3 backends only: a local directory
    /// admits one process).
    pub async fn start_peer(&self) -> Self {
        self.start_peer_with(|_| {}).await
    }

    /// A peer whose configuration `tweak` adjusts first.
    pub async fn start_peer_with(&self, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let local = self.local.as_ref().expect("an in-process node");
        assert!(
            matches!(local.storage, ServerBackend::S3 { .. }),
            "peers share a bucket"
        );
        let storage = local.storage.clone();
        let mut config = test_config(&storage);
        tweak(&mut config);
        Self::launch(self.backend, storage, None, config, None).await
    }

    /// The store this in-process node keeps its data in, for checking and damaging it.
    pub fn store(&self) -> DynStore {
        self.local
            .as_ref()
            .expect("an in-process node")
            .store
            .clone()
    }

    /// The directory an in-process node on a local directory keeps its data in.
    pub fn local_root(&self) -> Option<std::path::PathBuf> {
        match &self.local.as_ref()?.storage {
            ServerBackend::Local(dir) => Some(dir.clone()),
            _ => None,
        }
    }

    /// Stops this node (gracefully) and starts a new one on the same storage and port.
    pub async fn restart(self) -> Self {
        self.restart_with(|_| {}).await
    }

    /// [`Self::restart`], letting `tweak` adjust the new node's configuration.
    pub async fn restart_with(mut self, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        self.stop().await;
        let backend = self.backend;
        let port: u16 = self.addr.rsplit(':').next().unwrap().parse().unwrap();
        let mut local = self.local.take().expect("an in-process node");
        let storage = local.storage.clone();
        let dir = local._dir.take();
        drop(local); // its store holds the local directory's lock
        drop(self);
        let mut config = test_config(&storage);
        tweak(&mut config);
        Self::launch(backend, storage, dir, config, Some(port)).await
    }

    pub async fn stop(&mut self) {
        let local = self.local.as_mut().expect("an in-process node");
        if let Some(tx) = local.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = local.task.take() {
            let _ = task.await;
        }
    }

    /// A plain HTTP/1.1 client.
    /// The value of one series of the node's `/metrics` (`name{labels}` as exposed).
    pub async fn metric(&self, series: &str) -> u64 {
        let text = self
            .http()
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in /metrics"))
    }

    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .unwrap()
    }

    /// An HTTP/2 (prior knowledge) client.
    pub fn h2(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .http2_prior_knowledge()
            .timeout(Duration::from_secs(90))
            .build()
            .unwrap()
    }

    pub fn sdk(&self) -> S2 {
        self.sdk_with(|c| c)
    }

    pub fn sdk_with(&self, tweak: impl FnOnce(S2Config) -> S2Config) -> S2 {
        self.sdk_as_with("ignored", tweak)
    }

    /// An SDK client presenting `access_token`.
    pub fn sdk_as(&self, access_token: &str) -> S2 {
        self.sdk_as_with(access_token, |c| c)
    }

    fn sdk_as_with(&self, access_token: &str, tweak: impl FnOnce(S2Config) -> S2Config) -> S2 {
        let endpoints = S2Endpoints::for_endpoint(&self.endpoint()).expect("endpoints");
        let config = S2Config::new(access_token)
            .with_endpoints(endpoints)
            .with_retry(RetryConfig::new());
        S2::new(tweak(config)).expect("sdk client")
    }

    /// Creates a basin through the SDK; `create_stream_on_append`/`on_read` as given.
    pub async fn create_basin(&self, auto_create: bool) -> BasinName {
        let name: BasinName = basin_name().parse().unwrap();
        let config = s2_sdk::types::BasinConfig::new()
            .with_create_stream_on_append(auto_create)
            .with_create_stream_on_read(auto_create);
        self.sdk()
            .create_basin(s2_sdk::types::CreateBasinInput::new(name.clone()).with_config(config))
            .await
            .expect("create basin");
        name
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.local.as_mut().and_then(|l| l.shutdown.take()) {
            let _ = tx.send(());
        }
    }
}

/// Binds a loopback port (0: any), waiting for a just-closed listener's port to free up.
async fn bind(port: u16) -> tokio::net::TcpListener {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => return l,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("binding port {port}: {e}"),
        }
    }
}

fn test_config(storage: &ServerBackend) -> ServerConfig {
    let mut config = ServerConfig::new(storage.clone());
    config.engine.deletion_grace = Duration::from_millis(100);
    config.engine.maintenance_interval = Duration::from_millis(100);
    config.engine.gc_grace = Duration::from_millis(100);
    config.shutdown_grace = Duration::from_secs(2);
    config
}

/// Builds a node, waiting for a previous process-local owner of a local directory to let go.
async fn open_node(config: &ServerConfig) -> sluice::server::Node {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match server::build_node(config) {
            Ok(node) => return node,
            Err(e)
                if tokio::time::Instant::now() < deadline && e.to_string().contains("in use") =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("starting node: {e}"),
        }
    }
}

/// Polls `check` until it returns `Some`, for up to `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs every listed async test function once per backend.
/// Runs every listed async test function once per backend, including a cluster behind a
/// load balancer (`#[ignore]`d unless run by `scripts/cluster-tests.sh`).
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        $crate::on_both_backends!($($name),*);
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs a running cluster: scripts/cluster-tests.sh"]
                async fn $name() {
                    super::$name($crate::harness::Backend::Cluster).await
                }
            )*
        }
    };
}

/// Runs every listed async test function against an in-process node on each storage
/// backend (tests that configure, restart or fault the node).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::Backend::Local).await
                }
            )*
        }
        mod ministack {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::Backend::Ministack).await
                }
            )*
        }
    };
}
