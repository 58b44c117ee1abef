//! The HTTP listener's options: HTTPS (given certificate files or `--tls-self`) with
//! HTTP/1.1 and HTTP/2 by ALPN, the connection limits over TLS, and CORS on or off.

use std::{sync::Arc, time::Duration};

use reqwest::Version;
use s2_sdk::types::{
    AppendInput, AppendRecord, AppendRecordBatch, CreateStreamInput, ListBasinsInput, ReadInput,
};
use sluice::server::tls::Tls;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Backend, TestServer};

/// A certificate for `127.0.0.1` and `localhost` in PEM files, and its PEM.
fn cert_files(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, signing_key.serialize_pem()).unwrap();
    (cert_path, key_path, cert.pem())
}

/// A TLS client config that trusts only `cert_pem` and offers `alpn`.
fn trusting(cert_pem: &str, alpn: &[&[u8]]) -> rustls::ClientConfig {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// One HTTPS GET to `addr` (`host:port`) as `server_name`, over the protocol ALPN picks:
/// status, HTTP version, body.
async fn https_get(
    config: rustls::ClientConfig,
    addr: &str,
    server_name: &str,
    path: &str,
) -> Result<(u16, Version, bytes::Bytes), String> {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let request = http::Request::get(format!("https://{server_name}{path}"))
        .header("host", server_name)
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let io = TokioIo::new(tls);
    let response = if h2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(request).await
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(request).await
    }
    .map_err(|e| e.to_string())?;
    let (status, version) = (response.status().as_u16(), response.version());
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, version, body))
}

async fn https_server(
    tls: Tls,
    tweak: impl FnOnce(&mut sluice::server::ServerConfig),
) -> TestServer {
    TestServer::start_with(Backend::Local, |c| {
        c.tls = Some(tls);
        tweak(c);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_given_files_speaks_http1_and_h2_by_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, cert_pem) = cert_files(dir.path());
    let server = https_server(Tls::from_pem_files(&cert, &key).unwrap(), |_| {}).await;
    for (alpn, version) in [
        (&[b"h2" as &[u8]][..], Version::HTTP_2),
        (&[b"http/1.1" as &[u8]][..], Version::HTTP_11),
        (&[b"h2" as &[u8], b"http/1.1"][..], Version::HTTP_2),
    ] {
        let config = trusting(&cert_pem, alpn);
        let (status, got, body) = https_get(config, &server.addr, "127.0.0.1", "/v1/basins")
            .await
            .unwrap();
        assert_eq!((status, got), (200, version), "ALPN {alpn:?}");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(body["basins"].is_array(), "{body}");
    }
    // By name too: the certificate is for `localhost` as well.
    let port = server.addr.rsplit(':').next().unwrap();
    let (status, _, _) = https_get(
        trusting(&cert_pem, &[b"h2"]),
        &server.addr,
        "localhost",
        "/health",
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "localhost:{port}");
    // The port speaks only TLS, as `s2 lite`'s: cleartext HTTP gets no answer.
    let plain = server
        .http()
        .get(format!("http://{}/v1/basins", server.addr))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
    // A client that does not trust the certificate is refused in the handshake.
    let other = cert_files(dir.path()).2;
    let err = https_get(
        trusting(&other, &[b"h2"]),
        &server.addr,
        "127.0.0.1",
        "/health",
    )
    .await
    .unwrap_err();
    assert!(err.starts_with("handshake"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_works_over_https_with_a_self_signed_certificate() {
    let server = https_server(Tls::self_signed().unwrap(), |_| {}).await;
    let endpoint = format!("https://{}", server.addr);
    let endpoints = s2_sdk::types::S2Endpoints::for_endpoint(&endpoint).unwrap();
    let s2 = s2_sdk::S2::new(
        s2_sdk::types::S2Config::new("ignored")
            .with_endpoints(endpoints)
            .with_insecure_skip_cert_verification(true),
    )
    .unwrap();
    s2.list_basins(ListBasinsInput::new()).await.unwrap();
    let basin_name = crate::harness::basin_name();
    s2.create_basin(s2_sdk::types::CreateBasinInput::new(
        basin_name.parse().unwrap(),
    ))
    .await
    .unwrap();
    let basin = s2.basin(basin_name.parse().unwrap());
    basin
        .create_stream(CreateStreamInput::new("s".parse().unwrap()))
        .await
        .unwrap();
    let stream = basin.stream("s".parse().unwrap());
    let batch = AppendRecordBatch::try_from_iter([AppendRecord::new("over tls").unwrap()]).unwrap();
    stream.append(AppendInput::new(batch)).await.unwrap();
    let read = stream.read(ReadInput::new()).await.unwrap();
    assert_eq!(read.records.len(), 1);
    assert_eq!(read.records[0].body.as_ref(), b"over tls");

    // A certificate for the loopback names, over HTTP/1.1 too.
    for (alpn, version) in [
        (&b"h2"[..], Version::HTTP_2),
        (&b"http/1.1"[..], Version::HTTP_11),
    ] {
        let mut config = insecure_client_config();
        config.alpn_protocols = vec![alpn.to_vec()];
        let (status, got, _) = https_get(config, &server.addr, "localhost", "/health")
            .await
            .unwrap();
        assert_eq!((status, got), (200, version));
    }
}

fn insecure_client_config() -> rustls::ClientConfig {
    #[derive(Debug)]
    struct AnyCert(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// A peer that connects and never finishes its handshake holds its connection slot only
/// until `--header-read-timeout`: with one slot, the next client gets in after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_is_cut_off_by_the_header_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, cert_pem) = cert_files(dir.path());
    let server = https_server(Tls::from_pem_files(&cert, &key).unwrap(), |c| {
        c.limits.max_connections = 1;
        c.limits.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stalled = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    // The first bytes of a ClientHello, and then nothing.
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), stalled.read(&mut buf))
        .await
        .expect("the stalled handshake is cut off");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    // The slot is free again.
    let (status, _, _) = https_get(
        trusting(&cert_pem, &[b"h2"]),
        &server.addr,
        "127.0.0.1",
        "/health",
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
}

/// Idle connections over TLS are closed as cleartext ones are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tls_connection_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, cert_pem) = cert_files(dir.path());
    let server = https_server(Tls::from_pem_files(&cert, &key).unwrap(), |c| {
        c.limits.idle_timeout = Duration::from_millis(500);
    })
    .await;
    use rustls::pki_types::ServerName;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(trusting(&cert_pem, &[b"http/1.1"])));
    let tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the idle connection stays open");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_on_by_default_and_off_with_no_cors() {
    for cors in [true, false] {
        let server = TestServer::start_with(Backend::Local, |c| c.cors = cors).await;
        let preflight = server
            .http()
            .request(reqwest::Method::OPTIONS, server.url("/v1/basins"))
            .header("origin", "https://console.example")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
            .await
            .unwrap();
        let allow_origin = preflight.headers().get("access-control-allow-origin");
        let get = server
            .http()
            .get(server.url("/v1/basins"))
            .header("origin", "https://console.example")
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), 200);
        if cors {
            assert_eq!(preflight.status(), 200);
            assert_eq!(allow_origin.unwrap(), "https://console.example");
            let allow_headers = preflight.headers()["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .to_ascii_lowercase();
            assert!(allow_headers.contains("authorization"), "{allow_headers}");
            assert!(get.headers().contains_key("access-control-allow-origin"));
        } else {
            assert!(allow_origin.is_none(), "{:?}", preflight.headers());
            assert!(!get.headers().contains_key("access-control-allow-origin"));
        }
    }
}
