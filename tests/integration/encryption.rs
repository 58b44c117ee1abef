//! Encrypted streams: the Rust SDK and plain HTTP append and read with the stream's key
//! on every path (unary JSON and protobuf, S2S sessions, SSE), a missing or wrong key
//! fails as S2 says, the basin's cipher is applied to streams created after it, and no
//! object in the bucket holds a known body or header.

use futures::StreamExt;
use reqwest::Method;
use s2_sdk::{
    S2Stream,
    append_session::AppendSessionConfig,
    error::{AppendError, ReadError, RequestError},
    types::{
        AppendInput, AppendRecord, AppendRecordBatch, BasinConfig, BasinReconfiguration,
        CommandRecord, CreateBasinInput, CreateStreamInput, EncryptionAlgorithm, EncryptionKey,
        FencingToken, Header, ListStreamsInput, ReadFrom, ReadInput, ReadLimits, ReadSessionConfig,
        ReadStart, ReadStop, ReconfigureBasinInput,
    },
};
use serde_json::json;
use sluice::{engine::verify, storage::DynStore};

use crate::{
    harness::{Backend, TestServer, basin_name},
    http::Api,
    on_both_backends,
};

on_both_backends!(
    sdk_encrypted_streams_append_and_read_with_their_key,
    http_paths_and_the_redis_surfaces_on_an_encrypted_stream,
);

const KEY: [u8; 32] = [0x5a; 32];
const KEY_B64: &str = "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=";

/// Bodies and header values every test record carries, distinct per stream so a find
/// names its stream.
fn secret(stream: &str, what: &str) -> String {
    format!("plaintext-{what}-of-{stream}")
}

fn batch(stream: &str, n: usize) -> AppendRecordBatch {
    AppendRecordBatch::try_from_iter((0..n).map(|i| {
        AppendRecord::new(format!("{}#{i}", secret(stream, "body")))
            .unwrap()
            .with_headers([Header::new("tag", secret(stream, "header"))])
            .unwrap()
    }))
    .unwrap()
}

/// The status and code of an S2 error the server returned.
fn read_error(e: ReadError) -> (u16, String) {
    match e {
        ReadError::Request(RequestError::Server(e)) => (e.status.as_u16(), e.code),
        other => panic!("not a server error: {other:?}"),
    }
}

/// Every record of the stream, read unary from 0: bodies in order.
async fn read_bodies(stream: &S2Stream) -> Result<Vec<String>, ReadError> {
    let batch = stream
        .read(ReadInput::new().with_start(ReadStart::new().with_from(ReadFrom::SeqNum(0))))
        .await?;
    Ok(batch
        .records
        .iter()
        .filter(|r| !r.is_command_record())
        .map(|r| {
            assert_eq!(r.headers.len(), 1, "{r:?}");
            String::from_utf8(r.body.to_vec()).unwrap()
        })
        .collect())
}

/// Every object this node keeps (and, on a local directory, every file under it): the
/// keys of those that contain `needle`.
async fn objects_containing(server: &TestServer, needle: &str) -> Vec<String> {
    let store: DynStore = server.store();
    let mut found = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list("", after.as_deref(), 1000).await.unwrap();
        for key in &page.keys {
            if let Some(bytes) = store.get_bytes(key).await.unwrap()
                && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            {
                found.push(key.clone());
            }
        }
        after = page.keys.last().cloned();
        if !page.truncated {
            break;
        }
    }
    if let Some(root) = server.local_root() {
        let mut dirs = vec![root];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if std::fs::read(&path)
                    .unwrap()
                    .windows(needle.len())
                    .any(|w| w == needle.as_bytes())
                {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    found
}

async fn sdk_encrypted_streams_append_and_read_with_their_key(backend: Backend) {
    let server = TestServer::start(backend).await;
    let s2 = server.sdk();
    let name: s2_sdk::types::BasinName = basin_name().parse().unwrap();
    s2.create_basin(CreateBasinInput::new(name.clone()))
        .await
        .unwrap();
    let basin = s2.basin(name.clone());
    let create = |s: &str| basin.create_stream(CreateStreamInput::new(s.parse().unwrap()));
    // A stream created while the basin has no cipher stays plain; the basin's cipher
    // applies to streams created after it is set, each keeping its own.
    assert_eq!(create("plain").await.unwrap().cipher, None);
    let set_cipher = |cipher| {
        s2.reconfigure_basin(ReconfigureBasinInput::new(
            name.clone(),
            BasinReconfiguration::new().with_stream_cipher(cipher),
        ))
    };
    set_cipher(EncryptionAlgorithm::Aegis256).await.unwrap();
    assert_eq!(
        create("aegis").await.unwrap().cipher,
        Some(EncryptionAlgorithm::Aegis256)
    );
    set_cipher(EncryptionAlgorithm::Aes256Gcm).await.unwrap();
    assert_eq!(
        create("gcm").await.unwrap().cipher,
        Some(EncryptionAlgorithm::Aes256Gcm)
    );
    let listed = basin.list_streams(ListStreamsInput::new()).await.unwrap();
    let ciphers: Vec<_> = listed
        .values
        .iter()
        .map(|s| (s.name.to_string(), s.cipher))
        .collect();
    assert_eq!(
        ciphers,
        vec![
            ("aegis".into(), Some(EncryptionAlgorithm::Aegis256)),
            ("gcm".into(), Some(EncryptionAlgorithm::Aes256Gcm)),
            ("plain".into(), None),
        ]
    );

    let key = || EncryptionKey::new(KEY);
    for name in ["aegis", "gcm"] {
        let stream = basin
            .stream(name.parse().unwrap())
            .with_encryption_key(key());
        // Unary append, then an append session.
        stream
            .append(AppendInput::new(batch(name, 3)))
            .await
            .unwrap();
        let session = stream.append_session(AppendSessionConfig::new());
        let ticket = session
            .submit(AppendInput::new(batch(name, 2)))
            .await
            .unwrap();
        assert_eq!(ticket.await.unwrap().end.seq_num, 5);
        session.close().await.unwrap();
        // Command records work on an encrypted stream (with its key, as in S2).
        let token: FencingToken = "fence-1".parse().unwrap();
        stream
            .append(AppendInput::new(
                AppendRecordBatch::try_from_iter([AppendRecord::from(CommandRecord::fence(
                    token.clone(),
                ))])
                .unwrap(),
            ))
            .await
            .unwrap();
        stream
            .append(AppendInput::new(batch(name, 1)).with_fencing_token(token))
            .await
            .unwrap();
        let bodies = read_bodies(&stream).await.unwrap();
        let expected: Vec<String> = [0, 1, 2, 0, 1, 0]
            .iter()
            .map(|i| format!("{}#{i}", secret(name, "body")))
            .collect();
        assert_eq!(bodies, expected, "{name}");
        let read = stream
            .read(ReadInput::new().with_start(ReadStart::new().with_from(ReadFrom::SeqNum(0))))
            .await
            .unwrap();
        assert_eq!(
            read.records[0].headers[0].value,
            secret(name, "header").as_bytes()
        );

        // A read session catches up through the same records.
        let mut session = stream
            .read_session(
                ReadInput::new()
                    .with_start(ReadStart::new().with_from(ReadFrom::SeqNum(0)))
                    .with_stop(ReadStop::new().with_limits(ReadLimits::new().with_count(7))),
                ReadSessionConfig::new(),
            )
            .await
            .unwrap();
        let mut seen = Vec::new();
        while let Some(batch) = session.next().await {
            for r in batch.unwrap().records {
                if !r.is_command_record() {
                    seen.push(String::from_utf8(r.body.to_vec()).unwrap());
                }
            }
        }
        assert_eq!(seen, expected, "{name}: read session");

        // Without the key: S2's bad_header, on append and on read; nothing appended.
        let keyless = basin.stream(name.parse().unwrap());
        let err = keyless
            .append(AppendInput::new(batch(name, 1)))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, AppendError::Request(RequestError::Server(e)) if e.code == "bad_header" && e.status == 400),
            "{err:?}"
        );
        let (status, code) = read_error(read_bodies(&keyless).await.unwrap_err());
        assert_eq!((status, code.as_str()), (400, "bad_header"));
        // With another key: the append cannot tell, the read fails as decryption_failed.
        let wrong = basin
            .stream(name.parse().unwrap())
            .with_encryption_key(EncryptionKey::new([0x11; 32]));
        let (status, code) = read_error(read_bodies(&wrong).await.unwrap_err());
        assert_eq!((status, code.as_str()), (400, "decryption_failed"));
        let mut session = wrong
            .read_session(
                ReadInput::new().with_start(ReadStart::new().with_from(ReadFrom::SeqNum(0))),
                ReadSessionConfig::new(),
            )
            .await
            .unwrap();
        let err = session.next().await.expect("an outcome").unwrap_err();
        assert!(format!("{err:?}").contains("decryption_failed"), "{err:?}");
        assert_eq!(stream.check_tail().await.unwrap().seq_num, 7);
    }

    // A key on a plain stream is ignored, as S2 ignores it.
    let plain = basin
        .stream("plain".parse().unwrap())
        .with_encryption_key(key());
    plain
        .append(AppendInput::new(batch("plain", 2)))
        .await
        .unwrap();
    assert_eq!(read_bodies(&plain).await.unwrap().len(), 2);

    // The bucket holds no plaintext of an encrypted stream's records, and the plain
    // stream's in the same places shows the search finds what is there.
    for name in ["aegis", "gcm"] {
        for what in ["body", "header"] {
            let found = objects_containing(&server, &secret(name, what)).await;
            assert!(found.is_empty(), "{name}'s {what} in {found:?}");
        }
    }
    assert!(
        !objects_containing(&server, &secret("plain", "body"))
            .await
            .is_empty()
    );
    assert!(
        !objects_containing(&server, "fence-1").await.is_empty(),
        "commands stay plaintext"
    );
    // And `sluice verify` finds encrypted streams sound (metering, counts, checksums).
    let report = verify::verify(&server.store(), &verify::Options::default())
        .await
        .unwrap();
    assert!(report.is_sound(), "{report}");
}

async fn http_paths_and_the_redis_surfaces_on_an_encrypted_stream(backend: Backend) {
    let server = TestServer::start(backend).await;
    let name: s2_sdk::types::BasinName = basin_name().parse().unwrap();
    server
        .sdk()
        .create_basin(
            CreateBasinInput::new(name.clone()).with_config(
                BasinConfig::new()
                    .with_create_stream_on_append(true)
                    .with_stream_cipher(EncryptionAlgorithm::Aegis256),
            ),
        )
        .await
        .unwrap();
    let basin = name.to_string();
    let api = Api::new(&server).basin(&basin);
    let records = json!({"records": [{"body": "json-secret", "headers": [["k", "json-header"]]}]});

    // Auto-created on append with the basin's cipher, and encrypted: without a key the
    // append is refused.
    let keyless = api
        .send(
            api.request(Method::POST, "/streams/auto/records")
                .json(&records),
        )
        .await;
    keyless.assert_error(400, "bad_header");
    assert_eq!(
        keyless.json()["message"],
        "missing encryption key for stream cipher 'aegis-256'"
    );
    let keyed = |method: Method, path: &str| {
        api.request(method, path)
            .header("s2-encryption-key", KEY_B64)
    };
    api.send(keyed(Method::POST, "/streams/auto/records").json(&records))
        .await
        .assert_status(200);
    let info = api.get("/streams?prefix=auto").await.assert_status(200);
    assert_eq!(info["streams"][0]["cipher"], "aegis-256");

    // Unary JSON read with the key; without it, with a wrong or malformed one.
    let read = api
        .send(keyed(Method::GET, "/streams/auto/records?seq_num=0"))
        .await
        .assert_status(200);
    assert_eq!(read["records"][0]["body"], "json-secret");
    assert_eq!(read["records"][0]["headers"][0][1], "json-header");
    api.read("auto", "seq_num=0")
        .await
        .assert_error(400, "bad_header");
    for (key, code) in [
        (
            "ERERERERERERERERERERERERERERERERERERERERERE=",
            "decryption_failed",
        ),
        ("!!!!", "bad_header"),
        ("AAAA", "bad_header"),
        (&"A".repeat(45)[..], "bad_header"),
    ] {
        let reply = api
            .send(
                api.request(Method::GET, "/streams/auto/records?seq_num=0")
                    .header("s2-encryption-key", key),
            )
            .await;
        reply.assert_error(400, code);
    }

    // Protobuf unary read, and SSE, with the key.
    let proto = api
        .send(
            keyed(Method::GET, "/streams/auto/records?seq_num=0")
                .header("accept", "application/protobuf"),
        )
        .await;
    assert_eq!(proto.status.as_u16(), 200);
    let batch =
        <s2_api::v1::stream::proto::ReadBatch as prost::Message>::decode(proto.body).unwrap();
    assert_eq!(&batch.records[0].body[..], b"json-secret");
    let sse = api
        .send(
            keyed(Method::GET, "/streams/auto/records?seq_num=0&count=1")
                .header("accept", "text/event-stream"),
        )
        .await;
    assert_eq!(sse.status.as_u16(), 200);
    let text = String::from_utf8_lossy(&sse.body);
    assert!(text.contains("json-secret"), "{text}");
    let sse = api
        .send(
            api.request(Method::GET, "/streams/auto/records?seq_num=0&count=1")
                .header("accept", "text/event-stream"),
        )
        .await;
    sse.assert_error(400, "bad_header");

    // The Redis-Streams surface cannot carry a key: it refuses the stream, and refuses
    // to create one where the basin would encrypt it.
    let plate = Api::plate(&server, &basin);
    for args in [
        &["XRANGE", "auto", "-", "+"][..],
        &["XADD", "auto", "*", "f", "v"],
        &["XADD", "fresh", "*", "f", "v"],
        &["XLEN", "auto"],
    ] {
        let (status, error) = plate.command(args).await.unwrap_err();
        let message = error["message"].as_str().unwrap_or_default().to_owned();
        assert!(
            message.contains("encrypted stream (aegis-256)"),
            "{args:?}: {status} {error}"
        );
    }
    assert_eq!(
        api.get("/streams?prefix=fresh").await.assert_status(200)["streams"],
        json!([])
    );
    assert!(objects_containing(&server, "json-secret").await.is_empty());
    assert!(objects_containing(&server, "json-header").await.is_empty());
}
